//! The compliance web console: a shell that owns one HTTPS listener on the management
//! address and shows the store to compliance staff who never open a terminal. It decides
//! nothing about traffic; it reads incidents, records acknowledgements through the store's
//! ack API (chained `ack` rows) and records its own actions as chained `event` rows.
//!
//! ```text
//! TCP accept (at most max_connections) ─> TLS (rustls, ring; tls.rs) ─> HTTP/1.1 (hyper)
//!   ─> web/: security headers, same-origin check on POST, session cookie, CSRF token
//!   ─> handlers ─> pages.rs (askama, escaped) / db.rs (the store, off the async threads)
//! ```
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | [`Console`]: bind, serve, [`spawn`] for the daemon, [`run`] for `aiwarden console` |
//! | `auth.rs` | pure: argon2id passwords, sessions, login limits (time passed in) |
//! | `tls.rs` | the certificate: the admin's, or one made at first start and reused |
//! | `web/` | routes and the security layer (`mod.rs`: login, logout), the pages that read and acknowledge (`browse.rs`), reports and rules (`files.rs`) |
//! | `pages.rs` | templates and what they show (who may see addresses) |
//! | `db.rs` | the store: a writing connection and a few read-only ones |
//!
//! Bounds: `max_connections` at once, each kept 5 minutes at most, 10 s for a TLS
//! handshake and for a request's headers, 30 s for a handler, 64 KiB of request body,
//! `max_sessions` sessions.

mod auth;
mod db;
mod pages;
mod tls;
mod web;

pub use auth::{hash_password, verify_password, MAX_PASSWORD, MIN_PASSWORD};
pub use tls::{Source as CertSource, CERT_FILE, KEY_FILE};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use jiff::tz::TimeZone;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::{Error, Result};
use web::{App, ClientAddr};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request's headers may take to arrive (also the keep-alive idle limit).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a handler may take.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one connection is kept, however busy: a slot is never held for good.
const CONNECTION_AGE: Duration = Duration::from_secs(300);

