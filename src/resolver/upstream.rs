//! Upstream resolvers: plain DNS over UDP (TCP on truncation) and DNS over TLS with the
//! certificate verified, tried in order within the configured timeout, with every resource
//! bounded:
//!
//! - questions in flight: at most `dns.max_upstream_inflight`; beyond it SERVFAIL at once
//!   (counted), so a slow upstream and a flood of unique names cannot pile up tasks and
//!   sockets until the process runs out of file handles;
//! - identical questions in flight are sent once; the others wait for that answer;
//! - plain upstreams are asked through a small pool of connected UDP sockets, each
//!   replaced after [`ROTATE_AFTER`] questions or [`ROTATE_AGE`], so the source port keeps
//!   changing (as does the random query ID) without a socket per question;
//! - a DNS-over-TLS upstream is one kept-open connection carrying many questions at once
//!   (RFC 7766 pipelining), reopened when it fails or after [`STREAM_IDLE`] idle.
//!
//! Answers are matched by ID on the socket and then by question; one that does not match
//! counts as a failure. UDP answers are read whole (up to 64 KiB), and any that is
//! truncated or does not parse is asked again over TCP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use rustc_hash::FxHashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::cache::Key;
use super::Asked;
use crate::config::{Dns, Upstream};
use crate::limit::Throttle;
use crate::metrics::Metrics;

/// UDP sockets per plain upstream.
const POOL: usize = 4;
/// Questions one UDP socket carries before it is replaced (a new source port).
const ROTATE_AFTER: u32 = 1_000;
/// How long one UDP socket is used at most.
const ROTATE_AGE: Duration = Duration::from_secs(60);
/// A kept-open DNS-over-TLS connection idle this long is closed.
const STREAM_IDLE: Duration = Duration::from_secs(30);
/// Clients waiting on one question already in flight; more get SERVFAIL.
const MAX_WAITERS: usize = 64;

fn random_id() -> u16 {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_be_bytes(b)
}

/// Answers waiting for a question's ID, on one socket or connection.
type Pending = Mutex<FxHashMap<u16, oneshot::Sender<Vec<u8>>>>;

/// Registers a fresh random ID in `pending`; the guard removes it when the exchange ends
/// (answered, timed out or cancelled).
struct Slot<'a> {
    pending: &'a Pending,
    id: u16,
}

impl<'a> Slot<'a> {
    fn new(pending: &'a Pending) -> (Slot<'a>, oneshot::Receiver<Vec<u8>>) {
        let (tx, rx) = oneshot::channel();
        let mut map = pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut id = random_id();
        while map.contains_key(&id) {
            id = random_id();
        }
        map.insert(id, tx);
        (Slot { pending, id }, rx)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&self.id);
    }
}

/// Hands an answer to whoever waits for its ID.
fn dispatch(pending: &Pending, answer: &[u8]) {
    if answer.len() < 12 {
        return;
    }
    let id = u16::from_be_bytes([answer[0], answer[1]]);
    let tx = pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    if let Some(tx) = tx {
        let _ = tx.send(answer.to_vec());
    }
}

/// One connected UDP socket and the questions waiting on it.
#[derive(Debug)]
struct UdpConn {
    socket: UdpSocket,
    pending: Pending,
    used: AtomicU32,
    born: Instant,
    retired: AtomicBool,
}

impl UdpConn {
    fn open(addr: SocketAddr) -> std::io::Result<Arc<UdpConn>> {
        let bind: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let s = std::net::UdpSocket::bind(bind)?;
        s.connect(addr)?;
        s.set_nonblocking(true)?;
        let conn = Arc::new(UdpConn {
            socket: UdpSocket::from_std(s)?,
            pending: Mutex::new(FxHashMap::default()),
            used: AtomicU32::new(0),
            born: Instant::now(),
            retired: AtomicBool::new(false),
        });
        tokio::spawn(conn.clone().read());
        Ok(conn)
    }

    /// Hands answers to their askers until the socket is retired and nobody waits.
    async fn read(self: Arc<Self>) {
        let mut buf = vec![0u8; 65_535];
        loop {
            let done = || {
                self.retired.load(Ordering::Relaxed)
                    && self
                        .pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .is_empty()
            };
            if done() {
                return;
            }
            match tokio::time::timeout(Duration::from_secs(1), self.socket.recv(&mut buf)).await {
                Ok(Ok(n)) => dispatch(&self.pending, &buf[..n]),
                // ICMP unreachable on a connected socket: nobody listens there; whoever
                // waits fails now (and tries the next upstream) instead of timing out.
                Ok(Err(_)) => self
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear(),
                Err(_) => {}
            }
        }
    }

    fn worn(&self) -> bool {
        self.used.load(Ordering::Relaxed) >= ROTATE_AFTER || self.born.elapsed() >= ROTATE_AGE
    }
}

