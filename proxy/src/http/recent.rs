//! Small, bounded, expiring per-node memories of the data plane: bindings this node made
//! that may not be applied here yet, and learn-mode session cookies looked up in vain a
//! moment ago. Sharded maps in two generations: an insert goes to the young generation,
//! and when it is full the old one is dropped whole and the young one becomes old, so an
//! insert or a lookup is one hash probe under one shard's lock, and the memory is bounded
//! without a per-entry eviction order. Each entry also expires after its own time.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::{DefaultHashBuilder, Equivalent, HashMap};
use parking_lot::Mutex;

/// Entries kept at most per memory.
pub const CAPACITY: u64 = 131_072;

/// Shards of one memory (each with its own lock).
const SHARDS: usize = 16;

/// (backend, key), as stored.
type Key = (Arc<str>, Box<[u8]>);

/// (backend, key), as looked up: no allocation.
#[derive(Hash)]
struct Borrowed<'a>(&'a str, &'a [u8]);

impl Equivalent<Key> for Borrowed<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *key.0 == *self.0 && *key.1 == *self.1
    }
}

/// A value and when it expires.
struct Entry<V> {
    value: V,
    until: Instant,
}

/// One shard: the generation inserts go to, and the one before it.
struct Shard<V> {
    young: HashMap<Key, Entry<V>>,
    old: HashMap<Key, Entry<V>>,
}

impl<V> Default for Shard<V> {
    fn default() -> Self {
        Shard {
            young: HashMap::new(),
            old: HashMap::new(),
        }
    }
}

/// A bounded map whose entries expire: a memory, not a record; losing an entry costs
/// only a wait or a re-balance.
pub struct Recent<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    /// Entries one generation of one shard holds before it turns old.
    generation: usize,
    hasher: DefaultHashBuilder,
}

impl<V: Clone> Default for Recent<V> {
    fn default() -> Self {
        Recent::with_capacity(CAPACITY)
    }
}

impl<V: Clone> Recent<V> {
    /// A memory of at most `capacity` entries (an entry survives at least the next
    /// `capacity / 2` inserts, spread over the shards, or its own time if shorter).
    pub fn with_capacity(capacity: u64) -> Self {
        let per_shard = usize::try_from(capacity).unwrap_or(usize::MAX) / SHARDS;
        Recent {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            generation: (per_shard / 2).max(1),
            hasher: DefaultHashBuilder::default(),
        }
    }

    fn shard(&self, backend: &str, key: &[u8]) -> &Mutex<Shard<V>> {
        let hash = self.hasher.hash_one(Borrowed(backend, key));
        &self.shards[(hash as usize) % SHARDS]
    }

    /// The live value for `key` in `backend`.
    pub fn get(&self, backend: &Arc<str>, key: &[u8]) -> Option<V> {
        let at = Borrowed(backend, key);
        let shard = self.shard(backend, key).lock();
        let entry = shard.young.get(&at).or_else(|| shard.old.get(&at))?;
        (entry.until > Instant::now()).then(|| entry.value.clone())
    }

    /// Remembers `value` for `key` in `backend` for `ttl`.
    pub fn set(&self, backend: &Arc<str>, key: &[u8], value: V, ttl: Duration) {
        let until = Instant::now() + ttl;
        let mut shard = self.shard(backend, key).lock();
        let shard = &mut *shard;
        if shard.young.len() >= self.generation {
            shard.old = std::mem::take(&mut shard.young);
        }
        shard.old.remove(&Borrowed(backend, key));
        let key: Key = (backend.clone(), key.into());
        shard.young.insert(key, Entry { value, until });
    }

    /// Live entries held now.
    pub fn len(&self) -> u64 {
        let now = Instant::now();
        let live = |m: &HashMap<Key, Entry<V>>| m.values().filter(|e| e.until > now).count();
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock();
                (live(&s.young) + live(&s.old)) as u64
            })
            .sum()
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
        // The newest entries are all there.
        for i in 4_800..5_000u32 {
            assert_eq!(recent.get(&b, &i.to_be_bytes()), Some(i), "{i}");
        }
    }

    #[test]
    fn a_value_set_again_replaces_the_old_one_in_either_generation() {
        let recent: Recent<u32> = Recent::with_capacity(64);
        let b: Arc<str> = Arc::from("app");
        recent.set(&b, b"k", 1, Duration::from_secs(60));
        for i in 0..2u32 {
            recent.set(&b, &i.to_be_bytes(), i, Duration::from_secs(60));
        }
        recent.set(&b, b"k", 2, Duration::from_secs(60));
        assert_eq!(recent.get(&b, b"k"), Some(2));
        recent.set(&b, b"k", 3, Duration::ZERO);
        assert_eq!(
            recent.get(&b, b"k"),
            None,
            "an expired value hides none older"
        );
    }
}
