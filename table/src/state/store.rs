//! The binding store: a slab of slots (key, backend, server, expiry) with a free list, and a
//! hash index from (backend id, key) to slot. Knows nothing of names, time or rules.

use std::hash::{DefaultHasher, Hasher};

use hashbrown::HashTable;

use crate::model::Millis;

/// Index of a slot in the slab.
pub(crate) type SlotId = u32;

/// Marks a slot that holds no binding (in the `server` field).
const FREE: u32 = u32::MAX;

/// Marks a slot whose session ended (in the `server` field): not a binding any more, but
/// kept (key in the index, filed in the expiry index) until its old expiry, so a touch
/// still on its way from another node does not bring the session back; the sweep frees it
/// then, and entries never go stale.
const ENDED: u32 = u32::MAX - 1;

/// Server ids are below this (the two values above are markers).
pub(crate) const MAX_SERVERS: u32 = ENDED;

/// One binding, 32 bytes inline plus its key on the heap.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    key: Box<[u8]>,
    expires_at: Millis,
    server: u32,
    backend: u32,
}

impl Slot {
    /// The persistence key.
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    /// When the binding expires.
    pub(crate) fn expires_at(&self) -> Millis {
        self.expires_at
    }

    /// Interned server id.
    pub(crate) fn server(&self) -> u32 {
        self.server
    }

    /// Interned backend id.
    pub(crate) fn backend(&self) -> u32 {
        self.backend
    }

    fn is_free(&self) -> bool {
        self.server == FREE
    }

    fn is_ended(&self) -> bool {
        self.server == ENDED
    }
}

/// A binding taken out of the store (or, with `ended`, the rest of one whose session
/// ended earlier).
pub(crate) struct Removed {
    pub(crate) ended: bool,
    pub(crate) key: Box<[u8]>,
    pub(crate) expires_at: Millis,
    pub(crate) server: u32,
    pub(crate) backend: u32,
}

/// Slab of bindings plus the (backend, key) index.
///
/// The hash is a fixed-key SipHash (`std::hash::DefaultHasher::new()`), so the index is
/// deterministic; it is never iterated to produce output anyway.
#[derive(Clone, Debug, Default)]
pub(crate) struct Store {
    slots: Vec<Slot>,
    free: Vec<SlotId>,
    index: HashTable<SlotId>,
    /// Slots whose session ended, still in the index.
    ended: usize,
    /// The `maxlife` cap of the bindings that have one: their expiry never passes it.
    limits: hashbrown::HashMap<SlotId, Millis>,
}

fn hash_key(backend: u32, key: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write_u32(backend);
    h.write(key);
    h.finish()
}

