//! The filtering DNS resolver: answers the clinic's devices on UDP and TCP, blocks names
//! the rules block (NXDOMAIN or a configured address), answers resolver canaries the way
//! Firefox and Apple expect, forwards everything else to the configured upstreams (plain
//! DNS or DNS over TLS) through a cache, and removes the `ech` parameter from HTTPS/SVCB
//! answers so browsers keep a visible SNI. Messages are parsed and built with
//! hickory-proto; the socket loops are this module's own, so a cached answer costs one
//! parse, one map lookup and one send with no task spawned.
//!
//! Every query a rule matches becomes an [`Observation`] for the incident pipeline, and
//! every forwarded address answer teaches the detector which name a device looked up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::svcb::SvcParamKey;
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use lru::LruCache;
use rustc_hash::FxBuildHasher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::config::{BlockAnswer, Dns, StripEch, Upstream};
use crate::detect::dns::query::{question_len, read_query};
use crate::detect::{Host, Observation, Proto, Timestamp};
use crate::metrics::Metrics;
use crate::policy::{Client, Live, Mac, Mode, RuleSet, Verdict};

/// Names that are signals to clients rather than services: answered NXDOMAIN always.
/// `use-application-dns.net`: Firefox keeps DNS-over-HTTPS off by default. `mask.icloud.com`,
/// `mask-h2.icloud.com`: Apple devices turn iCloud Private Relay off for this network.
/// `resolver.arpa` (`_dns.resolver.arpa`, RFC 9462): devices do not discover and switch
/// to an encrypted resolver.
pub const CANARIES: [&str; 4] = [
    "use-application-dns.net",
    "mask.icloud.com",
    "mask-h2.icloud.com",
    "resolver.arpa",
];

/// True for a canary name or a name under one.
pub fn is_canary(host: &str) -> bool {
    CANARIES.iter().any(|c| {
        host == *c
            || (host.len() > c.len()
                && host.ends_with(c)
                && host.as_bytes()[host.len() - c.len() - 1] == b'.')
    })
}

/// What the resolver tells the rest of the daemon.
#[derive(Debug, Clone)]
pub enum DnsEvent {
    /// A query some rule matched (allowed enterprise use included, for the inventory).
    Query(Observation),
    /// A forwarded answer: `client` was told these addresses for `host`.
    Answer {
        /// The device.
        client: IpAddr,
        /// The name it asked for.
        host: Host,
        /// Addresses in the answer.
        addrs: Vec<IpAddr>,
    },
}

/// What the device directory knows about a client.
pub type Identify = Arc<dyn Fn(IpAddr) -> (Option<Mac>, Option<String>) + Send + Sync>;

/// A place for events: non-blocking; a full queue drops and counts.
pub type Events = std::sync::mpsc::SyncSender<DnsEvent>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    name: Box<str>,
    qtype: u16,
    qclass: u16,
    edns: bool,
    dnssec_ok: bool,
}

/// A cache key borrowed from either reader of a query (hickory's or [`read_query`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyRef<'a> {
    name: &'a str,
    qtype: u16,
    qclass: u16,
    edns: bool,
    dnssec_ok: bool,
}

impl KeyRef<'_> {
    /// The cache's map key; the entry keeps the whole [`Key`] to rule out collisions.
    fn id(self) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = FxBuildHasher.build_hasher();
        self.name.hash(&mut h);
        (self.qtype, self.qclass, self.edns, self.dnssec_ok).hash(&mut h);
        h.finish()
    }
}

impl Key {
    fn as_ref(&self) -> KeyRef<'_> {
        KeyRef {
            name: &self.name,
            qtype: self.qtype,
            qclass: self.qclass,
            edns: self.edns,
            dnssec_ok: self.dnssec_ok,
        }
    }

    fn id(&self) -> u64 {
        self.as_ref().id()
    }
}

/// The parts of a query a cached answer is fitted to.
struct Fit<'a> {
    key: KeyRef<'a>,
    id: u16,
    recursion_desired: bool,
    checking_disabled: bool,
    /// The question section exactly as the client wrote it.
    question: &'a [u8],
    /// The client's UDP limit; `None` over TCP.
    max_payload: Option<usize>,
}

