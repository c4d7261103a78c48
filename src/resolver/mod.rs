//! The filtering DNS resolver: answers the clinic's devices on UDP and TCP, blocks names
//! the rules block (NXDOMAIN or a configured address), answers resolver canaries the way
//! Firefox and Apple expect, forwards everything else to the configured upstreams (plain
//! DNS or DNS over TLS) through a cache, and removes the `ech` parameter from HTTPS/SVCB
//! answers so browsers keep a visible SNI. Messages are parsed and built with
//! hickory-proto; the socket loops are this module's own, so a cached answer costs one
//! parse, one map lookup and one send with no task spawned.
//!
//! Every query a rule matches becomes an [`Observation`] for the incident pipeline, with
//! the decision the resolver acted on, and every forwarded address answer teaches the
//! detector which name a device looked up.
//!
//! | file | concern |
//! |---|---|
//! | `mod.rs` | the resolver: parse, judge, block, canaries, ECH stripping, events |
//! | `cache.rs` | the answer cache |
//! | `upstream.rs` | plain and DNS-over-TLS upstreams |
//! | `server.rs` | the UDP and TCP socket loops, binding |
//!
//! The allocation-free reader of plain queries (the cache's hot path) is
//! [`crate::detect::dns::query`], beside the DNS parser.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::svcb::SvcParamKey;
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

mod cache;
mod limits;
mod server;
mod upstream;

use crate::config::{BlockAnswer, Dns, StripEch, Upstream};
use crate::detect::dns::query::{question_len, read_query};
use crate::detect::{canonical, Host, Observation, Proto, Timestamp};
use crate::devices::DeviceMap;
use crate::incident::is_canary;
use crate::metrics::Metrics;
use crate::policy::unblock::{Asker, Unblocks};
use crate::policy::{Client, Decision, Live, Mode, RuleSet, Verdict};
use cache::{Cache, Fit, Key, KeyRef};
pub use limits::attached_networks;
use limits::ClientGate;
use limits::Gate;
pub use server::bind;
use upstream::{tls_connector, Upstreams};

/// What the resolver tells the rest of the daemon. Events travel boxed (the daemon's queue
/// holds `Box<DnsEvent>`), so the variants' sizes do not matter.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum DnsEvent {
    /// A query some rule matched (allowed enterprise use included, for the inventory), with
    /// the decision the resolver acted on: the one the incident records.
    Query {
        /// The query.
        obs: Observation,
        /// What the rules said, and the resolver did.
        decision: Decision,
    },
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

/// Where events go: must not block (a full queue drops and counts).
pub type Events = Box<dyn Fn(DnsEvent) + Send + Sync>;

/// The per-result query counters, resolved once (a label lookup per query would cost more
/// than answering from the cache).
#[derive(Debug, Clone)]
struct Counters {
    cached: prometheus::IntCounter,
    not_allowed: prometheus::IntCounter,
    client_rate: prometheus::IntCounter,
}

