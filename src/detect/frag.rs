//! IP fragment reassembly: a bounded, pure reassembler for IPv4 (MF flag and offset) and
//! IPv6 (the Fragment extension header), so a ClientHello or DNS query split into IP
//! fragments is read like any other.
//!
//! What it keeps is what the receiving host would keep, because an attacker who knows
//! the monitor resolves overlaps differently from the server can show each a different
//! name. [`FragPolicy::Linux`] follows `inet_frag_queue_insert` and `ip_frag_queue` in
//! Linux 5.x and later (and 4.19 stable): a fragment wholly inside a run of data already
//! held is dropped as a duplicate, any other overlap discards the whole datagram (RFC 5722
//! for IPv6, and IPv4 since 4.19), a middle IPv4 fragment is cut to a multiple of 8 bytes,
//! and an empty fragment or one that disagrees about where the datagram ends discards it.
//!
//! Every limit is in [`FragConfig`]; time is capture time, handed in. Memory follows the
//! bytes that arrived, never what an offset or length field claims.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lru::LruCache;
use rustc_hash::FxBuildHasher;

use super::detector::map;
use super::time::Timestamp;

/// How overlapping fragments of an IPv4 datagram are resolved. IPv6 always uses
/// [`FragPolicy::Linux`]: RFC 5722 leaves receivers no choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FragPolicy {
    /// Linux (4.19 and later): a fragment wholly inside a run of held data is a duplicate
    /// and ignored (its bytes are not compared, as Linux does not compare them); any other
    /// overlap discards the datagram.
    #[default]
    Linux,
    /// Earlier data wins (BSD, Windows): a later fragment only fills gaps.
    First,
    /// Later data wins: a later fragment overwrites what it overlaps.
    Last,
}

/// Limits of the reassembler's memory and patience.
#[derive(Debug, Clone)]
pub struct FragConfig {
    /// Datagrams being reassembled at once; the least recently used is evicted.
    pub max_datagrams: usize,
    /// Fragments stored for one datagram (duplicates are not counted).
    pub max_fragments: usize,
    /// Largest reassembled payload (after the IP header); more discards the datagram.
    pub max_datagram_bytes: usize,
    /// Memory for held fragments across all datagrams (data, headers and a small fixed
    /// cost per stored piece); least recently used datagrams are evicted.
    pub max_total_bytes: usize,
    /// Capture time from a datagram's first fragment after which it is abandoned (Linux
    /// `ipfrag_time`).
    pub timeout_micros: u64,
    /// How IPv4 overlaps are resolved.
    pub policy: FragPolicy,
}

impl Default for FragConfig {
    fn default() -> Self {
        FragConfig {
            max_datagrams: 4_096,
            max_fragments: 64,
            max_datagram_bytes: 65_535,
            max_total_bytes: 8 << 20,
            timeout_micros: 30_000_000,
            policy: FragPolicy::Linux,
        }
    }
}

/// Something the reassembler did, counted under a stable snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragEvent {
    /// A fragment was stored; its datagram is not complete yet.
    Held,
    /// A fragment completed its datagram.
    Reassembled,
    /// A fragment brought nothing new (a retransmission, or a mirror port's second copy).
    Duplicate,
    /// A fragment overlapped held data with other bytes and the policy chose one copy.
    OverlapResolved,
    /// A datagram was discarded because fragments overlapped (Linux, IPv6).
    OverlapDiscarded,
    /// A datagram was abandoned, incomplete, after the timeout.
    TimedOut,
    /// A datagram was dropped to make room for newer ones.
    Evicted,
    /// A datagram would exceed the size limit.
    TooLarge,
    /// A datagram came in more fragments than the limit.
    TooMany,
    /// A fragment whose headers do not add up, cut short by the capture, or inconsistent
    /// with its datagram's other fragments.
    Malformed,
}

impl FragEvent {
    /// Every event, in counter order.
    pub const ALL: [FragEvent; 10] = [
        FragEvent::Held,
        FragEvent::Reassembled,
        FragEvent::Duplicate,
        FragEvent::OverlapResolved,
        FragEvent::OverlapDiscarded,
        FragEvent::TimedOut,
        FragEvent::Evicted,
        FragEvent::TooLarge,
        FragEvent::TooMany,
        FragEvent::Malformed,
    ];

    /// snake_case name for summaries and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FragEvent::Held => "frag_held",
            FragEvent::Reassembled => "frag_reassembled",
            FragEvent::Duplicate => "frag_duplicate",
            FragEvent::OverlapResolved => "frag_overlap_resolved",
            FragEvent::OverlapDiscarded => "frag_overlap_discarded",
            FragEvent::TimedOut => "frag_timed_out",
            FragEvent::Evicted => "frag_evicted",
            FragEvent::TooLarge => "frag_too_large",
            FragEvent::TooMany => "frag_too_many",
            FragEvent::Malformed => "frag_malformed",
        }
    }
}

/// What became of one fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reassembly {
    /// Stored; the datagram is not complete yet.
    Held,
    /// The fragment completed its datagram: the whole IP datagram, header first, as if it
    /// had never been fragmented.
    Complete(Vec<u8>),
    /// Not stored, for the reason given (the datagram may have been discarded with it).
    Dropped(FragEvent),
}

