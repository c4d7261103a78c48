//! The bounded maps every stateful part of the detector keeps: least recently used entries
//! are evicted at a cap, and a map grows as entries arrive instead of reserving its whole
//! capacity up front (a quiet network should not pay for a busy one's tables).

use std::num::NonZeroUsize;

use lru::LruCache;
use rustc_hash::FxBuildHasher;

/// A capped LRU map with a fast non-cryptographic hasher (keys are addresses and ports the
/// capture supplies; the cap, not the hash, is what bounds a flood).
pub type Map<K, V> = LruCache<K, V, FxBuildHasher>;

/// A map of at most `cap` entries (at least one).
pub fn map<K: std::hash::Hash + Eq, V>(cap: usize) -> Map<K, V> {
    let mut m = LruCache::unbounded_with_hasher(FxBuildHasher);
    m.resize(NonZeroUsize::new(cap.max(1)).unwrap_or(NonZeroUsize::MIN));
    m
}
