//! The detector: one call per captured frame, observations out. It owns the bounded state
//! that spans packets (TCP first flights on every port, QUIC CRYPTO streams, the DNS
//! answer map, the passive neighbour table) and the counters a summary or the metrics
//! endpoint reports.
//!
//! Every TCP connection whose SYN is seen is followed through its client's first flight,
//! on any port, and yields one observation: the TLS ClientHello (with or without SNI), the
//! HTTP request's host or CONNECT target (and the ClientHello tunnelled after a CONNECT),
//! or, when the flight names nothing (no payload before the connection ended or timed out,
//! or a protocol aiwarden does not read), a nameless `tcp` observation whose addresses and
//! port are all the pipeline can judge (DNS over TLS on 853, a known DoH address).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::dns::{self, DnsSummary};
use super::flow::{Overflow, StreamBuf};
use super::http;
use super::neighbours::{Learned, Neighbours};
use super::observation::{canonical, FlowKey, Host, Mac, Observation, Proto};
use super::packet::{self, LinkType, Transport};
use super::quic::{QuicConfig, QuicEvent, QuicTracker};
use super::table::{map, Map};
use super::time::Timestamp;
use super::tls::{self, Scan};

/// Limits of the detector's memory. Every map is capped and evicts its least recently
/// used entry when full.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    /// TCP streams tracked at once (first flights and DNS over TCP).
    pub max_tcp_flows: usize,
    /// Bytes of a client's first flight kept while looking for a ClientHello.
    pub max_first_flight: usize,
    /// Bytes of an HTTP request head read for its host.
    pub max_http_head: usize,
    /// How long (capture time) a first flight may take to complete.
    pub flow_timeout_micros: u64,
    /// Idle time after which a DNS-over-TCP stream is forgotten.
    pub dns_tcp_idle_micros: u64,
    /// (client, answered IP) pairs remembered to attribute later connections.
    pub max_resolved: usize,
    /// DNS queries remembered until their answer arrives.
    pub max_pending_queries: usize,
    /// Addresses (and MACs) in the passive neighbour table.
    pub max_neighbours: usize,
    /// QUIC Initial tracking limits.
    pub quic: QuicConfig,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            max_tcp_flows: 65_536,
            max_first_flight: 16 * 1024,
            max_http_head: 8 * 1024,
            flow_timeout_micros: 5_000_000,
            dns_tcp_idle_micros: 30_000_000,
            max_resolved: 262_144,
            max_pending_queries: 65_536,
            max_neighbours: 16_384,
            quic: QuicConfig::default(),
        }
    }
}

/// Counters of what the detector did. Names are snake_case, stable, and used as metric
/// label values.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Frames handed in.
    pub packets: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Frames skipped, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Everything else worth counting: parsed messages, abandoned flows, drops by reason.
    pub events: BTreeMap<&'static str, u64>,
}

impl Stats {
    fn event(&mut self, name: &'static str) {
        *self.events.entry(name).or_insert(0) += 1;
    }

    /// The count of one event (0 when it never happened).
    pub fn get(&self, name: &str) -> u64 {
        self.events.get(name).copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A SYN was seen; the first flight has not said what it is yet.
    Opened,
    /// The first flight starts like a TLS ClientHello.
    Tls,
    /// The first flight starts like an HTTP/1 request.
    Http,
    /// DNS over TCP (port 53), both directions.
    Dns,
}

#[derive(Debug)]
struct TcpFlow {
    kind: Kind,
    /// The flow produced its observation; later segments are ignored.
    done: bool,
    /// The flight after a CONNECT head: reported as tunnelled.
    tunnelled: bool,
    first_seen: Timestamp,
    last_seen: Timestamp,
    buf: StreamBuf,
}

/// The pure detection pipeline. Feed it frames in capture order.
pub struct Detector {
    cfg: DetectorConfig,
    tcp: Map<FlowKey, TcpFlow>,
    quic: QuicTracker,
    /// (client IP, answered IP) -> the name the client asked for (the latest one).
    resolved: Map<(IpAddr, IpAddr), Host>,
    /// (client IP, hash of a name) for every name a client got an address answer for:
    /// tells a GREASE ECH extension (the SNI is a name the device looked up) from real ECH.
    asked: Map<(IpAddr, u64), ()>,
    /// (client, server, DNS id) of queries whose answer has not been seen.
    pending: Map<(SocketAddr, SocketAddr, u16), ()>,
    neighbours: Neighbours,
    next_sweep: Timestamp,
    stats: Stats,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("tcp_flows", &self.tcp.len())
            .field("quic", &self.quic.len())
            .field("resolved", &self.resolved.len())
            .field("neighbours", &self.neighbours)
            .finish_non_exhaustive()
    }
}

