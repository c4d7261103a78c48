//! Shell: sends the store's incidents to a SIEM as RFC 5424 syslog over TLS (RFC 5425),
//! each an OCSF event (`ocsf.rs`), after a cursor kept in a small file.
//!
//! The store is the queue. The cursor file holds the row id and chain hash of the last
//! incident the receiver confirmed; a pass reads the incidents above it a batch at a time,
//! sends a batch on one TLS connection, and moves the cursor (temp file, fsync, rename,
//! directory fsync) only once the batch is confirmed. A crash or a failed batch sends the batch
//! again: at-least-once, and exactly once when nothing fails. A store that was set aside
//! and begun anew (a corrupt or tampered file; see `crate::store`) numbers its rows from 1
//! again: the cursor's hash no longer matches, and the new chain is sent from its start.
//!
//! Syslog over TLS has no acknowledgement of its own, and a flushed write only says the
//! bytes reached this kernel. So a batch is confirmed by closing the TLS session: the
//! sender sends `close_notify` after the last frame and waits for the receiver to close in
//! turn ([`Confirm::Close`], the default). A receiver sees `close_notify` only after every
//! record before it, and closes; rsyslog answers with a bare end of stream, others with
//! their own `close_notify`. A receiver that dies or drops the connection with part of the
//! batch still unread resets the connection instead, and the batch is sent again. What
//! this cannot tell apart is a receiver that read the whole batch off its socket and then
//! lost it (that needs an application acknowledgement, as RELP has): [`Confirm::CloseNotify`]
//! narrows it for receivers that answer `close_notify` by insisting on the answer, and
//! [`Confirm::Flush`] drops the wait altogether.
//!
//! Long (about 730 lines, a sixth of them tests): the send loop, the one TLS connection a
//! batch takes, its confirmation and the cursor file are one protocol; split, each part
//! would need the others' invariants restated.
//!
//! Blocking on purpose, like `crate::deliver`: a pass runs in `aiwarden fleet syslog-send`
//! or a thread of its own, never on the detection path.
//!
//! The daemon's thread reports as it goes ([`Watch`]): incidents delivered
//! (`aiwarden_syslog_sent_total`), failed attempts by reason
//! (`aiwarden_syslog_failures_total{reason}`), incidents not sent yet
//! (`aiwarden_syslog_lag_rows`), and the `siem` part of `/healthz`: degraded, with the
//! reason, from the first failed attempt until a pass ends with everything delivered.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use super::ocsf::{self, Origin};
use super::syslog::{self, Header};
use crate::config::{Syslog, SyslogConfirm};
use crate::error::{Error, Result};
use crate::health::{Health, State};
use crate::metrics::Metrics;
use crate::policy::{Baa, Live};
use crate::store::Store;

/// Incidents per batch unless configured.
pub const DEFAULT_BATCH: u32 = 500;
/// The longest wait between two attempts at a batch.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Bytes read from the receiver while waiting for its `close_notify` (a syslog receiver
/// sends nothing; this bounds one that does).
const MAX_REPLY: usize = 64 * 1024;

/// When a batch counts as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Confirm {
    /// The receiver closed cleanly after the sender's `close_notify`: its own
    /// `close_notify` or a bare end of stream (rsyslog's); a reset is a failure.
    #[default]
    Close,
    /// The receiver answered the sender's `close_notify` with its own; a bare end of
    /// stream is a failure too.
    CloseNotify,
    /// The batch was written and flushed.
    Flush,
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct Target {
    /// The receiver's host name or address; its certificate must name it.
    pub host: String,
    /// Its port (6514 is syslog over TLS's).
    pub port: u16,
    /// CA certificates (PEM) the receiver's certificate is checked against; `None`: the
    /// system's bundle.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM) and its key, for receivers that ask for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Syslog facility (16 to 23 are local0 to local7).
    pub facility: u8,
    /// Incidents per batch (one TLS connection each), 1 to [`crate::store::MAX_FEED`].
    pub batch: u32,
    /// When a batch counts as received.
    pub confirm: Confirm,
    /// Connect, read and write timeout.
    pub timeout: Duration,
    /// Attempts at one batch before the pass gives up.
    pub attempts: u32,
    /// Wait after the first failed attempt; doubled after each (at most a minute).
    pub backoff: Duration,
}

