//! The detector: one call per captured frame, observations out. It owns the bounded state
//! that spans packets (TCP first flights on every port, QUIC CRYPTO streams, the DNS
//! answer map, the passive neighbour table) and the counters a summary or the metrics
//! endpoint reports.
//!
//! Every TCP connection whose SYN is seen is followed through its client's first flight,
//! on any port, and yields one observation: the TLS ClientHello (with or without SNI), the
//! HTTP request's host or CONNECT target (and the ClientHello tunnelled after a CONNECT),
//! or, when the flight names nothing (no payload before the connection ended or went
//! silent, or a protocol aiwarden does not read), a nameless `tcp` observation whose
//! addresses and port are all the pipeline can judge (DNS over TLS on 853, a known DoH
//! address). A flight is kept however slowly it comes, on a memory budget across flows;
//! one given up on (budget, idle, byte cap) is a nameless observation marked `incomplete`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::dns::{self, DnsSummary};
use super::flow::Budget;
use super::frag::FragConfig;
use super::neighbours::{Learned, Neighbours};
use super::observation::{canonical, FlowKey, Host, LinkSeen, Mac, Observation, Proto};
use super::packet::{Decoder, LinkType, Packet, Transport};
use super::quic::{QuicConfig, QuicEvent, QuicTracker};
use super::table::{map, Map};
use super::time::Timestamp;
use super::tls;
use tcp::{Segment, TcpFlow};

/// A frame's Ethernet address as the decoder read it (not yet checked to be a device's).
type LinkAddr = Option<[u8; 6]>;

mod tcp;

/// Limits of the detector's memory. Every map is capped and evicts its least recently
/// used entry when full.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    /// TCP streams tracked at once (first flights and DNS over TCP).
    pub max_tcp_flows: usize,
    /// Bytes of one client's first flight kept while looking for a ClientHello: a flight
    /// that reaches it without naming anything is given up (`byte_cap`), and a segment
    /// that crosses it is cut there (the hello is at the start).
    pub max_first_flight: usize,
    /// Bytes all first flights may hold together (buffers and a fixed cost per flow).
    /// Beyond it the flight that advanced least recently is given up (`budget`).
    pub first_flight_budget: usize,
    /// Capture time a first flight that has begun may go without new bytes before it is
    /// given up (`idle`): table hygiene, not a deadline; a slow sender is kept.
    pub first_flight_idle_micros: u64,
    /// Bytes of an HTTP request head read for its host.
    pub max_http_head: usize,
    /// Capture time a connection may stay silent after its SYN (or a flow that named its
    /// host may linger for its retransmissions) before it is forgotten; a silent one is
    /// reported as naming nothing. A flight that begins later is still read.
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
    /// IP fragment reassembly limits and overlap policy.
    pub frag: FragConfig,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            max_tcp_flows: 65_536,
            max_first_flight: 16 * 1024,
            first_flight_budget: 16 << 20,
            first_flight_idle_micros: 120_000_000,
            max_http_head: 8 * 1024,
            flow_timeout_micros: 5_000_000,
            dns_tcp_idle_micros: 30_000_000,
            max_resolved: 262_144,
            max_pending_queries: 65_536,
            max_neighbours: 16_384,
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
    /// Bytes the TCP first flights hold right now (a gauge, not a count).
    pub first_flight_bytes: u64,
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

/// The pure detection pipeline. Feed it frames in capture order.
pub struct Detector {
    /// Frames to packets (tunnels, reassembly). Apart from `state` so a packet may borrow
    /// the decoder's reassembly buffer while the state handles it.
    decoder: Decoder,
    state: State,
}