/// What one stored piece costs besides its data (its `Vec` and the allocator's share),
/// counted against the memory budget so that many tiny fragments cannot hold far more
/// than `max_total_bytes`.
const PIECE_COST: usize = 64;

/// The bounded reassembler. Feed it IP packets that are fragments, in capture order.
pub struct Reassembler {
    cfg: FragConfig,
    table: LruCache<Key, Datagram, FxBuildHasher>,
    /// Memory held across all datagrams: headers, data and [`PIECE_COST`] per piece.
    bytes: usize,
    counts: [u64; FragEvent::ALL.len()],
}

/// Which datagram a fragment belongs to: RFC 791 adds the protocol, RFC 8200 does not
/// (IPv6 keys have protocol 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

/// A fragment's fields, borrowed from the packet.
struct Frag<'a> {
    key: Key,
    /// Byte offset of `data` in the datagram's payload.
    offset: usize,
    more: bool,
    /// The fragment's data: the IPv4 payload, or what follows the IPv6 Fragment header.
    data: &'a [u8],
    /// What the reassembled datagram starts with if this is the first fragment: the IPv4
    /// header, or the IPv6 header and the extension headers before the Fragment header.
    head: &'a [u8],
    /// IPv6: where in `head` the Next Header naming the Fragment header is, and the
    /// Fragment header's own Next Header, which takes its place.
    v6_next: Option<(usize, u8)>,
}

#[derive(Debug)]
struct Piece {
    start: usize,
    data: Vec<u8>,
}

impl Piece {
    fn end(&self) -> usize {
        self.start + self.data.len()
    }
}

#[derive(Debug)]
struct Datagram {
    first_seen: Timestamp,
    /// From the first fragment (offset 0); empty until it arrives.
    head: Vec<u8>,
    v6_next: Option<(usize, u8)>,
    /// Held data, sorted and disjoint.
    pieces: Vec<Piece>,
    /// Linux's fragment runs (contiguous data that arrived in order), sorted and
    /// disjoint: what its duplicate test compares against.
    runs: Vec<(usize, usize)>,
    /// The payload length, once the last fragment has said it.
    total: Option<usize>,
    /// The furthest end seen (Linux's `q.len` before the last fragment).
    max_end: usize,
    fragments: usize,
    /// Bytes of `pieces`.
    held: usize,
}

enum Insert {
    /// Stored; `resolved` when it overlapped other bytes and the policy chose.
    Stored {
        resolved: bool,
    },
    Duplicate,
    Discard(FragEvent),
}

impl Reassembler {
    /// An empty reassembler with the given limits.
    pub fn new(cfg: FragConfig) -> Reassembler {
        Reassembler {
            table: map(cfg.max_datagrams),
            bytes: 0,
            counts: [0; FragEvent::ALL.len()],
            cfg,
        }
    }

