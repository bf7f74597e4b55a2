//! Canonical snapshots: a format version byte, then bincode 2 (serde, standard config) of
//! the state with names and keys in sorted order, so equal states encode to equal bytes.

use bincode::config;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use super::StickTable;
use super::store::{Frozen, SlotId, Store};
use crate::model::{AdminState, Millis, NodeId, TableCounters, TableLimits, TableParams};

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u8 = 3;

/// Why a snapshot could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The input holds no byte at all.
    #[error("empty snapshot")]
    Empty,
    /// The format version byte is not one this build reads.
    #[error("unsupported snapshot format version {0} (this build reads versions 2 and 3)")]
    UnsupportedVersion(u8),
    /// The bytes are not a well-formed encoding.
    #[error("malformed snapshot: {0}")]
    Malformed(#[from] bincode::error::DecodeError),
    /// Bytes follow the end of the snapshot.
    #[error("{0} trailing bytes after the snapshot")]
    TrailingBytes(usize),
    /// Well-formed, but not a state the table can be in (unsorted, duplicate or dangling).
    #[error("inconsistent snapshot: {0}")]
    Invalid(&'static str),
}

/// A byte string serialized as bytes (length + raw bytes), not as a sequence of `u8`s.
#[derive(Clone, Copy)]
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

// The `*Out` (encode) and `*In` (decode) structs must list the same fields in the same order.

#[derive(Serialize)]
struct SnapOut<'a> {
    now: Millis,
    index: u64,
    params: TableParams,
    counters: TableCounters,
    watermarks: Vec<(NodeId, Millis, u64)>,
    backends: Vec<BackendOut<'a>>,
    limits: TableLimits,
}

#[derive(Serialize)]
struct BackendOut<'a> {
    name: &'a str,
    servers: Vec<ServerOut<'a>>,
    bindings: BindingsOut<'a>,
    /// Sessions ended but still kept (see the store's `ENDED`): (key, expiry), by key.
    ended: Vec<(Bytes<'a>, Millis)>,
}

#[derive(Serialize)]
struct ServerOut<'a> {
    name: &'a str,
    state: AdminState,
    last_expiry: Millis,
    drain_index: u64,
    promised: Vec<(NodeId, Millis)>,
    evicted_until: Millis,
}

/// One backend's bindings, sorted by key; `server` is the index in the backend's servers.
struct BindingsOut<'a> {
    store: &'a Frozen,
    slots: Vec<SlotId>,
    server_pos: &'a [u32],
}

#[derive(Serialize)]
struct BindingOut<'a> {
    key: Bytes<'a>,
    server: u32,
    expires_at: Millis,
    limit: Option<Millis>,
}

impl Serialize for BindingsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // `slots` was collected from the store just before: every id holds a binding.
        let mut seq = s.serialize_seq(Some(self.slots.len()))?;
        for &id in &self.slots {
            let Some(slot) = self.store.get(id) else {
                continue;
            };
            seq.serialize_element(&BindingOut {
                key: Bytes(slot.key()),
                server: self.server_pos[slot.server() as usize],
                expires_at: slot.expires_at(),
                limit: self.store.limit(id),
            })?;
        }
        seq.end()
    }
}

// Names and keys are borrowed from the input: the decoder checks a length against the bytes
// left before using it, so garbage lengths cannot make it allocate more than the input.

#[derive(Deserialize)]
pub(super) struct SnapIn<'a> {
    pub(super) now: Millis,
    pub(super) index: u64,
    pub(super) params: TableParams,
    pub(super) counters: TableCounters,
    pub(super) watermarks: Vec<(NodeId, Millis, u64)>,
    #[serde(borrow)]
    pub(super) backends: Vec<BackendIn<'a>>,
    pub(super) limits: TableLimits,
}

#[derive(Deserialize)]
pub(super) struct BackendIn<'a> {
    pub(super) name: &'a str,
    #[serde(borrow)]
    pub(super) servers: Vec<ServerIn<'a>>,
    #[serde(borrow)]
    pub(super) bindings: Vec<BindingIn<'a>>,
    #[serde(borrow)]
    pub(super) ended: Vec<(&'a [u8], Millis)>,
}

#[derive(Deserialize)]
pub(super) struct ServerIn<'a> {
    pub(super) name: &'a str,
    pub(super) state: AdminState,
    pub(super) last_expiry: Millis,
    pub(super) drain_index: u64,
    pub(super) promised: Vec<(NodeId, Millis)>,
    pub(super) evicted_until: Millis,
}