/// The UDP sockets of one plain upstream.
#[derive(Debug)]
struct UdpPool {
    addr: SocketAddr,
    slots: [Mutex<Option<Arc<UdpConn>>>; POOL],
    next: AtomicUsize,
}

impl UdpPool {
    fn new(addr: SocketAddr) -> UdpPool {
        UdpPool {
            addr,
            slots: std::array::from_fn(|_| Mutex::new(None)),
            next: AtomicUsize::new(0),
        }
    }

    fn conn(&self) -> std::io::Result<Arc<UdpConn>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % POOL;
        let mut slot = self.slots[i].lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.as_ref().filter(|c| !c.worn()) {
            c.used.fetch_add(1, Ordering::Relaxed);
            return Ok(c.clone());
        }
        if let Some(old) = slot.take() {
            old.retired.store(true, Ordering::Relaxed);
        }
        let c = UdpConn::open(self.addr)?;
        c.used.fetch_add(1, Ordering::Relaxed);
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn exchange(&self, query: &mut [u8]) -> Result<Vec<u8>, Failure> {
        let conn = self.conn().map_err(|_| Failure::Error)?;
        let (slot, rx) = Slot::new(&conn.pending);
        query[..2].copy_from_slice(&slot.id.to_be_bytes());
        conn.socket.send(query).await.map_err(|_| Failure::Error)?;
        let answer = rx.await.map_err(|_| Failure::Error)?;
        drop(slot);
        Ok(answer)
    }
}

/// A kept-open stream (DNS over TLS) carrying many questions.
#[derive(Debug)]
struct StreamConn {
    tx: mpsc::Sender<Vec<u8>>,
    pending: Arc<Pending>,
    alive: Arc<AtomicBool>,
}

impl StreamConn {
    fn start<S>(stream: S) -> StreamConn
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
        let pending: Arc<Pending> = Arc::new(Mutex::new(FxHashMap::default()));
        let alive = Arc::new(AtomicBool::new(true));
        let (p, a) = (pending.clone(), alive.clone());
        tokio::spawn(async move {
            let (mut rd, mut wr) = tokio::io::split(stream);
            let reader = async {
                loop {
                    let mut len = [0u8; 2];
                    rd.read_exact(&mut len).await?;
                    let n = usize::from(u16::from_be_bytes(len));
                    let mut buf = Vec::new();
                    (&mut rd).take(n as u64).read_to_end(&mut buf).await?;
                    if buf.len() < n {
                        return Err::<(), std::io::Error>(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    dispatch(&p, &buf);
                }
            };
            let writer = async {
                loop {
                    match tokio::time::timeout(STREAM_IDLE, rx.recv()).await {
                        Ok(Some(q)) => {
                            let mut out = Vec::with_capacity(q.len() + 2);
                            out.extend_from_slice(&(q.len() as u16).to_be_bytes());
                            out.extend_from_slice(&q);
                            wr.write_all(&out).await?;
                            wr.flush().await?;
                        }
                        Ok(None) => return Ok::<(), std::io::Error>(()),
                        Err(_) => {
                            if p.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
                                return Ok(());
                            }
                        }
                    }
                }
            };
            tokio::select! {
                _ = reader => {}
                _ = writer => {}
            }
            a.store(false, Ordering::Relaxed);
            // Whoever still waits learns the connection is gone.
            p.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        StreamConn { tx, pending, alive }
    }

    async fn exchange(&self, query: &mut [u8]) -> Result<Vec<u8>, Failure> {
        let (slot, rx) = Slot::new(&self.pending);
        query[..2].copy_from_slice(&slot.id.to_be_bytes());
        self.tx
            .send(query.to_vec())
            .await
            .map_err(|_| Failure::Error)?;
        let answer = rx.await.map_err(|_| Failure::Error)?;
        drop(slot);
        Ok(answer)
    }
}

/// One DNS-over-TLS upstream's connection, opened when first needed.
#[derive(Debug, Default)]
struct StreamSlot {
    conn: tokio::sync::Mutex<Option<Arc<StreamConn>>>,
}

#[derive(Debug)]
enum Target {
    Plain(UdpPool),
    Tls {
        addr: SocketAddr,
        name: String,
        conn: StreamSlot,
    },
}

/// Why one exchange failed, for the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    Timeout,
    Error,
    Mismatch,
    ServFail,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Error => "error",
            Failure::Mismatch => "mismatch",
            Failure::ServFail => "servfail",
        }
    }
}

/// What a question in flight is keyed by: an identical one joins it.
type Question = (Key, bool);