fn name_hash(h: &Host) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(h)
}

impl Detector {
    /// A detector with the given limits.
    pub fn new(cfg: DetectorConfig) -> Detector {
        Detector {
            tcp: map(cfg.max_tcp_flows),
            quic: QuicTracker::new(cfg.quic.clone()),
            resolved: map(cfg.max_resolved),
            asked: map(cfg.max_resolved),
            pending: map(cfg.max_pending_queries),
            neighbours: Neighbours::new(cfg.max_neighbours),
            next_sweep: Timestamp::default(),
            stats: Stats::default(),
            cfg,
        }
    }

    /// What has been counted so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// TCP streams tracked right now.
    pub fn tcp_flows(&self) -> usize {
        self.tcp.len()
    }

    /// Remembers that `client` was told `addr` is `host` (by the daemon's own resolver,
    /// which sees answers even when capture misses them).
    pub fn learn(&mut self, client: IpAddr, addr: IpAddr, host: Host) {
        let client = client.to_canonical();
        self.asked.put((client, name_hash(&host)), ());
        self.resolved.put((client, addr.to_canonical()), host);
    }

    /// Records that the device with `mac` uses `ip` (from the kernel's neighbour table or
    /// a frame), so its connections from other addresses are its own.
    pub fn learn_neighbour(&mut self, ip: IpAddr, mac: Mac) {
        if self.neighbours.learn(ip, mac) == Learned::Router {
            self.stats.event("router_mac_seen");
        }
    }

    /// The device MAC behind `ip`, as frames taught it (`None` behind a router).
    pub fn mac_of(&self, ip: IpAddr) -> Option<Mac> {
        self.neighbours.mac_of(ip)
    }

    /// (client, IP) pairs remembered from DNS answers right now.
    pub fn resolved_len(&self) -> usize {
        self.resolved.len()
    }

    /// QUIC connections tracked right now.
    pub fn quic_connections(&self) -> usize {
        self.quic.len()
    }

    /// The name a DNS answer gave the device behind `client` (any of its addresses) for
    /// `server`.
    fn answer_for(&self, client: IpAddr, server: IpAddr) -> Option<&Host> {
        self.neighbours
            .device_addrs(client)
            .find_map(|a| self.resolved.peek(&(a, server)))
    }

    /// True when the device behind `client` got an address answer for `name`.
    fn device_asked(&self, client: IpAddr, name: &Host) -> bool {
        let h = name_hash(name);
        self.neighbours
            .device_addrs(client)
            .any(|a| self.asked.contains(&(a, h)))
    }

    /// Processes one frame captured at `ts`. A malformed frame is counted and yields
    /// nothing; it is never an error.
    pub fn process(&mut self, ts: Timestamp, link: LinkType, frame: &[u8]) -> Vec<Observation> {
        self.stats.packets += 1;
        self.stats.bytes += frame.len() as u64;
        let mut out = Vec::new();
        if ts >= self.next_sweep {
            self.sweep(ts, &mut out);
        }
        let pkt = match packet::decode(link, frame) {
            Ok(p) => p,
            Err(skip) => {
                *self.stats.skipped.entry(skip.as_str()).or_insert(0) += 1;
                return out;
            }
        };
        let (src, dst) = (pkt.src.to_canonical(), pkt.dst.to_canonical());
        let (ls, ld) = link_macs(link, frame);
        let macs = (ls.and_then(Mac::unicast), ld.and_then(Mac::unicast));
        match pkt.transport {
            Transport::Tcp {
                sport,
                dport,
                seq,
                syn,
                ack,
                fin_or_rst,
                payload,
            } => {
                let key = FlowKey {
                    src: SocketAddr::new(src, sport),
                    dst: SocketAddr::new(dst, dport),
                };
                let seg = Segment {
                    seq,
                    syn,
                    ack,
                    fin_or_rst,
                    payload,
                    src_mac: macs.0,
                };
                self.on_tcp(ts, key, seg, &mut out);
            }
            Transport::Udp {
                sport,
                dport,
                payload,
            } => {
                let key = FlowKey {
                    src: SocketAddr::new(src, sport),
                    dst: SocketAddr::new(dst, dport),
                };
                if sport == 53 || dport == 53 {
                    out.extend(self.on_dns(ts, key, payload, macs));
                } else {
                    out.extend(self.on_udp(ts, key, payload, macs.0));
                }
            }
        }
        out
    }