    /// Datagrams being reassembled right now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no datagram is being reassembled.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Memory held right now, as counted against `max_total_bytes`: header and data
    /// bytes plus a fixed cost per stored piece.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// How often each event happened, in [`FragEvent::ALL`] order (zeros included).
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        FragEvent::ALL
            .iter()
            .zip(self.counts.iter())
            .map(|(e, n)| (e.as_str(), *n))
    }

    /// The count of one event.
    pub fn count(&self, event: FragEvent) -> u64 {
        self.counts[event as usize]
    }

    fn note(&mut self, event: FragEvent) {
        self.counts[event as usize] += 1;
    }

    fn dropped(&mut self, event: FragEvent) -> Reassembly {
        self.note(event);
        Reassembly::Dropped(event)
    }

    /// Discards a datagram and everything held for it.
    fn discard(&mut self, key: &Key, event: FragEvent) -> Reassembly {
        if let Some(dg) = self.table.pop(key) {
            self.bytes -= dg.bytes();
        }
        self.dropped(event)
    }

    /// Abandons datagrams whose first fragment is older than the timeout. Cheap when
    /// nothing is due; the decoder calls it about once a second of capture time.
    pub fn expire(&mut self, now: Timestamp) {
        while let Some((_, dg)) = self.table.peek_lru() {
            if now.micros_since(dg.first_seen) <= self.cfg.timeout_micros {
                break;
            }
            if let Some((_, dg)) = self.table.pop_lru() {
                self.bytes -= dg.bytes();
                self.note(FragEvent::TimedOut);
            }
        }
    }

    /// Takes one IP packet (IPv4 or IPv6, starting at its IP header) that is a fragment.
    pub fn push(&mut self, now: Timestamp, packet: &[u8]) -> Reassembly {
        self.expire(now);
        let parsed = match packet.first().map(|b| b >> 4) {
            Some(4) => parse_v4(packet),
            Some(6) => parse_v6(packet),
            _ => None,
        };
        let Some(mut f) = parsed else {
            return self.dropped(FragEvent::Malformed);
        };
        let v6 = f.v6_next.is_some();
        if f.offset == 0 && !f.more {
            // An IPv6 "atomic fragment" (RFC 6946): a datagram on its own, never queued.
            return match assemble(f.head, f.v6_next, f.data.len(), [f.data]) {
                Some(d) => {
                    self.note(FragEvent::Reassembled);
                    Reassembly::Complete(d)
                }
                None => self.dropped(FragEvent::TooLarge),
            };
        }
        let mut end = f.offset + f.data.len();
        if f.more && end % 8 != 0 {
            if v6 {
                // RFC 8200: a parameter problem; the fragment is dropped.
                return self.dropped(FragEvent::Malformed);
            }
            // Linux cuts a middle IPv4 fragment to whole 8-byte blocks. The offset is a
            // multiple of 8, so this never goes below it.
            end &= !7;
            f.data = &f.data[..end - f.offset];
        }
        let key = f.key;
        if end > self.cfg.max_datagram_bytes.min(65_535) {
            return self.discard(&key, FragEvent::TooLarge);
        }
        let timed_out = self
            .table
            .peek(&key)
            .is_some_and(|dg| now.micros_since(dg.first_seen) > self.cfg.timeout_micros);
        if timed_out {
            self.discard(&key, FragEvent::TimedOut);
        }
        if !self.table.contains(&key) {
            if let Some((old, dg)) = self.table.push(key, Datagram::new(now)) {
                if old != key {
                    self.bytes -= dg.bytes();
                    self.note(FragEvent::Evicted);
                }
            }
        }
        let policy = if v6 {
            FragPolicy::Linux
        } else {
            self.cfg.policy
        };
        let max_fragments = self.cfg.max_fragments;
        let Some(dg) = self.table.get_mut(&key) else {
            return self.dropped(FragEvent::Malformed);
        };
        if dg.fragments >= max_fragments {
            return self.discard(&key, FragEvent::TooMany);
        }
        let before = dg.bytes();
        let resolved = match dg.insert(policy, &f, end) {
            Insert::Stored { resolved } => resolved,
            Insert::Duplicate => return self.dropped(FragEvent::Duplicate),
            Insert::Discard(e) => return self.discard(&key, e),
        };
        let complete = dg.is_complete();
        self.bytes = self.bytes - before + dg.bytes();
        if resolved {
            self.note(FragEvent::OverlapResolved);
        }
        if complete {
            let Some(dg) = self.table.pop(&key) else {
                return self.dropped(FragEvent::Malformed);
            };
            self.bytes -= dg.bytes();
            return match dg.assemble() {
                Some(d) => {
                    self.note(FragEvent::Reassembled);
                    Reassembly::Complete(d)
                }
                None => self.dropped(FragEvent::TooLarge),
            };
        }
        // Over the memory budget: older datagrams go first (this one was just promoted to
        // most recently used), then this one if it alone is too much.
        while self.bytes > self.cfg.max_total_bytes {
            let victim = match self.table.peek_lru() {
                Some((k, _)) if *k != key => *k,
                _ => return self.discard(&key, FragEvent::TooLarge),
            };
            self.discard(&victim, FragEvent::Evicted);
        }
        self.note(FragEvent::Held);
        Reassembly::Held
    }
}

impl Datagram {
    fn new(now: Timestamp) -> Datagram {
        Datagram {
            first_seen: now,
            head: Vec::new(),
            v6_next: None,
            pieces: Vec::new(),
            runs: Vec::new(),
            total: None,
            max_end: 0,
            fragments: 0,
            held: 0,
        }
    }

    fn bytes(&self) -> usize {
        self.head.len() + self.held + self.pieces.len() * PIECE_COST
    }

    fn is_complete(&self) -> bool {
        !self.head.is_empty() && self.total == Some(self.held)
    }

    /// Places one fragment covering `f.offset..end`, in the order of Linux's
    /// `ip_frag_queue`: where the datagram ends first, then overlaps.
    fn insert(&mut self, policy: FragPolicy, f: &Frag<'_>, end: usize) -> Insert {
        let offset = f.offset;
        if end == offset {
            return Insert::Discard(FragEvent::Malformed);
        }
        if !f.more {
            // Data beyond the end, or a second last fragment that disagrees.
            if end < self.max_end || self.total.is_some_and(|t| t != end) {
                return Insert::Discard(FragEvent::Malformed);
            }
            self.total = Some(end);
        } else if self.total.is_some_and(|t| end > t) {
            return Insert::Discard(FragEvent::Malformed);
        }
        self.max_end = self.max_end.max(end);
        let resolved = match policy {
            FragPolicy::Linux => match self.linux_run(offset, end) {
                Run::Duplicate => return Insert::Duplicate,
                Run::Overlap => return Insert::Discard(FragEvent::OverlapDiscarded),
                Run::Placed => {
                    let at = self.pieces.partition_point(|p| p.start < offset);
                    self.pieces.insert(
                        at,
                        Piece {
                            start: offset,
                            data: f.data.to_vec(),
                        },
                    );
                    false
                }
            },
            FragPolicy::First | FragPolicy::Last => {
                match self.overlay(policy == FragPolicy::Last, offset, f.data) {
                    Some(resolved) => resolved,
                    None => return Insert::Duplicate,
                }
            }
        };
        self.held = self.pieces.iter().map(|p| p.data.len()).sum();
        self.fragments += 1;
        if offset == 0 && self.head.is_empty() {
            self.head = f.head.to_vec();
            self.v6_next = f.v6_next;
        }
        Insert::Stored { resolved }
    }