#[derive(Debug)]
struct Entry {
    /// What it answers.
    key: Key,
    /// Addresses in the answer, for the detector.
    addrs: Vec<IpAddr>,
    /// The answer as received (ECH already stripped), id 0.
    msg: Message,
    stored: Instant,
    /// Seconds until the first record expires.
    ttl: u32,
    /// `msg` encoded with TTLs lowered by `encoded_age` seconds.
    bytes: Vec<u8>,
    encoded_age: u32,
}

/// The per-result query counters, resolved once (a label lookup per query would cost more
/// than answering from the cache).
#[derive(Debug, Clone)]
struct Counters {
    cached: prometheus::IntCounter,
}

/// The resolver: policy, cache and upstreams. Shared by every socket task.
pub struct Resolver {
    cfg: Dns,
    mode: Mode,
    rules: Arc<Live>,
    identify: Identify,
    cache: Mutex<LruCache<u64, Entry, FxBuildHasher>>,
    counters: Counters,
    tls: Option<tokio_rustls::TlsConnector>,
    events: Option<Events>,
    learn: bool,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("cfg", &self.cfg)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The wall clock as a [`Timestamp`] (shells only; the core takes time as an argument).
pub(crate) fn now_ts() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_secs_micros(d.as_secs() as i64, i64::from(d.subsec_micros()))
}

fn random_id() -> u16 {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_be_bytes(b)
}

fn name_host(name: &Name) -> Option<Host> {
    let s = name.to_ascii();
    Host::parse(s.trim_end_matches('.').as_bytes()).ok()
}

/// The TTLs of every record but OPT lowered by `age` (never below 0).
fn aged(msg: &Message, age: u32) -> Message {
    let mut m = msg.clone();
    for r in m
        .answers
        .iter_mut()
        .chain(m.authorities.iter_mut())
        .chain(m.additionals.iter_mut())
    {
        r.ttl = r.ttl.saturating_sub(age);
    }
    m
}

fn min_ttl(msg: &Message, negative: u32) -> u32 {
    let ttls = msg.answers.iter().map(|r| r.ttl);
    match ttls.min() {
        Some(t) => t,
        // Negative answers: the SOA's minimum (RFC 2308), capped by its own TTL.
        None => msg
            .authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(s) => Some(s.minimum.min(r.ttl)),
                _ => None,
            })
            .unwrap_or(negative),
    }
}

/// Removes `ech` from HTTPS and SVCB records; returns how many records lost it.
fn strip_ech(msg: &mut Message) -> u64 {
    let mut n = 0;
    for r in msg.answers.iter_mut().chain(msg.additionals.iter_mut()) {
        let params = match &mut r.data {
            RData::HTTPS(h) => &mut h.0.svc_params,
            RData::SVCB(s) => &mut s.svc_params,
            _ => continue,
        };
        let before = params.len();
        params.retain(|(k, _)| *k != SvcParamKey::EchConfigList);
        if params.len() != before {
            n += 1;
        }
    }
    n
}

fn addrs_of(msg: &Message) -> Vec<IpAddr> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// Everything about one query the handler needs after parsing.
struct Asked {
    msg: Message,
    query: Query,
    host: Option<Host>,
    key: Key,
    max_payload: usize,
    /// The question section exactly as the client wrote it.
    question: Vec<u8>,
}

impl Resolver {
    /// A resolver for `cfg`. `events` receives observations and answers; `learn` says
    /// whether answers are wanted (capture is on).
    pub fn new(
        cfg: Dns,
        mode: Mode,
        rules: Arc<Live>,
        identify: Identify,
        events: Option<Events>,
        learn: bool,
        metrics: Arc<Metrics>,
    ) -> crate::Result<Resolver> {
        let tls = if cfg
            .upstreams
            .iter()
            .any(|u| matches!(u, Upstream::Tls { .. }))
        {
            Some(tls_connector(cfg.ca_file.as_deref())?)
        } else {
            None
        };
        let cap = NonZeroUsize::new(cfg.cache_size.max(1)).unwrap_or(NonZeroUsize::MIN);
        Ok(Resolver {
            cache: Mutex::new(LruCache::with_hasher(cap, FxBuildHasher)),
            counters: Counters {
                cached: metrics.dns_queries.with_label_values(&["cached"]),
            },
            cfg,
            mode,
            rules,
            identify,
            tls,
            events,
            learn,
            metrics,
        })
    }