/// The resolver: policy, cache and upstreams. Shared by every socket task.
pub struct Resolver {
    cfg: Dns,
    mode: Mode,
    rules: Arc<Live>,
    devices: Arc<ArcSwap<DeviceMap>>,
    cache: Mutex<Cache>,
    counters: Counters,
    upstreams: Upstreams,
    gate: ClientGate,
    events: Option<Events>,
    learn: bool,
    metrics: Arc<Metrics>,
    unblocks: Arc<ArcSwap<Unblocks>>,
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

fn name_host(name: &Name) -> Option<Host> {
    let s = name.to_ascii();
    Host::parse(s.trim_end_matches('.').as_bytes()).ok()
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

impl Asked {
    /// The EDNS record of an answer to this query: aiwarden's, with the asker's DO bit;
    /// none when the query had none.
    fn reply_edns(&self) -> Option<Edns> {
        self.msg
            .edns
            .as_ref()
            .map(|e| reply_edns(e.flags().dnssec_ok))
    }
}

impl Resolver {
    /// A resolver for `cfg`. `events` receives observations and answers; `learn` says
    /// whether answers are wanted (capture is on).
    pub fn new(
        cfg: Dns,
        mode: Mode,
        rules: Arc<Live>,
        devices: Arc<ArcSwap<DeviceMap>>,
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
        let allow = cfg
            .allow_clients
            .clone()
            .unwrap_or_else(|| attached_networks(&cfg.listen));
        Ok(Resolver {
            gate: ClientGate::new(allow, cfg.rate_limit, cfg.rate_burst),
            upstreams: Upstreams::new(&cfg, tls, metrics.clone()),
            cache: Mutex::new(Cache::new(cfg.cache_size, cfg.cache_mib << 20)),
            counters: Counters {
                cached: metrics.dns_queries.with_label_values(&["cached"]),
                not_allowed: metrics.dns_limited.with_label_values(&["not_allowed"]),
                client_rate: metrics.dns_limited.with_label_values(&["client_rate"]),
            },
            cfg,
            mode,
            rules,
            devices,
            events,
            learn,
            metrics,
            unblocks: Arc::default(),
        })
    }

    /// The resolver with `unblocks` in force: a name a device may use for a while is
    /// forwarded instead of blocked (enforce mode).
    pub fn with_unblocks(mut self, unblocks: Arc<ArcSwap<Unblocks>>) -> Resolver {
        self.unblocks = unblocks;
        self
    }

    /// The networks answered; everything else is REFUSED.
    pub fn allowed_clients(&self) -> &[ipnet::IpNet] {
        self.gate.allowed()
    }

    /// Whether a query from `client` is answered ([`Gate::Pass`]), refused (not from an
    /// allowed network) or dropped (over its rate). Counted.
    fn admit(&self, client: SocketAddr, now: std::time::Instant) -> Gate {
        let g = self.gate.check(client.ip(), now);
        match g {
            Gate::Pass => {}
            Gate::NotAllowed => self.counters.not_allowed.inc(),
            Gate::Limited => self.counters.client_rate.inc(),
        }
        g
    }

    fn count(&self, result: &str) {
        self.metrics.dns_queries.with_label_values(&[result]).inc();
    }

    fn emit(&self, ev: DnsEvent) {
        if let Some(f) = &self.events {
            f(ev);
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
        body.edns = asked.reply_edns();
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
            BlockAnswer::Address(addr) => {
                // The block address in the family asked for; the unspecified address of that
                // family when the configured one is of the other.
                let data = match (asked.query.query_type(), addr) {
                    (RecordType::A, IpAddr::V4(a)) => Some(RData::A(A(a))),
                    (RecordType::A, IpAddr::V6(_)) => Some(RData::A(A(Ipv4Addr::UNSPECIFIED))),
                    (RecordType::AAAA, IpAddr::V6(a)) => Some(RData::AAAA(AAAA(a))),
                    (RecordType::AAAA, IpAddr::V4(_)) => {
                        Some(RData::AAAA(AAAA(Ipv6Addr::UNSPECIFIED)))
                    }
                    _ => None,
                };
                match data {
                    Some(d) => m.answers.push(Record::from_rdata(name.clone(), ttl, d)),
                    None => m.authorities.push(soa()),
                }
            }
        }
        m
    }

    fn observation(
        &self,
        asked: &Asked,
        host: &Host,
        client: SocketAddr,
        server: SocketAddr,
    ) -> Observation {
        Observation {
            ts: now_ts(),
            client: canonical(client),
            client_mac: None,
            server,
            proto: Proto::Dns,
            host: Some(host.clone()),
            asked: None,
            ech_offered: false,
            unresolved: false,
            incomplete: false,
            alpn: Vec::new(),
            qtype: Some(asked.query.query_type().to_string()),
            answers: Vec::new(),
            tcp: None,
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
        let d = self.decide(&self.rules.current(), host.as_str(), client.ip());
        let matched = d.service.is_some() || d.rule.is_some();
        let blocked = d.verdict == Verdict::Block;
        if matched {
            // The decision acted on is the one recorded: it travels with the query.
            self.emit(DnsEvent::Query {
                obs: self.observation(&asked, &host, client, server),
                decision: d,
            });
        }
        if blocked {
            self.count("blocked");
            return Ok(Some(self.reply(&asked, self.block_answer(&asked), udp)));
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
                        client: client.ip().to_canonical(),
                        host,
                        addrs,
                    });
                }
                Ok(Some(reply))
            }
            None => Err(Box::new((asked, strip))),
        }
    }

    /// The rules' decision for `name` asked by `ip`. The device map is consulted (for the
    /// MAC address and device name) only when some group names members by them, or when an
    /// unblock may lift a block (enforce mode: the name is then forwarded, and flagged).
    fn decide(&self, rules: &RuleSet, name: &str, ip: IpAddr) -> Decision {
        let d = if rules.needs_device_identity() {
            let map = self.devices.load();
            rules.judge(name, &map.client(ip), self.mode)
        } else {
            rules.judge(name, &Client::ip(ip), self.mode)
        };
        if d.verdict != Verdict::Block || self.mode != Mode::Enforce {
            return d;
        }
        let table = self.unblocks.load();
        if table.is_empty() {
            return d;
        }
        let who = self.devices.load().identify_with(ip, None);
        let asker = Asker {
            ip: who.ip,
            mac: who.mac,
            names: [who.hostname.as_deref(), who.label.as_deref()],
        };
        let now = now_ts().as_micros();
        table.apply(d, self.mode, &asker, Some(name), now)
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
            let d = self.decide(&rules, w.name, client.ip());
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
                    client: client.ip().to_canonical(),
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
        let mut resp = match self
            .upstreams
            .forward(&asked, client.ip().to_canonical())
            .await
        {
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
        self.remember(&asked, &resp);
        if self.learn {
            if let Some(host) = &asked.host {
                let addrs = addrs_of(&resp);
                if !addrs.is_empty() {
                    self.emit(DnsEvent::Answer {
                        client: client.ip().to_canonical(),
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
}

/// REFUSED for a query, from its bytes: its header and question, nothing else (no EDNS:
/// nothing about a refused client is worth parsing). Empty when the bytes are not a query.
fn refused(bytes: &[u8]) -> Vec<u8> {
    if bytes.len() < 12 || bytes[2] & 0x80 != 0 {
        return Vec::new();
    }
    let qdcount = u16::from_be_bytes([bytes[4], bytes[5]]);
    let question = if qdcount == 1 {
        question_len(bytes).and_then(|l| bytes.get(12..12 + l))
    } else {
        None
    };
    let mut out = Vec::with_capacity(12 + question.map_or(0, <[u8]>::len));
    out.extend_from_slice(&bytes[..2]);
    // QR, the opcode and RD kept; RA clear; RCODE 5 (REFUSED).
    out.push(0x80 | (bytes[2] & 0x79));
    out.push(0x05);
    out.extend_from_slice(&u16::from(question.is_some()).to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    if let Some(q) = question {
        out.extend_from_slice(q);
    }
    out
}

/// The EDNS record of aiwarden's answers: 1,232-byte UDP payloads (the DNS flag day
/// size, no fragmentation), the asker's DO bit.
pub(super) fn reply_edns(dnssec_ok: bool) -> Edns {
    let mut out = Edns::new();
    out.set_max_payload(1232);
    out.set_dnssec_ok(dnssec_ok);
    out
}

#[cfg(test)]
mod tests;