/// The console, bound and ready to serve.
pub struct Console {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Arc<App>,
    addr: SocketAddr,
    cert: tls::Source,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The directory the generated certificate lives in: `state_dir`, else the store's.
fn state_dir(cfg: &Config) -> PathBuf {
    cfg.console.state_dir.clone().unwrap_or_else(|| {
        cfg.store
            .path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    })
}

/// The report archive: `[report] dir` (`reports/` beside the store unless configured).
pub fn reports_dir(cfg: &Config) -> PathBuf {
    cfg.report.dir.clone()
}

impl Console {
    /// Loads or makes the certificate, opens (creating or migrating) the store, reads the
    /// catalog's service names and binds `console.listen`. Times are shown in `tz`.
    pub async fn bind(cfg: &Config, tz: TimeZone, metrics: Arc<Metrics>) -> Result<Console> {
        let c = cfg.console.clone();
        let (cert, key, dir, listen) = (
            c.cert_file.clone(),
            c.key_file.clone(),
            state_dir(cfg),
            c.listen,
        );
        let (tls, source) = tokio::task::spawn_blocking(move || {
            tls::server_config(cert.as_deref(), key.as_deref(), &dir, listen)
        })
        .await
        .map_err(|e| Error::Console(format!("certificate: {e}")))??;
        let db = db::Db::new(&cfg.store.path);
        let rules = cfg.rule_dirs();
        let (db, services) = tokio::task::spawn_blocking(move || {
            // The store is created or migrated now, not at the first click.
            if let Err(e) = db.write(|_| Ok(())) {
                tracing::error!(error = %e, "console: the store cannot be opened; pages will say so");
            }
            let services = match crate::policy::RuleSet::load(&rules) {
                Ok(r) => {
                    let mut v: Vec<(String, String)> = r
                        .services()
                        .map(|s| (s.id.to_string(), s.name.to_string()))
                        .collect();
                    v.sort_by_key(|a| a.1.to_lowercase());
                    v
                }
                Err(e) => {
                    tracing::error!(error = %e, "console: rules unreadable; no service filter");
                    Vec::new()
                }
            };
            (db, services)
        })
        .await
        .map_err(|e| Error::Console(format!("store: {e}")))?;
        let listener = crate::limit::listen(c.listen).map_err(|source| Error::Listen {
            what: "console",
            addr: c.listen.to_string(),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| Error::Listen {
            what: "console",
            addr: c.listen.to_string(),
            source,
        })?;
        let app = App {
            sessions: Mutex::new(auth::Sessions::new(
                c.max_sessions,
                Duration::from_secs(c.session_idle_secs),
                Duration::from_secs(c.session_max_secs),
            )),
            limiter: Mutex::new(auth::LoginLimiter::new(
                c.login_failures,
                Duration::from_secs(c.login_window_secs),
            )),
            reports: reports_dir(cfg),
            rules: cfg.rule_dirs(),
            mode: cfg.mode,
            db,
            tz,
            metrics,
            services,
            cfg: c,
        };
        Ok(Console {
            listener,
            acceptor: TlsAcceptor::from(tls),
            app: Arc::new(app),
            addr,
            cert: source,
        })
    }

    /// The address it listens on (the port chosen when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where its certificate came from.
    pub fn cert(&self) -> &CertSource {
        &self.cert
    }

    /// Serves until `shutdown` turns true; connections then finish their request and close.
    pub async fn serve(self, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.app.cfg.max_connections));
        let router = web::router(self.app.clone());
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = shutdown.changed() => break,
            };
            let (tcp, peer) = tokio::select! {
                r = self.listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "console: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            while conns.try_join_next().is_some() {}
            let (acceptor, router, mut stop) =
                (self.acceptor.clone(), router.clone(), shutdown.clone());
            conns.spawn(async move {
                let _permit = permit;
                let Ok(Ok(stream)) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(ClientAddr(peer));
                        let router = router.clone();
                        async move {
                            let resp =
                                match tokio::time::timeout(HANDLER_TIMEOUT, router.oneshot(req))
                                    .await
                                {
                                    Ok(Ok(r)) => r,
                                    Ok(Err(never)) => match never {},
                                    Err(_) => axum::response::IntoResponse::into_response((
                                        http::StatusCode::SERVICE_UNAVAILABLE,
                                        "timed out",
                                    )),
                                };
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    },
                );
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(64 * 1024)
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = stop.changed() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(HANDLER_TIMEOUT, conn).await;
                    }
                    _ = tokio::time::sleep(CONNECTION_AGE) => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(HANDLER_TIMEOUT, conn).await;
                    }
                }
            });
        }
        // Each connection saw the signal too; give them a moment to finish.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while conns.join_next().await.is_some() {}
        })
        .await;
    }
}

/// Binds the console (`[console]` of `cfg`) on the current tokio runtime and serves it in a
/// task until `shutdown` turns true: what the daemon calls when `console.enabled` is set.
pub async fn spawn(
    cfg: &Config,
    tz: TimeZone,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>> {
    let console = Console::bind(cfg, tz, metrics).await?;
    tracing::info!(addr = %console.local_addr(), cert = ?console.cert(), "console listening");
    Ok(tokio::spawn(console.serve(shutdown)))
}

/// `aiwarden console`: serves the console alone until SIGINT or SIGTERM, printing
/// `console: https://ADDR/` on standard output once it listens.
pub fn run(cfg: &Config, tz: TimeZone) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("aiwarden-console")
        .build()
        .map_err(|source| Error::Thread {
            name: "the async runtime".into(),
            source,
        })?;
    runtime.block_on(async {
        let console = Console::bind(cfg, tz, Arc::new(Metrics::new())).await?;
        let addr = console.local_addr();
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(out, "console: https://{addr}/ ({:?})", console.cert())?;
            out.flush()?;
        }
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(console.serve(rx));
        let signal = |k| {
            tokio::signal::unix::signal(k).map_err(|source| Error::Thread {
                name: "signal handling".into(),
                source,
            })
        };
        use tokio::signal::unix::SignalKind;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(true);
        let _ = task.await;
        Ok(())
    })
}
