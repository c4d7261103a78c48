//! The detector's TCP side: every connection followed from its SYN through its client's
//! first flight, on any port, to one observation (a ClientHello, an HTTP request or
//! CONNECT, or a nameless connection), and DNS over TCP in both directions.

use super::State;
use crate::detect::flow::{Overflow, StreamBuf};
use crate::detect::http;
use crate::detect::observation::{FlowKey, Observation, Proto};
use crate::detect::time::Timestamp;
use crate::detect::tls::{self, Scan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
pub(super) struct TcpFlow {
    kind: Kind,
    /// The flow produced its observation; later segments are ignored.
    done: bool,
    /// The flight after a CONNECT head: reported as tunnelled.
    tunnelled: bool,
    first_seen: Timestamp,
    last_seen: Timestamp,
    buf: StreamBuf,
}

impl State {
    /// Every connection whose first flight has named nothing yet, as nameless
    /// observations, oldest first ([`super::Detector::finish`]).
    pub(super) fn finish(&mut self) -> Vec<Observation> {
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
    pub(super) fn sweep(&mut self, now: Timestamp, out: &mut Vec<Observation>) {
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
    pub(super) fn nameless(&mut self, ts: Timestamp, key: FlowKey) -> Observation {
        self.stats.event("tcp_nameless");
        self.observation(ts, key, Proto::Tcp, None)
    }

    pub(super) fn on_tcp(
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
        let host = self.host_of(req.host.as_deref(), "http_without_host");
        let proto = if req.connect {
            Proto::Connect
        } else {
            Proto::Http
        };
        Some(self.observation(ts, key, proto, host))
    }
}

/// The largest DNS-over-TCP message plus its length prefix.
const DNS_LIMIT: usize = 2 + 65_535;

/// One TCP segment's fields the detector reads.
pub(super) struct Segment<'a> {
    pub(super) seq: u32,
    pub(super) syn: bool,
    pub(super) ack: bool,
    pub(super) fin_or_rst: bool,
    pub(super) payload: &'a [u8],
    pub(super) src_mac: super::LinkAddr,
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