/// The configured upstreams and the bounds on what is asked of them.
pub(super) struct Upstreams {
    targets: Vec<Target>,
    timeout: Duration,
    inflight: Arc<Semaphore>,
    /// Questions each client has waiting upstream now (entries only while above zero).
    per_client: Mutex<FxHashMap<IpAddr, usize>>,
    per_client_max: usize,
    waiting: Mutex<FxHashMap<Question, Vec<oneshot::Sender<Option<Message>>>>>,
    tls: Option<tokio_rustls::TlsConnector>,
    metrics: Arc<Metrics>,
    log: Throttle,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("targets", &self.targets)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Removes a question from the in-flight map when its asker finishes or is cancelled;
/// waiters still there then get `None` (SERVFAIL), never a hang.
struct Leader<'a> {
    waiting: &'a Mutex<FxHashMap<Question, Vec<oneshot::Sender<Option<Message>>>>>,
    question: Option<Question>,
}

impl Leader<'_> {
    fn finish(mut self, answer: &Option<Message>) {
        if let Some(q) = self.question.take() {
            let waiters = self
                .waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&q)
                .unwrap_or_default();
            for w in waiters {
                let _ = w.send(answer.clone());
            }
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Some(q) = self.question.take() {
            self.waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&q);
        }
    }
}

/// One of a client's questions waiting upstream; its share is given back on drop.
struct ClientShare<'a> {
    map: &'a Mutex<FxHashMap<IpAddr, usize>>,
    client: IpAddr,
}

impl Drop for ClientShare<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.client);
            }
        }
    }
}

/// Holds one of the in-flight permits and the gauge that shows them.
struct InFlight<'a> {
    _permit: OwnedSemaphorePermit,
    metrics: &'a Metrics,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.dns_upstream_inflight.dec();
    }
}

impl Upstreams {
    pub(super) fn new(
        cfg: &Dns,
        tls: Option<tokio_rustls::TlsConnector>,
        metrics: Arc<Metrics>,
    ) -> Upstreams {
        let targets = cfg
            .upstreams
            .iter()
            .map(|u| match u {
                Upstream::Plain(addr) => Target::Plain(UdpPool::new(*addr)),
                Upstream::Tls { addr, name } => Target::Tls {
                    addr: *addr,
                    name: name.clone(),
                    conn: StreamSlot::default(),
                },
            })
            .collect();
        Upstreams {
            targets,
            timeout: Duration::from_millis(cfg.timeout_ms),
            inflight: Arc::new(Semaphore::new(cfg.max_upstream_inflight)),
            per_client: Mutex::new(FxHashMap::default()),
            per_client_max: cfg.max_upstream_per_client,
            waiting: Mutex::new(FxHashMap::default()),
            tls,
            metrics,
            log: Throttle::new(Duration::from_secs(10)),
        }
    }