impl Target {
    /// A target at `host:port` with the defaults: system CAs, no client certificate,
    /// local0, [`DEFAULT_BATCH`], [`Confirm::Close`], 30 s timeout, 5 attempts 1 s
    /// apart and more.
    pub fn new(host: &str, port: u16) -> Target {
        Target {
            host: host.to_string(),
            port,
            ca_file: None,
            client_cert: None,
            facility: syslog::DEFAULT_FACILITY,
            batch: DEFAULT_BATCH,
            confirm: Confirm::Close,
            timeout: Duration::from_secs(30),
            attempts: 5,
            backoff: Duration::from_secs(1),
        }
    }

    /// The target `[fleet.syslog]` describes.
    pub fn from_config(c: &Syslog) -> Target {
        Target {
            host: c.host.clone(),
            port: c.port,
            ca_file: c.ca_file.clone(),
            client_cert: c.client_cert_file.clone().zip(c.client_key_file.clone()),
            facility: c.facility,
            batch: c.batch,
            confirm: match c.confirm {
                SyslogConfirm::Close => Confirm::Close,
                SyslogConfirm::CloseNotify => Confirm::CloseNotify,
                SyslogConfirm::Flush => Confirm::Flush,
            },
            timeout: Duration::from_secs(c.timeout_secs),
            attempts: c.attempts,
            backoff: Duration::from_secs(1),
        }
    }

    fn name(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// What to send and from where.
pub struct Source<'a> {
    /// The incident store (opened read-only).
    pub store: &'a Path,
    /// The cursor file: the row id of the last incident confirmed.
    pub cursor: &'a Path,
    /// The clinic's site name.
    pub site: &'a str,
    /// The appliance's host name (syslog HOSTNAME).
    pub hostname: &'a str,
    /// The catalog's BAA availability of a service id.
    pub baa: &'a dyn Fn(&str) -> Option<Baa>,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Incidents confirmed by the receiver in this pass.
    pub sent: u64,
    /// Batches confirmed.
    pub batches: u32,
    /// TLS connections opened (more than `batches` when some failed and were retried).
    pub connections: u32,
    /// The cursor after the pass.
    pub cursor: i64,
    /// The cursor pointed into another chain (the store was begun anew) and the pass
    /// started from the new chain's first row.
    pub restarted: bool,
}

/// Where the daemon's sender reports as it goes: its metrics and the `siem` part of its
/// health. `aiwarden fleet syslog-send` (one pass by hand) has none.
#[derive(Clone, Copy)]
pub struct Watch<'a> {
    /// `aiwarden_syslog_sent_total`, `aiwarden_syslog_failures_total`,
    /// `aiwarden_syslog_lag_rows`.
    pub metrics: &'a Metrics,
    /// Where the `siem` part is set.
    pub health: &'a Health,
}

/// The health part the sender sets.
pub const HEALTH_PART: &str = "siem";

impl Watch<'_> {
    /// A failed attempt: counted by reason; `siem` degraded with what failed.
    fn failed(&self, reason: &'static str, why: &str) {
        self.metrics
            .syslog_failures
            .with_label_values(&[reason])
            .inc();
        let waiting = self.metrics.syslog_lag.get();
        self.health.set(
            HEALTH_PART,
            State::Degraded(format!("{why} ({waiting} incidents waiting)")),
        );
    }

    fn lag(&self, store: &Store, cursor: i64) {
        match store.incidents_count_after(cursor) {
            Ok(n) => self
                .metrics
                .syslog_lag
                .set(i64::try_from(n).unwrap_or(i64::MAX)),
            Err(e) => tracing::debug!(error = %e, "syslog: cannot count the incidents waiting"),
        }
    }
}

