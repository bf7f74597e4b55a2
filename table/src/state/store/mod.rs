//! The binding store: bindings sharded by key hash over many small copy-on-write shards.
//! A copy of the whole store (for a snapshot) costs one pointer per shard, a shard grows
//! (rehashes) alone, and the data plane reads a shard under a short lock while the state
//! machine writes another: the node holds each binding once.

mod key;
mod shard;

use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;

use parking_lot::RwLock;

pub(crate) use shard::{MAX_SERVERS, Removed, Shard, Slot};

use crate::model::Millis;

/// Index of a slot: the shard in the high bits, the slot within it in the low bits.
pub(crate) type SlotId = u32;

/// `2^SHARD_BITS` shards: at ten million bindings each holds about 2,400, so copying one
/// on its first write after a snapshot is a few tens of microseconds.
const SHARD_BITS: u32 = 12;
const SHARDS: usize = 1 << SHARD_BITS;
const LOCAL_BITS: u32 = 32 - SHARD_BITS;
const LOCAL_MASK: u32 = (1 << LOCAL_BITS) - 1;

/// One shard behind the lock readers take; the `Arc` is shared with frozen copies.
type Cell = RwLock<Arc<Shard>>;

/// The hash of `(backend, key)`: fixed-key SipHash, so every replica (and every build)
/// places keys alike.
pub(crate) fn hash_key(backend: u32, key: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write_u32(backend);
    h.write(key);
    h.finish()
}

fn slot_hash(s: &Slot) -> u64 {
    hash_key(s.backend(), s.key())
}

/// The shard of a hash: bits the shard's own index does not use for placement.
fn shard_of(hash: u64) -> usize {
    ((hash >> 40) as usize) & (SHARDS - 1)
}

fn split(id: SlotId) -> (usize, u32) {
    ((id >> LOCAL_BITS) as usize, id & LOCAL_MASK)
}

fn join(shard: usize, local: u32) -> SlotId {
    ((shard as u32) << LOCAL_BITS) | local
}

/// Every binding of the table, sharded.
#[derive(Debug)]
pub(crate) struct Store {
    cells: Arc<[Cell]>,
    /// Bindings and ended slots held.
    held: usize,
    /// Ended slots held.
    ended: usize,
}

impl Default for Store {
    fn default() -> Self {
        Store::with_capacity(0)
    }
}

/// A copy shares every shard until either side writes it.
impl Clone for Store {
    fn clone(&self) -> Self {
        Store {
            cells: self
                .cells
                .iter()
                .map(|c| RwLock::new(c.read().clone()))
                .collect(),
            held: self.held,
            ended: self.ended,
        }
    }
}

impl Store {
    /// An empty store with room for `n` bindings.
    pub(crate) fn with_capacity(n: usize) -> Self {
        let per = n.div_ceil(SHARDS);
        Store {
            cells: (0..SHARDS)
                .map(|_| RwLock::new(Arc::new(Shard::with_capacity(per))))
                .collect(),
            held: 0,
            ended: 0,
        }
    }

    /// Number of bindings held.
    pub(crate) fn len(&self) -> usize {
        self.held - self.ended
    }

    /// A reader for the data plane: sees this store's shards as they are written.
    pub(crate) fn reader(&self) -> Reader {
        Reader {
            cells: self.cells.clone(),
        }
    }

    /// A consistent read-only copy of every shard, at the cost of one pointer per shard.
    pub(crate) fn frozen(&self) -> Frozen {
        Frozen(self.cells.iter().map(|c| c.read().clone()).collect())
    }

    fn read<T>(&self, id: SlotId, f: impl FnOnce(&Shard, u32) -> T) -> T {
        let (shard, local) = split(id);
        f(&self.cells[shard].read(), local)
    }

    fn write<T>(&mut self, shard: usize, f: impl FnOnce(&mut Shard) -> T) -> T {
        let mut cell = self.cells[shard].write();
        f(Arc::make_mut(&mut cell))
    }

    /// The slot bound to `(backend, key)`, if any.
    pub(crate) fn find(&self, backend: u32, key: &[u8]) -> Option<SlotId> {
        self.find_any(backend, key).filter(|&id| !self.is_ended(id))
    }

    /// The slot of `(backend, key)`, bound or ended (see [`Store::end`]).
    pub(crate) fn find_any(&self, backend: u32, key: &[u8]) -> Option<SlotId> {
        let hash = hash_key(backend, key);
        let shard = shard_of(hash);
        let local = self.cells[shard].read().find_any(hash, backend, key)?;
        Some(join(shard, local))
    }