    /// Ends the capture: every connection whose first flight has named nothing yet becomes
    /// a nameless `tcp` observation (oldest first), as if it had timed out. A replay calls
    /// it after the last frame, the daemon when it stops.
    pub fn finish(&mut self) -> Vec<Observation> {
        let mut open: Vec<(Timestamp, FlowKey)> = Vec::new();
        while let Some((key, f)) = self.tcp.pop_lru() {
            if !f.done && f.kind != Kind::Dns {
                open.push((f.first_seen, key));
            }
        }
        open.sort_by_key(|(ts, k)| (*ts, k.src, k.dst));
        open.into_iter()
            .map(|(ts, key)| self.nameless(ts, key))
            .collect()
    }

    /// Forgets idle TCP streams; runs at most once per second of capture time. A first
    /// flight that never named anything becomes a nameless `tcp` observation.
    fn sweep(&mut self, now: Timestamp, out: &mut Vec<Observation>) {
        self.next_sweep = now.plus_micros(1_000_000);
        let idle = self
            .cfg
            .flow_timeout_micros
            .max(self.cfg.dns_tcp_idle_micros);
        while let Some((_, f)) = self.tcp.peek_lru() {
            let limit = match f.kind {
                Kind::Dns => idle,
                _ => self.cfg.flow_timeout_micros,
            };
            if now.micros_since(f.last_seen) <= limit {
                break;
            }
            if let Some((key, f)) = self.tcp.pop_lru() {
                if !f.done && f.kind != Kind::Dns {
                    self.stats.event("tcp_first_flight_timed_out");
                    out.push(self.nameless(f.first_seen, key));
                }
            }
        }
    }

    /// The observation of a connection whose first flight named nothing.
    fn nameless(&mut self, ts: Timestamp, key: FlowKey) -> Observation {
        self.stats.event("tcp_nameless");
        self.observation(ts, key, Proto::Tcp, None)
    }

    /// An observation of a connection from `key.src` to `key.dst`, with what the answer
    /// map and the neighbour table know about them.
    fn observation(
        &self,
        ts: Timestamp,
        key: FlowKey,
        proto: Proto,
        host: Option<Host>,
    ) -> Observation {
        let client = key.src.ip();
        Observation {
            ts,
            client: key.src,
            client_mac: self.neighbours.mac_of(client),
            server: key.dst,
            proto,
            unresolved: proto != Proto::Connect && self.answer_for(client, key.dst.ip()).is_none(),
            host,
            asked: None,
            ech_offered: false,
            alpn: Vec::new(),
            qtype: None,
            answers: Vec::new(),
        }
    }

    fn learn_from_frame(&mut self, ip: IpAddr, mac: Option<Mac>) {
        if let Some(mac) = mac {
            self.learn_neighbour(ip, mac);
        }
    }

