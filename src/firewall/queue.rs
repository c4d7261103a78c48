//! NFQUEUE verdicts: the first packets of each new forwarded connection are held by the
//! kernel until this thread has read them. Each goes through a detector of its own (the
//! same first-flight reassembly as capture), and when a ClientHello, a QUIC Initial or an
//! HTTP request names a host the rules block, the packet that completed it is marked: the
//! table's `forward_filter` chain then resets the connection (or refuses the QUIC flow)
//! from the kernel, to the client at once and to the server when it answers. Every other
//! packet is passed at once; a judged connection is marked allowed and not queued again.
//!
//! Fail-open: the queue rule has `bypass` (nobody bound: packets pass), the queue is bound
//! with `fail-open` and a small length (a stuck thread: packets beyond it pass), and only
//! the first few packets of a connection are ever queued.

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use super::ruleset::{MARK_ALLOW, MARK_DENY, MARK_PASS, MARK_QUIC_DENY};
use super::FwOp;
use crate::detect::table::{map, Map};
use crate::detect::{Detector, DetectorConfig, Host, LinkType, Mac, Observation, Proto, Timestamp};
use crate::devices::DeviceMap;
use crate::error::{Error, Result};
use crate::incident::{judge, Action};
use crate::metrics::Metrics;
use crate::policy::unblock::{Asker, Unblocks};
use crate::policy::{Live, Mode, Verdict};

/// Where a blocked connection is reported (the detection thread records the incident).
pub type Report = Box<dyn Fn(Observation, Action) + Send>;

/// What the thread needs.
pub struct QueueJudge {
    /// The queue number.
    pub num: u16,
    /// Packets the kernel holds at most before it lets them pass unjudged.
    pub max_len: u32,
    /// The verdict re-enters the hook (native nft queue: the marks are read by the same
    /// chain) rather than going on to the next chain (iptables' queue in `mangle`).
    pub repeat: bool,
    /// The mode in force.
    pub mode: Mode,
    /// The rules in force.
    pub live: Arc<Live>,
    /// Who is behind an address.
    pub devices: Arc<ArcSwap<DeviceMap>>,
    /// DNS answers the resolver gave (client, address, name): a connection they explain is
    /// not `unresolved`, and an ECH connection's real name is known.
    pub answers: Receiver<(IpAddr, IpAddr, Host)>,
    /// Denied tuples for the firewall's sets (retries die at once).
    pub firewall: SyncSender<FwOp>,
    /// Blocks, for the incident store.
    pub report: Report,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The unblocks in force: a connection they cover is let through (and flagged by the
    /// capture path, when there is one).
    pub unblocks: Arc<ArcSwap<Unblocks>>,
}

fn fw_err(num: u16, e: impl std::fmt::Display) -> Error {
    Error::Firewall {
        what: format!("nfqueue {num}"),
        message: e.to_string(),
    }
}

/// A bound queue.
pub struct Bound {
    /// The queue, for [`QueueJudge::run`].
    pub queue: nfq::Queue,
    /// The kernel gives each packet its conntrack id (`CONFIG_NETFILTER_NETLINK_GLUE_CT`),
    /// which tells a new connection on a reused port for certain; without it the sequence
    /// numbers do.
    pub conntrack: bool,
}

/// Binds the queue; the caller runs [`QueueJudge::run`] on a thread of its own.
pub fn bind(num: u16, max_len: u32) -> Result<Bound> {
    let mut q = nfq::Queue::open().map_err(|e| fw_err(num, e))?;
    q.bind(num).map_err(|e| fw_err(num, e))?;
    q.set_fail_open(num, true).map_err(|e| fw_err(num, e))?;
    q.set_queue_max_len(num, max_len)
        .map_err(|e| fw_err(num, e))?;
    q.set_copy_range(num, 0xffff).map_err(|e| fw_err(num, e))?;
    // Take GSO/GRO packets whole: a ClientHello the sender wrote at once (two segments on
    // the wire, one packet after GRO on the LAN side or TSO on a veth) is one verdict.
    q.set_recv_gso(num, true).map_err(|e| fw_err(num, e))?;
    // The conntrack id tells a new connection from an old one on a reused port (SYNs are
    // not queued). Kernels without the netlink glue refuse it; sequence numbers do then.
    let conntrack = q.set_recv_conntrack(num, true).is_ok();
    Ok(Bound {
        queue: q,
        conntrack,
    })
}

/// What the queue remembers of a connection it was given packets of: its conntrack id, if
/// the kernel gives them, and the sequence number after its latest segment.
#[derive(Debug, Clone, Copy)]
struct Conn {
    ct: Option<u32>,
    next: u32,
}

/// Sequence numbers within this distance of where a connection's stream stands belong to
/// it; a new connection on the same port starts anywhere in 2^32 (RFC 6528).
const SAME_CONNECTION_WINDOW: u32 = 1 << 20;

/// What the queue reads of a packet's headers.
#[derive(Debug, Clone, Copy)]
struct Ends {
    src: SocketAddr,
    dst: SocketAddr,
    udp: bool,
    /// TCP: the sequence number, whether it is a SYN, and the payload's length.
    seq: u32,
    syn: bool,
    len: u32,
}

/// The packet's (source, destination) sockets, protocol and TCP sequence number, read
/// from its headers; `None` for what is not TCP or UDP.
fn endpoints(ip: &[u8]) -> Option<Ends> {
    let p = etherparse::SlicedPacket::from_ip(ip).ok()?;
    let (src, dst): (IpAddr, IpAddr) = match p.net? {
        etherparse::NetSlice::Ipv4(v4) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
        ),
        etherparse::NetSlice::Ipv6(v6) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        ),
        _ => return None,
    };
    match p.transport? {
        etherparse::TransportSlice::Tcp(t) => Some(Ends {
            src: SocketAddr::new(src, t.source_port()),
            dst: SocketAddr::new(dst, t.destination_port()),
            udp: false,
            seq: t.sequence_number(),
            syn: t.syn(),
            len: u32::try_from(t.payload().len()).unwrap_or(0),
        }),
        etherparse::TransportSlice::Udp(u) => Some(Ends {
            src: SocketAddr::new(src, u.source_port()),
            dst: SocketAddr::new(dst, u.destination_port()),
            udp: true,
            seq: 0,
            syn: false,
            len: 0,
        }),
        _ => None,
    }
}

fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_micros(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl QueueJudge {
    /// Reads and judges packets until the queue fails. Never returns while the queue
    /// works; the daemon removes the rules that feed it on stop and does not wait.
    pub fn run(self, mut queue: nfq::Queue) {
        // Packets without payload are not queued (the table marks them): a connection is
        // joined at its first data segment, as capture joins one it saw no SYN of.
        let mut detector = Detector::new(DetectorConfig::default());
        let mut conns: Map<(SocketAddr, SocketAddr), Conn> = map(65_536);
        let verdict = if self.repeat {
            nfq::Verdict::Repeat
        } else {
            nfq::Verdict::Accept
        };
        let mut errors = 0u32;
        loop {
            let mut msg = match queue.recv() {
                Ok(m) => m,
                Err(e) => {
                    self.metrics
                        .queue_verdicts
                        .with_label_values(&["error"])
                        .inc();
                    errors += 1;
                    if errors % 1000 == 1 {
                        tracing::error!(queue = self.num, error = %e, "nfqueue read failed; packets pass unjudged while it does");
                    }
                    if errors > 100_000 {
                        return;
                    }
                    continue;
                }
            };
            while let Ok((client, addr, host)) = self.answers.try_recv() {
                detector.learn(client, addr, host);
            }
            let mark = self.judge_packet(&mut detector, &mut conns, &msg);
            tracing::trace!(
                queue = self.num,
                mark = format_args!("{mark:#x}"),
                packet = ?endpoints(msg.get_payload()),
                len = msg.get_payload().len(),
                "nfqueue verdict"
            );
            msg.set_nfmark((msg.get_nfmark() & !super::ruleset::MARKS) | mark);
            msg.set_verdict(verdict);
            let result = match mark {
                MARK_DENY => "deny",
                MARK_QUIC_DENY => "quic_deny",
                _ => "accept",
            };
            self.metrics
                .queue_verdicts
                .with_label_values(&[result])
                .inc();
            if let Err(e) = queue.verdict(msg) {
                self.metrics
                    .queue_verdicts
                    .with_label_values(&["error"])
                    .inc();
                tracing::warn!(queue = self.num, error = %e, "nfqueue verdict failed");
            }
        }
    }

    /// The mark for one queued packet: deny, allow (judged, not queued again) or pass
    /// (not judged yet).
    fn judge_packet(
        &self,
        detector: &mut Detector,
        conns: &mut Map<(SocketAddr, SocketAddr), Conn>,
        msg: &nfq::Message,
    ) -> u32 {
        let payload = msg.get_payload();
        let ends = endpoints(payload);
        let mac = msg
            .get_hw_addr()
            .and_then(|a| <[u8; 6]>::try_from(a.get(..6)?).ok())
            .map(Mac);
        let ts = now();
        let mut seen = Vec::new();
        // The first packet the queue is given of a TCP connection (its SYN is not queued):
        // the detector starts the stream here, replacing a flow of a reused port.
        if let Some(e) = ends.filter(|e| !e.udp && !e.syn) {
            let key = (e.src, e.dst);
            let now_conn = Conn {
                ct: msg.get_conntrack().map(nfq::Conntrack::get_id),
                next: e.seq.wrapping_add(e.len),
            };
            let new = match conns.get(&key) {
                None => true,
                Some(old) => match (old.ct, now_conn.ct) {
                    (Some(a), Some(b)) => a != b,
                    // A new connection's sequence numbers start at random: one that lands
                    // within a window of the old connection's is the same connection (a
                    // later segment or a retransmission).
                    _ => {
                        old.next
                            .wrapping_sub(e.seq)
                            .min(e.seq.wrapping_sub(old.next))
                            > SAME_CONNECTION_WINDOW
                    }
                },
            };
            if new {
                seen.extend(detector.open_tcp(ts, e.src, e.dst, e.seq));
            }
            conns.put(key, now_conn);
        }
        seen.extend(detector.process(ts, LinkType::RawIp, payload));
        let mut mark = MARK_PASS;
        for mut obs in seen {
            if obs.client_mac.is_none() {
                obs.client_mac = mac;
            }
            let this = ends.is_some_and(|e| {
                e.src.ip().to_canonical() == obs.client.ip().to_canonical()
                    && e.src.port() == obs.client.port()
                    && e.dst.ip().to_canonical() == obs.server.ip().to_canonical()
                    && e.dst.port() == obs.server.port()
            });
            let who = self
                .devices
                .load()
                .identify_with(obs.client.ip(), obs.client_mac);
            let mut judged = {
                let rules = self.live.current();
                judge(&rules, &obs, &who.client(), self.mode)
            };
            if judged.decision.verdict == Verdict::Block && self.mode == Mode::Enforce {
                let table = self.unblocks.load();
                if !table.is_empty() {
                    let asker = Asker {
                        ip: who.ip,
                        mac: who.mac,
                        names: [who.hostname.as_deref(), who.label.as_deref()],
                    };
                    let host = judged.host.as_ref().map(|h| h.as_str());
                    judged.decision =
                        table.apply(judged.decision, self.mode, &asker, host, now().as_micros());
                }
            }
            if judged.decision.verdict == Verdict::Block && self.mode == Mode::Enforce {
                let quic = obs.proto == Proto::Quic;
                let op = if quic {
                    FwOp::DenyQuic(obs.client.ip(), obs.server.ip(), obs.server.port())
                } else {
                    FwOp::DenyTcp(obs.client.ip(), obs.server.ip(), obs.server.port())
                };
                if self.firewall.try_send(op).is_err() {
                    self.metrics
                        .firewall_changes
                        .with_label_values(&["dropped"])
                        .inc();
                }
                if this {
                    mark = if quic { MARK_QUIC_DENY } else { MARK_DENY };
                }
                (self.report)(
                    obs,
                    if quic {
                        Action::QuicDrop
                    } else {
                        Action::Reset
                    },
                );
            } else if this && mark == MARK_PASS && obs.host.is_some() && !obs.incomplete {
                // Named and allowed: never queued again. A connection that named nothing
                // stays unmarked, so the sets the capture path fills still reach it.
                mark = MARK_ALLOW;
            }
        }
        mark
    }
}
