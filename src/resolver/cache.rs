//! The answer cache: keyed by name, type, class and the EDNS bits that change an answer,
//! bounded by entries and by bytes (least recently used evicted: an upstream answering
//! 63 KB to every name fills the byte budget, not the memory), TTLs aged on the way out,
//! and a hit patched with the asker's id, flags and question so it costs one copy.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Instant;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::RData;
use lru::LruCache;
use rustc_hash::FxBuildHasher;

use super::{addrs_of, Asked, Resolver};
use crate::detect::dns::query::question_len;

/// What a cached answer answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub(super) name: Box<str>,
    pub(super) qtype: u16,
    pub(super) qclass: u16,
    pub(super) edns: bool,
    pub(super) dnssec_ok: bool,
}

/// A cache key borrowed from either reader of a query (hickory's or [`crate::detect::dns::query::read_query`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeyRef<'a> {
    pub(super) name: &'a str,
    pub(super) qtype: u16,
    pub(super) qclass: u16,
    pub(super) edns: bool,
    pub(super) dnssec_ok: bool,
}

impl KeyRef<'_> {
    /// The cache's map key; the entry keeps the whole [`Key`] to rule out collisions.
    pub(super) fn id(self) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = FxBuildHasher.build_hasher();
        self.name.hash(&mut h);
        (self.qtype, self.qclass, self.edns, self.dnssec_ok).hash(&mut h);
        h.finish()
    }
}

impl Key {
    pub(super) fn as_ref(&self) -> KeyRef<'_> {
        KeyRef {
            name: &self.name,
            qtype: self.qtype,
            qclass: self.qclass,
            edns: self.edns,
            dnssec_ok: self.dnssec_ok,
        }
    }

    pub(super) fn id(&self) -> u64 {
        self.as_ref().id()
    }
}

/// The parts of a query a cached answer is fitted to.
pub(super) struct Fit<'a> {
    pub(super) key: KeyRef<'a>,
    pub(super) id: u16,
    pub(super) recursion_desired: bool,
    pub(super) checking_disabled: bool,
    /// The question section exactly as the client wrote it.
    pub(super) question: &'a [u8],
    /// The client's UDP limit; `None` over TCP.
    pub(super) max_payload: Option<usize>,
}

#[derive(Debug)]
pub(super) struct Entry {
    /// What it answers.
    pub(super) key: Key,
    /// Addresses in the answer, for the detector.
    pub(super) addrs: Vec<IpAddr>,
    /// The answer as received (ECH already stripped), id 0.
    pub(super) msg: Message,
    pub(super) stored: Instant,
    /// Seconds until the first record expires.
    pub(super) ttl: u32,
    /// `msg` encoded with TTLs lowered by `encoded_age` seconds.
    pub(super) bytes: Vec<u8>,
    pub(super) encoded_age: u32,
}

/// The cache's entries with their cost in bytes.
#[derive(Debug)]
pub(super) struct Cache {
    lru: LruCache<u64, Entry, FxBuildHasher>,
    bytes: usize,
    max_bytes: usize,
}

impl Entry {
    /// What an entry costs: the answer twice (as a parsed message, about twice its wire
    /// size, and encoded), the name, and a fixed overhead for the map and the vectors.
    fn cost(&self) -> usize {
        3 * self.bytes.len() + self.key.name.len() + 16 * self.addrs.len() + 256
    }
}

impl Cache {
    /// At most `entries` answers and `max_bytes` bytes.
    pub(super) fn new(entries: usize, max_bytes: usize) -> Cache {
        Cache {
            lru: LruCache::with_hasher(
                NonZeroUsize::new(entries.max(1)).unwrap_or(NonZeroUsize::MIN),
                FxBuildHasher,
            ),
            bytes: 0,
            max_bytes,
        }
    }

    fn get_mut(&mut self, id: &u64) -> Option<&mut Entry> {
        self.lru.get_mut(id)
    }

    fn pop(&mut self, id: &u64) {
        if let Some(e) = self.lru.pop(id) {
            self.bytes -= e.cost().min(self.bytes);
        }
    }

    /// Stores `e`, evicting the least recently used until both bounds hold; returns how
    /// many others were evicted. An answer larger than the whole budget is not kept.
    fn put(&mut self, id: u64, e: Entry) -> u64 {
        let cost = e.cost();
        if cost > self.max_bytes {
            return 0;
        }
        self.pop(&id);
        let mut evicted = 0;
        while self.bytes + cost > self.max_bytes {
            match self.lru.pop_lru() {
                Some((_, old)) => {
                    self.bytes -= old.cost().min(self.bytes);
                    evicted += 1;
                }
                None => break,
            }
        }
        if let Some((_, old)) = self.lru.push(id, e) {
            self.bytes -= old.cost().min(self.bytes);
            evicted += 1;
        }
        self.bytes += cost;
        evicted
    }

    /// Bytes and entries held.
    pub(super) fn size(&self) -> (usize, usize) {
        (self.bytes, self.lru.len())
    }
}