    fn on_tcp(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        seg: Segment<'_>,
        out: &mut Vec<Observation>,
    ) {
        let dns_port = key.src.port() == 53 || key.dst.port() == 53;
        if seg.syn {
            // A SYN (client) or SYN-ACK (DNS server) fixes where the stream starts, so
            // out-of-order first segments can be placed.
            if !seg.ack {
                self.learn_from_frame(key.src.ip(), seg.src_mac);
                let kind = if dns_port { Kind::Dns } else { Kind::Opened };
                self.start_flow(ts, key, kind, seg.seq.wrapping_add(1), out);
            } else if dns_port {
                self.start_flow(ts, key, Kind::Dns, seg.seq.wrapping_add(1), out);
            }
            return;
        }
        if seg.payload.is_empty() {
            if seg.fin_or_rst {
                // The client's FIN or RST, or the server's (a refused connection): a flow
                // that named nothing ends here.
                for k in [key, key.reversed()] {
                    if self
                        .tcp
                        .peek(&k)
                        .is_some_and(|f| !f.done && f.kind == Kind::Opened)
                    {
                        if let Some(f) = self.tcp.pop(&k) {
                            out.push(self.nameless(f.first_seen, k));
                        }
                    }
                }
                self.tcp.pop(&key);
            }
            return;
        }
        if !self.tcp.contains(&key) {
            let kind = if dns_port {
                Kind::Dns
            } else if starts_like_client_hello(seg.payload) {
                Kind::Tls
            } else if http::starts_like_request(seg.payload) {
                Kind::Http
            } else {
                return;
            };
            // Joined mid-stream: the segment's own sequence number is the start.
            self.learn_from_frame(key.src.ip(), seg.src_mac);
            self.start_flow(ts, key, kind, seg.seq, out);
        }
        self.feed_tcp(ts, key, seg.seq, seg.payload, out);
    }

    fn start_flow(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        kind: Kind,
        base: u32,
        out: &mut Vec<Observation>,
    ) {
        let flow = TcpFlow {
            kind,
            done: false,
            tunnelled: false,
            first_seen: ts,
            last_seen: ts,
            buf: StreamBuf::new(base),
        };
        // A repeated SYN (retransmission) restarts the same flow without reporting.
        if let Some((old_key, old)) = self.tcp.push(key, flow) {
            if old_key != key {
                self.stats.event("tcp_flow_evicted");
                if !old.done && old.kind != Kind::Dns {
                    out.push(self.nameless(old.first_seen, old_key));
                }
            }
        }
    }

    fn feed_tcp(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        seq: u32,
        payload: &[u8],
        out: &mut Vec<Observation>,
    ) {
        let cfg = &self.cfg;
        let Some(flow) = self.tcp.get_mut(&key) else {
            return;
        };
        if flow.done {
            return;
        }
        flow.last_seen = ts;
        if flow.kind != Kind::Dns && ts.micros_since(flow.first_seen) > cfg.flow_timeout_micros {
            let first = flow.first_seen;
            self.tcp.pop(&key);
            self.stats.event("tcp_first_flight_timed_out");
            out.push(self.nameless(first, key));
            return;
        }
        let limit = match flow.kind {
            Kind::Dns => DNS_LIMIT + 1500,
            Kind::Http => cfg.max_http_head + cfg.max_first_flight,
            Kind::Opened | Kind::Tls => cfg.max_first_flight,
        };
        if let Err(o) = flow.buf.insert(seq, payload, limit) {
            let (first, kind) = (flow.first_seen, flow.kind);
            self.tcp.pop(&key);
            self.stats.event(overflow_name(o));
            if kind != Kind::Dns {
                out.push(self.nameless(first, key));
            }
            return;
        }
        loop {
            let Some(flow) = self.tcp.get_mut(&key) else {
                return;
            };
            let step = match flow.kind {
                Kind::Dns => {
                    let msgs = dns_messages(&mut flow.buf);
                    for m in &msgs {
                        out.extend(self.on_dns(ts, key, m, (None, None)));
                    }
                    return;
                }
                Kind::Opened => {
                    let data = flow.buf.contiguous();
                    if data.is_empty() {
                        return;
                    }
                    if starts_like_client_hello(data) {
                        flow.kind = Kind::Tls;
                        Step::Continue
                    } else if http::starts_like_request(data) {
                        flow.kind = Kind::Http;
                        Step::Continue
                    } else {
                        flow.done = true;
                        flow.buf = StreamBuf::default();
                        self.stats.event("tcp_other_protocol");
                        Step::Nameless(flow.first_seen)
                    }
                }
                Kind::Tls => {
                    match tls::scan_records(flow.buf.contiguous(), self.cfg.max_first_flight) {
                        Scan::NeedMore => return,
                        Scan::NotClientHello => {
                            flow.done = true;
                            flow.buf = StreamBuf::default();
                            self.stats.event("tcp_not_client_hello");
                            Step::Nameless(flow.first_seen)
                        }
                        Scan::Complete(m) => {
                            let msg = m.into_owned();
                            let tunnelled = flow.tunnelled;
                            flow.done = true;
                            flow.buf = StreamBuf::default();
                            Step::ClientHello(msg, tunnelled)
                        }
                    }
                }
                Kind::Http => {
                    match http::scan_request(flow.buf.contiguous(), self.cfg.max_http_head) {
                        http::Scan::NeedMore => return,
                        http::Scan::NotHttp => {
                            flow.done = true;
                            flow.buf = StreamBuf::default();
                            self.stats.event("http_malformed");
                            Step::Nameless(flow.first_seen)
                        }
                        http::Scan::Request(req) => {
                            if req.connect {
                                // What follows the CONNECT head is the tunnelled flight: a
                                // ClientHello names the real destination once more.
                                flow.buf.consume(req.head_len);
                                flow.kind = Kind::Tls;
                                flow.tunnelled = true;
                            } else {
                                flow.done = true;
                                flow.buf = StreamBuf::default();
                            }
                            Step::Http(req)
                        }
                    }
                }
            };
            match step {
                Step::Continue => continue,
                Step::Nameless(first) => {
                    out.push(self.nameless(first, key));
                    return;
                }
                Step::ClientHello(msg, tunnelled) => {
                    out.extend(self.on_client_hello(ts, key, Proto::Tls, &msg, tunnelled));
                    return;
                }
                Step::Http(req) => {
                    let connect = req.connect;
                    out.extend(self.on_http(ts, key, req));
                    if !connect {
                        return;
                    }
                }
            }
        }
    }

