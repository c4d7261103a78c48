//! The detector: one call per captured frame, observations out. It owns the bounded state
//! that spans packets (TCP first flights, QUIC CRYPTO streams, the DNS answer map) and the
//! counters a summary or metrics endpoint reports.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;

use lru::LruCache;
use rustc_hash::FxBuildHasher;

use super::dns::{self, DnsSummary};
use super::flow::{Overflow, StreamBuf};
use super::frag::FragConfig;
use super::observation::{FlowKey, Host, Observation, Proto};
use super::packet::{Decoder, LinkType, Packet, Transport};
use super::quic::{QuicConfig, QuicEvent, QuicTracker};
use super::time::Timestamp;
use super::tls::{self, Scan};

/// Limits of the detector's memory. Every map is capped and evicts its least recently
/// used entry when full.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    /// TCP streams tracked at once (ClientHello first flights and DNS over TCP).
    pub max_tcp_flows: usize,
    /// Bytes of a client's first flight kept while looking for a ClientHello.
    pub max_first_flight: usize,
    /// How long (capture time) a first flight may take to complete.
    pub flow_timeout_micros: u64,
    /// Idle time after which a DNS-over-TCP stream is forgotten.
    pub dns_tcp_idle_micros: u64,
    /// (client, answered IP) pairs remembered to attribute later connections.
    pub max_resolved: usize,
    /// DNS queries remembered until their answer arrives.
    pub max_pending_queries: usize,
    /// QUIC Initial tracking limits.
    pub quic: QuicConfig,
    /// IP fragment reassembly limits and overlap policy.
    pub frag: FragConfig,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            max_tcp_flows: 65_536,
            max_first_flight: 16 * 1024,
            flow_timeout_micros: 5_000_000,
            dns_tcp_idle_micros: 30_000_000,
            max_resolved: 262_144,
            max_pending_queries: 65_536,
            quic: QuicConfig::default(),
            frag: FragConfig::default(),
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
    Tls,
    Dns,
}

#[derive(Debug)]
struct TcpFlow {
    kind: Kind,
    done: bool,
    first_seen: Timestamp,
    last_seen: Timestamp,
    buf: StreamBuf,
}

type Map<K, V> = LruCache<K, V, FxBuildHasher>;

/// A capped LRU map that grows as entries arrive instead of reserving its whole capacity
/// up front (a quiet network should not pay for a busy one's tables).
pub(crate) fn map<K: std::hash::Hash + Eq, V>(cap: usize) -> Map<K, V> {
    let mut m = LruCache::unbounded_with_hasher(FxBuildHasher);
    m.resize(NonZeroUsize::new(cap.max(1)).unwrap_or(NonZeroUsize::MIN));
    m
}

/// The pure detection pipeline. Feed it frames in capture order.
pub struct Detector {
    cfg: DetectorConfig,
    /// Lent out of `self` while a frame is handled (the packet may borrow its
    /// reassembly buffer, and handling it needs the rest of `self`), then put back.
    decoder: Option<Box<Decoder>>,
    tcp: Map<FlowKey, TcpFlow>,
    quic: QuicTracker,
    /// (client IP, answered IP) -> the name the client asked for.
    resolved: Map<(IpAddr, IpAddr), Host>,
    /// (client, server, DNS id) of queries whose answer has not been seen.
    pending: Map<(SocketAddr, SocketAddr, u16), ()>,
    next_sweep: Timestamp,
    stats: Stats,
}

impl Detector {
    /// A detector with the given limits.
    pub fn new(cfg: DetectorConfig) -> Detector {
        Detector {
            decoder: Some(Box::new(Decoder::new(cfg.frag.clone()))),
            tcp: map(cfg.max_tcp_flows),
            quic: QuicTracker::new(cfg.quic.clone()),
            resolved: map(cfg.max_resolved),
            pending: map(cfg.max_pending_queries),
            next_sweep: Timestamp::default(),
            stats: Stats::default(),
            cfg,
        }
    }

