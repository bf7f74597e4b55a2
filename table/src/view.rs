//! The node-local read view the data plane reads: the state machine's own bindings (read
//! shard by shard under short locks, never a second copy) and an atomically swapped server
//! list, so a request never waits on Raft nor on one global lock, nor on anything whose
//! cost grows with the table.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::model::{AdminState, Millis, ServerStatus};
use crate::state::store::Reader;

/// Where a key is bound, as seen by this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bound {
    /// Server name.
    pub server: Arc<str>,
    /// State-machine time at which the binding expires.
    pub expires_at: Millis,
}

/// Server states as last applied, for balancing and routing decisions.
#[derive(Clone, Debug, Default)]
pub struct ServerStates {
    /// Every server the table knows, ordered by (backend, server).
    pub servers: Vec<ServerStatus>,
    /// The state machine's clock when this list was published.
    pub now: Millis,
}

impl ServerStates {
    /// The admin state of a server; servers the table has never heard of are `Ready`.
    pub fn admin_state(&self, backend: &str, server: &str) -> AdminState {
        self.servers
            .iter()
            .find(|s| s.backend == backend && s.server == server)
            .map(|s| s.admin_state)
            .unwrap_or_default()
    }
}

/// A live table's bindings as the data plane reads them, with the names they were
/// interned under (see [`crate::state::StickTable::reader`]). Names only grow, so a reader
/// is replaced when a backend or server is added, and whole when a snapshot is installed.
#[derive(Clone, Default)]
pub struct TableReader {
    pub(crate) store: Option<Reader>,
    pub(crate) backends: HashMap<Arc<str>, u32>,
    pub(crate) servers: Vec<Arc<str>>,
}

impl TableReader {
    /// Where `key` is bound in `backend`, if anywhere.
    pub fn lookup(&self, backend: &str, key: &[u8]) -> Option<Bound> {
        let b = *self.backends.get(backend)?;
        let (server, expires_at) = self.store.as_ref()?.lookup(b, key)?;
        Some(Bound {
            server: self.servers.get(server as usize)?.clone(),
            expires_at,
        })
    }

    /// How many names it knows: a reader with fewer is out of date.
    pub(crate) fn names(&self) -> (usize, usize) {
        (self.backends.len(), self.servers.len())
    }
}

/// The data plane's view of the stick table. Shared (`Arc`) between the state-machine
/// adapter, which publishes to it, and every request handler, which reads it.
#[derive(Default)]
pub struct ReadView {
    table: ArcSwap<TableReader>,
    states: ArcSwap<ServerStates>,
}

impl ReadView {
    /// An empty view.
    pub fn new() -> ReadView {
        ReadView::default()
    }

    /// Where `key` is bound in `backend`, if anywhere.
    pub fn lookup(&self, backend: &str, key: &[u8]) -> Option<Bound> {
        self.table.load().lookup(backend, key)
    }

    /// The server states as last applied.
    pub fn states(&self) -> Arc<ServerStates> {
        self.states.load_full()
    }

    /// Publishes the server list after an apply.
    pub fn publish_states(&self, states: ServerStates) {
        self.states.store(Arc::new(states));
    }

    /// Reads bindings from `reader` from now on (a table was opened or installed, or it
    /// learned a new name).
    pub fn attach(&self, reader: TableReader) {
        self.table.store(Arc::new(reader));
    }

    /// The names the attached reader knows (see [`TableReader`]).
    pub(crate) fn names(&self) -> (usize, usize) {
        self.table.load().names()
    }
}