/// Everything the detector keeps across packets.
struct State {
    cfg: DetectorConfig,
    tcp: Map<FlowKey, TcpFlow>,
    /// The first flights that have begun, by when they last grew, and their bytes.
    flights: Budget<FlowKey>,
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
        let s = &self.state;
        f.debug_struct("Detector")
            .field("tcp_flows", &s.tcp.len())
            .field("quic", &s.quic.len())
            .field("resolved", &s.resolved.len())
            .field("neighbours", &s.neighbours)
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
            decoder: Decoder::new(cfg.frag.clone()),
            state: State {
                tcp: map(cfg.max_tcp_flows),
                flights: Budget::new(cfg.first_flight_budget),
                quic: QuicTracker::new(cfg.quic.clone()),
                resolved: map(cfg.max_resolved),
                asked: map(cfg.max_resolved),
                pending: map(cfg.max_pending_queries),
                neighbours: Neighbours::new(cfg.max_neighbours),
                next_sweep: Timestamp::default(),
                stats: Stats::default(),
                cfg,
            },
        }
    }

    /// What has been counted so far, the decoder's tunnel and fragment counters among
    /// the events.
    pub fn stats(&self) -> Stats {
        let mut stats = self.state.stats.clone();
        for (name, n) in self.decoder.counts() {
            *stats.events.entry(name).or_insert(0) += n;
        }
        stats.first_flight_bytes = self.state.flights.total() as u64;
        stats
    }

    /// Bytes the TCP first flights hold right now, and how many flights hold them.
    pub fn first_flights(&self) -> (usize, usize) {
        (self.state.flights.total(), self.state.flights.len())
    }

    /// TCP streams tracked right now.
    pub fn tcp_flows(&self) -> usize {
        self.state.tcp.len()
    }

    /// Remembers that `client` was told `addr` is `host` (by the daemon's own resolver,
    /// which sees answers even when capture misses them).
    pub fn learn(&mut self, client: IpAddr, addr: IpAddr, host: Host) {
        self.state.learn(client, addr, host);
    }

    /// Records that the device with `mac` uses `ip` (from the kernel's neighbour table or
    /// a frame), so its connections from other addresses are its own.
    pub fn learn_neighbour(&mut self, ip: IpAddr, mac: Mac) {
        self.state.learn_neighbour(ip, mac);
    }

    /// The device MAC behind `ip`, as frames taught it (`None` behind a router).
    pub fn mac_of(&self, ip: IpAddr) -> Option<Mac> {
        self.state.neighbours.mac_of(ip)
    }

    /// (client, IP) pairs remembered from DNS answers right now.
    pub fn resolved_len(&self) -> usize {
        self.state.resolved.len()
    }

    /// QUIC connections tracked right now.
    pub fn quic_connections(&self) -> usize {
        self.state.quic.len()
    }

    /// A TCP connection from `client` to `server` opened at `ts` whose SYN this detector
    /// was not given, the client's stream starting at `next_seq` (its first data byte):
    /// what a SYN does, for a shell that hands in only packets that carry data (the
    /// NFQUEUE judge) and learns from connection tracking that a connection is new. A
    /// flow of the same addresses that was still remembered (a reused port) is replaced.
    pub fn open_tcp(
        &mut self,
        ts: Timestamp,
        client: SocketAddr,
        server: SocketAddr,
        next_seq: u32,
    ) -> Vec<Observation> {
        let key = FlowKey {
            src: canonical(client),
            dst: canonical(server),
        };
        let mut out = Vec::new();
        self.state.open_tcp(ts, key, next_seq, &mut out);
        out
    }

    /// Processes one frame captured at `ts`. A malformed frame is counted and yields
    /// nothing; it is never an error.
    pub fn process(&mut self, ts: Timestamp, link: LinkType, frame: &[u8]) -> Vec<Observation> {
        let state = &mut self.state;
        state.stats.packets += 1;
        state.stats.bytes += frame.len() as u64;
        let mut out = Vec::new();
        if ts >= state.next_sweep {
            state.sweep(ts, &mut out);
        }
        match self.decoder.decode(ts, link, frame) {
            Ok(pkt) => state.on_packet(ts, pkt, &mut out),
            Err(skip) => {
                *state.stats.skipped.entry(skip.as_str()).or_insert(0) += 1;
            }
        }
        out
    }

    /// Ends the capture: every connection whose first flight has named nothing yet becomes
    /// a nameless `tcp` observation (oldest first; `incomplete` when its flight had begun).
    /// A replay calls it after the last frame, the daemon when it stops.
    pub fn finish(&mut self) -> Vec<Observation> {
        self.state.finish()
    }
}

impl State {
    fn learn(&mut self, client: IpAddr, addr: IpAddr, host: Host) {
        let client = client.to_canonical();
        self.asked.put((client, name_hash(&host)), ());
        self.resolved.put((client, addr.to_canonical()), host);
    }

    fn learn_neighbour(&mut self, ip: IpAddr, mac: Mac) {
        if self.neighbours.learn(ip, mac) == Learned::Router {
            self.stats.event("router_mac_seen");
        }
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

    fn on_packet(&mut self, ts: Timestamp, pkt: Packet<'_>, out: &mut Vec<Observation>) {
        // Addresses as the wire has them (an IPv4-mapped address in a real IPv6 header is
        // not a thing); observations and the answer map canonicalise what they keep. The
        // MACs are only read when a frame teaches the neighbour table something.
        let (src, dst) = (pkt.src, pkt.dst);
        let macs = (pkt.link_src, pkt.link_dst);
        match pkt.transport {
            Transport::Tcp {
                sport,
                dport,
                seq,
                syn,
                ack,
                fin_or_rst,
                ack_number,
                window,
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
                    ack_number,
                    window,
                    payload,
                    src_mac: macs.0,
                    link: match macs {
                        (Some(s), Some(d)) if !pkt.tunnelled => Some(LinkSeen {
                            client: Mac(s),
                            server: Mac(d),
                            vlan: pkt.vlan,
                        }),
                        _ => None,
                    },
                };
                self.on_tcp(ts, key, seg, out);
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
        let (client, server) = (canonical(key.src), canonical(key.dst));
        Observation {
            ts,
            client,
            client_mac: self.neighbours.mac_of(client.ip()),
            server,
            proto,
            unresolved: proto != Proto::Connect
                && self.answer_for(client.ip(), server.ip()).is_none(),
            incomplete: false,
            host,
            asked: None,
            ech_offered: false,
            alpn: Vec::new(),
            qtype: None,
            answers: Vec::new(),
            tcp: None,
        }
    }

    /// A name as a host, counting why there is none: `missing` when the message named
    /// nothing, `bad_hostname` when the name holds what no host name may.
    fn host_of(&mut self, raw: Option<&[u8]>, missing: &'static str) -> Option<Host> {
        match raw.map(Host::parse) {
            Some(Ok(h)) => Some(h),
            Some(Err(_)) => {
                self.stats.event("bad_hostname");
                None
            }
            None => {
                self.stats.event(missing);
                None
            }
        }
    }

    fn learn_from_frame(&mut self, ip: IpAddr, mac: LinkAddr) {
        if let Some(mac) = mac.and_then(Mac::unicast) {
            self.learn_neighbour(ip, mac);
        }
    }

    fn on_udp(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        payload: &[u8],
        src_mac: LinkAddr,
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
        let host = self.host_of(ch.sni.as_deref(), "client_hello_without_sni");
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
            let (client, server) = (o.client.ip(), o.server.ip());
            if let Some(h) = &o.host {
                if !self.device_asked(client, h) {
                    o.asked = self.answer_for(client, server).filter(|a| *a != h).cloned();
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
        macs: (LinkAddr, LinkAddr),
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
            incomplete: false,
            alpn: Vec::new(),
            qtype: Some(qtype),
            answers,
            tcp: None,
        })
    }
}

#[cfg(test)]
mod tests;