    /// What has been counted so far, the decoder's tunnel and fragment counters among
    /// the events.
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats.clone();
        for (name, n) in self.decoder.iter().flat_map(|d| d.counts()) {
            *stats.events.entry(name).or_insert(0) += n;
        }
        stats
    }

    /// TCP streams tracked right now.
    pub fn tcp_flows(&self) -> usize {
        self.tcp.len()
    }

    /// Remembers that `client` was told `addr` is `host` (by the daemon's own resolver,
    /// which sees answers even when capture misses them).
    pub fn learn(&mut self, client: IpAddr, addr: IpAddr, host: Host) {
        self.resolved.put((client, addr), host);
    }

    /// (client, IP) pairs remembered from DNS answers right now.
    pub fn resolved_len(&self) -> usize {
        self.resolved.len()
    }

    /// QUIC connections tracked right now.
    pub fn quic_connections(&self) -> usize {
        self.quic.len()
    }

    /// Processes one frame captured at `ts`. A malformed frame is counted and yields
    /// nothing; it is never an error.
    pub fn process(&mut self, ts: Timestamp, link: LinkType, frame: &[u8]) -> Vec<Observation> {
        self.stats.packets += 1;
        self.stats.bytes += frame.len() as u64;
        if ts >= self.next_sweep {
            self.sweep(ts);
        }
        let mut decoder = self
            .decoder
            .take()
            .unwrap_or_else(|| Box::new(Decoder::new(self.cfg.frag.clone())));
        let out = match decoder.decode(ts, link, frame) {
            Ok(pkt) => self.on_packet(ts, pkt),
            Err(skip) => {
                *self.stats.skipped.entry(skip.as_str()).or_insert(0) += 1;
                Vec::new()
            }
        };
        self.decoder = Some(decoder);
        out
    }

    fn on_packet(&mut self, ts: Timestamp, pkt: Packet<'_>) -> Vec<Observation> {
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
                    src: SocketAddr::new(pkt.src, sport),
                    dst: SocketAddr::new(pkt.dst, dport),
                };
                self.on_tcp(ts, key, seq, syn, ack, fin_or_rst, payload)
            }
            Transport::Udp {
                sport,
                dport,
                payload,
            } => {
                let key = FlowKey {
                    src: SocketAddr::new(pkt.src, sport),
                    dst: SocketAddr::new(pkt.dst, dport),
                };
                if sport == 53 || dport == 53 {
                    self.on_dns(ts, key, payload).into_iter().collect()
                } else {
                    self.on_udp(ts, key, payload).into_iter().collect()
                }
            }
        }
    }

    /// Forgets idle TCP streams; runs at most once per second of capture time.
    fn sweep(&mut self, now: Timestamp) {
        self.next_sweep = now.plus_micros(1_000_000);
        let idle = self
            .cfg
            .flow_timeout_micros
            .max(self.cfg.dns_tcp_idle_micros);
        while let Some((_, f)) = self.tcp.peek_lru() {
            let limit = match f.kind {
                Kind::Tls => self.cfg.flow_timeout_micros,
                Kind::Dns => idle,
            };
            if now.micros_since(f.last_seen) <= limit {
                break;
            }
            if let Some((_, f)) = self.tcp.pop_lru() {
                if !f.done && f.kind == Kind::Tls {
                    self.stats.event("tls_timed_out");
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_tcp(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        seq: u32,
        syn: bool,
        ack: bool,
        fin_or_rst: bool,
        payload: &[u8],
    ) -> Vec<Observation> {
        let dns_port = key.src.port() == 53 || key.dst.port() == 53;
        if syn {
            // A SYN (client) or SYN-ACK (DNS server) fixes where the stream starts, so
            // out-of-order first segments can be placed.
            if !ack || dns_port {
                let kind = if dns_port { Kind::Dns } else { Kind::Tls };
                self.start_flow(ts, key, kind, seq.wrapping_add(1));
            }
            return Vec::new();
        }
        if payload.is_empty() {
            if fin_or_rst {
                self.tcp.pop(&key);
            }
            return Vec::new();
        }
        if !self.tcp.contains(&key) {
            if dns_port {
                self.start_flow(ts, key, Kind::Dns, seq);
            } else if starts_like_client_hello(payload) {
                self.start_flow(ts, key, Kind::Tls, seq);
            } else {
                return Vec::new();
            }
        }
        let out = self.feed_tcp(ts, key, seq, payload);
        if fin_or_rst {
            self.tcp.pop(&key);
        }
        out
    }

    fn start_flow(&mut self, ts: Timestamp, key: FlowKey, kind: Kind, base: u32) {
        let flow = TcpFlow {
            kind,
            done: false,
            first_seen: ts,
            last_seen: ts,
            buf: StreamBuf::new(base),
        };
        if let Some((old, _)) = self.tcp.push(key, flow) {
            if old != key {
                self.stats.event("tcp_flow_evicted");
            }
        }
    }

    fn feed_tcp(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        seq: u32,
        payload: &[u8],
    ) -> Vec<Observation> {
        let cfg = &self.cfg;
        let Some(flow) = self.tcp.get_mut(&key) else {
            return Vec::new();
        };
        if flow.done {
            return Vec::new();
        }
        flow.last_seen = ts;
        match flow.kind {
            Kind::Tls => {
                if ts.micros_since(flow.first_seen) > cfg.flow_timeout_micros {
                    self.tcp.pop(&key);
                    self.stats.event("tls_timed_out");
                    return Vec::new();
                }
                if let Err(o) = flow.buf.insert(seq, payload, cfg.max_first_flight) {
                    self.tcp.pop(&key);
                    self.stats.event(overflow_name(o));
                    return Vec::new();
                }
                let msg = match tls::scan_records(flow.buf.contiguous(), cfg.max_first_flight) {
                    Scan::NeedMore => return Vec::new(),
                    Scan::NotClientHello => {
                        self.tcp.pop(&key);
                        self.stats.event("tcp_not_client_hello");
                        return Vec::new();
                    }
                    Scan::Complete(m) => m.into_owned(),
                };
                flow.done = true;
                flow.buf = StreamBuf::default();
                self.on_client_hello(ts, key, Proto::Tls, &msg)
                    .into_iter()
                    .collect()
            }
            Kind::Dns => {
                const DNS_LIMIT: usize = 2 + 65_535;
                if let Err(o) = flow.buf.insert(seq, payload, DNS_LIMIT + 1500) {
                    self.tcp.pop(&key);
                    self.stats.event(overflow_name(o));
                    return Vec::new();
                }
                let mut messages = Vec::new();
                loop {
                    let data = flow.buf.contiguous();
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
                    flow.buf.consume(2 + len);
                }
                messages
                    .iter()
                    .filter_map(|m| self.on_dns(ts, key, m))
                    .collect()
            }
        }
    }

    fn on_udp(&mut self, ts: Timestamp, key: FlowKey, payload: &[u8]) -> Option<Observation> {
        match self.quic.on_datagram(ts, key, payload) {
            QuicEvent::NotInitial | QuicEvent::Pending => None,
            QuicEvent::Duplicate => {
                self.stats.event("quic_duplicate");
                None
            }
            QuicEvent::Dropped(why) => {
                self.stats.event(why.as_str());
                None
            }
            QuicEvent::ClientHello { message, .. } => {
                self.on_client_hello(ts, key, Proto::Quic, &message)
            }
        }
    }

    fn on_client_hello(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        proto: Proto,
        message: &[u8],
    ) -> Option<Observation> {
        let Some(ch) = tls::parse_client_hello(message) else {
            self.stats.event("client_hello_malformed");
            return None;
        };
        self.stats.event(match proto {
            Proto::Quic => "quic_client_hello",
            _ => "tls_client_hello",
        });
        let Some(sni) = ch.sni else {
            self.stats.event("client_hello_without_sni");
            return None;
        };
        let Ok(host) = Host::parse(&sni) else {
            self.stats.event("bad_hostname");
            return None;
        };
        let unresolved = !self.resolved.contains(&(key.src.ip(), key.dst.ip()));
        Some(Observation {
            ts,
            client: key.src,
            server: key.dst,
            proto,
            host,
            ech: ch.ech,
            unresolved,
            alpn: ch.alpn,
            qtype: None,
            answers: Vec::new(),
        })
    }

    fn on_dns(&mut self, ts: Timestamp, key: FlowKey, bytes: &[u8]) -> Option<Observation> {
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
        let (client, server) = if response {
            (key.dst, key.src)
        } else {
            (key.src, key.dst)
        };
        let mut answers = Vec::new();
        if response {
            for addr in &addrs {
                self.resolved.put((client.ip(), *addr), host.clone());
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
            client,
            server,
            proto: Proto::Dns,
            host,
            ech,
            unresolved: false,
            alpn: Vec::new(),
            qtype: Some(qtype),
            answers,
        })
    }
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
mod tests {
    use super::*;
    use crate::detect::dns::tests::query;
    use crate::detect::tls::tests::{client_hello_message, records};
    use etherparse::PacketBuilder;

    const CLIENT: [u8; 4] = [10, 0, 0, 23];
    const SERVER: [u8; 4] = [198, 51, 100, 7];

    fn tcp(seq: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x23], [2, 0, 0, 0, 0, 1])
            .ipv4(CLIENT, SERVER, 64)
            .tcp(51000, 443, seq, 64240);
        if syn {
            b = b.syn();
        } else {
            b = b.ack(1);
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("write");
        out
    }

    fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x23], [2, 0, 0, 0, 0, 1])
            .ipv4(src, dst, 64)
            .udp(sport, dport);
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("write");
        out
    }

    fn run(frames: &[Vec<u8>]) -> (Vec<Observation>, Detector) {
        let mut d = Detector::new(DetectorConfig::default());
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            out.extend(d.process(
                Timestamp::from_micros(1_000 * i as i64),
                LinkType::Ethernet,
                f,
            ));
        }
        (out, d)
    }

    fn hosts(obs: &[Observation]) -> Vec<(Proto, String)> {
        obs.iter().map(|o| (o.proto, o.host.to_string())).collect()
    }

    fn segments(stream: &[u8], cuts: &[usize], isn: u32) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut start = 0;
        for &c in cuts.iter().chain(std::iter::once(&stream.len())) {
            out.push((isn + 1 + start as u32, stream[start..c].to_vec()));
            start = c;
        }
        out
    }

    #[test]
    fn client_hello_in_order_out_of_order_and_one_byte() {
        let stream = records(&client_hello_message("chatgpt.com", false), 16_384);
        let isn = 1_000;
        let segs = segments(&stream, &[20, 60], isn);
        let mut in_order = vec![tcp(isn, true, &[])];
        in_order.extend(segs.iter().map(|(s, p)| tcp(*s, false, p)));
        let (obs, _) = run(&in_order);
        assert_eq!(hosts(&obs), vec![(Proto::Tls, "chatgpt.com".into())]);
        assert!(obs[0].unresolved);
        assert_eq!(obs[0].client, "10.0.0.23:51000".parse().expect("addr"));

        let mut reversed = vec![tcp(isn, true, &[])];
        reversed.extend(segs.iter().rev().map(|(s, p)| tcp(*s, false, p)));
        // A retransmission after completion must not report twice.
        reversed.push(tcp(segs[0].0, false, &segs[0].1));
        assert_eq!(
            hosts(&run(&reversed).0),
            vec![(Proto::Tls, "chatgpt.com".into())]
        );

        // One byte per segment and no SYN in the capture.
        let ones: Vec<_> = stream
            .iter()
            .enumerate()
            .map(|(i, b)| tcp(isn + 1 + i as u32, false, &[*b]))
            .collect();
        assert_eq!(
            hosts(&run(&ones).0),
            vec![(Proto::Tls, "chatgpt.com".into())]
        );
    }

    #[test]
    fn dns_answer_explains_later_connection() {
        let mut m = hickory_proto::op::Message::new(
            5,
            hickory_proto::op::MessageType::Response,
            hickory_proto::op::OpCode::Query,
        );
        let name = hickory_proto::rr::Name::from_ascii("claude.ai.").expect("name");
        m.add_query(hickory_proto::op::Query::query(
            name.clone(),
            hickory_proto::rr::RecordType::A,
        ));
        m.add_answer(hickory_proto::rr::Record::from_rdata(
            name,
            60,
            hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::from(
                std::net::Ipv4Addr::from(SERVER),
            )),
        ));
        let answer = m.to_vec().expect("encode");
        let stream = records(&client_hello_message("claude.ai", false), 16_384);
        let frames = vec![
            udp(CLIENT, 40000, [10, 0, 0, 1], 53, &query("claude.ai", 5)),
            udp([10, 0, 0, 1], 53, CLIENT, 40000, &answer),
            tcp(7, false, &stream),
        ];
        let (obs, d) = run(&frames);
        assert_eq!(
            hosts(&obs),
            vec![
                (Proto::Dns, "claude.ai".into()),
                (Proto::Tls, "claude.ai".into())
            ]
        );
        assert!(!obs[1].unresolved);
        assert_eq!(d.stats().get("dns_query"), 1);
        assert_eq!(d.stats().get("dns_response"), 1);
    }

    #[test]
    fn other_traffic_is_ignored_and_state_stays_bounded() {
        let cfg = DetectorConfig {
            max_tcp_flows: 1_000,
            ..DetectorConfig::default()
        };
        let mut d = Detector::new(cfg);
        let mut frame = tcp(1, true, &[]);
        // A million distinct flows, each a SYN: the table never exceeds its cap.
        for i in 0..1_000_000u32 {
            let port = (i % 60_000) as u16 + 1024;
            let host = (i / 60_000) as u8;
            frame[29] = host; // source IP last byte
            frame[34..36].copy_from_slice(&port.to_be_bytes());
            d.process(
                Timestamp::from_micros(i64::from(i)),
                LinkType::Ethernet,
                &frame,
            );
            assert!(d.tcp_flows() <= 1_000);
        }
        assert!(d.stats().get("tcp_flow_evicted") > 0);
        let bulk = tcp(5, false, &[0x17, 3, 3, 0, 10, 1, 2, 3]);
        assert!(d
            .process(Timestamp::from_micros(1), LinkType::Ethernet, &bulk)
            .is_empty());
    }

    #[test]
    fn an_answer_without_its_query_is_reported_with_the_answers() {
        let mut m = hickory_proto::op::Message::new(
            8,
            hickory_proto::op::MessageType::Response,
            hickory_proto::op::OpCode::Query,
        );
        let q = hickory_proto::rr::Name::from_ascii("chat.openai.com.").expect("name");
        let c = hickory_proto::rr::Name::from_ascii("chatgpt.com.").expect("name");
        m.add_query(hickory_proto::op::Query::query(
            q.clone(),
            hickory_proto::rr::RecordType::A,
        ));
        m.add_answer(hickory_proto::rr::Record::from_rdata(
            q,
            60,
            hickory_proto::rr::RData::CNAME(hickory_proto::rr::rdata::CNAME(c.clone())),
        ));
        m.add_answer(hickory_proto::rr::Record::from_rdata(
            c,
            60,
            hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(104, 18, 32, 47)),
        ));
        let a = m.to_vec().expect("encode");
        let (obs, _) = run(&[udp([10, 0, 0, 1], 53, CLIENT, 40000, &a)]);
        assert_eq!(obs.len(), 1);
        assert_eq!(obs[0].host.as_str(), "chat.openai.com");
        assert_eq!(obs[0].client, "10.0.0.23:40000".parse().expect("addr"));
        assert_eq!(obs[0].answers, vec!["chatgpt.com", "104.18.32.47"]);
    }

    #[test]
    fn dns_answer_map_is_capped() {
        let cfg = DetectorConfig {
            max_resolved: 100,
            max_pending_queries: 50,
            ..DetectorConfig::default()
        };
        let mut d = Detector::new(cfg);
        for i in 0..10_000u32 {
            let name = hickory_proto::rr::Name::from_ascii(format!("h{i}.example.")).expect("name");
            let mut m = hickory_proto::op::Message::new(
                i as u16,
                hickory_proto::op::MessageType::Response,
                hickory_proto::op::OpCode::Query,
            );
            m.add_query(hickory_proto::op::Query::query(
                name.clone(),
                hickory_proto::rr::RecordType::A,
            ));
            m.add_answer(hickory_proto::rr::Record::from_rdata(
                name,
                60,
                hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::from(
                    std::net::Ipv4Addr::from(0x0a00_0000 + i),
                )),
            ));
            let q = query(&format!("h{i}.example"), i as u16);
            let ts = Timestamp::from_micros(i64::from(i));
            d.process(
                ts,
                LinkType::Ethernet,
                &udp(CLIENT, 40000, [10, 0, 0, 1], 53, &q),
            );
            let a = m.to_vec().expect("encode");
            d.process(
                ts,
                LinkType::Ethernet,
                &udp([10, 0, 0, 1], 53, CLIENT, 40000, &a),
            );
            assert!(d.resolved_len() <= 100);
        }
        assert_eq!(d.resolved_len(), 100);
    }

    #[test]
    fn malformed_frames_never_stop_detection() {
        let good = udp(CLIENT, 40000, [10, 0, 0, 1], 53, &query("claude.ai", 9));
        let mut frames: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
        frames.push(udp(CLIENT, 40001, [10, 0, 0, 1], 53, &[0xff; 40]));
        frames.push(good.clone());
        let (obs, d) = run(&frames);
        assert_eq!(hosts(&obs), vec![(Proto::Dns, "claude.ai".into())]);
        assert!(d.stats().skipped.values().sum::<u64>() > 0);
        assert!(d.stats().get("dns_malformed") > 0);
    }
}
