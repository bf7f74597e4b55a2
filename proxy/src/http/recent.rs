//! Small, bounded, expiring per-node memories of the data plane: bindings this node made
//! that may not be applied here yet, and learn-mode session cookies looked up in vain a
//! moment ago. A moka cache: concurrent without one lock for all, bounded by entry count
//! (least recently used evicted first), each entry expiring after its own time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

/// Entries kept at most per memory.
pub const CAPACITY: u64 = 131_072;

/// (backend, key).
type Key = (Arc<str>, Vec<u8>);

/// A value and how long it lives.
#[derive(Clone)]
struct Entry<V> {
    value: V,
    ttl: Duration,
}

/// Each entry expires `ttl` after it was set.
struct PerEntry;

impl<V> Expiry<Key, Entry<V>> for PerEntry {
    fn expire_after_create(&self, _: &Key, entry: &Entry<V>, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _: &Key,
        entry: &Entry<V>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// A bounded map whose entries expire: a memory, not a record; losing an entry costs
/// only a wait or a re-balance.
pub struct Recent<V> {
    cache: Cache<Key, Entry<V>>,
}

impl<V: Clone + Send + Sync + 'static> Default for Recent<V> {
    fn default() -> Self {
        Recent::with_capacity(CAPACITY)
    }
}

impl<V: Clone + Send + Sync + 'static> Recent<V> {
    /// A memory of at most `capacity` entries.
    pub fn with_capacity(capacity: u64) -> Self {
        Recent {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntry)
                .build(),
        }
    }

    /// The live value for `key` in `backend`.
    pub fn get(&self, backend: &Arc<str>, key: &[u8]) -> Option<V> {
        self.cache
            .get(&(backend.clone(), key.to_vec()))
            .map(|e| e.value)
    }

    /// Remembers `value` for `key` in `backend` for `ttl`.
    pub fn set(&self, backend: &Arc<str>, key: &[u8], value: V, ttl: Duration) {
        self.cache
            .insert((backend.clone(), key.to_vec()), Entry { value, ttl });
    }

    /// Entries held now (after pending evictions are applied).
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_stay_bounded() {
        let recent: Recent<u32> = Recent::with_capacity(1_000);
        let b: Arc<str> = Arc::from("app");
        recent.set(&b, b"k", 7, Duration::from_secs(60));
        assert_eq!(recent.get(&b, b"k"), Some(7));
        assert_eq!(recent.get(&Arc::from("other"), b"k"), None);
        recent.set(&b, b"gone", 1, Duration::ZERO);
        assert_eq!(recent.get(&b, b"gone"), None);
        for i in 0..5_000u32 {
            recent.set(&b, &i.to_be_bytes(), i, Duration::from_secs(60));
        }
        assert!(recent.len() <= 1_000, "{}", recent.len());
    }
}