    /// Linux's test (`inet_frag_queue_insert`): data that extends the last run is
    /// appended to it; otherwise a fragment inside one run is a duplicate, one touching
    /// a run any other way is an overlap, and one in a gap starts a run of its own.
    fn linux_run(&mut self, offset: usize, end: usize) -> Run {
        match self.runs.last_mut() {
            None => self.runs.push((offset, end)),
            Some(last) if last.1 < end => {
                if offset < last.1 {
                    return Run::Overlap;
                }
                if offset == last.1 {
                    last.1 = end;
                } else {
                    self.runs.push((offset, end));
                }
            }
            Some(_) => {
                let i = self.runs.partition_point(|r| r.1 <= offset);
                match self.runs.get(i) {
                    Some(&(s, e)) if s < end => {
                        return if offset >= s && end <= e {
                            Run::Duplicate
                        } else {
                            Run::Overlap
                        };
                    }
                    _ => self.runs.insert(i, (offset, end)),
                }
            }
        }
        Run::Placed
    }

    /// First- or last-wins placement. `None` for an exact duplicate (every byte already
    /// held, identical); otherwise whether it overlapped held data.
    fn overlay(&mut self, last_wins: bool, offset: usize, data: &[u8]) -> Option<bool> {
        let end = offset + data.len();
        let i0 = self.pieces.partition_point(|p| p.end() <= offset);
        let i1 = self.pieces.partition_point(|p| p.start < end);
        if i0 >= i1 {
            self.pieces.insert(
                i0,
                Piece {
                    start: offset,
                    data: data.to_vec(),
                },
            );
            return Some(false);
        }
        let mut covered = 0;
        let mut same = true;
        for p in &self.pieces[i0..i1] {
            let (s, e) = (p.start.max(offset), p.end().min(end));
            covered += e - s;
            same &= p.data[s - p.start..e - p.start] == data[s - offset..e - offset];
        }
        if same && covered == data.len() {
            return None;
        }
        let old: Vec<Piece> = self.pieces.drain(i0..i1).collect();
        let mut merged = Vec::with_capacity(old.len() + 2);
        if last_wins {
            if let Some(p) = old.first().filter(|p| p.start < offset) {
                merged.push(Piece {
                    start: p.start,
                    data: p.data[..offset - p.start].to_vec(),
                });
            }
            merged.push(Piece {
                start: offset,
                data: data.to_vec(),
            });
            if let Some(p) = old.last().filter(|p| p.end() > end) {
                merged.push(Piece {
                    start: end,
                    data: p.data[end - p.start..].to_vec(),
                });
            }
        } else {
            let mut at = offset;
            for p in old {
                if p.start > at {
                    merged.push(Piece {
                        start: at,
                        data: data[at - offset..p.start - offset].to_vec(),
                    });
                }
                at = at.max(p.end());
                merged.push(p);
            }
            if at < end {
                merged.push(Piece {
                    start: at,
                    data: data[at - offset..].to_vec(),
                });
            }
        }
        self.pieces.splice(i0..i0, merged);
        Some(true)
    }

    fn assemble(self) -> Option<Vec<u8>> {
        let total = self.total?;
        assemble(
            &self.head,
            self.v6_next,
            total,
            self.pieces.iter().map(|p| p.data.as_slice()),
        )
    }
}

enum Run {
    Placed,
    Duplicate,
    Overlap,
}

/// Builds the datagram: the first fragment's header with lengths and fragment fields as
/// if it had never been fragmented, then the data. `None` when it would not fit an IP
/// length field (Linux drops those too).
fn assemble<'p>(
    head: &[u8],
    v6_next: Option<(usize, u8)>,
    total: usize,
    pieces: impl IntoIterator<Item = &'p [u8]>,
) -> Option<Vec<u8>> {
    let len = head.len() + total;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(head);
    for p in pieces {
        out.extend_from_slice(p);
    }
    match v6_next {
        None => {
            let total_len = u16::try_from(len).ok()?;
            let ihl = head.len();
            let h = out.get_mut(..ihl.max(20))?;
            h[2..4].copy_from_slice(&total_len.to_be_bytes());
            // Keep DF; clear MF and the offset.
            h[6] &= 0x40;
            h[7] = 0;
            h[10] = 0;
            h[11] = 0;
            let sum = ipv4_checksum(h);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        Some((at, next)) => {
            let payload_len = u16::try_from(len.checked_sub(40)?).ok()?;
            *out.get_mut(at)? = next;
            out.get_mut(4..6)?
                .copy_from_slice(&payload_len.to_be_bytes());
        }
    }
    Some(out)
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    let b = d.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn parse_v4(d: &[u8]) -> Option<Frag<'_>> {
    let ihl = usize::from(d.first()? & 0x0f) * 4;
    let total = usize::from(be16(d, 2)?);
    if ihl < 20 || total < ihl {
        return None;
    }
    // A fragment the capture cut short cannot be reassembled: its bytes are not there.
    let packet = d.get(..total)?;
    let fo = be16(packet, 6)?;
    let addr = |at: usize| -> Option<IpAddr> {
        let b: [u8; 4] = packet.get(at..at + 4)?.try_into().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(b)))
    };
    Some(Frag {
        key: Key {
            src: addr(12)?,
            dst: addr(16)?,
            id: u32::from(be16(packet, 4)?),
            proto: packet[9],
        },
        offset: usize::from(fo & 0x1fff) * 8,
        more: fo & 0x2000 != 0,
        data: &packet[ihl..],
        head: &packet[..ihl],
        v6_next: None,
    })
}