/// Sends every incident above the cursor, a batch at a time, moving the cursor after each
/// confirmed batch. Returns when none is left, when `stop` is set (between batches and
/// during waits), or with [`Error::Syslog`] when a batch failed `attempts` times or the
/// receiver's certificate is refused (not retried: the next attempt would meet it too).
pub fn send_pending(src: &Source<'_>, target: &Target, stop: &AtomicBool) -> Result<SendReport> {
    send_watched(src, target, stop, None)
}

/// [`send_pending`], reporting each confirmed batch, each failed attempt and the incidents
/// waiting to `watch`.
pub fn send_watched(
    src: &Source<'_>,
    target: &Target,
    stop: &AtomicBool,
    watch: Option<Watch<'_>>,
) -> Result<SendReport> {
    let fail = |message: String| Error::Syslog {
        to: target.name(),
        message,
    };
    // A failure before any batch: counted, and the error returned.
    let failed = |reason: &'static str, e: Error| {
        if let Some(w) = watch {
            w.failed(reason, &e.to_string());
        }
        e
    };
    if target.batch == 0 || target.batch > crate::store::MAX_FEED {
        return Err(fail(format!(
            "batch must be 1 to {}, not {}",
            crate::store::MAX_FEED,
            target.batch
        )));
    }
    let tls = client_config(target).map_err(|m| failed("tls", fail(m)))?;
    let server_name = ServerName::try_from(target.host.clone())
        .map_err(|e| fail(format!("not a host name or address: {e}")))?;
    let store = Store::open_read_only(src.store).map_err(|e| failed("store", e))?;
    let header = Header {
        facility: target.facility,
        hostname: src.hostname.to_string(),
        procid: Some(std::process::id()),
    };
    let origin = Origin {
        site: src.site,
        appliance: src.hostname,
    };
    let (cursor, cursor_hash) = read_cursor(src.cursor).map_err(|e| failed("cursor", e))?;
    let mut report = SendReport {
        cursor,
        ..SendReport::default()
    };
    if cursor > 0
        && !same_chain(&store, cursor, cursor_hash.as_deref()).map_err(|e| failed("store", e))?
    {
        tracing::warn!(cursor, store = %src.store.display(),
            "syslog: the cursor is not in this store's chain (a new store); sending it from its start");
        report.cursor = 0;
        report.restarted = true;
    }
    if let Some(w) = watch {
        w.lag(&store, report.cursor);
    }
    while !stop.load(Ordering::Relaxed) {
        let batch = store
            .incidents_after(report.cursor, target.batch)
            .map_err(|e| failed("store", e))?;
        let Some((last, last_hash)) = batch.last().map(|c| (c.row.id, c.hash.clone())) else {
            // Everything delivered: whatever failed before is over.
            if let Some(w) = watch {
                w.health.set(HEALTH_PART, State::Ok);
            }
            break;
        };
        let mut bytes = Vec::new();
        for inc in &batch {
            let r = &inc.row.summary.record;
            let json = ocsf::finding(inc, origin, (src.baa)(&r.service)).to_string();
            let row = inc.row.id.to_string();
            let msg = syslog::message(
                &header,
                syslog::severity(r.verdict),
                r.ts,
                syslog::MSGID_INCIDENT,
                &[("site", src.site), ("row", &row), ("hash", &inc.hash)],
                &json,
            );
            bytes.extend_from_slice(&syslog::frame(&msg));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            report.connections += 1;
            let sent = send_batch(&tls, &server_name, target, &bytes);
            if let (Err(f), Some(w)) = (&sent, watch) {
                w.failed(
                    f.reason,
                    &format!(
                        "syslog to {}: {} (attempt {attempt} of {})",
                        target.name(),
                        f.message,
                        target.attempts
                    ),
                );
            }
            match sent {
                Ok(()) => break,
                Err(f) if f.permanent || attempt >= target.attempts => {
                    return Err(fail(if f.permanent {
                        f.message
                    } else {
                        format!("{} (gave up after {attempt} attempts)", f.message)
                    }));
                }
                Err(f) => {
                    let wait = backoff(target.backoff, attempt);
                    tracing::warn!(to = %target.name(), attempt, error = %f.message,
                        wait_ms = wait.as_millis() as u64, "syslog: batch not confirmed, retrying");
                    if pause(wait, stop) {
                        return Ok(report);
                    }
                }
            }
        }
        write_cursor(src.cursor, last, &last_hash).map_err(|e| failed("cursor", e))?;
        report.cursor = last;
        report.sent += batch.len() as u64;
        report.batches += 1;
        if let Some(w) = watch {
            w.metrics.syslog_sent.inc_by(batch.len() as u64);
            w.lag(&store, last);
        }
        tracing::debug!(to = %target.name(), incidents = batch.len(), cursor = last, "syslog: batch confirmed");
    }
    Ok(report)
}