    /// Slot `id`'s (expiry, server, backend), if it holds a binding or an ended session.
    pub(crate) fn get(&self, id: SlotId) -> Option<Held> {
        self.read(id, |s, local| {
            s.get(local).map(|s| Held {
                expires_at: s.expires_at(),
                server: s.server(),
            })
        })
    }

    /// Slot `id`'s key, if it holds a binding or an ended session.
    pub(crate) fn key(&self, id: SlotId) -> Option<Vec<u8>> {
        self.read(id, |s, local| s.get(local).map(|s| s.key().to_vec()))
    }

    /// Adds a binding; the caller guarantees `(backend, key)` is not bound yet.
    pub(crate) fn insert(
        &mut self,
        backend: u32,
        key: &[u8],
        server: u32,
        expires_at: Millis,
    ) -> SlotId {
        debug_assert!(self.find_any(backend, key).is_none());
        let hash = hash_key(backend, key);
        let shard = shard_of(hash);
        let slot = shard::slot(backend, key, server, expires_at);
        let local = self.write(shard, |s| s.insert(hash, slot, slot_hash));
        self.held += 1;
        join(shard, local)
    }

    fn update(&mut self, id: SlotId, f: impl FnOnce(&mut Slot)) {
        let (shard, local) = split(id);
        self.write(shard, |s| s.get_mut(local).map(f));
    }

    /// Moves the binding's expiry (the caller keeps the expiry index right).
    pub(crate) fn set_expires_at(&mut self, id: SlotId, expires_at: Millis) {
        self.update(id, |s| s.set_expires_at(expires_at));
    }

    /// Moves the binding to another server of the same backend (the caller keeps the
    /// per-server counts right).
    pub(crate) fn set_server(&mut self, id: SlotId, server: u32) {
        self.update(id, |s| s.set_server(server));
    }

    /// Takes the binding out of slot `id` and frees the slot.
    pub(crate) fn remove(&mut self, id: SlotId) -> Option<Removed> {
        let (shard, local) = split(id);
        let removed = self.write(shard, |s| s.remove(local, slot_hash))?;
        self.held -= 1;
        if removed.ended {
            self.ended -= 1;
        }
        Some(removed)
    }

    /// Ends the binding in slot `id`: it stops being a binding but keeps its slot until
    /// the expiry sweep frees it. Returns its server.
    pub(crate) fn end(&mut self, id: SlotId) -> Option<u32> {
        let (shard, local) = split(id);
        let server = self.write(shard, |s| s.end(local))?;
        self.ended += 1;
        Some(server)
    }

    /// Makes an ended slot a binding again (a new bind of its key), to `server`, expiring
    /// at `expires_at` or its old expiry, whichever is later (so it stays filed right).
    pub(crate) fn revive(&mut self, id: SlotId, server: u32, expires_at: Millis) {
        if self.is_ended(id) {
            let (shard, local) = split(id);
            self.write(shard, |s| s.revive(local, server, expires_at));
            self.ended -= 1;
        }
    }

    /// The `maxlife` cap of slot `id`'s binding, if it has one.
    pub(crate) fn limit(&self, id: SlotId) -> Option<Millis> {
        self.read(id, |s, local| s.limit(local))
    }

    /// Sets (or, with `None`, clears) the `maxlife` cap of slot `id`'s binding.
    pub(crate) fn set_limit(&mut self, id: SlotId, limit: Option<Millis>) {
        if limit.is_some() || self.limit(id).is_some() {
            let (shard, local) = split(id);
            self.write(shard, |s| s.set_limit(local, limit));
        }
    }

    /// True when slot `id` holds an ended session.
    pub(crate) fn is_ended(&self, id: SlotId) -> bool {
        self.read(id, |s, local| s.get(local).is_some_and(Slot::is_ended))
    }

    /// Checks that every shard's slab and index agree, and the counts (tests only).
    pub(crate) fn check(&self) -> Result<(), String> {
        let frozen = self.frozen();
        let (mut held, mut ended) = (0, 0);
        for (i, s) in frozen.0.iter().enumerate() {
            s.check(slot_hash).map_err(|e| format!("shard {i}: {e}"))?;
            if s.iter()
                .chain(s.iter_ended())
                .any(|(_, x)| shard_of(slot_hash(x)) != i)
            {
                return Err(format!("shard {i} holds a key of another shard"));
            }
            held += s.held();
            ended += s.ended();
        }
        if (held, ended) != (self.held, self.ended) {
            return Err(format!(
                "{held} held and {ended} ended, counted {} and {}",
                self.held, self.ended
            ));
        }
        Ok(())
    }
}