fn parse_v6(d: &[u8]) -> Option<Frag<'_>> {
    let packet = d.get(..40 + usize::from(be16(d, 4)?))?;
    let addr = |at: usize| -> Option<IpAddr> {
        let b: [u8; 16] = packet.get(at..at + 16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(b)))
    };
    let (src, dst) = (addr(8)?, addr(24)?);
    let (mut next, mut next_at, mut at) = (packet[6], 6, 40);
    // The unfragmentable part: hop-by-hop, routing, destination options, AH. A handful at
    // most in practice; the bound keeps a crafted chain from costing more.
    for _ in 0..16 {
        let len = match next {
            0 | 43 | 60 => (usize::from(*packet.get(at + 1)?) + 1) * 8,
            51 => (usize::from(*packet.get(at + 1)?) + 2) * 4,
            44 => {
                let f = packet.get(at..at + 8)?;
                let fo = u16::from_be_bytes([f[2], f[3]]);
                return Some(Frag {
                    key: Key {
                        src,
                        dst,
                        id: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
                        proto: 0,
                    },
                    offset: usize::from(fo & 0xfff8),
                    more: fo & 1 != 0,
                    data: &packet[at + 8..],
                    head: &packet[..at],
                    v6_next: Some((next_at, f[0])),
                });
            }
            _ => return None,
        };
        next_at = at;
        next = packet[at];
        at += len;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    /// An IPv4 UDP datagram from etherparse (no link header).
    pub(crate) fn udp_v4(payload: &[u8], id: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 23], [10, 0, 0, 1], 64)
            .udp(40000, 53)
            .write(&mut out, payload)
            .expect("write");
        out[4..6].copy_from_slice(&id.to_be_bytes());
        set_v4(&mut out, 0, false);
        out
    }

    pub(crate) fn udp_v6(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv6([0x20; 16], [0x21; 16], 64)
            .udp(40000, 53)
            .write(&mut out, payload)
            .expect("write");
        out
    }

    /// Splits an IPv4 datagram's payload at `cuts` (multiples of 8) into fragments.
    pub(crate) fn fragment_v4(datagram: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let ihl = usize::from(datagram[0] & 0x0f) * 4;
        let payload = &datagram[ihl..];
        pieces(payload.len(), cuts)
            .into_iter()
            .map(|(s, e)| {
                let mut f = datagram[..ihl].to_vec();
                f.extend_from_slice(&payload[s..e]);
                set_v4(&mut f, s, e < payload.len());
                f
            })
            .collect()
    }

    /// Rewrites an IPv4 fragment's offset, MF flag, length and checksum (DF is kept).
    pub(crate) fn set_v4(f: &mut [u8], offset: usize, more: bool) {
        let len = f.len() as u16;
        f[2..4].copy_from_slice(&len.to_be_bytes());
        let df = u16::from(f[6] & 0x40) << 8;
        let fo = df | (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        f[6..8].copy_from_slice(&fo.to_be_bytes());
        f[10] = 0;
        f[11] = 0;
        let ihl = usize::from(f[0] & 0x0f) * 4;
        let sum = ipv4_checksum(&f[..ihl]);
        f[10..12].copy_from_slice(&sum.to_be_bytes());
    }

    /// Splits an IPv6 datagram (no extension headers) into fragments with identification
    /// `id`.
    pub(crate) fn fragment_v6(datagram: &[u8], cuts: &[usize], id: u32) -> Vec<Vec<u8>> {
        let payload = &datagram[40..];
        pieces(payload.len(), cuts)
            .into_iter()
            .map(|(s, e)| v6_fragment(datagram, id, s, e < payload.len(), &payload[s..e]))
            .collect()
    }

    /// One IPv6 fragment of `datagram` carrying `data` at `offset`.
    pub(crate) fn v6_fragment(
        datagram: &[u8],
        id: u32,
        offset: usize,
        more: bool,
        data: &[u8],
    ) -> Vec<u8> {
        let mut f = datagram[..40].to_vec();
        let next = f[6];
        f[6] = 44;
        f[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        let fo = offset as u16 | u16::from(more);
        f.extend_from_slice(&[next, 0]);
        f.extend_from_slice(&fo.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(data);
        f
    }

    fn pieces(len: usize, cuts: &[usize]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = 0;
        for &c in cuts.iter().chain(std::iter::once(&len)) {
            out.push((start, c));
            start = c;
        }
        out
    }

    fn t(micros: i64) -> Timestamp {
        Timestamp::from_micros(micros)
    }

    fn feed(r: &mut Reassembler, frags: &[Vec<u8>]) -> Vec<Reassembly> {
        frags.iter().map(|f| r.push(t(0), f)).collect()
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn complete(out: &[Reassembly]) -> Option<&Vec<u8>> {
        out.iter().find_map(|r| match r {
            Reassembly::Complete(d) => Some(d),
            _ => None,
        })
    }

    #[test]
    fn ipv4_in_order_reversed_and_shuffled() {
        let dg = udp_v4(&payload(1000), 7);
        let frags = fragment_v4(&dg, &[256, 512, 768]);
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            let mut r = Reassembler::new(FragConfig::default());
            let ordered: Vec<_> = order.iter().map(|&i| frags[i].clone()).collect();
            let out = feed(&mut r, &ordered);
            assert!(out[..3].iter().all(|r| *r == Reassembly::Held));
            assert_eq!(complete(&out), Some(&dg), "{order:?}");
            assert_eq!(r.count(FragEvent::Held), 3);
            assert_eq!(r.count(FragEvent::Reassembled), 1);
            assert!(r.is_empty());
            assert_eq!(r.buffered_bytes(), 0);
        }
    }

    #[test]
    fn ipv4_reassembly_clears_fragment_fields_and_keeps_df() {
        let mut dg = udp_v4(&payload(100), 9);
        dg[6] |= 0x40;
        set_v4(&mut dg, 0, false);
        let frags = fragment_v4(&dg, &[48]);
        assert_eq!(frags[0][6], 0x60);
        let mut r = Reassembler::new(FragConfig::default());
        let out = feed(&mut r, &frags);
        assert_eq!(complete(&out), Some(&dg));
        assert_eq!(ipv4_checksum(&dg[..20]), 0);
    }

    #[test]
    fn ipv6_in_order_and_reversed() {
        let dg = udp_v6(&payload(1500));
        let frags = fragment_v6(&dg, &[600, 1200], 0x1234_5678);
        let mut r = Reassembler::new(FragConfig::default());
        assert_eq!(complete(&feed(&mut r, &frags)), Some(&dg));
        let rev: Vec<_> = frags.iter().rev().cloned().collect();
        assert_eq!(complete(&feed(&mut r, &rev)), Some(&dg));
        assert_eq!(r.count(FragEvent::Reassembled), 2);
    }

    #[test]
    fn ipv6_keeps_the_unfragmentable_part() {
        // Hop-by-hop options before the Fragment header stay in the reassembled datagram.
        let dg = udp_v6(&payload(200));
        let mut with_hbh = dg[..40].to_vec();
        with_hbh[6] = 0;
        with_hbh.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        with_hbh.extend_from_slice(&dg[40..]);
        let plen = (with_hbh.len() - 40) as u16;
        with_hbh[4..6].copy_from_slice(&plen.to_be_bytes());
        let upper = &dg[40..];
        let frag = |off: usize, more: bool, data: &[u8]| {
            let mut f = with_hbh[..48].to_vec();
            f[40] = 44;
            f.extend_from_slice(&[17, 0]);
            f.extend_from_slice(&(off as u16 | u16::from(more)).to_be_bytes());
            f.extend_from_slice(&9u32.to_be_bytes());
            f.extend_from_slice(data);
            let plen = (f.len() - 40) as u16;
            f[4..6].copy_from_slice(&plen.to_be_bytes());
            f
        };
        let mut r = Reassembler::new(FragConfig::default());
        assert_eq!(
            r.push(t(0), &frag(104, false, &upper[104..])),
            Reassembly::Held
        );
        assert_eq!(
            r.push(t(1), &frag(0, true, &upper[..104])),
            Reassembly::Complete(with_hbh)
        );
    }

    #[test]
    fn duplicates_are_ignored_under_every_policy() {
        let dg = udp_v4(&payload(300), 3);
        let frags = fragment_v4(&dg, &[104, 200]);
        for policy in [FragPolicy::Linux, FragPolicy::First, FragPolicy::Last] {
            let mut r = Reassembler::new(FragConfig {
                policy,
                ..FragConfig::default()
            });
            let seq = [&frags[0], &frags[0], &frags[1], &frags[1], &frags[2]];
            let out: Vec<_> = seq.iter().map(|f| r.push(t(0), f)).collect();
            assert_eq!(out[1], Reassembly::Dropped(FragEvent::Duplicate));
            assert_eq!(out[3], Reassembly::Dropped(FragEvent::Duplicate));
            assert_eq!(complete(&out), Some(&dg), "{policy:?}");
            assert_eq!(r.count(FragEvent::Duplicate), 2);
        }
        let v6 = udp_v6(&payload(300));
        let frags = fragment_v6(&v6, &[104], 1);
        let mut r = Reassembler::new(FragConfig::default());
        let out = feed(
            &mut r,
            &[frags[0].clone(), frags[0].clone(), frags[1].clone()],
        );
        assert_eq!(out[1], Reassembly::Dropped(FragEvent::Duplicate));
        assert_eq!(complete(&out), Some(&v6));
    }

    /// Fragments A 0..48, B 48..96, C 96..end of a datagram, and a rogue R 24..64 of
    /// 0xee bytes.
    fn overlapping() -> (Vec<u8>, Vec<Vec<u8>>, Vec<u8>) {
        let dg = udp_v4(&payload(120), 5);
        let frags = fragment_v4(&dg, &[48, 96]);
        let mut rogue = dg[..20].to_vec();
        rogue.extend_from_slice(&[0xee; 40]);
        set_v4(&mut rogue, 24, true);
        (dg, frags, rogue)
    }

    #[test]
    fn overlaps_follow_the_policy() {
        let (dg, f, rogue) = overlapping();
        let run = |policy, order: &[&Vec<u8>]| {
            let mut r = Reassembler::new(FragConfig {
                policy,
                ..FragConfig::default()
            });
            let out: Vec<_> = order.iter().map(|p| r.push(t(0), p)).collect();
            (complete(&out).cloned(), r)
        };
        // R straddles A's end before B arrives: Linux discards the datagram.
        let (linux, r) = run(FragPolicy::Linux, &[&f[0], &rogue, &f[1], &f[2]]);
        assert_eq!(linux, None);
        assert_eq!(r.count(FragEvent::OverlapDiscarded), 1);
        // B and C arrived after the discard and wait for an A that will not come again.
        assert_eq!(r.len(), 1);

        // R inside the run A+B: Linux drops R and keeps the original bytes.
        let late = [&f[0], &f[1], &rogue, &f[2]];
        let (linux, r) = run(FragPolicy::Linux, &late);
        assert_eq!(linux.as_ref(), Some(&dg));
        assert_eq!(r.count(FragEvent::Duplicate), 1);

        let (first, r) = run(FragPolicy::First, &late);
        assert_eq!(first.as_ref(), Some(&dg));
        assert_eq!(r.count(FragEvent::OverlapResolved), 1);

        let (last, _) = run(FragPolicy::Last, &late);
        let mut want = dg.clone();
        want[20 + 24..20 + 64].fill(0xee);
        assert_eq!(last.map(|l| l[20..].to_vec()), Some(want[20..].to_vec()));

        // First wins where R came first: its bytes fill 48..64 before B.
        let (first, _) = run(FragPolicy::First, &[&f[0], &rogue, &f[1], &f[2]]);
        let mut want = dg.clone();
        want[20 + 48..20 + 64].fill(0xee);
        assert_eq!(first.map(|l| l[20..].to_vec()), Some(want[20..].to_vec()));
    }

    #[test]
    fn linux_drops_a_contained_copy_without_comparing_it() {
        // A second copy of the first fragment with other bytes lies inside held data:
        // Linux keeps the first copy, so the server reads the original bytes.
        let dg = udp_v4(&payload(120), 6);
        let frags = fragment_v4(&dg, &[48]);
        let mut changed = frags[0].clone();
        changed[30] ^= 0xff;
        let mut r = Reassembler::new(FragConfig::default());
        let out = feed(&mut r, &[frags[0].clone(), changed, frags[1].clone()]);
        assert_eq!(out[1], Reassembly::Dropped(FragEvent::Duplicate));
        assert_eq!(complete(&out), Some(&dg));
    }

    #[test]
    fn ipv6_overlaps_always_discard() {
        let dg = udp_v6(&payload(200));
        let frags = fragment_v6(&dg, &[96], 77);
        let rogue = v6_fragment(&dg, 77, 48, true, &[0xee; 80]);
        let mut r = Reassembler::new(FragConfig {
            policy: FragPolicy::First,
            ..FragConfig::default()
        });
        let out = feed(&mut r, &[frags[0].clone(), rogue, frags[1].clone()]);
        assert_eq!(out[1], Reassembly::Dropped(FragEvent::OverlapDiscarded));
        assert_eq!(complete(&out), None);
    }

    #[test]
    fn timed_out_datagrams_are_abandoned() {
        let dg = udp_v4(&payload(200), 11);
        let frags = fragment_v4(&dg, &[96]);
        let mut r = Reassembler::new(FragConfig::default());
        assert_eq!(r.push(t(0), &frags[0]), Reassembly::Held);
        // 31 s later the first half is gone: the second half starts a new datagram.
        assert_eq!(r.push(t(31_000_000), &frags[1]), Reassembly::Held);
        assert_eq!(r.count(FragEvent::TimedOut), 1);
        r.expire(t(62_000_000));
        assert!(r.is_empty());
        assert_eq!(r.count(FragEvent::TimedOut), 2);
        assert_eq!(r.buffered_bytes(), 0);
        // Within the timeout it completes.
        assert_eq!(r.push(t(70_000_000), &frags[0]), Reassembly::Held);
        assert_eq!(
            r.push(t(99_000_000), &frags[1]),
            Reassembly::Complete(dg.clone())
        );
    }

    #[test]
    fn too_many_fragments() {
        let dg = udp_v4(&payload(800), 12);
        let cuts: Vec<usize> = (1..100).map(|i| i * 8).collect();
        let frags = fragment_v4(&dg, &cuts);
        let mut r = Reassembler::new(FragConfig {
            max_fragments: 10,
            ..FragConfig::default()
        });
        let out = feed(&mut r, &frags);
        assert_eq!(out[10], Reassembly::Dropped(FragEvent::TooMany));
        assert_eq!(complete(&out), None);
        assert!(r.count(FragEvent::TooMany) >= 1);
    }

    #[test]
    fn too_large_datagrams() {
        let dg = udp_v4(&payload(400), 13);
        let frags = fragment_v4(&dg, &[200]);
        let mut r = Reassembler::new(FragConfig {
            max_datagram_bytes: 300,
            ..FragConfig::default()
        });
        let out = feed(&mut r, &frags);
        assert_eq!(out[1], Reassembly::Dropped(FragEvent::TooLarge));
        assert!(r.is_empty());
        // An offset at the top of the range: nothing is allocated for the claimed gap.
        let mut far = frags[1].clone();
        set_v4(&mut far, 65_528, true);
        let mut r = Reassembler::new(FragConfig::default());
        assert_eq!(r.push(t(0), &far), Reassembly::Dropped(FragEvent::TooLarge));
        let mut high = frags[0].clone();
        high.truncate(20 + 8);
        set_v4(&mut high, 65_000, true);
        assert_eq!(r.push(t(0), &high), Reassembly::Held);
        assert_eq!(r.buffered_bytes(), 8 + PIECE_COST);
    }

    #[test]
    fn eviction_when_full() {
        let mut r = Reassembler::new(FragConfig {
            max_datagrams: 8,
            ..FragConfig::default()
        });
        let mut firsts = Vec::new();
        for id in 0..20u16 {
            let dg = udp_v4(&payload(100), id);
            let frags = fragment_v4(&dg, &[48]);
            assert_eq!(r.push(t(0), &frags[0]), Reassembly::Held);
            firsts.push((dg, frags));
            assert!(r.len() <= 8);
        }
        assert_eq!(r.count(FragEvent::Evicted), 12);
        // The newest complete; the oldest were evicted.
        let (dg, frags) = &firsts[19];
        assert_eq!(r.push(t(0), &frags[1]), Reassembly::Complete(dg.clone()));
        let (_, frags) = &firsts[0];
        assert_eq!(r.push(t(0), &frags[1]), Reassembly::Held);

        // The byte budget evicts the least recently used datagrams too.
        let mut r = Reassembler::new(FragConfig {
            max_total_bytes: 1_000,
            ..FragConfig::default()
        });
        for id in 0..10u16 {
            let frags = fragment_v4(&udp_v4(&payload(600), id), &[296]);
            r.push(t(0), &frags[0]);
            assert!(r.buffered_bytes() <= 1_000);
        }
        // Each holds a 20-byte header, 296 bytes and one piece: three do not fit.
        assert_eq!(r.len(), 2);
        assert_eq!(r.count(FragEvent::Evicted), 8);
    }

    #[test]
    fn inconsistent_ends_and_empty_fragments_discard() {
        let dg = udp_v4(&payload(200), 14);
        let frags = fragment_v4(&dg, &[96]);
        let mut r = Reassembler::new(FragConfig::default());
        r.push(t(0), &frags[1]);
        // A middle fragment reaching past the known end.
        let mut past = dg[..20].to_vec();
        past.extend_from_slice(&[1; 200]);
        set_v4(&mut past, 96, true);
        assert_eq!(
            r.push(t(0), &past),
            Reassembly::Dropped(FragEvent::Malformed)
        );
        assert!(r.is_empty());
        // An empty middle fragment (7 bytes cut to 0).
        let mut empty = dg[..27].to_vec();
        set_v4(&mut empty, 8, true);
        r.push(t(0), &frags[0]);
        assert_eq!(
            r.push(t(0), &empty),
            Reassembly::Dropped(FragEvent::Malformed)
        );
        assert!(r.is_empty());
    }

    #[test]
    fn middle_ipv4_fragments_are_cut_to_eight_bytes() {
        // 0..52 is cut to 0..48, so the datagram needs the last fragment from 48.
        let dg = udp_v4(&payload(100), 15);
        let mut first = dg[..20 + 52].to_vec();
        set_v4(&mut first, 0, true);
        let frags = fragment_v4(&dg, &[48]);
        let mut r = Reassembler::new(FragConfig::default());
        assert_eq!(r.push(t(0), &first), Reassembly::Held);
        assert_eq!(r.push(t(0), &frags[1]), Reassembly::Complete(dg.clone()));
    }

    #[test]
    fn garbage_never_panics() {
        let dg = udp_v4(&payload(300), 16);
        let v6 = udp_v6(&payload(300));
        let mut all = fragment_v4(&dg, &[104]);
        all.extend(fragment_v6(&v6, &[104], 3));
        for policy in [FragPolicy::Linux, FragPolicy::First, FragPolicy::Last] {
            let mut r = Reassembler::new(FragConfig {
                policy,
                max_datagrams: 4,
                max_total_bytes: 2_000,
                ..FragConfig::default()
            });
            for f in &all {
                for len in 0..=f.len() {
                    let _ = r.push(t(len as i64), &f[..len]);
                    let mut g = f[..len].to_vec();
                    for i in 0..g.len() {
                        g[i] ^= 0x5a;
                        let _ = r.push(t(i as i64), &g);
                        g[i] ^= 0x5a;
                    }
                }
            }
            assert!(r.len() <= 4);
            assert!(r.buffered_bytes() <= 2_000);
        }
    }
}
