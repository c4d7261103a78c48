//! A switch with a mirror port, in network namespaces this test creates: a client and a
//! server on a Linux bridge, and a sensor on a third port that `tc mirred` copies every
//! client- and server-port frame to. The sensor port is a bridge member too, so frames the
//! sensor sends are switched to the client and the server. The server's side of the link
//! is 20 ms away (netem), as an AI service is far and the sensor near. Removed on drop;
//! only processes this test started are stopped, by PID.
//!
//! ```text
//!  aw-mc-PID (client)          aw-sw-PID (switch: br0)               aw-ms-PID (server)
//!  c0 10.78.0.2 ───────── swc ─┐                      ┌─ sws ───────── s0 10.78.0.3 (netem 20 ms)
//!                              └──── br0 (mirror) ────┘
//!                                        │ swm: mirror of swc and sws ingress (tc u32 + mirred)
//!                              aw-mn-PID (sensor): m0, aiwarden run
//! ```
//!
//! Also a threaded rustls server (a certificate for every name the test asks) and a
//! client that says how a handshake ended, both on threads inside the namespaces.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use super::netns::{ns_exec, ns_output, ns_spawn, sh, tear_down};
use super::nsthread::spawn_in;

/// The client's address.
pub(crate) const CLIENT_IP: &str = "10.78.0.2";
/// The TLS server's address and port.
pub(crate) const SERVER: &str = "10.78.0.3:443";
/// The delay netem adds to everything the server sends.
pub(crate) const SERVER_DELAY: Duration = Duration::from_millis(20);

/// The namespaces and the processes this test started.
pub(crate) struct Mirror {
    pub(crate) client: String,
    pub(crate) server: String,
    pub(crate) switch: String,
    pub(crate) sensor: String,
    /// The server's link has netem's delay. Without netem (a kernel built without
    /// sch_netem) the server delays its reply itself: [`serve`] with `Some(SERVER_DELAY)`.
    pub(crate) netem: bool,
    children: Vec<Child>,
}

impl Mirror {
    pub(crate) fn exec(&self, ns: &str, args: &[&str]) -> Command {
        ns_exec(ns, args)
    }

    pub(crate) fn in_ns(&self, ns: &str, args: &[&str]) -> String {
        ns_output(ns, args)
    }

    /// Starts `args` in `ns`, its output to `log`; stopped (by PID) on drop.
    pub(crate) fn spawn(&mut self, ns: &str, args: &[&str], log: &Path) -> u32 {
        let child = ns_spawn(ns, args, log);
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// The body of an HTTP GET from inside the sensor's namespace ("" when it fails).
    pub(crate) fn get(&self, url: &str) -> String {
        self.exec(&self.sensor, &["curl", "-s", "--max-time", "2", url])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        tear_down(
            &mut self.children,
            [&self.client, &self.server, &self.switch, &self.sensor],
        );
    }
}

/// Builds the switch, its three ports, the mirror and the server's delay.
pub(crate) fn setup() -> Mirror {
    let pid = std::process::id();
    let mut m = Mirror {
        netem: false,
        client: format!("aw-mc-{pid}"),
        server: format!("aw-ms-{pid}"),
        switch: format!("aw-sw-{pid}"),
        sensor: format!("aw-mn-{pid}"),
        children: Vec::new(),
    };
    for ns in [&m.client, &m.server, &m.switch, &m.sensor] {
        sh(&["ip", "netns", "add", ns]);
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    let sw = m.switch.as_str();
    sh(&["ip", "-n", sw, "link", "add", "br0", "type", "bridge"]);
    for (ns, dev, port) in [
        (&m.client, "c0", "swc"),
        (&m.server, "s0", "sws"),
        (&m.sensor, "m0", "swm"),
    ] {
        sh(&[
            "ip", "link", "add", dev, "netns", ns, "type", "veth", "peer", port, "netns", sw,
        ]);
        sh(&["ip", "-n", sw, "link", "set", port, "master", "br0"]);
        sh(&["ip", "-n", sw, "link", "set", port, "up"]);
        sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
    }
    sh(&["ip", "-n", sw, "link", "set", "br0", "up"]);
    sh(&[
        "ip",
        "-n",
        &m.client,
        "addr",
        "add",
        &format!("{CLIENT_IP}/24"),
        "dev",
        "c0",
    ]);
    sh(&[
        "ip",
        "-n",
        &m.server,
        "addr",
        "add",
        "10.78.0.3/24",
        "dev",
        "s0",
    ]);
    // The mirror: every frame that enters the switch from the client or the server is
    // copied out of the sensor's port. A u32 filter that matches everything: `matchall`
    // (cls_matchall) is not built into every kernel, u32 is.
    for port in ["swc", "sws"] {
        m.in_ns(sw, &["tc", "qdisc", "add", "dev", port, "clsact"]);
        m.in_ns(
            sw,
            &[
                "tc", "filter", "add", "dev", port, "ingress", "protocol", "all", "u32", "match",
                "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", "swm",
            ],
        );
    }
    // The internet: what the server sends arrives 20 ms later.
    let delay = format!("{}ms", SERVER_DELAY.as_millis());
    m.netem = m
        .exec(
            &m.server,
            &[
                "tc", "qdisc", "add", "dev", "s0", "root", "netem", "delay", &delay,
            ],
        )
        .output()
        .is_ok_and(|o| o.status.success());
    m
}

/// One certificate for every name the server is asked for, and a client configuration
/// that trusts it.
pub(crate) struct Tls {
    pub(crate) server: Arc<rustls::ServerConfig>,
    pub(crate) client: Arc<rustls::ClientConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn tls(names: &[&str]) -> Tls {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("certificate");
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Tls {
        server: Arc::new(server),
        client: Arc::new(client),
    }
}

/// A TLS server on a thread in `ns`, one thread per connection (a reset leaves connections
/// half-open; none may hold up the next). It completes the handshake, writes a line and
/// closes; with `delay`, its first reply leaves that long after the ClientHello arrived
/// (a far server, where netem is not available). Stops when dropped.
pub(crate) struct Server {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    ns: String,
}

pub(crate) fn serve(
    ns: &str,
    addr: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    delay: Option<Duration>,
) -> Server {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let flag = stop.clone();
    spawn_in(ns, "tls-server", move || {
        let listener = TcpListener::bind(addr).expect("bind the tls server");
        let _ = ready_tx.send(());
        for conn in listener.incoming() {
            if flag.load(Ordering::Relaxed) {
                break;
            }
            let Ok(mut sock) = conn else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = sock.set_write_timeout(Some(Duration::from_secs(5)));
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let far = Far {
                    sock: &mut sock,
                    delay,
                };
                let mut tls = rustls::StreamOwned::new(conn, far);
                let _ = tls.write_all(b"hello\n");
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the tls server listens");
    Server {
        stop,
        addr,
        ns: ns.to_string(),
    }
}

/// A socket whose first write waits `delay`: the server's reply to the ClientHello
/// arrives one round trip after it.
struct Far<'s> {
    sock: &'s mut TcpStream,
    delay: Option<Duration>,
}

impl Read for Far<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.sock.read(buf)
    }
}

impl Write for Far<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(d) = self.delay.take() {
            std::thread::sleep(d);
        }
        self.sock.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sock.flush()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let addr = self.addr;
        let _ = spawn_in(&self.ns, "wake", move || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        })
        .join();
    }
}

