//! One shard of the binding store: a slab of slots (key, backend, server, expiry) with a
//! free list and a hash index from (backend id, key) to slot. Knows nothing of names, time
//! or rules; ids here are local to the shard.
//!
//! The slab is made of fixed-size chunks, each shared copy-on-write: a write after a
//! snapshot copied the shard copies one chunk of slots, not the shard, and chunks never
//! move or grow, so the allocator reuses their memory exactly.

use std::sync::Arc;

use hashbrown::HashTable;

use super::key::Key;
use crate::model::Millis;

/// Marks a slot that holds no binding (in the `server` field).
const FREE: u32 = u32::MAX;

/// Marks a slot whose session ended (in the `server` field): not a binding any more, but
/// kept (key in the index, filed in the expiry index) until its old expiry, so a touch
/// still on its way from another node does not bring the session back; the sweep frees it
/// then, and entries never go stale.
const ENDED: u32 = u32::MAX - 1;

/// Server ids are below this (the two values above are markers).
pub(crate) const MAX_SERVERS: u32 = ENDED;

/// Slots per chunk.
const CHUNK: usize = 64;

/// One binding: 56 bytes, its key inline when short.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    key: Key,
    expires_at: Millis,
    server: u32,
    backend: u32,
}

impl Slot {
    /// The persistence key.
    pub(crate) fn key(&self) -> &[u8] {
        self.key.as_bytes()
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

    /// Moves the binding's expiry.
    pub(super) fn set_expires_at(&mut self, expires_at: Millis) {
        self.expires_at = expires_at;
    }

    /// Moves the binding to another server.
    pub(super) fn set_server(&mut self, server: u32) {
        debug_assert!(server < ENDED);
        self.server = server;
    }

    /// A slot holding nothing.
    fn free() -> Slot {
        Slot {
            key: Key::default(),
            expires_at: 0,
            server: FREE,
            backend: 0,
        }
    }

    pub(super) fn is_free(&self) -> bool {
        self.server == FREE
    }

    pub(super) fn is_ended(&self) -> bool {
        self.server == ENDED
    }
}

/// A binding taken out of the store (or, with `ended`, the rest of one whose session
/// ended earlier).
pub(crate) struct Removed {
    pub(crate) ended: bool,
    pub(crate) key: Key,
    pub(crate) expires_at: Millis,
    pub(crate) server: u32,
    pub(crate) backend: u32,
}

/// A slab of slots and its index. Cloned whole when a snapshot still holds it and it is
/// written (copy on write), so it is kept small by the number of shards.
#[derive(Clone, Debug, Default)]
pub(crate) struct Shard {
    chunks: Vec<Arc<[Slot]>>,
    /// Slots ever used (the rest of the last chunk is free and not on the free list).
    used: u32,
    free: Vec<u32>,
    index: HashTable<u32>,
    /// Slots whose session ended, still in the index.
    ended: u32,
    /// The `maxlife` cap of the bindings that have one: their expiry never passes it.
    limits: hashbrown::HashMap<u32, Millis>,
}

impl Shard {
    /// Room for `n` bindings.
    pub(super) fn with_capacity(n: usize) -> Shard {
        Shard {
            chunks: Vec::with_capacity(n.div_ceil(CHUNK)),
            index: HashTable::with_capacity(n),
            ..Shard::default()
        }
    }

    fn slot(&self, id: u32) -> Option<&Slot> {
        let (c, i) = (id as usize / CHUNK, id as usize % CHUNK);
        self.chunks.get(c).map(|chunk| &chunk[i])
    }

    fn slot_mut(&mut self, id: u32) -> Option<&mut Slot> {
        let (c, i) = (id as usize / CHUNK, id as usize % CHUNK);
        self.chunks
            .get_mut(c)
            .map(|chunk| &mut Arc::make_mut(chunk)[i])
    }

    /// The local id of `(backend, key)`'s slot, bound or ended.
    pub(super) fn find_any(&self, hash: u64, backend: u32, key: &[u8]) -> Option<u32> {
        self.index
            .find(hash, |&i| {
                self.slot(i)
                    .is_some_and(|s| s.backend == backend && s.key() == key)
            })
            .copied()
    }

    /// The slot `id`, if it holds a binding or an ended session.
    pub(crate) fn get(&self, id: u32) -> Option<&Slot> {
        self.slot(id).filter(|s| !s.is_free())
    }