    /// The upstreams' answer to `asked` from `client`, or `None` (the caller answers
    /// SERVFAIL).
    pub(super) async fn forward(&self, asked: &Asked, client: IpAddr) -> Option<Message> {
        let question = (asked.key.clone(), asked.msg.metadata.checking_disabled);
        let rx = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            match waiting.get_mut(&question) {
                Some(w) if w.len() >= MAX_WAITERS => {
                    self.metrics
                        .dns_limited
                        .with_label_values(&["coalesced_waiters"])
                        .inc();
                    return None;
                }
                Some(w) => {
                    let (tx, rx) = oneshot::channel();
                    w.push(tx);
                    Some(rx)
                }
                None => {
                    waiting.insert(question.clone(), Vec::new());
                    None
                }
            }
        };
        if let Some(rx) = rx {
            self.metrics.dns_coalesced.inc();
            return rx.await.ok().flatten();
        }
        let leader = Leader {
            waiting: &self.waiting,
            question: Some(question),
        };
        let answer = self.ask(asked, client).await;
        leader.finish(&answer);
        answer
    }

    /// Asks each upstream in turn, holding one in-flight permit and one of the client's
    /// shares: one client with a slow name per query cannot hold every permit.
    async fn ask(&self, asked: &Asked, client: IpAddr) -> Option<Message> {
        let _share = {
            let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(client).or_insert(0);
            if *n >= self.per_client_max {
                drop(map);
                self.metrics
                    .dns_limited
                    .with_label_values(&["upstream_per_client"])
                    .inc();
                return None;
            }
            *n += 1;
            ClientShare {
                map: &self.per_client,
                client,
            }
        };
        let Ok(permit) = self.inflight.clone().try_acquire_owned() else {
            self.metrics
                .dns_limited
                .with_label_values(&["upstream_inflight"])
                .inc();
            return None;
        };
        self.metrics.dns_upstream_inflight.inc();
        let _held = InFlight {
            _permit: permit,
            metrics: &self.metrics,
        };
        let mut q = Message::new(0, MessageType::Query, OpCode::Query);
        q.metadata.recursion_desired = true;
        q.metadata.checking_disabled = asked.msg.metadata.checking_disabled;
        q.queries = vec![asked.query.clone()];
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        edns.set_dnssec_ok(asked.key.dnssec_ok);
        q.edns = Some(edns);
        let bytes = q.to_vec().ok()?;
        for (i, target) in self.targets.iter().enumerate() {
            let got = tokio::time::timeout(self.timeout, self.exchange(target, &bytes, &q))
                .await
                .unwrap_or(Err(Failure::Timeout));
            match got {
                Ok(m) => return Some(m),
                Err(why) => {
                    self.metrics
                        .dns_upstream_failures
                        .with_label_values(&[why.as_str()])
                        .inc();
                    if let Some(quiet) = self.log.ready(Instant::now()) {
                        tracing::warn!(
                            upstream = i,
                            name = %asked.key.name,
                            reason = why.as_str(),
                            not_logged = quiet,
                            "upstream failed; trying the next, or SERVFAIL"
                        );
                    }
                }
            }
        }
        None
    }

    async fn exchange(
        &self,
        target: &Target,
        bytes: &[u8],
        q: &Message,
    ) -> Result<Message, Failure> {
        let mut query = bytes.to_vec();
        let answer = match target {
            Target::Plain(pool) => {
                let raw = pool.exchange(&mut query).await?;
                match Message::from_vec(&raw) {
                    Ok(m) if !m.metadata.truncation => m,
                    // Truncated, or too odd to read: ask again over TCP.
                    _ => tcp_exchange(pool.addr, &mut query).await?,
                }
            }
            Target::Tls { addr, name, conn } => {
                let c = self.stream(*addr, name, conn).await?;
                let raw = c.exchange(&mut query).await?;
                Message::from_vec(&raw).map_err(|_| Failure::Error)?
            }
        };
        let id = u16::from_be_bytes([query[0], query[1]]);
        if !matches(&answer, q, id) {
            return Err(Failure::Mismatch);
        }
        if answer.metadata.response_code == ResponseCode::ServFail {
            return Err(Failure::ServFail);
        }
        Ok(answer)
    }

    /// The kept-open connection to a DNS-over-TLS upstream, opened if needed.
    async fn stream(
        &self,
        addr: SocketAddr,
        name: &str,
        slot: &StreamSlot,
    ) -> Result<Arc<StreamConn>, Failure> {
        let mut conn = slot.conn.lock().await;
        if let Some(c) = conn.as_ref().filter(|c| c.alive.load(Ordering::Relaxed)) {
            return Ok(c.clone());
        }
        let tls = self.tls.as_ref().ok_or(Failure::Error)?;
        let server_name = rustls::pki_types::ServerName::try_from(name.to_string())
            .map_err(|_| Failure::Error)?;
        let tcp = TcpStream::connect(addr).await.map_err(|_| Failure::Error)?;
        let _ = tcp.set_nodelay(true);
        let s = tls
            .connect(server_name, tcp)
            .await
            .map_err(|_| Failure::Error)?;
        let c = Arc::new(StreamConn::start(s));
        *conn = Some(c.clone());
        Ok(c)
    }
}

fn matches(resp: &Message, q: &Message, id: u16) -> bool {
    resp.metadata.id == id
        && resp.metadata.message_type == MessageType::Response
        && resp.queries.len() == 1
        && q.queries.first().is_some_and(|a| {
            let b = &resp.queries[0];
            a.query_type() == b.query_type()
                && a.query_class() == b.query_class()
                && a.name()
                    .to_ascii()
                    .eq_ignore_ascii_case(&b.name().to_ascii())
        })
}

/// One question over a fresh TCP connection (after a truncated UDP answer), with a new ID.
async fn tcp_exchange(addr: SocketAddr, query: &mut [u8]) -> Result<Message, Failure> {
    query[..2].copy_from_slice(&random_id().to_be_bytes());
    let mut s = TcpStream::connect(addr).await.map_err(|_| Failure::Error)?;
    let raw = stream_round_trip(&mut s, query)
        .await
        .map_err(|_| Failure::Error)?;
    Message::from_vec(&raw).map_err(|_| Failure::Error)
}

/// Writes one length-prefixed message and reads one back, growing the buffer as bytes
/// arrive rather than reserving what the length claims.
pub(super) async fn stream_round_trip<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    s: &mut S,
    bytes: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    s.write_all(&out).await?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await?;
    let n = usize::from(u16::from_be_bytes(len));
    let mut buf = Vec::new();
    s.take(n as u64).read_to_end(&mut buf).await?;
    if buf.len() < n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(buf)
}

pub(super) fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> crate::Result<tokio_rustls::TlsConnector> {
    let roots = crate::tls::root_store(ca_file).map_err(crate::Error::Tls)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