impl Store {
    /// An empty store with room for `n` bindings.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Store {
            slots: Vec::with_capacity(n),
            free: Vec::new(),
            index: HashTable::with_capacity(n),
            ended: 0,
            limits: hashbrown::HashMap::new(),
        }
    }

    /// Number of bindings held.
    pub(crate) fn len(&self) -> usize {
        self.index.len() - self.ended
    }

    /// The slot bound to `(backend, key)`, if any.
    pub(crate) fn find(&self, backend: u32, key: &[u8]) -> Option<SlotId> {
        self.find_any(backend, key)
            .filter(|&id| !self.slots[id as usize].is_ended())
    }

    /// The slot of `(backend, key)`, bound or ended (see [`Store::end`]).
    pub(crate) fn find_any(&self, backend: u32, key: &[u8]) -> Option<SlotId> {
        let slots = &self.slots;
        self.index
            .find(hash_key(backend, key), |&i| {
                let s = &slots[i as usize];
                s.backend == backend && *s.key == *key
            })
            .copied()
    }

    /// The slot `id`, if it holds a binding.
    pub(crate) fn get(&self, id: SlotId) -> Option<&Slot> {
        self.slots.get(id as usize).filter(|s| !s.is_free())
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
        debug_assert_ne!(server, FREE);
        let slot = Slot {
            key: Box::from(key),
            expires_at,
            server,
            backend,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                let id = SlotId::try_from(self.slots.len()).expect("more than 2^32 bindings");
                self.slots.push(slot);
                id
            }
        };
        let slots = &self.slots;
        self.index.insert_unique(hash_key(backend, key), id, |&i| {
            let s = &slots[i as usize];
            hash_key(s.backend, &s.key)
        });
        id
    }

    /// Moves the binding's expiry (the caller keeps the expiry index right).
    pub(crate) fn set_expires_at(&mut self, id: SlotId, expires_at: Millis) {
        if let Some(s) = self.slots.get_mut(id as usize).filter(|s| !s.is_free()) {
            s.expires_at = expires_at;
        }
    }

    /// Moves the binding to another server of the same backend (the caller keeps the
    /// per-server counts right).
    pub(crate) fn set_server(&mut self, id: SlotId, server: u32) {
        debug_assert_ne!(server, FREE);
        if let Some(s) = self.slots.get_mut(id as usize).filter(|s| !s.is_free()) {
            s.server = server;
        }
    }

    /// Takes the binding out of slot `id` and frees the slot.
    pub(crate) fn remove(&mut self, id: SlotId) -> Option<Removed> {
        let s = self.slots.get_mut(id as usize).filter(|s| !s.is_free())?;
        let hash = hash_key(s.backend, &s.key);
        if s.is_ended() {
            self.ended -= 1;
        }
        self.limits.remove(&id);
        let removed = Removed {
            ended: s.is_ended(),
            key: std::mem::take(&mut s.key),
            expires_at: s.expires_at,
            server: s.server,
            backend: s.backend,
        };
        s.server = FREE;
        s.expires_at = 0;
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == id) {
            entry.remove();
        }
        self.free.push(id);
        Some(removed)
    }

    /// Ends the binding in slot `id`: it stops being a binding but keeps its slot (see
    /// [`ENDED`]) until the expiry sweep frees it. Returns its server.
    pub(crate) fn end(&mut self, id: SlotId) -> Option<u32> {
        let s = self
            .slots
            .get_mut(id as usize)
            .filter(|s| !s.is_free() && !s.is_ended())?;
        let server = s.server;
        s.server = ENDED;
        self.ended += 1;
        Some(server)
    }

    /// Makes an ended slot a binding again (a new bind of its key), to `server`, expiring
    /// at `expires_at` or its old expiry, whichever is later (so it stays filed right).
    pub(crate) fn revive(&mut self, id: SlotId, server: u32, expires_at: Millis) {
        debug_assert!(server < ENDED);
        if let Some(s) = self.slots.get_mut(id as usize).filter(|s| s.is_ended()) {
            s.server = server;
            s.expires_at = s.expires_at.max(expires_at);
            self.ended -= 1;
        }
    }

    /// The `maxlife` cap of slot `id`'s binding, if it has one.
    pub(crate) fn limit(&self, id: SlotId) -> Option<Millis> {
        self.limits.get(&id).copied()
    }

    /// Sets (or, with `None`, clears) the `maxlife` cap of slot `id`'s binding.
    pub(crate) fn set_limit(&mut self, id: SlotId, limit: Option<Millis>) {
        match limit {
            Some(l) => {
                self.limits.insert(id, l);
            }
            None => {
                self.limits.remove(&id);
            }
        }
    }

    /// True when slot `id` holds an ended session.
    pub(crate) fn is_ended(&self, id: SlotId) -> bool {
        self.slots.get(id as usize).is_some_and(Slot::is_ended)
    }

    /// All bindings in slab order (deterministic only for a given history; sort for output).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SlotId, &Slot)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_free() && !s.is_ended())
            .map(|(i, s)| (i as SlotId, s))
    }

    /// The ended sessions still kept (see [`ENDED`]), in slab order.
    pub(crate) fn iter_ended(&self) -> impl Iterator<Item = (SlotId, &Slot)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_ended())
            .map(|(i, s)| (i as SlotId, s))
    }

    /// Checks that slab and index agree (tests and invariant checks only).
    pub(crate) fn check(&self) -> Result<(), String> {
        let live = self.iter().count();
        let ended = self.slots.iter().filter(|s| s.is_ended()).count();
        if ended != self.ended {
            return Err(format!("{ended} ended slots, {} counted", self.ended));
        }
        if live + ended != self.index.len() {
            return Err(format!(
                "slab holds {live} bindings, index {}",
                self.index.len()
            ));
        }
        if self.limits.keys().any(|&id| self.get(id).is_none()) {
            return Err("a maxlife cap on a free slot".into());
        }
        if live + ended + self.free.len() != self.slots.len() {
            return Err("free list does not cover the free slots".into());
        }
        for (id, s) in self.iter() {
            if self.find(s.backend, &s.key) != Some(id) {
                return Err(format!("slot {id} not found through the index"));
            }
        }
        Ok(())
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
        assert_eq!((&*r.key, r.server, r.expires_at), (&b"k1"[..], 3, 100));
        assert!(st.remove(a).is_none());
        assert_eq!(st.find(0, b"k1"), None);
        let c = st.insert(0, b"k3", 5, 300);
        assert_eq!(c, a, "freed slot is reused");
        assert_eq!(st.len(), 2);
        st.check().unwrap();
    }

    #[test]
    fn slot_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
    }
}