    fn count(&self, result: &str) {
        self.metrics.dns_queries.with_label_values(&[result]).inc();
    }

    fn emit(&self, ev: DnsEvent) {
        if let Some(tx) = &self.events {
            if tx.try_send(ev).is_err() {
                self.metrics.events_dropped.inc();
            }
        }
    }

    fn parse(&self, bytes: &[u8]) -> Result<Asked, Option<Vec<u8>>> {
        let msg = match Message::from_vec(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.count("formerr");
                // Answer FORMERR when at least the id is there.
                return Err((bytes.len() >= 12).then(|| {
                    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
                    Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                        .to_vec()
                        .unwrap_or_default()
                }));
            }
        };
        if msg.metadata.message_type != MessageType::Query {
            return Err(None);
        }
        let refuse = |code| {
            let mut r = Message::error_msg(msg.metadata.id, msg.metadata.op_code, code);
            r.queries = msg.queries.clone();
            Err(r.to_vec().ok())
        };
        if msg.metadata.op_code != OpCode::Query || msg.queries.len() != 1 {
            self.count("refused");
            return refuse(ResponseCode::NotImp);
        }
        let query = msg.queries[0].clone();
        if matches!(
            query.query_type(),
            RecordType::AXFR | RecordType::IXFR | RecordType::ANY
        ) {
            self.count("refused");
            return refuse(ResponseCode::Refused);
        }
        let host = name_host(query.name());
        let key = Key {
            name: query
                .name()
                .to_ascii()
                .trim_end_matches('.')
                .to_ascii_lowercase()
                .into_boxed_str(),
            qtype: u16::from(query.query_type()),
            qclass: u16::from(query.query_class()),
            edns: msg.edns.is_some(),
            dnssec_ok: msg.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
        };
        let max_payload = if msg.edns.is_some() {
            usize::from(msg.max_payload())
        } else {
            512
        };
        let question = question_len(bytes)
            .and_then(|l| bytes.get(12..12 + l))
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        Ok(Asked {
            msg,
            query,
            host,
            key,
            max_payload,
            question,
        })
    }

    /// A response to `asked` with the client's id, question and EDNS.
    fn reply(&self, asked: &Asked, mut body: Message, udp: bool) -> Vec<u8> {
        body.metadata.id = asked.msg.metadata.id;
        body.metadata.message_type = MessageType::Response;
        body.metadata.op_code = OpCode::Query;
        body.metadata.recursion_desired = asked.msg.metadata.recursion_desired;
        body.metadata.recursion_available = true;
        body.metadata.checking_disabled = asked.msg.metadata.checking_disabled;
        body.queries = vec![asked.query.clone()];
        body.edns = asked
            .msg
            .edns
            .as_ref()
            .map(|e| reply_edns(e.flags().dnssec_ok));
        let bytes = body.to_vec().unwrap_or_default();
        if udp && bytes.len() > asked.max_payload {
            body.answers.clear();
            body.authorities.clear();
            body.additionals.clear();
            body.metadata.truncation = true;
            return body.to_vec().unwrap_or_default();
        }
        bytes
    }

    fn block_answer(&self, asked: &Asked) -> Message {
        let mut m = Message::response(0, OpCode::Query);
        let name = asked.query.name().clone();
        let ttl = self.cfg.block_ttl;
        let soa = || {
            let mname =
                Name::from_ascii("blocked.aiwarden.invalid.").unwrap_or_else(|_| Name::root());
            let rname =
                Name::from_ascii("admin.aiwarden.invalid.").unwrap_or_else(|_| Name::root());
            Record::from_rdata(
                name.clone(),
                ttl,
                RData::SOA(SOA::new(mname, rname, 1, 3600, 600, 86_400, ttl)),
            )
        };
        match self.cfg.block_answer {
            BlockAnswer::Nxdomain => {
                m.metadata.response_code = ResponseCode::NXDomain;
                m.authorities.push(soa());
            }
            BlockAnswer::Address(addr) => match asked.query.query_type() {
                RecordType::A => {
                    let v4 = match addr {
                        IpAddr::V4(a) => a,
                        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                    };
                    m.answers
                        .push(Record::from_rdata(name.clone(), ttl, RData::A(A(v4))));
                }
                RecordType::AAAA => {
                    let v6 = match addr {
                        IpAddr::V6(a) => a,
                        IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED,
                    };
                    m.answers
                        .push(Record::from_rdata(name.clone(), ttl, RData::AAAA(AAAA(v6))));
                }
                _ => m.authorities.push(soa()),
            },
        }
        m
    }

    fn observation(
        &self,
        asked: &Asked,
        host: &Host,
        client: SocketAddr,
        server: SocketAddr,
        ech: bool,
    ) -> Observation {
        Observation {
            ts: now_ts(),
            client,
            server,
            proto: Proto::Dns,
            host: host.clone(),
            ech,
            unresolved: false,
            alpn: Vec::new(),
            qtype: Some(asked.query.query_type().to_string()),
            answers: Vec::new(),
        }
    }

    /// Answers from policy or cache without waiting; `Err(asked)` when the query must go
    /// upstream.
    fn answer_now(
        &self,
        bytes: &[u8],
        client: SocketAddr,
        server: SocketAddr,
        udp: bool,
    ) -> Result<Option<Vec<u8>>, Box<(Asked, bool)>> {
        let asked = match self.parse(bytes) {
            Ok(a) => a,
            Err(reply) => return Ok(reply),
        };
        let Some(host) = asked.host.clone() else {
            // Names aiwarden cannot judge (root, odd bytes) are forwarded as they are.
            return self
                .cached(&asked, udp)
                .map(|(reply, _)| reply)
                .map_or_else(|| Err(Box::new((asked, false))), |r| Ok(Some(r)));
        };
        if is_canary(host.as_str()) {
            self.count("canary");
            let mut m = Message::response(0, OpCode::Query);
            m.metadata.response_code = ResponseCode::NXDomain;
            return Ok(Some(self.reply(&asked, m, udp)));
        }
        let rules = self.rules.current();
        let (mac, device) = self.identity(&rules, client.ip());
        let who = Client {
            ip: Some(client.ip()),
            mac,
            device: device.as_deref(),
        };
        let d = rules.judge(host.as_str(), &who, self.mode);
        let matched = d.service.is_some() || d.rule.is_some();
        if d.verdict == Verdict::Block {
            self.count("blocked");
            self.emit(DnsEvent::Query(
                self.observation(&asked, &host, client, server, false),
            ));
            return Ok(Some(self.reply(&asked, self.block_answer(&asked), udp)));
        }
        if matched {
            self.emit(DnsEvent::Query(
                self.observation(&asked, &host, client, server, false),
            ));
        }
        let strip = match self.cfg.strip_ech {
            StripEch::Off => false,
            StripEch::All => true,
            StripEch::Ai => matched,
        };
        match self.cached(&asked, udp) {
            Some((reply, addrs)) => {
                if !addrs.is_empty() {
                    self.emit(DnsEvent::Answer {
                        client: client.ip(),
                        host,
                        addrs,
                    });
                }
                Ok(Some(reply))
            }
            None => Err(Box::new((asked, strip))),
        }
    }

    /// Copies the cached answer for `fit` into `out` with TTLs aged and the client's id,
    /// RD and CD bits and question; returns the answer's addresses (empty unless the
    /// detector learns from answers). `None` on a miss, an expired entry, or an answer
    /// larger than the client's UDP limit. Both the hot path and the full path use it.
    fn serve_cached(&self, fit: &Fit<'_>, out: &mut Vec<u8>) -> Option<Vec<IpAddr>> {
        let qlen = fit.question.len();
        if qlen == 0 {
            return None;
        }
        let mut cache = self.cache.lock().ok()?;
        let id = fit.key.id();
        let e = cache.get_mut(&id)?;
        if e.key.as_ref() != fit.key {
            return None;
        }
        let age = e.stored.elapsed().as_secs() as u32;
        if age >= e.ttl {
            cache.pop(&id);
            return None;
        }
        if age != e.encoded_age {
            e.bytes = aged(&e.msg, age).to_vec().ok()?;
            e.encoded_age = age;
        }
        if e.bytes.len() < 12 + qlen
            || question_len(&e.bytes) != Some(qlen)
            || fit.max_payload.is_some_and(|max| e.bytes.len() > max)
        {
            return None;
        }
        out.clear();
        out.extend_from_slice(&e.bytes);
        let addrs = if self.learn {
            e.addrs.clone()
        } else {
            Vec::new()
        };
        drop(cache);
        // The cached bytes carry id 0 and the first asker's question; give this client its
        // own id, flags and question (same name, maybe other letter case).
        out[..2].copy_from_slice(&fit.id.to_be_bytes());
        out[12..12 + qlen].copy_from_slice(fit.question);
        out[2] = (out[2] & !0x01) | u8::from(fit.recursion_desired);
        out[3] = (out[3] & !0x10) | (u8::from(fit.checking_disabled) << 4);
        self.counters.cached.inc();
        Some(addrs)
    }

    /// [`Resolver::serve_cached`] for a query hickory parsed.
    fn cached(&self, asked: &Asked, udp: bool) -> Option<(Vec<u8>, Vec<IpAddr>)> {
        let m = &asked.msg.metadata;
        let fit = Fit {
            key: asked.key.as_ref(),
            id: m.id,
            recursion_desired: m.recursion_desired,
            checking_disabled: m.checking_disabled,
            question: &asked.question,
            max_payload: udp.then_some(asked.max_payload),
        };
        let mut out = Vec::new();
        let addrs = self.serve_cached(&fit, &mut out)?;
        Some((out, addrs))
    }

    /// Who is asking, as far as the rules need to know: the MAC address and device name
    /// only when some group names members by them.
    fn identity(&self, rules: &RuleSet, ip: IpAddr) -> (Option<Mac>, Option<String>) {
        if rules.needs_device_identity() {
            (self.identify)(ip)
        } else {
            (None, None)
        }
    }

    /// The hot path: a plain query for a name no rule matches, answered from the cache into
    /// `out` with no parse by hickory and no allocation. False when the query needs the
    /// full path (a rule matches, a canary, a miss, anything unusual).
    fn answer_cached(&self, bytes: &[u8], client: SocketAddr, out: &mut Vec<u8>) -> bool {
        let mut name_buf = [0u8; 256];
        let Some(w) = read_query(bytes, &mut name_buf) else {
            return false;
        };
        if w.name.is_empty() || is_canary(w.name) {
            return false;
        }
        {
            let rules = self.rules.guard();
            let (mac, device) = self.identity(&rules, client.ip());
            let who = Client {
                ip: Some(client.ip()),
                mac,
                device: device.as_deref(),
            };
            let d = rules.judge(w.name, &who, self.mode);
            if d.service.is_some() || d.rule.is_some() {
                return false;
            }
        }
        let fit = Fit {
            key: KeyRef {
                name: w.name,
                qtype: w.qtype,
                qclass: w.qclass,
                edns: w.edns,
                dnssec_ok: w.dnssec_ok,
            },
            id: w.id,
            recursion_desired: w.flags[0] & 0x01 != 0,
            checking_disabled: w.flags[1] & 0x10 != 0,
            question: w.question,
            max_payload: Some(w.max_payload),
        };
        let Some(addrs) = self.serve_cached(&fit, out) else {
            return false;
        };
        if !addrs.is_empty() {
            if let Ok(host) = Host::parse(w.name.as_bytes()) {
                self.emit(DnsEvent::Answer {
                    client: client.ip(),
                    host,
                    addrs,
                });
            }
        }
        true
    }

    /// Forwards, caches and answers.
    async fn answer_upstream(
        &self,
        asked: Asked,
        strip: bool,
        client: SocketAddr,
        udp: bool,
    ) -> Vec<u8> {
        let mut resp = match self.forward(&asked).await {
            Some(m) => m,
            None => {
                self.count("servfail");
                let m = Message::error_msg(0, OpCode::Query, ResponseCode::ServFail);
                return self.reply(&asked, m, udp);
            }
        };
        self.count("forwarded");
        if strip {
            let n = strip_ech(&mut resp);
            self.metrics.dns_ech_stripped.inc_by(n);
        }
        resp.signature = None;
        resp.edns = None;
        let rcode = resp.metadata.response_code;
        let ttl = min_ttl(&resp, 60);
        if matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain)
            && !resp.metadata.truncation
            && ttl > 0
        {
            // Stored as this client's reply with id 0; later askers get their own id, flags
            // and question patched in (see `cached`).
            let mut stored = resp.clone();
            stored.metadata.id = 0;
            stored.metadata.message_type = MessageType::Response;
            stored.metadata.recursion_available = true;
            stored.queries = vec![asked.query.clone()];
            stored.edns = asked
                .msg
                .edns
                .as_ref()
                .map(|e| reply_edns(e.flags().dnssec_ok));
            if let (Ok(bytes), Ok(mut cache)) = (stored.to_vec(), self.cache.lock()) {
                cache.put(
                    asked.key.id(),
                    Entry {
                        key: asked.key.clone(),
                        addrs: addrs_of(&stored),
                        msg: stored,
                        stored: Instant::now(),
                        ttl,
                        bytes,
                        encoded_age: 0,
                    },
                );
            }
        }
        if self.learn {
            if let Some(host) = &asked.host {
                let addrs = addrs_of(&resp);
                if !addrs.is_empty() {
                    self.emit(DnsEvent::Answer {
                        client: client.ip(),
                        host: host.clone(),
                        addrs,
                    });
                }
            }
        }
        self.reply(&asked, resp, udp)
    }

    /// Handles one query end to end (TCP, tests).
    pub async fn handle(
        &self,
        bytes: &[u8],
        client: SocketAddr,
        server: SocketAddr,
        udp: bool,
    ) -> Option<Vec<u8>> {
        match self.answer_now(bytes, client, server, udp) {
            Ok(r) => r,
            Err(up) => {
                let (asked, strip) = *up;
                Some(self.answer_upstream(asked, strip, client, udp).await)
            }
        }
    }

    async fn forward(&self, asked: &Asked) -> Option<Message> {
        let mut q = Message::new(random_id(), MessageType::Query, OpCode::Query);
        q.metadata.recursion_desired = true;
        q.metadata.checking_disabled = asked.msg.metadata.checking_disabled;
        q.queries = vec![asked.query.clone()];
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        edns.set_dnssec_ok(asked.key.dnssec_ok);
        q.edns = Some(edns);
        let bytes = q.to_vec().ok()?;
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        for up in &self.cfg.upstreams {
            let got = match up {
                Upstream::Plain(addr) => {
                    match tokio::time::timeout(timeout, udp_exchange(*addr, &bytes, &q)).await {
                        Ok(Some(m)) if m.metadata.truncation => {
                            tokio::time::timeout(timeout, tcp_exchange(*addr, &bytes, &q))
                                .await
                                .ok()
                                .flatten()
                        }
                        Ok(m) => m,
                        Err(_) => None,
                    }
                }
                Upstream::Tls { addr, name } => match &self.tls {
                    Some(tls) => {
                        tokio::time::timeout(timeout, tls_exchange(tls, *addr, name, &bytes, &q))
                            .await
                            .ok()
                            .flatten()
                    }
                    None => None,
                },
            };
            match got {
                Some(m) if m.metadata.response_code != ResponseCode::ServFail => return Some(m),
                _ => tracing::debug!(upstream = ?up, "upstream failed"),
            }
        }
        None
    }

    /// Serves UDP on `socket` until `shutdown` changes.
    /// Serves UDP on `socket` from the calling thread until `stop` is set: blocking
    /// receives and sends, so a cached answer costs two system calls and no wake-up of
    /// another thread. Queries that go upstream run as tasks on `rt` and send their own
    /// answers. Give the socket a read timeout so `stop` is noticed.
    pub fn serve_udp(
        self: Arc<Self>,
        socket: std::net::UdpSocket,
        rt: tokio::runtime::Handle,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) {
        let server = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 53)));
        let socket = Arc::new(socket);
        let mut buf = vec![0u8; 4096];
        let mut out = Vec::with_capacity(4096);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let (n, peer) = match socket.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    tracing::debug!(error = %e, "dns udp recv");
                    continue;
                }
            };
            if self.answer_cached(&buf[..n], peer, &mut out) {
                let _ = socket.send_to(&out, peer);
                continue;
            }
            match self.answer_now(&buf[..n], peer, server, true) {
                Ok(Some(reply)) => {
                    let _ = socket.send_to(&reply, peer);
                }
                Ok(None) => {}
                Err(up) => {
                    let (asked, strip) = *up;
                    let me = self.clone();
                    let socket = socket.clone();
                    rt.spawn(async move {
                        let reply = me.answer_upstream(asked, strip, peer, true).await;
                        // A UDP send does not wait for the peer; it is fine on a task.
                        let _ = socket.send_to(&reply, peer);
                    });
                }
            }
        }
    }

    /// Serves TCP on `listener` until `shutdown` changes.
    pub async fn serve_tcp(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let server = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 53)));
        loop {
            let (conn, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "dns tcp accept");
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let me = self.clone();
            tokio::spawn(async move { me.tcp_conn(conn, peer, server).await });
        }
    }

    async fn tcp_conn(&self, mut conn: TcpStream, peer: SocketAddr, server: SocketAddr) {
        let idle = Duration::from_secs(10);
        loop {
            let mut len = [0u8; 2];
            match tokio::time::timeout(idle, conn.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
            match tokio::time::timeout(idle, conn.read_exact(&mut msg)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let Some(reply) = self.handle(&msg, peer, server, false).await else {
                return;
            };
            let mut out = Vec::with_capacity(reply.len() + 2);
            out.extend_from_slice(&(reply.len() as u16).to_be_bytes());
            out.extend_from_slice(&reply);
            if conn.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}

fn reply_edns(dnssec_ok: bool) -> Edns {
    let mut out = Edns::new();
    out.set_max_payload(1232);
    out.set_dnssec_ok(dnssec_ok);
    out
}

fn matches(resp: &Message, q: &Message) -> bool {
    resp.metadata.id == q.metadata.id
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

async fn udp_exchange(addr: SocketAddr, bytes: &[u8], q: &Message) -> Option<Message> {
    let bind: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(bind).await.ok()?;
    s.connect(addr).await.ok()?;
    s.send(bytes).await.ok()?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = s.recv(&mut buf).await.ok()?;
        if let Ok(m) = Message::from_vec(&buf[..n]) {
            if matches(&m, q) {
                return Some(m);
            }
        }
    }
}

async fn stream_exchange<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    s: &mut S,
    bytes: &[u8],
    q: &Message,
) -> Option<Message> {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    s.write_all(&out).await.ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await.ok()?;
    Message::from_vec(&buf).ok().filter(|m| matches(m, q))
}

async fn tcp_exchange(addr: SocketAddr, bytes: &[u8], q: &Message) -> Option<Message> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    stream_exchange(&mut s, bytes, q).await
}

async fn tls_exchange(
    tls: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    name: &str,
    bytes: &[u8],
    q: &Message,
) -> Option<Message> {
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).ok()?;
    let tcp = TcpStream::connect(addr).await.ok()?;
    let mut s = tls.connect(server_name, tcp).await.ok()?;
    stream_exchange(&mut s, bytes, q).await
}

fn tls_connector(ca_file: Option<&std::path::Path>) -> crate::Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let path = ca_file.unwrap_or(std::path::Path::new("/etc/ssl/certs/ca-certificates.crt"));
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
        crate::Error::Usage(format!(
            "dns: cannot read CA certificates {}: {e}",
            path.display()
        ))
    })?;
    for c in certs.flatten() {
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err(crate::Error::Usage(format!(
            "dns: no CA certificates in {}",
            path.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::Usage(format!("dns: tls: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Binds UDP and TCP on every listen address.
/// Binds UDP (blocking, with a 200 ms read timeout for shutdown) and TCP on every listen
/// address.
pub async fn bind(
    listen: &[SocketAddr],
) -> std::io::Result<Vec<(std::net::UdpSocket, TcpListener)>> {
    let mut out = Vec::new();
    for addr in listen {
        let udp = std::net::UdpSocket::bind(addr)?;
        udp.set_read_timeout(Some(Duration::from_millis(200)))?;
        let tcp = TcpListener::bind(udp.local_addr()?).await?;
        out.push((udp, tcp));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
