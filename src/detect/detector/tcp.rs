//! The detector's TCP side: every connection followed from its SYN through its client's
//! first flight, on any port, to one observation (a ClientHello, an HTTP request or
//! CONNECT, or a nameless connection), and DNS over TCP in both directions.
//!
//! A first flight is kept until it names something, however slowly it comes: what bounds
//! it is bytes (a cap per flow, a budget across flows), not a deadline. A flight given up
//! on is counted by reason (`tcp_first_flight_given_up_*`: `budget`, `idle`, `byte_cap`,
//! `holes`, `evicted`, `closed`, `capture_end`) and reported as a nameless observation
//! marked `incomplete`, so a sender that outlasts the monitor still leaves its
//! connection's addresses to judge. Under budget pressure the flight that advanced least
//! recently goes first: one still sending (even a byte at a time) is kept, and a flood
//! of stalled flights evicts its own members before a flight that is making progress.

use super::State;
use crate::detect::flow::{Overflow, StreamBuf, STREAM_COST};
use crate::detect::http;
use crate::detect::observation::{FlowKey, LinkSeen, Observation, Proto, TcpSeen};
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
    /// The first flight has begun and is charged to the budget (listed in `flights`).
    held: bool,
    /// A segment was cut at the per-flow cap (counted once per flow).
    clipped: bool,
    first_seen: Timestamp,
    last_seen: Timestamp,
    /// When the flight last grew: what the idle limit measures.
    advanced: Timestamp,
    buf: StreamBuf,
}

impl TcpFlow {
    /// A first flight that has begun and named nothing yet.
    fn pending(&self) -> bool {
        !self.done && self.kind != Kind::Dns
    }
}

impl State {
    /// Every connection whose first flight has named nothing yet, as nameless
    /// observations, oldest first ([`super::Detector::finish`]).
    pub(super) fn finish(&mut self) -> Vec<Observation> {
        let mut open: Vec<(Timestamp, FlowKey, bool)> = Vec::new();
        while let Some((key, f)) = self.tcp.pop_lru() {
            if f.held {
                self.flights.release(&key);
            }
            if f.pending() {
                open.push((f.first_seen, key, f.held));
            }
        }
        open.sort_by_key(|(ts, k, _)| (*ts, k.src, k.dst));
        open.into_iter()
            .map(|(ts, key, held)| {
                if held {
                    self.stats.event("tcp_first_flight_given_up_capture_end");
                    self.incomplete(ts, key)
                } else {
                    self.nameless(ts, key)
                }
            })
            .collect()
    }

