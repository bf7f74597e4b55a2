//! The stick table as a pure, deterministic state machine: bindings, TTL expiry, per-server
//! counts, admin states, member watermarks and the release rule. No I/O, clocks or locks.

mod apply;
mod change;
mod expiry;
mod invariants;
mod release;
mod servers;
mod snapshot;
mod snapshot_v2;
pub(crate) mod store;

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests_feed;
#[cfg(test)]
mod tests_release;
#[cfg(test)]
mod tests_rules;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use change::Change;
pub use release::{Holder, Projection};
pub use snapshot::SnapshotError;

use change::ChangeLog;
use expiry::ExpiryIndex;
use servers::Registry;
use store::Store;

use crate::model::{
    BindingInfo, Millis, NodeId, ServerStatus, TableCounters, TableLimits, TableParams,
};
use crate::view::TableReader;

/// The replicated stick table.
///
/// Every replica applies the same [`Proposal`](crate::model::Proposal)s and membership
/// changes in the same order and so holds the same state, byte for byte
/// ([`StickTable::encode_snapshot`]). Time only comes from the proposals.
#[derive(Clone, Default)]
pub struct StickTable {
    now: Millis,
    params: TableParams,
    limits: TableLimits,
    counters: TableCounters,
    members: BTreeSet<NodeId>,
    /// Watermark of every member (exactly the members).
    watermarks: BTreeMap<NodeId, Millis>,
    /// The log index each member had applied when it took its latest watermark (exactly
    /// the members; 0 until it reports).
    reported: BTreeMap<NodeId, u64>,
    /// The log index of the entry being applied (see [`StickTable::note_index`]).
    index: u64,
    registry: Registry,
    store: Store,
    expiry: ExpiryIndex,
    changes: ChangeLog,
}

impl fmt::Debug for StickTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StickTable")
            .field("now", &self.now)
            .field("params", &self.params)
            .field("bindings", &self.store.len())
            .field("servers", &self.registry.server_count())
            .field("watermarks", &self.watermarks)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl StickTable {
    /// An empty table: clock 0, default parameters, no members.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state-machine clock: the largest proposal time applied so far.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// The replicated parameters in force.
    pub fn params(&self) -> TableParams {
        self.params
    }

    /// The replicated bounds in force.
    pub fn limits(&self) -> TableLimits {
        self.limits
    }

    /// The cluster members, as last given to [`StickTable::set_members`].
    pub fn members(&self) -> &BTreeSet<NodeId> {
        &self.members
    }

    /// The log index each member had applied when it took its latest watermark.
    pub fn reported_applied(&self) -> &BTreeMap<NodeId, u64> {
        &self.reported
    }

    /// Each member's watermark (0 until it reports). Only members appear.
    pub fn watermarks(&self) -> &BTreeMap<NodeId, Millis> {
        &self.watermarks
    }

    /// The live binding of `key` in `backend`, if any.
    pub fn lookup(&self, backend: &str, key: &[u8]) -> Option<BindingInfo> {
        let b = self.registry.backend_id(backend)?;
        let slot = self.store.get(self.store.find(b, key)?)?;
        (slot.expires_at() >= self.horizon()).then(|| BindingInfo {
            key: key.to_vec(),
            server: self.registry.server(slot.server()).name.to_string(),
            expires_at: slot.expires_at(),
        })
    }

    /// A server's status, if the table knows the server.
    pub fn server(&self, backend: &str, server: &str) -> Option<ServerStatus> {
        Some(
            self.registry
                .status(self.registry.server_id(backend, server)?),
        )
    }

    /// Every known server, ordered by (backend, server) name.
    pub fn servers(&self) -> Vec<ServerStatus> {
        self.registry
            .servers_by_name()
            .map(|id| self.registry.status(id))
            .collect()
    }

    /// Names of the backends the table knows, sorted.
    pub fn backends(&self) -> Vec<String> {
        self.registry
            .backends_by_name()
            .map(|b| self.registry.backend(b).name.to_string())
            .collect()
    }

    /// Live bindings to a server (0 if the server is unknown). Constant time in table size.
    pub fn bindings_of(&self, backend: &str, server: &str) -> u64 {
        self.registry
            .server_id(backend, server)
            .map_or(0, |id| self.registry.server(id).count)
    }

    /// Up to `limit` live bindings of `backend`, the smallest keys first.
    ///
    /// Costs a pass over the whole table (meant for the admin API, not the data plane).
    pub fn bindings(&self, backend: &str, limit: usize) -> Vec<BindingInfo> {
        let Some(b) = self.registry.backend_id(backend) else {
            return Vec::new();
        };
        if limit == 0 {
            return Vec::new();
        }
        let frozen = self.store.frozen();
        let mut slots: Vec<_> = frozen
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.backend() == b && s.expires_at() >= self.horizon())
            .collect();
        if slots.len() > limit {
            slots.select_nth_unstable_by(limit, |x, y| x.key().cmp(y.key()));
            slots.truncate(limit);
        }
        slots.sort_unstable_by(|x, y| x.key().cmp(y.key()));
        slots
            .into_iter()
            .map(|s| BindingInfo {
                key: s.key().to_vec(),
                server: self.registry.server(s.server()).name.to_string(),
                expires_at: s.expires_at(),
            })
            .collect()
    }

    /// A copy of the replicated state for encoding a snapshot off the apply path, made in
    /// a moment that does not grow with the table: the bindings are shared copy-on-write
    /// (see the store), the expiry index and change feed are left out (a snapshot holds
    /// neither). Only [`StickTable::encode_snapshot`] and the read accessors are meaningful
    /// on it.
    pub fn frozen_copy(&self) -> StickTable {
        StickTable {
            now: self.now,
            params: self.params,
            limits: self.limits,
            counters: self.counters,
            members: self.members.clone(),
            watermarks: self.watermarks.clone(),
            reported: self.reported.clone(),
            index: self.index,
            registry: self.registry.clone(),
            store: self.store.clone(),
            expiry: ExpiryIndex::default(),
            changes: ChangeLog::disabled(),
        }
    }

    /// The data plane's reader of this table's bindings: it sees them as they are applied,
    /// with the backend and server names known now (see [`TableReader`]).
    pub fn reader(&self) -> TableReader {
        let reg = &self.registry;
        TableReader {
            store: Some(self.store.reader()),
            backends: reg
                .backends_by_name()
                .map(|b| (reg.backend(b).name.clone(), b))
                .collect(),
            servers: reg.ids().map(|id| reg.server(id).name.clone()).collect(),
        }
    }

    /// How many backends and servers the table knows: a [`TableReader`] made with fewer
    /// is out of date.
    pub fn names(&self) -> (usize, usize) {
        (self.registry.backend_count(), self.registry.server_count())
    }

    /// Live bindings in total.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the table holds no binding.
    pub fn is_empty(&self) -> bool {
        self.store.len() == 0
    }

    /// Cumulative counters (replicated: identical on every replica).
    pub fn counters(&self) -> TableCounters {
        self.counters
    }

    /// Changes to bindings and servers since the last call, in apply order.
    ///
    /// Changes are recorded from creation on; a table obtained from
    /// [`StickTable::decode_snapshot`] starts with none. (The data plane does not need
    /// them: it reads the table itself through [`StickTable::reader`].)
    pub fn take_changes(&mut self) -> Vec<Change> {
        self.changes.take()
    }

    /// Turns recording of [`Change`]s on (the default) or off. A table nobody takes changes
    /// from should turn it off, or the buffer grows with every apply.
    pub fn set_change_tracking(&mut self, on: bool) {
        self.changes.set_enabled(on);
    }
}