/// How one handshake ended, timed from the moment the ClientHello was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The connection was reset; `server_bytes` read before it.
    Reset {
        after: Duration,
        server_bytes: usize,
    },
    /// The handshake completed.
    Handshake { after: Duration },
    /// Anything else (closed, timed out, a TLS error).
    Other(String),
}

/// One real rustls handshake from a thread in `ns` to `server`, sending `sni`.
pub(crate) fn attempt(
    ns: &str,
    server: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> Outcome {
    let sni = sni.to_string();
    spawn_in(ns, "tls-client", move || handshake(server, &sni, config))
        .join()
        .expect("client thread")
}

fn handshake(server: SocketAddr, sni: &str, config: Arc<rustls::ClientConfig>) -> Outcome {
    let name = ServerName::try_from(sni.to_string()).expect("name");
    let mut conn = rustls::ClientConnection::new(config, name).expect("client");
    let mut sock = match TcpStream::connect_timeout(&server, Duration::from_secs(2)) {
        Ok(s) => s,
        Err(e) => return Outcome::Other(format!("connect: {e}")),
    };
    let _ = sock.set_nodelay(true);
    let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
    while conn.wants_write() {
        if let Err(e) = conn.write_tls(&mut sock) {
            return Outcome::Other(format!("write: {e}"));
        }
    }
    let sent = Instant::now();
    let mut server_bytes = 0;
    loop {
        match conn.read_tls(&mut sock) {
            Ok(0) => return Outcome::Other("closed by the server".into()),
            Ok(n) => {
                server_bytes += n;
                if let Err(e) = conn.process_new_packets() {
                    return Outcome::Other(format!("tls: {e}"));
                }
                while conn.wants_write() {
                    if let Err(e) = conn.write_tls(&mut sock) {
                        return Outcome::Other(format!("write: {e}"));
                    }
                }
                if !conn.is_handshaking() {
                    let after = sent.elapsed();
                    let mut line = String::new();
                    let _ = rustls::Stream::new(&mut conn, &mut sock).read_to_string(&mut line);
                    return Outcome::Handshake { after };
                }
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Outcome::Reset {
                    after: sent.elapsed(),
                    server_bytes,
                };
            }
            Err(e) => return Outcome::Other(format!("read: {e}")),
        }
    }
}

/// The `q` quantile of `xs` (sorted in place).
pub(crate) fn quantile(xs: &mut [Duration], q: f64) -> Duration {
    if xs.is_empty() {
        return Duration::ZERO;
    }
    xs.sort();
    let i = ((xs.len() as f64 - 1.0) * q).round() as usize;
    xs[i.min(xs.len() - 1)]
}
