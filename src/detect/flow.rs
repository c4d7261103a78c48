//! Bounded TCP stream reassembly for the bytes detection needs: the client's first flight
//! (a TLS ClientHello) and DNS-over-TCP messages. Segments may arrive out of order, be
//! retransmitted, overlap or be one byte long; buffering is bounded by bytes, by the
//! number of holes and by time, never by a packet count.

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

    /// Places a segment. Bytes before the start (retransmissions of consumed data) are
    /// dropped; bytes at or beyond `limit` relative to the start are an overflow.
    pub fn insert(&mut self, seq: u32, payload: &[u8], limit: usize) -> Result<(), Overflow> {
        let rel = seq.wrapping_sub(self.base) as i32;
        let (start, payload) = if rel < 0 {
            let skip = rel.unsigned_abs() as usize;
            if skip >= payload.len() {
                return Ok(());
            }
            (0usize, &payload[skip..])
        } else {
            (rel as usize, payload)
        };
        if payload.is_empty() {
            return Ok(());
        }
        let end = start + payload.len();
        if end > limit {
            return Err(Overflow::TooLarge);
        }
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[start..end].copy_from_slice(payload);
        self.add_range(start, end)
    }

    fn add_range(&mut self, start: usize, end: usize) -> Result<(), Overflow> {
        // Find the first range that ends at or after `start` (touching ranges merge).
        let i = self.ranges.partition_point(|&(_, e)| e < start);
        let mut new = (start, end);
        let mut j = i;
        while j < self.ranges.len() && self.ranges[j].0 <= new.1 {
            new.0 = new.0.min(self.ranges[j].0);
            new.1 = new.1.max(self.ranges[j].1);
            j += 1;
        }
        self.ranges.splice(i..j, std::iter::once(new));
        if self.ranges.len() > MAX_RANGES {
            return Err(Overflow::TooFragmented);
        }
        Ok(())
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

    /// Bytes held, for memory accounting.
    pub fn buffered(&self) -> usize {
        self.data.len()
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
        let mut result = Ok(());
        for i in 0..200u32 {
            result = s.insert(i * 2 + 1, &[1], 10_000);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(Overflow::TooFragmented));
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