/// The daemon's SIEM thread: a pass every `interval_secs` of `[fleet.syslog]` until `stop`,
/// the BAA of each service read from the rules in force. A failed pass is logged and the
/// next one starts from the cursor. `stop` is seen between batches and while waiting; a
/// batch under way finishes or times out first (at most `timeout_secs` per step).
///
/// The `siem` health part is `ok` from the start and once a pass has sent everything,
/// `degraded` (saying why) from a failed attempt until then; the pass's progress goes to
/// `metrics` (see [`Watch`]).
pub fn spawn(
    cfg: Syslog,
    store: PathBuf,
    site: String,
    live: Arc<Live>,
    (metrics, health): (Arc<Metrics>, Arc<Health>),
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let target = Target::from_config(&cfg);
    let hostname = cfg.hostname.clone().unwrap_or_else(host_name);
    health.set(HEALTH_PART, State::Ok);
    std::thread::Builder::new()
        .name("aiwarden-syslog".into())
        .spawn(move || {
            tracing::info!(to = %target.name(), every_secs = cfg.interval_secs, "syslog: sending incidents to the siem");
            let watch = Watch {
                metrics: &metrics,
                health: &health,
            };
            loop {
                let rules = live.current();
                let baa = |id: &str| {
                    rules
                        .services()
                        .find(|s| &*s.id == id)
                        .and_then(|s| s.baa)
                };
                let src = Source {
                    store: &store,
                    cursor: &cfg.cursor_file,
                    site: &site,
                    hostname: &hostname,
                    baa: &baa,
                };
                match send_watched(&src, &target, &stop, Some(watch)) {
                    Ok(r) if r.sent > 0 => {
                        tracing::info!(to = %target.name(), sent = r.sent, cursor = r.cursor, "syslog: incidents sent");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "syslog: pass failed; the next one resumes");
                        let waiting = metrics.syslog_lag.get();
                        health.set(
                            HEALTH_PART,
                            State::Degraded(format!("{e} ({waiting} incidents waiting)")),
                        );
                    }
                }
                if pause(Duration::from_secs(cfg.interval_secs), &stop) {
                    return;
                }
            }
        })
        .map_err(|e| Error::Thread {
            name: "the syslog sender".into(),
            source: e,
        })
}

/// This machine's host name (`/proc/sys/kernel/hostname`), or `-` when unknown.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "-".into())
}

/// Why one attempt at a batch failed.
#[derive(Debug)]
struct Failure {
    message: String,
    /// The `reason` label of `aiwarden_syslog_failures_total`.
    reason: &'static str,
    /// Another attempt would meet the same refusal (the certificate).
    permanent: bool,
}

