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

use super::table::{map, Map};
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
    table: Map<Key, Datagram>,
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
pub(crate) mod tests;