    /// Forgets idle TCP streams; runs at most once per second of capture time. A flight
    /// that has begun is given up after `first_flight_idle_micros` without new bytes; a
    /// connection silent since its SYN after `flow_timeout_micros` becomes a nameless
    /// observation.
    pub(super) fn sweep(&mut self, now: Timestamp, out: &mut Vec<Observation>) {
        self.next_sweep = now.plus_micros(1_000_000);
        while let Some(key) = self.flights.oldest() {
            let idle = self
                .tcp
                .peek(&key)
                .map_or(u64::MAX, |f| now.micros_since(f.advanced));
            if idle <= self.cfg.first_flight_idle_micros {
                break;
            }
            self.give_up(key, "tcp_first_flight_given_up_idle", out);
        }
        let dns_idle = self
            .cfg
            .flow_timeout_micros
            .max(self.cfg.dns_tcp_idle_micros);
        // Flights that have begun are timed by the loop above: passed over here (at most
        // once each), so they do not hold back the short timeout of the flows behind them.
        let mut passed = 0;
        while let Some((&key, f)) = self.tcp.peek_lru() {
            if f.held {
                if passed >= self.flights.len() {
                    break;
                }
                passed += 1;
                self.tcp.promote(&key);
                continue;
            }
            let limit = match f.kind {
                Kind::Dns => dns_idle,
                _ => self.cfg.flow_timeout_micros,
            };
            if now.micros_since(f.last_seen) <= limit {
                break;
            }
            if let Some((key, f)) = self.tcp.pop_lru() {
                if f.pending() {
                    self.stats.event("tcp_silent_timed_out");
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

    /// The observation of a connection whose first flight was given up on.
    fn incomplete(&mut self, ts: Timestamp, key: FlowKey) -> Observation {
        let mut o = self.nameless(ts, key);
        o.incomplete = true;
        o
    }

    /// Removes a flow, and its charge when its flight was held.
    fn remove_flow(&mut self, key: &FlowKey) -> Option<TcpFlow> {
        let f = self.tcp.pop(key)?;
        if f.held {
            self.flights.release(key);
        }
        Some(f)
    }

    /// Gives up the first flight of `key`, counting `why`: an `incomplete` observation.
    fn give_up(&mut self, key: FlowKey, why: &'static str, out: &mut Vec<Observation>) {
        match self.remove_flow(&key) {
            Some(f) => {
                self.stats.event(why);
                out.push(self.incomplete(f.first_seen, key));
            }
            // Not in the table: only the budget knew it (never the case; kept honest).
            None => {
                self.flights.release(&key);
            }
        }
    }

    /// Ends a flow that named nothing: the observation a silent connection or a begun
    /// flight gets.
    fn end_unnamed(&mut self, key: FlowKey, why: &'static str, out: &mut Vec<Observation>) {
        match self.tcp.peek(&key) {
            Some(f) if f.held => self.give_up(key, why, out),
            Some(f) if f.pending() => {
                if let Some(f) = self.remove_flow(&key) {
                    out.push(self.nameless(f.first_seen, key));
                }
            }
            _ => {}
        }
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
                    self.end_unnamed(k, "tcp_first_flight_given_up_closed", out);
                }
                self.remove_flow(&key);
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
        self.feed_tcp(ts, key, &seg, out);
    }

    /// A connection the shell knows opened (its SYN not given): as a SYN would start it.
    pub(super) fn open_tcp(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        next_seq: u32,
        out: &mut Vec<Observation>,
    ) {
        let dns_port = key.src.port() == 53 || key.dst.port() == 53;
        let kind = if dns_port { Kind::Dns } else { Kind::Opened };
        self.start_flow(ts, key, kind, next_seq, out);
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
            held: false,
            clipped: false,
            first_seen: ts,
            last_seen: ts,
            advanced: ts,
            buf: StreamBuf::new(base),
        };
        // A repeated SYN (retransmission) restarts the same flow without reporting.
        if let Some((old_key, old)) = self.tcp.push(key, flow) {
            if old.held {
                self.flights.release(&old_key);
            }
            if old_key != key {
                self.stats.event("tcp_flow_evicted");
                if old.held {
                    self.stats.event("tcp_first_flight_given_up_evicted");
                    out.push(self.incomplete(old.first_seen, old_key));
                } else if old.pending() {
                    out.push(self.nameless(old.first_seen, old_key));
                }
            }
        }
    }

    fn feed_tcp(
        &mut self,
        ts: Timestamp,
        key: FlowKey,
        seg: &Segment<'_>,
        out: &mut Vec<Observation>,
    ) {
        let (seq, payload) = (seg.seq, seg.payload);
        let cfg = &self.cfg;
        let Some(flow) = self.tcp.get_mut(&key) else {
            return;
        };
        if flow.done {
            return;
        }
        flow.last_seen = ts;
        let placed = match flow.kind {
            Kind::Dns => flow
                .buf
                .insert(seq, payload, DNS_LIMIT + 1500)
                .map(|n| (n, false)),
            Kind::Http => {
                flow.buf
                    .insert_upto(seq, payload, cfg.max_http_head + cfg.max_first_flight)
            }
            Kind::Opened | Kind::Tls => flow.buf.insert_upto(seq, payload, cfg.max_first_flight),
        };
        let grew = match placed {
            Ok((new, cut)) => {
                if cut && !flow.clipped {
                    flow.clipped = true;
                    self.stats.event("tcp_first_flight_clipped");
                }
                new > 0
            }
            Err(o) => {
                if flow.kind == Kind::Dns {
                    self.tcp.pop(&key);
                    self.stats.event(overflow_name(o));
                } else {
                    self.give_up(key, "tcp_first_flight_given_up_holes", out);
                }
                return;
            }
        };
        if grew {
            flow.advanced = ts;
        }
        let seen = (flow.kind != Kind::Dns && seg.ack).then(|| TcpSeen {
            client_next: later(seq.wrapping_add(payload.len() as u32), flow.buf.end()),
            server_next: seg.ack_number,
            window: seg.window,
            link: seg.link,
        });
        let first = out.len();
        self.read_flight(ts, key, out);
        // What this segment completed carries its numbers: a sensor resets with them.
        for o in &mut out[first..] {
            o.tcp = seen;
        }
        self.settle(key, grew, out);
    }

    /// Reads what the flow's contiguous bytes say, as far as they go.
    fn read_flight(&mut self, ts: Timestamp, key: FlowKey, out: &mut Vec<Observation>) {
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
                        flow.finish();
                        self.stats.event("tcp_other_protocol");
                        Step::Nameless(flow.first_seen)
                    }
                }
                Kind::Tls => {
                    let data = flow.buf.contiguous();
                    match tls::scan_records(data, self.cfg.max_first_flight) {
                        Scan::NeedMore if data.len() < self.cfg.max_first_flight => return,
                        Scan::NeedMore | Scan::TooLarge => Step::GiveUp,
                        Scan::NotClientHello => {
                            flow.finish();
                            self.stats.event("tcp_not_client_hello");
                            Step::Nameless(flow.first_seen)
                        }
                        Scan::Complete(m) => {
                            let msg = m.into_owned();
                            let tunnelled = flow.tunnelled;
                            flow.finish();
                            Step::ClientHello(msg, tunnelled)
                        }
                    }
                }
                Kind::Http => {
                    match http::scan_request(flow.buf.contiguous(), self.cfg.max_http_head) {
                        http::Scan::NeedMore => return,
                        http::Scan::NotHttp => {
                            flow.finish();
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
                                flow.finish();
                            }
                            Step::Http(req)
                        }
                    }
                }
            };
            match step {
                Step::Continue => continue,
                Step::GiveUp => {
                    self.give_up(key, "tcp_first_flight_given_up_byte_cap", out);
                    return;
                }
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

    /// Charges the flow's flight to the budget after a segment (or releases it once the
    /// flight named something), then gives up the least recently advanced flights while
    /// the budget is exceeded.
    fn settle(&mut self, key: FlowKey, grew: bool, out: &mut Vec<Observation>) {
        let Some(flow) = self.tcp.peek_mut(&key) else {
            return;
        };
        let begun = flow.pending() && (flow.kind != Kind::Opened || flow.buf.buffered() > 0);
        if !begun {
            if flow.held {
                flow.held = false;
                self.flights.release(&key);
            }
            return;
        }
        let charged = !flow.held;
        flow.held = true;
        self.flights
            .charge(key, STREAM_COST + flow.buf.buffered(), grew || charged);
        while self.flights.over() {
            let Some(oldest) = self.flights.oldest() else {
                break;
            };
            self.give_up(oldest, "tcp_first_flight_given_up_budget", out);
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

impl TcpFlow {
    /// The flight said what it is: later segments are ignored and its bytes freed.
    fn finish(&mut self) {
        self.done = true;
        self.buf = StreamBuf::default();
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
    pub(super) ack_number: u32,
    pub(super) window: u16,
    pub(super) payload: &'a [u8],
    pub(super) src_mac: super::LinkAddr,
    /// Both Ethernet addresses and the VLAN, when the frame had them untunnelled.
    pub(super) link: Option<LinkSeen>,
}

/// What one pass over a flow's buffer decided.
enum Step {
    /// The flow changed kind: look again.
    Continue,
    /// The flight names nothing; `first_seen` of the flow.
    Nameless(Timestamp),
    /// The flight reached the byte cap (or announced a hello beyond it) unnamed.
    GiveUp,
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

/// The later of two sequence numbers, in serial number arithmetic (RFC 1982).
fn later(a: u32, b: u32) -> u32 {
    if (a.wrapping_sub(b) as i32) > 0 {
        a
    } else {
        b
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
mod tests;

#[cfg(test)]
mod seen_tests;