/// One TLS connection: the frames, then the confirmation.
fn send_batch(
    tls: &Arc<rustls::ClientConfig>,
    name: &ServerName<'static>,
    target: &Target,
    bytes: &[u8],
) -> std::result::Result<(), Failure> {
    let io = |what: &'static str, e: std::io::Error| Failure {
        permanent: certificate_refused(&e),
        reason: reason(what, &e),
        message: format!("{what}: {}", crate::tls::error_chain(&e)),
    };
    let addrs = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| io("resolve", e))?;
    let mut last = None;
    let mut tcp = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, target.timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let tcp = match (tcp, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(io("connect", e)),
        (None, None) => {
            return Err(Failure {
                message: "the host name has no address".into(),
                reason: "resolve",
                permanent: false,
            })
        }
    };
    tcp.set_read_timeout(Some(target.timeout))
        .and_then(|()| tcp.set_write_timeout(Some(target.timeout)))
        .and_then(|()| tcp.set_nodelay(true))
        .map_err(|e| io("socket", e))?;
    let conn = rustls::ClientConnection::new(tls.clone(), name.clone()).map_err(|e| Failure {
        message: format!("tls: {e}"),
        reason: "tls",
        permanent: true,
    })?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    // A receiver that refuses this client's certificate says so in an alert that arrives
    // after the handshake (TLS 1.3), and the write it breaks fails with a bare "broken
    // pipe": the alert, when it can still be read, is the better reason.
    let written = s
        .write_all(bytes)
        .and_then(|()| s.flush())
        .map_err(|e| ("send", e))
        .and_then(|()| {
            s.conn.send_close_notify();
            s.flush().map_err(|e| ("close", e))
        });
    if let Err((what, e)) = written {
        // Read what the receiver sent before it went (not through the stream, which would
        // first try to write what is pending and fail again), briefly.
        let _ = s.sock.set_read_timeout(Some(Duration::from_secs(1)));
        let alert = match s.conn.read_tls(&mut s.sock) {
            Ok(n) if n > 0 => s.conn.process_new_packets().err(),
            _ => None,
        };
        return Err(match alert {
            Some(a) => io(
                what,
                std::io::Error::new(std::io::ErrorKind::InvalidData, a),
            ),
            None => io(what, e),
        });
    }
    if target.confirm == Confirm::Flush {
        return Ok(());
    }
    // The receiver's close_notify reads as the end of the stream; a bare TCP close reads
    // as an `UnexpectedEof` error, a reset as a reset.
    let mut buf = [0u8; 4096];
    let mut read = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) if read + n <= MAX_REPLY => read += n,
            Ok(_) => {
                return Err(Failure {
                    message: "the receiver sent more than 64 KiB instead of closing".into(),
                    reason: "confirm",
                    permanent: false,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return if target.confirm == Confirm::Close {
                    Ok(())
                } else {
                    Err(Failure {
                        message: "the receiver closed the connection without close_notify: \
                                  the batch is not confirmed (confirm = \"close\" accepts that)"
                            .into(),
                        reason: "confirm",
                        permanent: false,
                    })
                }
            }
            Err(e) => return Err(io("confirm", e)),
        }
    }
}