#[derive(Deserialize)]
pub(super) struct BindingIn<'a> {
    key: &'a [u8],
    server: u32,
    expires_at: Millis,
    limit: Option<Millis>,
}

impl StickTable {
    /// Canonical, deterministic encoding of the whole replicated state: a format version
    /// byte, then bincode 2 (serde, `config::standard()`). Tables holding the same state
    /// encode to identical bytes whatever order things happened in. The change feed is
    /// not part of it.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_snapshot_into(&mut out)
            .expect("encoding the table into memory cannot fail");
        out
    }

    /// [`StickTable::encode_snapshot`] written to `w` as it is encoded, so a large table
    /// is never held encoded in memory.
    pub fn encode_snapshot_into(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let reg = &self.registry;
        let store = self.store.frozen();
        let mut server_pos = vec![0u32; reg.server_count()];
        let mut per_backend: Vec<Vec<SlotId>> = vec![Vec::new(); reg.backend_count()];
        for (id, slot) in store.iter() {
            per_backend[slot.backend() as usize].push(id);
        }
        for slots in &mut per_backend {
            slots.sort_unstable_by(|&a, &b| {
                let key = |id| store.get(id).map(|s| s.key());
                key(a).cmp(&key(b))
            });
        }
        let mut ended: Vec<Vec<(Bytes<'_>, Millis)>> = vec![Vec::new(); reg.backend_count()];
        for (_, slot) in store.iter_ended() {
            ended[slot.backend() as usize].push((Bytes(slot.key()), slot.expires_at()));
        }
        for e in &mut ended {
            e.sort_unstable_by(|a, b| a.0.0.cmp(b.0.0));
        }
        for b in reg.backends_by_name() {
            for (pos, &sid) in reg.backend(b).servers.values().enumerate() {
                server_pos[sid as usize] = pos as u32;
            }
        }
        let backends = reg
            .backends_by_name()
            .map(|b| {
                let backend = reg.backend(b);
                BackendOut {
                    name: &backend.name,
                    servers: backend
                        .servers
                        .values()
                        .map(|&sid| {
                            let s = reg.server(sid);
                            ServerOut {
                                name: &s.name,
                                state: s.state,
                                last_expiry: s.last_expiry,
                                drain_index: s.drain_index,
                                promised: s.promised.iter().map(|(&n, &u)| (n, u)).collect(),
                                evicted_until: s.evicted_until,
                            }
                        })
                        .collect(),
                    bindings: BindingsOut {
                        store: &store,
                        slots: std::mem::take(&mut per_backend[b as usize]),
                        server_pos: &server_pos,
                    },
                    ended: std::mem::take(&mut ended[b as usize]),
                }
            })
            .collect();
        let snap = SnapOut {
            now: self.now,
            index: self.index,
            params: self.params,
            counters: self.counters,
            watermarks: self
                .watermarks
                .iter()
                .map(|(&n, &w)| (n, w, self.reported.get(&n).copied().unwrap_or(0)))
                .collect(),
            backends,
            limits: self.limits,
        };
        w.write_all(&[SNAPSHOT_FORMAT_VERSION])?;
        bincode::serde::encode_into_std_write(&snap, w, config::standard())
            .map_err(std::io::Error::other)?;
        Ok(())
    }

    /// Decodes a snapshot made by [`StickTable::encode_snapshot`].
    ///
    /// Rejects anything that is not exactly a canonical encoding of a reachable state
    /// (unsorted or duplicate names, keys or members, dangling server references, dead
    /// bindings, trailing bytes). Never panics; allocation is bounded by the input length.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<StickTable, SnapshotError> {
        let (&version, body) = bytes.split_first().ok_or(SnapshotError::Empty)?;
        let (snap, read): (SnapIn<'_>, usize) = match version {
            SNAPSHOT_FORMAT_VERSION => {
                bincode::serde::borrow_decode_from_slice(body, config::standard())?
            }
            2 => super::snapshot_v2::decode(body)?,
            _ => return Err(SnapshotError::UnsupportedVersion(version)),
        };
        if read != body.len() {
            return Err(SnapshotError::TrailingBytes(body.len() - read));
        }
        build(snap)
    }
}