    fn on_http(&mut self, ts: Timestamp, key: FlowKey, req: http::Request) -> Option<Observation> {
        self.stats.event(if req.connect {
            "http_connect"
        } else {
            "http_request"
        });
        let host = match req.host.as_deref().map(Host::parse) {
            Some(Ok(h)) => Some(h),
            Some(Err(_)) => {
                self.stats.event("bad_hostname");
                None
            }
            None => {
                self.stats.event("http_without_host");
                None
            }
        };
        let proto = if req.connect {
            Proto::Connect
        } else {
            Proto::Http
        };
        Some(self.observation(ts, key, proto, host))
    }

    fn on_udp(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        payload: &[u8],
        src_mac: Option<Mac>,
    ) -> Option<Observation> {
        match self.quic.on_datagram(ts, key, payload) {
            QuicEvent::NotInitial => None,
            QuicEvent::Pending => {
                self.learn_from_frame(key.src.ip(), src_mac);
                None
            }
            QuicEvent::Duplicate => {
                self.stats.event("quic_duplicate");
                None
            }
            QuicEvent::Dropped(why) => {
                self.stats.event(why.as_str());
                None
            }
            QuicEvent::ClientHello { message, .. } => {
                self.learn_from_frame(key.src.ip(), src_mac);
                self.on_client_hello(ts, key, Proto::Quic, &message, false)
            }
        }
    }

    fn on_client_hello(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        proto: Proto,
        message: &[u8],
        tunnelled: bool,
    ) -> Option<Observation> {
        let Some(ch) = tls::parse_client_hello(message) else {
            self.stats.event("client_hello_malformed");
            return None;
        };
        self.stats.event(match proto {
            Proto::Quic => "quic_client_hello",
            _ => "tls_client_hello",
        });
        let host = match ch.sni.as_deref().map(Host::parse) {
            Some(Ok(h)) => Some(h),
            Some(Err(_)) => {
                self.stats.event("bad_hostname");
                None
            }
            None => {
                self.stats.event("client_hello_without_sni");
                None
            }
        };
        let mut o = self.observation(ts, key, proto, host);
        if tunnelled {
            // Inside a CONNECT tunnel the server is the proxy: the name is the evidence.
            o.unresolved = false;
            self.stats.event("tls_in_connect_tunnel");
        }
        if ch.ech {
            self.stats.event("ech_offered");
            o.ech_offered = true;
            // Real ECH puts a public name in the outer SNI: a name this device did not
            // look up, for an address it got under another name. GREASE keeps the name
            // the device asked for.
            let client = key.src.ip();
            if let Some(h) = &o.host {
                if !self.device_asked(client, h) {
                    o.asked = self
                        .answer_for(client, key.dst.ip())
                        .filter(|a| *a != h)
                        .cloned();
                }
            }
        }
        o.alpn = ch.alpn;
        Some(o)
    }