    /// Adds a binding (the caller checked `(backend, key)` is not held). Returns its id.
    pub(super) fn insert(&mut self, hash: u64, slot: Slot, rehash: impl Fn(&Slot) -> u64) -> u32 {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                if self.used as usize == self.chunks.len() * CHUNK {
                    self.chunks.push((0..CHUNK).map(|_| Slot::free()).collect());
                }
                self.used += 1;
                self.used - 1
            }
        };
        if let Some(s) = self.slot_mut(id) {
            *s = slot;
        }
        let chunks = &self.chunks;
        self.index.insert_unique(hash, id, |&i| {
            rehash(&chunks[i as usize / CHUNK][i as usize % CHUNK])
        });
        id
    }

    /// The slot `id` for writing, if it holds a binding or an ended session.
    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut Slot> {
        self.slot_mut(id).filter(|s| !s.is_free())
    }

    /// Takes the binding out of slot `id` and frees the slot.
    pub(super) fn remove(&mut self, id: u32, hash: impl Fn(&Slot) -> u64) -> Option<Removed> {
        let h = hash(self.get(id)?);
        let s = self.get_mut(id)?;
        let removed = Removed {
            ended: s.is_ended(),
            key: std::mem::take(&mut s.key),
            expires_at: s.expires_at,
            server: s.server,
            backend: s.backend,
        };
        *s = Slot::free();
        if removed.ended {
            self.ended -= 1;
        }
        self.limits.remove(&id);
        if let Ok(entry) = self.index.find_entry(h, |&i| i == id) {
            entry.remove();
        }
        self.free.push(id);
        Some(removed)
    }

    /// Marks slot `id` ended; returns the server it was bound to.
    pub(super) fn end(&mut self, id: u32) -> Option<u32> {
        let s = self.get_mut(id).filter(|s| !s.is_ended())?;
        let server = std::mem::replace(&mut s.server, ENDED);
        self.ended += 1;
        Some(server)
    }

    /// Binds an ended slot again, to `server`, expiring at `expires_at` or its old expiry,
    /// whichever is later (so it stays filed right).
    pub(super) fn revive(&mut self, id: u32, server: u32, expires_at: Millis) {
        debug_assert!(server < ENDED);
        if let Some(s) = self.get_mut(id).filter(|s| s.is_ended()) {
            s.server = server;
            s.expires_at = s.expires_at.max(expires_at);
            self.ended -= 1;
        }
    }

    /// The `maxlife` cap of slot `id`'s binding, if it has one.
    pub(super) fn limit(&self, id: u32) -> Option<Millis> {
        self.limits.get(&id).copied()
    }

    /// Sets (or, with `None`, clears) the `maxlife` cap of slot `id`'s binding.
    pub(super) fn set_limit(&mut self, id: u32, limit: Option<Millis>) {
        match limit {
            Some(l) => self.limits.insert(id, l),
            None => self.limits.remove(&id),
        };
    }

    /// Bound slots (not ended), with their local ids.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Slot)> {
        self.all().filter(|(_, s)| !s.is_ended())
    }

    /// Ended slots still kept, with their local ids.
    pub(crate) fn iter_ended(&self) -> impl Iterator<Item = (u32, &Slot)> {
        self.all().filter(|(_, s)| s.is_ended())
    }

    fn all(&self) -> impl Iterator<Item = (u32, &Slot)> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .enumerate()
            .filter(|(_, s)| !s.is_free())
            .map(|(i, s)| (i as u32, s))
    }

    /// Bindings and ended slots held.
    pub(super) fn held(&self) -> usize {
        self.index.len()
    }

    /// Ended slots held.
    pub(super) fn ended(&self) -> usize {
        self.ended as usize
    }

    /// Checks that slab, index, free list and caps agree.
    pub(super) fn check(&self, hash: impl Fn(&Slot) -> u64) -> Result<(), String> {
        let held = self.all().count();
        let ended = self.iter_ended().count();
        if ended != self.ended as usize {
            return Err(format!("{ended} ended slots, {} counted", self.ended));
        }
        if held != self.index.len() {
            return Err(format!("slab holds {held}, index {}", self.index.len()));
        }
        if self.limits.keys().any(|&id| self.get(id).is_none()) {
            return Err("a maxlife cap on a free slot".into());
        }
        if held + self.free.len() != self.used as usize {
            return Err("free list does not cover the free slots".into());
        }
        for (id, s) in self.all() {
            if self.find_any(hash(s), s.backend, s.key()) != Some(id) {
                return Err(format!("slot {id} not found through the index"));
            }
        }
        Ok(())
    }
}

/// A new slot.
pub(super) fn slot(backend: u32, key: &[u8], server: u32, expires_at: Millis) -> Slot {
    debug_assert!(server < ENDED);
    Slot {
        key: Key::new(key),
        expires_at,
        server,
        backend,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slot_is_56_bytes() {
        assert_eq!(std::mem::size_of::<super::Slot>(), 56);
    }
}
