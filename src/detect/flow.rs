//! Bounded TCP stream reassembly for the bytes detection needs: the client's first flight
//! (a TLS ClientHello) and DNS-over-TCP messages. Segments may arrive out of order, be
//! retransmitted, overlap or be one byte long; buffering is bounded by bytes per stream
//! and by the number of holes, never by a packet count. [`Budget`] bounds the bytes all
//! first flights hold together and says which stream advanced least recently.

use std::hash::Hash;

use super::table::Map;

/// Why reassembly of a stream was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Data beyond the byte limit.
    TooLarge,
    /// More out-of-order holes than allowed.
    TooFragmented,
}

/// At most this many separate out-of-order ranges are kept per stream.
const MAX_RANGES: usize = 64;

/// The start of one direction of a TCP stream, placed by sequence number.
#[derive(Debug, Clone, Default)]
pub struct StreamBuf {
    /// Sequence number of `data[0]`.
    base: u32,
    /// Bytes received so far; bytes in holes are zero.
    data: Vec<u8>,
    /// Received byte ranges `[start, end)` relative to `base`, sorted and disjoint.
    ranges: Vec<(usize, usize)>,
}

impl StreamBuf {
    /// An empty stream whose first byte has sequence number `base`.
    pub fn new(base: u32) -> StreamBuf {
        StreamBuf {
            base,
            data: Vec::new(),
            ranges: Vec::new(),
        }
    }

    /// Bytes available from the start without a hole.
    pub fn contiguous(&self) -> &[u8] {
        match self.ranges.first() {
            Some(&(0, end)) => &self.data[..end],
            _ => &[],
        }
    }

    /// The sequence number just past the contiguous bytes: what a receiver that got them
    /// all expects next.
    pub fn end(&self) -> u32 {
        self.base.wrapping_add(self.contiguous().len() as u32)
    }

    /// Places a segment and returns how many bytes it added (0 for a retransmission).
    /// Bytes before the start (retransmissions of consumed data) are dropped; bytes at or
    /// beyond `limit` relative to the start are an overflow.
    pub fn insert(&mut self, seq: u32, payload: &[u8], limit: usize) -> Result<usize, Overflow> {
        let Some((start, payload)) = self.place(seq, payload) else {
            return Ok(0);
        };
        if start + payload.len() > limit {
            return Err(Overflow::TooLarge);
        }
        self.store(start, payload, limit)
    }

    /// Places the part of a segment below `limit` (relative to the start) and drops the
    /// rest: the start of a stream is what detection reads, and a segment far larger than
    /// the limit (TSO or GRO on a mirror port) still begins with it. Returns the bytes
    /// added and whether any were cut.
    pub fn insert_upto(
        &mut self,
        seq: u32,
        payload: &[u8],
        limit: usize,
    ) -> Result<(usize, bool), Overflow> {
        let Some((start, payload)) = self.place(seq, payload) else {
            return Ok((0, false));
        };
        let keep = limit.saturating_sub(start).min(payload.len());
        let cut = keep < payload.len();
        if keep == 0 {
            return Ok((0, cut));
        }
        Ok((self.store(start, &payload[..keep], limit)?, cut))
    }