    fn on_dns(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        bytes: &[u8],
        macs: (Option<Mac>, Option<Mac>),
    ) -> Option<Observation> {
        let Some(msg) = dns::parse(bytes) else {
            self.stats.event("dns_malformed");
            return None;
        };
        self.stats.event(if msg.response {
            "dns_response"
        } else {
            "dns_query"
        });
        let Ok(host) = Host::parse(&msg.qname) else {
            self.stats.event("bad_hostname");
            return None;
        };
        let DnsSummary {
            id,
            response,
            qtype,
            addrs,
            cnames,
            ech,
            ..
        } = msg;
        let (client, server, client_mac) = if response {
            (key.dst, key.src, macs.1)
        } else {
            (key.src, key.dst, macs.0)
        };
        self.learn_from_frame(client.ip(), client_mac);
        let mut answers = Vec::new();
        if response {
            for addr in &addrs {
                self.learn(client.ip(), *addr, host.clone());
            }
            // The query was seen and reported already: report the answer only when it
            // tells something new (ECH on offer).
            if self.pending.pop(&(client, server, id)).is_some() && !ech {
                return None;
            }
            answers = cnames
                .iter()
                .map(ToString::to_string)
                .chain(addrs.iter().map(ToString::to_string))
                .collect();
        } else {
            self.pending.put((client, server, id), ());
        }
        Some(Observation {
            ts,
            client: canonical(client),
            client_mac: self.neighbours.mac_of(client.ip()),
            server,
            proto: Proto::Dns,
            host: Some(host),
            asked: None,
            ech_offered: ech,
            unresolved: false,
            alpn: Vec::new(),
            qtype: Some(qtype),
            answers,
        })
    }
}

/// The frame's Ethernet source and destination (Linux cooked: the sender only).
fn link_macs(link: LinkType, f: &[u8]) -> (Option<[u8; 6]>, Option<[u8; 6]>) {
    let six = |at: usize| f.get(at..at + 6).and_then(|b| <[u8; 6]>::try_from(b).ok());
    match link {
        LinkType::Ethernet => (six(6), six(0)),
        LinkType::LinuxSll if f.get(4..6) == Some(&[0, 6]) => (six(6), None),
        LinkType::LinuxSll2 if f.get(11) == Some(&6) => (six(12), None),
        _ => (None, None),
    }
}

/// The largest DNS-over-TCP message plus its length prefix.
const DNS_LIMIT: usize = 2 + 65_535;

/// One TCP segment's fields the detector reads.
struct Segment<'a> {
    seq: u32,
    syn: bool,
    ack: bool,
    fin_or_rst: bool,
    payload: &'a [u8],
    src_mac: Option<Mac>,
}

/// What one pass over a flow's buffer decided.
enum Step {
    /// The flow changed kind: look again.
    Continue,
    /// The first flight names nothing; `first_seen` of the flow.
    Nameless(Timestamp),
    /// A complete ClientHello, tunnelled after a CONNECT or not.
    ClientHello(Vec<u8>, bool),
    /// An HTTP request head.
    Http(http::Request),
}

/// Complete length-prefixed DNS messages at the start of `buf`, consumed.
fn dns_messages(buf: &mut StreamBuf) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    loop {
        let data = buf.contiguous();
        let Some(len) = data
            .get(..2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        else {
            break;
        };
        let Some(msg) = data.get(2..2 + len) else {
            break;
        };
        messages.push(msg.to_vec());
        buf.consume(2 + len);
    }
    messages
}

fn overflow_name(o: Overflow) -> &'static str {
    match o {
        Overflow::TooLarge => "tcp_stream_too_large",
        Overflow::TooFragmented => "tcp_stream_too_fragmented",
    }
}

/// True when a segment that starts a stream may be the start of a ClientHello record:
/// handshake content type, major version 3, and (if present) a ClientHello message type.
fn starts_like_client_hello(p: &[u8]) -> bool {
    match p {
        [22] | [22, 3] => true,
        [22, 3, minor, ..] if *minor <= 4 => p.get(5).is_none_or(|&t| t == 1),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