/// The TTLs of every record but OPT lowered by `age` (never below 0).
fn aged(msg: &Message, age: u32) -> Message {
    let mut m = msg.clone();
    for r in m
        .answers
        .iter_mut()
        .chain(m.authorities.iter_mut())
        .chain(m.additionals.iter_mut())
    {
        r.ttl = r.ttl.saturating_sub(age);
    }
    m
}

fn min_ttl(msg: &Message, negative: u32) -> u32 {
    let ttls = msg.answers.iter().map(|r| r.ttl);
    match ttls.min() {
        Some(t) => t,
        // Negative answers: the SOA's minimum (RFC 2308), capped by its own TTL.
        None => msg
            .authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(s) => Some(s.minimum.min(r.ttl)),
                _ => None,
            })
            .unwrap_or(negative),
    }
}

impl Resolver {
    /// Copies the cached answer for `fit` into `out` with TTLs aged and the client's id,
    /// RD and CD bits and question; returns the answer's addresses (empty unless the
    /// detector learns from answers). `None` on a miss, an expired entry, or an answer
    /// larger than the client's UDP limit. Both the hot path and the full path use it.
    pub(super) fn serve_cached(&self, fit: &Fit<'_>, out: &mut Vec<u8>) -> Option<Vec<IpAddr>> {
        let qlen = fit.question.len();
        if qlen == 0 {
            return None;
        }
        let mut cache = self.cache.lock().ok()?;
        let id = fit.key.id();
        let e = cache.get_mut(&id)?;
        if e.key.as_ref() != fit.key {
            return None;
        }
        let age = e.stored.elapsed().as_secs() as u32;
        if age >= e.ttl {
            cache.pop(&id);
            return None;
        }
        if age != e.encoded_age {
            // Aging changes TTLs, not lengths (names compress the same): the entry's cost
            // stays what it was when stored.
            let bytes = aged(&e.msg, age).to_vec().ok()?;
            if bytes.len() != e.bytes.len() {
                cache.pop(&id);
                return None;
            }
            e.bytes = bytes;
            e.encoded_age = age;
        }
        if e.bytes.len() < 12 + qlen
            || question_len(&e.bytes) != Some(qlen)
            || fit.max_payload.is_some_and(|max| e.bytes.len() > max)
        {
            return None;
        }
        out.clear();
        out.extend_from_slice(&e.bytes);
        let addrs = if self.learn {
            e.addrs.clone()
        } else {
            Vec::new()
        };
        drop(cache);
        // The cached bytes carry id 0 and the first asker's question; give this client its
        // own id, flags and question (same name, maybe other letter case).
        out[..2].copy_from_slice(&fit.id.to_be_bytes());
        out[12..12 + qlen].copy_from_slice(fit.question);
        out[2] = (out[2] & !0x01) | u8::from(fit.recursion_desired);
        out[3] = (out[3] & !0x10) | (u8::from(fit.checking_disabled) << 4);
        self.counters.cached.inc();
        Some(addrs)
    }

    /// [`Resolver::serve_cached`] for a query hickory parsed.
    pub(super) fn cached(&self, asked: &Asked, udp: bool) -> Option<(Vec<u8>, Vec<IpAddr>)> {
        let m = &asked.msg.metadata;
        let fit = Fit {
            key: asked.key.as_ref(),
            id: m.id,
            recursion_desired: m.recursion_desired,
            checking_disabled: m.checking_disabled,
            question: &asked.question,
            max_payload: udp.then_some(asked.max_payload),
        };
        let mut out = Vec::new();
        let addrs = self.serve_cached(&fit, &mut out)?;
        Some((out, addrs))
    }

    /// Stores `resp` (an upstream's answer to `asked`, ECH already stripped) when it may be
    /// cached: NOERROR or NXDOMAIN, not truncated, a TTL above zero. It is kept as this
    /// client's reply with id 0; later askers get their own id, flags and question patched
    /// in (see `serve_cached`).
    pub(super) fn remember(&self, asked: &Asked, resp: &Message) {
        let rcode = resp.metadata.response_code;
        let ttl = min_ttl(resp, 60);
        if !matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain)
            || resp.metadata.truncation
            || ttl == 0
        {
            return;
        }
        let mut stored = resp.clone();
        stored.metadata.id = 0;
        stored.metadata.message_type = MessageType::Response;
        stored.metadata.recursion_available = true;
        stored.queries = vec![asked.query.clone()];
        stored.edns = asked.reply_edns();
        if let (Ok(bytes), Ok(mut cache)) = (stored.to_vec(), self.cache.lock()) {
            let evicted = cache.put(
                asked.key.id(),
                Entry {
                    key: asked.key.clone(),
                    addrs: addrs_of(&stored),
                    msg: stored,
                    stored: Instant::now(),
                    ttl,
                    bytes,
                    encoded_age: 0,
                },
            );
            let (bytes, entries) = cache.size();
            drop(cache);
            self.metrics.dns_cache_evictions.inc_by(evicted);
            self.metrics
                .dns_cache
                .with_label_values(&["bytes"])
                .set(bytes as i64);
            self.metrics
                .dns_cache
                .with_label_values(&["entries"])
                .set(entries as i64);
        }
    }
}
