//! The node-local read view the data plane reads: bindings and server states as last
//! applied, behind sharded locks and an atomically swapped server list, so a request never
//! waits on Raft nor on one global lock. The state-machine adapter feeds it [`Change`]s.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::RwLock;

use crate::model::{AdminState, Millis, ServerStatus};
use crate::state::Change;

const SHARDS: usize = 32;

/// Where a key is bound, as seen by this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bound {
    /// Server name.
    pub server: Arc<str>,
    /// State-machine time at which the binding expires.
    pub expires_at: Millis,
}

/// One shard of a backend's bindings.
type Shard = RwLock<HashMap<Box<[u8]>, Bound>>;

/// One backend's bindings, split over shards by key hash.
struct BackendView {
    shards: Box<[Shard]>,
}

impl BackendView {
    fn new() -> BackendView {
        BackendView {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
        }
    }
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

/// The data plane's view of the stick table. Shared (`Arc`) between the state-machine
/// adapter, which writes it, and every request handler, which reads it.
pub struct ReadView {
    backends: ArcSwap<HashMap<String, Arc<BackendView>>>,
    names: RwLock<HashMap<String, Arc<str>>>,
    states: ArcSwap<ServerStates>,
    hasher: RandomState,
}

impl Default for ReadView {
    fn default() -> Self {
        ReadView::new()
    }
}

impl ReadView {
    /// An empty view.
    pub fn new() -> ReadView {
        ReadView {
            backends: ArcSwap::from_pointee(HashMap::new()),
            names: RwLock::new(HashMap::new()),
            states: ArcSwap::from_pointee(ServerStates::default()),
            hasher: RandomState::new(),
        }
    }

    /// Where `key` is bound in `backend`, if anywhere.
    pub fn lookup(&self, backend: &str, key: &[u8]) -> Option<Bound> {
        let backends = self.backends.load();
        let view = backends.get(backend)?;
        view.shards[self.shard(key)].read().get(key).cloned()
    }

    /// The server states as last applied.
    pub fn states(&self) -> Arc<ServerStates> {
        self.states.load_full()
    }

    /// Number of bindings held in the view (for metrics and tests).
    pub fn len(&self) -> usize {
        let backends = self.backends.load();
        backends
            .values()
            .flat_map(|b| b.shards.iter())
            .map(|s| s.read().len())
            .sum()
    }

    /// True when the view holds no binding.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies changes produced by the state machine, in order.
    pub fn apply(&self, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::Upsert {
                    backend,
                    key,
                    server,
                    expires_at,
                } => {
                    let server = self.intern(&server);
                    let view = self.backend(&backend);
                    view.shards[self.shard(&key)]
                        .write()
                        .insert(key.into_boxed_slice(), Bound { server, expires_at });
                }
                Change::Remove { backend, key } => {
                    if let Some(view) = self.backends.load().get(&*backend) {
                        view.shards[self.shard(&key)].write().remove(key.as_slice());
                    }
                }
                Change::Servers => {}
            }
        }
    }

    /// Publishes the server list after an apply.
    pub fn publish_states(&self, states: ServerStates) {
        self.states.store(Arc::new(states));
    }

    /// Drops everything (before a snapshot is installed).
    pub fn clear(&self) {
        self.backends.store(Arc::new(HashMap::new()));
    }

    fn shard(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    fn intern(&self, name: &str) -> Arc<str> {
        if let Some(n) = self.names.read().get(name) {
            return n.clone();
        }
        self.names
            .write()
            .entry(name.to_string())
            .or_insert_with(|| Arc::from(name))
            .clone()
    }

    fn backend(&self, name: &str) -> Arc<BackendView> {
        if let Some(b) = self.backends.load().get(name) {
            return b.clone();
        }
        // Only the single applying task adds backends, so load-modify-store does not race.
        let mut next = HashMap::clone(&self.backends.load());
        let view = next
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(BackendView::new()))
            .clone();
        self.backends.store(Arc::new(next));
        view
    }
}
