//! Small, bounded, expiring per-node memories of the data plane, sharded so requests do
//! not meet on one lock: bindings this node made that may not be applied here yet, and
//! learn-mode session cookies looked up in vain a moment ago.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

const SHARDS: usize = 16;
const PER_SHARD: usize = 8_192;

/// (backend, key) → (value, valid until).
type Shard<V> = Mutex<HashMap<(Arc<str>, Vec<u8>), (V, Instant)>>;

/// A bounded map whose entries expire. A full shard drops its expired entries and, if that
/// is not enough, all of them: it is a memory, not a record, and losing it costs only a
/// wait or a re-balance.
pub struct Recent<V> {
    shards: Vec<Shard<V>>,
    hasher: RandomState,
}

impl<V: Clone> Default for Recent<V> {
    fn default() -> Self {
        Recent {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl<V: Clone> Recent<V> {
    fn shard(&self, key: &[u8]) -> &Shard<V> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// The live value for `key` in `backend`.
    pub fn get(&self, backend: &Arc<str>, key: &[u8]) -> Option<V> {
        let shard = self.shard(key).lock();
        let (value, until) = shard.get(&(backend.clone(), key.to_vec()))?;
        (*until > Instant::now()).then(|| value.clone())
    }

    /// Remembers `value` for `key` in `backend` for `ttl`.
    pub fn set(&self, backend: &Arc<str>, key: &[u8], value: V, ttl: Duration) {
        let mut shard = self.shard(key).lock();
        if shard.len() >= PER_SHARD {
            let now = Instant::now();
            shard.retain(|_, (_, until)| *until > now);
            if shard.len() >= PER_SHARD {
                shard.clear();
            }
        }
        shard.insert(
            (backend.clone(), key.to_vec()),
            (value, Instant::now() + ttl),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_shards_stay_bounded() {
        let recent: Recent<u32> = Recent::default();
        let b: Arc<str> = Arc::from("app");
        recent.set(&b, b"k", 7, Duration::from_secs(60));
        assert_eq!(recent.get(&b, b"k"), Some(7));
        assert_eq!(recent.get(&Arc::from("other"), b"k"), None);
        recent.set(&b, b"gone", 1, Duration::ZERO);
        assert_eq!(recent.get(&b, b"gone"), None);
        for i in 0..(SHARDS * PER_SHARD * 2) as u32 {
            recent.set(&b, &i.to_be_bytes(), i, Duration::from_secs(60));
        }
        let held: usize = recent.shards.iter().map(|s| s.lock().len()).sum();
        assert!(held <= SHARDS * PER_SHARD);
    }
}