    /// Where a segment's bytes at or after the start go: `None` when it holds none.
    fn place<'p>(&self, seq: u32, payload: &'p [u8]) -> Option<(usize, &'p [u8])> {
        let rel = seq.wrapping_sub(self.base) as i32;
        let (start, payload) = if rel < 0 {
            let skip = rel.unsigned_abs() as usize;
            (0usize, payload.get(skip..)?)
        } else {
            (rel as usize, payload)
        };
        (!payload.is_empty()).then_some((start, payload))
    }

    fn store(&mut self, start: usize, payload: &[u8], limit: usize) -> Result<usize, Overflow> {
        let end = start + payload.len();
        if self.data.len() < end {
            // Grow by doubling but never past the limit, so what a stream holds (its
            // capacity, which the budget charges) stays within it.
            if self.data.capacity() < end {
                let want = end.max(self.data.capacity() * 2).min(limit.max(end));
                self.data.reserve_exact(want - self.data.len());
            }
            self.data.resize(end, 0);
        }
        self.data[start..end].copy_from_slice(payload);
        self.add_range(start, end)
    }

    /// Records `[start, end)` as received; returns how many of its bytes were new.
    fn add_range(&mut self, start: usize, end: usize) -> Result<usize, Overflow> {
        // Find the first range that ends at or after `start` (touching ranges merge).
        let i = self.ranges.partition_point(|&(_, e)| e < start);
        let mut new = (start, end);
        let mut had = 0;
        let mut j = i;
        while j < self.ranges.len() && self.ranges[j].0 <= new.1 {
            let (s, e) = self.ranges[j];
            had += e - s;
            new.0 = new.0.min(s);
            new.1 = new.1.max(e);
            j += 1;
        }
        self.ranges.splice(i..j, std::iter::once(new));
        if self.ranges.len() > MAX_RANGES {
            return Err(Overflow::TooFragmented);
        }
        Ok(new.1 - new.0 - had)
    }

    /// Drops the first `n` contiguous bytes (a parsed DNS message) and moves the start on.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.contiguous().len());
        if n == 0 {
            return;
        }
        self.data.drain(..n);
        self.base = self.base.wrapping_add(n as u32);
        self.ranges.retain_mut(|r| {
            r.0 = r.0.saturating_sub(n);
            r.1 = r.1.saturating_sub(n);
            r.1 > r.0
        });
    }

    /// Bytes of memory held (the buffer's capacity and its range list), for accounting.
    pub fn buffered(&self) -> usize {
        self.data.capacity() + self.ranges.capacity() * std::mem::size_of::<(usize, usize)>()
    }
}

/// What the budget charges a stream besides its buffer: its table entries (the flow and
/// its place in the budget's order), so that many nearly empty streams add up too.
pub const STREAM_COST: usize = 256;

/// A memory budget shared by many streams: how many bytes each is charged, their total,
/// and their order from the least recently advanced (new bytes stored) to the most. The
/// owner charges a stream after each segment and, while the budget is [`Budget::over`],
/// gives up the [`Budget::oldest`] one.
#[derive(Debug)]
pub struct Budget<K: Hash + Eq> {
    order: Map<K, usize>,
    total: usize,
    limit: usize,
}

impl<K: Hash + Eq + Copy> Budget<K> {
    /// A budget of `limit` bytes. The number of streams is the owner's to bound (they are
    /// entries of its own capped table): the order never drops one on its own, which
    /// would lose its charge.
    pub fn new(limit: usize) -> Budget<K> {
        Budget {
            order: lru::LruCache::unbounded_with_hasher(rustc_hash::FxBuildHasher),
            total: 0,
            limit,
        }
    }

    /// Charges `key` `bytes` from now on. An `advanced` stream becomes the most recently
    /// advanced; one that only changed size keeps its place.
    pub fn charge(&mut self, key: K, bytes: usize, advanced: bool) {
        let old = if advanced {
            self.order.put(key, bytes)
        } else if let Some(v) = self.order.peek_mut(&key) {
            Some(std::mem::replace(v, bytes))
        } else {
            self.order.put(key, bytes)
        };
        self.total = self.total - old.unwrap_or(0) + bytes;
    }

    /// Stops charging `key`; returns what it was charged.
    pub fn release(&mut self, key: &K) -> usize {
        let old = self.order.pop(key).unwrap_or(0);
        self.total -= old;
        old
    }

    /// True when the streams hold more than the limit.
    pub fn over(&self) -> bool {
        self.total > self.limit
    }

    /// The stream that advanced least recently.
    pub fn oldest(&self) -> Option<K> {
        self.order.peek_lru().map(|(k, _)| *k)
    }