fn strictly_increasing<T: Ord>(items: impl IntoIterator<Item = T>) -> bool {
    let mut prev = None;
    for item in items {
        if prev.as_ref().is_some_and(|p| *p >= item) {
            return false;
        }
        prev = Some(item);
    }
    true
}

fn build(snap: SnapIn<'_>) -> Result<StickTable, SnapshotError> {
    use SnapshotError::Invalid;
    if !strictly_increasing(snap.watermarks.iter().map(|&(n, _, _)| n)) {
        return Err(Invalid("members not sorted or repeated"));
    }
    if !strictly_increasing(snap.backends.iter().map(|b| b.name)) {
        return Err(Invalid("backends not sorted or repeated"));
    }
    let slowest = snap.watermarks.iter().map(|&(_, w, _)| w).min();
    let horizon = super::apply::expiry_horizon(snap.now, &snap.params, slowest);
    let mut total = 0usize;
    for b in &snap.backends {
        if b.servers.is_empty() {
            return Err(Invalid("backend without servers"));
        }
        if !strictly_increasing(b.servers.iter().map(|s| s.name)) {
            return Err(Invalid("servers not sorted or repeated"));
        }
        let draining = |s: &ServerIn<'_>| matches!(s.state, AdminState::Drain { .. });
        if b.servers.iter().any(|s| !draining(s) && s.drain_index != 0) {
            return Err(Invalid("drain index on a server not draining"));
        }
        if b.servers.iter().any(|s| s.drain_index > snap.index) {
            return Err(Invalid("drain index ahead of the table's index"));
        }
        let member = |n: NodeId| snap.watermarks.iter().any(|&(m, _, _)| m == n);
        for s in &b.servers {
            if !strictly_increasing(s.promised.iter().map(|&(n, _)| n)) {
                return Err(Invalid("promises not sorted or repeated"));
            }
            if s.promised.iter().any(|&(n, _)| !member(n)) {
                return Err(Invalid("promise of a node that is not a member"));
            }
        }
        if !strictly_increasing(b.bindings.iter().map(|x| x.key)) {
            return Err(Invalid("keys not sorted or repeated"));
        }
        if !strictly_increasing(b.ended.iter().map(|&(k, _)| k)) {
            return Err(Invalid("ended keys not sorted or repeated"));
        }
        let bound = |k: &[u8]| b.bindings.binary_search_by(|x| x.key.cmp(k)).is_ok();
        if b.ended.iter().any(|&(k, e)| bound(k) || e < horizon) {
            return Err(Invalid("an ended session also bound, or already past"));
        }
        for x in &b.bindings {
            if x.server as usize >= b.servers.len() {
                return Err(Invalid("binding to an unknown server"));
            }
            if x.expires_at < horizon {
                return Err(Invalid("binding already expired"));
            }
        }
        total += b.bindings.len();
    }

    let mut t = StickTable {
        now: snap.now,
        params: snap.params,
        counters: snap.counters,
        index: snap.index,
        members: snap.watermarks.iter().map(|&(n, _, _)| n).collect(),
        watermarks: snap.watermarks.iter().map(|&(n, w, _)| (n, w)).collect(),
        reported: snap.watermarks.iter().map(|&(n, _, a)| (n, a)).collect(),
        limits: snap.limits,
        store: Store::with_capacity(total),
        ..StickTable::default()
    };
    for b in snap.backends {
        let bid = t.registry.intern_backend(b.name);
        let ids: Vec<u32> = b
            .servers
            .iter()
            .map(|s| {
                let id = t
                    .registry
                    .push_server(bid, s.name, s.state, s.last_expiry, s.drain_index);
                let server = t.registry.server_mut(id);
                server.promised = s.promised.iter().copied().collect();
                server.evicted_until = s.evicted_until;
                id
            })
            .collect();
        for x in b.bindings {
            let sid = ids[x.server as usize];
            let slot = t.store.insert(bid, x.key, sid, x.expires_at);
            t.store.set_limit(slot, x.limit);
            t.expiry.file(slot, x.expires_at);
            let server = t.registry.server_mut(sid);
            server.count += 1;
            server.max_expiry = server.max_expiry.max(x.expires_at);
        }
        for (key, expires_at) in b.ended {
            // Any server will do: an ended slot belongs to none.
            let slot = t.store.insert(bid, key, ids[0], expires_at);
            t.expiry.file(slot, expires_at);
            t.store.end(slot);
        }
    }
    Ok(t)
}