/// The `reason` label of a failed step (`resolve`, `connect`, `socket`, `send`, `close`,
/// `confirm`): any TLS error on the way (the handshake runs inside the first write, an
/// alert arrives in a read) is `tls`; the rest is named for the step.
fn reason(step: &'static str, e: &std::io::Error) -> &'static str {
    if crate::tls::rustls_refused(e, &|_| true) {
        return "tls";
    }
    match step {
        "resolve" => "resolve",
        "connect" | "socket" => "connect",
        "send" | "close" => "write",
        _ => "confirm",
    }
}

/// The client's TLS configuration: roots from `ca_file` or the system bundle, the client
/// certificate when there is one.
fn client_config(target: &Target) -> std::result::Result<Arc<rustls::ClientConfig>, String> {
    let client = target
        .client_cert
        .as_ref()
        .map(|(c, k)| (c.as_path(), k.as_path()));
    crate::tls::client_config(target.ca_file.as_deref(), client)
}

/// Whether the cursor (`id`, and its hash when the file had one) points into `store`'s
/// chain: the row has that hash, or it is gone because retention purged it (the store's
/// newest row is past it). A store whose newest row is older than the cursor, or whose row
/// `id` has another hash, is a new chain.
fn same_chain(store: &Store, id: i64, hash: Option<&str>) -> Result<bool> {
    Ok(match (store.row_hash(id)?, hash) {
        (Some(now), Some(was)) => now == was,
        (Some(_), None) => true,
        (None, _) => store.head()?.is_some_and(|h| h.id > id),
    })
}

/// The cursor in `path`: a row id and its chain hash on one line (`4711 9f2c...`; the
/// hash may be missing); `(0, None)` when the file does not exist yet.
pub fn read_cursor(path: &Path) -> Result<(i64, Option<String>)> {
    let bad = |text: &str| Error::Config {
        path: path.to_path_buf(),
        line: 1,
        message: format!("syslog cursor: {text:?} is not a row id and hash"),
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut words = text.split_whitespace();
            let id = words
                .next()
                .and_then(|w| w.parse::<i64>().ok())
                .filter(|id| *id >= 0)
                .ok_or_else(|| bad(text.trim()))?;
            let hash = words.next().map(str::to_string);
            if words.next().is_some()
                || hash
                    .as_deref()
                    .is_some_and(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(bad(text.trim()));
            }
            Ok((id, hash))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((0, None)),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes the cursor (`id` and its chain hash) so that a crash leaves the old cursor or
/// the new one, never a torn file: a temporary file beside it, synced, renamed, the
/// directory synced.
pub fn write_cursor(path: &Path, id: i64, hash: &str) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(format!("{id} {hash}\n").as_bytes())
        .map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// The wait after failed attempt `attempt` (1-based): `first`, doubled each time, at most
/// [`MAX_BACKOFF`].
fn backoff(first: Duration, attempt: u32) -> Duration {
    first
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// Waits `d` in short steps; true when `stop` was set meanwhile.
pub(super) fn pause(d: Duration, stop: &AtomicBool) -> bool {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
    stop.load(Ordering::Relaxed)
}

/// Whether `e` (or a cause) is rustls refusing the receiver's certificate, or the receiver
/// refusing ours.
fn certificate_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    crate::tls::rustls_refused(e, &|r| {
        matches!(
            r,
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::AlertReceived(
                    rustls::AlertDescription::BadCertificate
                        | rustls::AlertDescription::UnknownCA
                        | rustls::AlertDescription::CertificateRequired
                )
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute() {
        let s = Duration::from_secs(1);
        assert_eq!(backoff(s, 1), s);
        assert_eq!(backoff(s, 3), Duration::from_secs(4));
        assert_eq!(backoff(s, 40), MAX_BACKOFF);
    }

    #[test]
    fn the_cursor_round_trips_and_a_bad_one_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("syslog.cursor");
        assert_eq!(read_cursor(&p).expect("missing is 0"), (0, None));
        let h = "ab".repeat(32);
        write_cursor(&p, 41, &h).expect("write");
        write_cursor(&p, 42, &h).expect("write");
        assert_eq!(read_cursor(&p).expect("read"), (42, Some(h.clone())));
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
        std::fs::write(&p, "42\n").expect("write");
        assert_eq!(read_cursor(&p).expect("no hash"), (42, None));
        for bad in ["forty-two", "-1", "42 xyz", &format!("42 {h} more")] {
            std::fs::write(&p, bad).expect("write");
            let e = read_cursor(&p).expect_err(bad);
            assert!(e.to_string().contains("is not a row id and hash"), "{e}");
        }
    }
}