    /// Bytes charged in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Streams charged.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when no stream is charged.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_one_byte_segments() {
        let mut s = StreamBuf::new(1000);
        for (i, b) in b"hello".iter().enumerate() {
            s.insert(1000 + i as u32, &[*b], 100).expect("fits");
        }
        assert_eq!(s.contiguous(), b"hello");
    }

    #[test]
    fn out_of_order_with_retransmission_and_overlap() {
        let mut s = StreamBuf::new(u32::MAX - 2); // wraps around zero
        let data = b"abcdefghij";
        let seq = |off: u32| (u32::MAX - 2).wrapping_add(off);
        s.insert(seq(6), &data[6..], 100).expect("fits");
        assert_eq!(s.contiguous(), b"");
        s.insert(seq(3), &data[3..8], 100).expect("fits");
        s.insert(seq(3), &data[3..8], 100).expect("retransmit");
        assert_eq!(s.contiguous(), b"");
        s.insert(seq(0), &data[..4], 100).expect("fits");
        assert_eq!(s.contiguous(), data);
    }

    #[test]
    fn bounded_by_bytes_and_holes() {
        let mut s = StreamBuf::new(0);
        assert_eq!(s.insert(90, &[0; 20], 100), Err(Overflow::TooLarge));
        let mut s = StreamBuf::new(0);
        let mut result = Ok(0);
        for i in 0..200u32 {
            result = s.insert(i * 2 + 1, &[1], 10_000);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(Overflow::TooFragmented));
    }

    #[test]
    fn counts_new_bytes_only() {
        let mut s = StreamBuf::new(0);
        assert_eq!(s.insert(0, b"abcd", 100), Ok(4));
        assert_eq!(s.insert(0, b"abcd", 100), Ok(0), "a retransmission");
        assert_eq!(s.insert(2, b"cdef", 100), Ok(2), "an overlap");
        assert_eq!(s.insert(10, b"kl", 100), Ok(2));
        assert_eq!(s.insert(4, b"efghijklmn", 100), Ok(6), "fills the hole");
        assert_eq!(s.contiguous(), b"abcdefghijklmn");
    }

    #[test]
    fn a_segment_past_the_limit_keeps_its_start() {
        // A 64 KiB segment (TSO/GRO) whose first bytes are what detection reads.
        let big: Vec<u8> = (0..65_536u32).map(|i| i as u8).collect();
        let mut s = StreamBuf::new(7);
        assert_eq!(s.insert_upto(7, &big, 16_384), Ok((16_384, true)));
        assert_eq!(s.contiguous(), &big[..16_384]);
        assert!(
            s.buffered() < 16_384 + 256,
            "holds the cap, not the segment"
        );
        // Later bytes past the limit are dropped whole; earlier ones are not cut.
        assert_eq!(s.insert_upto(7 + 20_000, b"x", 16_384), Ok((0, true)));
        let mut s = StreamBuf::new(0);
        assert_eq!(s.insert_upto(0, b"abc", 16_384), Ok((3, false)));
        // The plain insert refuses what crosses the limit.
        assert_eq!(s.insert(0, &big, 16_384), Err(Overflow::TooLarge));
    }

    #[test]
    fn growth_never_passes_the_limit() {
        let mut s = StreamBuf::new(0);
        for i in 0..1_000u32 {
            s.insert_upto(i, &[1], 1_000).expect("fits");
        }
        assert_eq!(s.contiguous().len(), 1_000);
        assert!(s.buffered() <= 1_000 + 4 * 16, "{}", s.buffered());
    }

    #[test]
    fn the_budget_orders_streams_by_their_last_advance() {
        let mut b: Budget<u32> = Budget::new(1_000);
        b.charge(1, 400, true);
        b.charge(2, 400, true);
        assert!(!b.over());
        // Stream 1 grows (advances): stream 2 is now the oldest.
        b.charge(1, 500, true);
        assert_eq!((b.total(), b.oldest()), (900, Some(2)));
        // Stream 2 changes size without advancing: it keeps its place.
        b.charge(2, 300, false);
        assert_eq!((b.total(), b.oldest()), (800, Some(2)));
        b.charge(3, 300, true);
        assert!(b.over());
        assert_eq!(b.release(&2), 300);
        assert!(!b.over());
        assert_eq!((b.len(), b.oldest()), (2, Some(1)));
        assert_eq!(b.release(&2), 0, "released twice");
        b.release(&1);
        b.release(&3);
        assert!(b.is_empty());
        assert_eq!(b.total(), 0);
    }

    #[test]
    fn consume_moves_the_start() {
        let mut s = StreamBuf::new(10);
        s.insert(10, b"abcd", 100).expect("fits");
        s.insert(16, b"gh", 100).expect("fits");
        s.consume(2);
        assert_eq!(s.contiguous(), b"cd");
        s.insert(14, b"ef", 100).expect("fits");
        assert_eq!(s.contiguous(), b"cdefgh");
        // A retransmission of consumed bytes changes nothing.
        s.insert(10, b"ab", 100).expect("old");
        assert_eq!(s.contiguous(), b"cdefgh");
    }
}