/// What a slot holds, besides its key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Held {
    expires_at: Millis,
    server: u32,
}

impl Held {
    /// When the binding expires.
    pub(crate) fn expires_at(&self) -> Millis {
        self.expires_at
    }

    /// Interned server id.
    pub(crate) fn server(&self) -> u32 {
        self.server
    }
}

/// A consistent read-only copy of the store (see [`Store::frozen`]).
pub(crate) struct Frozen(Vec<Arc<Shard>>);

impl Frozen {
    /// All bindings (not ended sessions), in shard order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SlotId, &Slot)> {
        self.0
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.iter().map(move |(l, x)| (join(i, l), x)))
    }

    /// The ended sessions still kept, in shard order.
    pub(crate) fn iter_ended(&self) -> impl Iterator<Item = (SlotId, &Slot)> {
        self.0
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.iter_ended().map(move |(l, x)| (join(i, l), x)))
    }

    /// Slot `id`, if it holds a binding or an ended session.
    pub(crate) fn get(&self, id: SlotId) -> Option<&Slot> {
        let (shard, local) = split(id);
        self.0[shard].get(local)
    }

    /// The `maxlife` cap of slot `id`'s binding, if it has one.
    pub(crate) fn limit(&self, id: SlotId) -> Option<Millis> {
        let (shard, local) = split(id);
        self.0[shard].limit(local)
    }
}

/// The data plane's handle on a live store: each lookup takes one shard's read lock for
/// the time of a hash probe.
#[derive(Clone)]
pub(crate) struct Reader {
    cells: Arc<[Cell]>,
}

impl Reader {
    /// `(server id, expires_at)` of the binding of `(backend, key)`, if bound.
    pub(crate) fn lookup(&self, backend: u32, key: &[u8]) -> Option<(u32, Millis)> {
        let hash = hash_key(backend, key);
        let shard = self.cells[shard_of(hash)].read();
        let slot = shard.get(shard.find_any(hash, backend, key)?)?;
        (!slot.is_ended()).then(|| (slot.server(), slot.expires_at()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_reuse() {
        let mut st = Store::default();
        let a = st.insert(0, b"k1", 3, 100);
        let b = st.insert(1, b"k1", 4, 200);
        assert_ne!(a, b);
        assert_eq!(st.find(0, b"k1"), Some(a));
        assert_eq!(st.find(1, b"k1"), Some(b));
        assert_eq!(st.find(0, b"k2"), None);
        let r = st.remove(a).unwrap();
        assert_eq!(
            (r.key.as_bytes(), r.server, r.expires_at),
            (&b"k1"[..], 3, 100)
        );
        assert!(st.remove(a).is_none());
        assert_eq!(st.find(0, b"k1"), None);
        assert_eq!(st.len(), 1);
        st.check().unwrap();
    }

    #[test]
    fn a_copy_is_frozen_while_the_store_goes_on() {
        let mut st = Store::default();
        let ids: Vec<_> = (0..1000u32)
            .map(|i| st.insert(0, &i.to_be_bytes(), 1, 100))
            .collect();
        let copy = st.clone();
        let frozen = st.frozen();
        for &id in &ids[..500] {
            st.set_expires_at(id, 900);
        }
        st.remove(ids[999]);
        assert!(frozen.iter().all(|(_, s)| s.expires_at() == 100));
        assert_eq!(frozen.iter().count(), 1000);
        assert_eq!(copy.len(), 1000);
        assert_eq!(st.len(), 999);
        assert_eq!(st.get(ids[0]).map(|h| h.expires_at()), Some(900));
        assert_eq!(copy.get(ids[0]).map(|h| h.expires_at()), Some(100));
        st.check().unwrap();
        copy.check().unwrap();
    }

    #[test]
    fn the_reader_sees_writes_and_not_ended_sessions() {
        let mut st = Store::default();
        let reader = st.reader();
        let id = st.insert(2, b"sid", 7, 500);
        assert_eq!(reader.lookup(2, b"sid"), Some((7, 500)));
        st.end(id);
        assert_eq!(reader.lookup(2, b"sid"), None);
        st.revive(id, 8, 600);
        assert_eq!(reader.lookup(2, b"sid"), Some((8, 600)));
    }
}
