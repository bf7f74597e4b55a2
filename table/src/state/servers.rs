//! The server registry: interned backend and server names, each server's admin state,
//! live-binding count and last expiry, and the (small) set of draining servers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::model::{AdminState, Millis, ServerStatus};

/// A backend server as the table tracks it.
#[derive(Clone, Debug)]
pub(crate) struct Server {
    /// Interned id of the backend the server belongs to.
    pub(crate) backend: u32,
    /// Server name.
    pub(crate) name: Arc<str>,
    /// Admin state in force.
    pub(crate) state: AdminState,
    /// Live bindings to the server.
    pub(crate) count: u64,
    /// The latest `expires_at` any live binding of the server was given (derived, not in
    /// snapshots): an upper bound of when the last one expires, for the projected
    /// release of a drain.
    pub(crate) max_expiry: Millis,
    /// Latest `expires_at` among the server's expired bindings (0 if none).
    pub(crate) last_expiry: Millis,
    /// Log index at which the current drain was applied (0 when not draining). A member's
    /// watermark counts toward this drain's release only from a batch it took after it
    /// had applied this index.
    pub(crate) drain_index: u64,
    /// Each member's latest promise for the server (see [`crate::model::Promise`]).
    pub(crate) promised: BTreeMap<crate::model::NodeId, Millis>,
    /// The latest expiry among its bindings evicted from a full table (0 if none).
    pub(crate) evicted_until: Millis,
}

/// A backend: its name and its servers by name.
#[derive(Clone, Debug)]
pub(crate) struct Backend {
    /// Backend name.
    pub(crate) name: Arc<str>,
    /// Server ids by server name.
    pub(crate) servers: BTreeMap<Arc<str>, u32>,
}

/// All backends and servers ever mentioned. Ids are dense and never reused; they depend on
/// the order of first mention, so nothing observable is ordered by id.
#[derive(Clone, Debug, Default)]
pub(crate) struct Registry {
    backends: Vec<Backend>,
    backend_ids: BTreeMap<Arc<str>, u32>,
    servers: Vec<Server>,
    draining: BTreeSet<u32>,
}

impl Registry {
    /// The id of backend `name`, if known.
    pub(crate) fn backend_id(&self, name: &str) -> Option<u32> {
        self.backend_ids.get(name).copied()
    }

    /// The id of server `server` of backend `backend`, if known.
    pub(crate) fn server_id(&self, backend: &str, server: &str) -> Option<u32> {
        let b = self.backend_id(backend)?;
        self.backends[b as usize].servers.get(server).copied()
    }

    /// Interns a backend, returning its id.
    pub(crate) fn intern_backend(&mut self, name: &str) -> u32 {
        if let Some(id) = self.backend_id(name) {
            return id;
        }
        let id = u32::try_from(self.backends.len()).expect("more than 2^32 backends");
        let name: Arc<str> = Arc::from(name);
        self.backends.push(Backend {
            name: name.clone(),
            servers: BTreeMap::new(),
        });
        self.backend_ids.insert(name, id);
        id
    }

    /// Registers a server (state `Ready`) unless known. Returns its id and whether it is new.
    pub(crate) fn register(&mut self, backend: &str, server: &str) -> (u32, bool) {
        let b = self.intern_backend(backend);
        if let Some(&id) = self.backends[b as usize].servers.get(server) {
            return (id, false);
        }
        (self.push_server(b, server, AdminState::Ready, 0, 0), true)
    }

    /// Adds a new server to backend `b` (the caller checked it is not known yet).
    pub(crate) fn push_server(
        &mut self,
        b: u32,
        name: &str,
        state: AdminState,
        last_expiry: Millis,
        drain_index: u64,
    ) -> u32 {
        // u32::MAX marks free slots in the store, so it is never a server id.
        let id = u32::try_from(self.servers.len())
            .ok()
            .filter(|&id| id < super::store::MAX_SERVERS)
            .expect("too many servers");
        let name: Arc<str> = Arc::from(name);
        self.backends[b as usize].servers.insert(name.clone(), id);
        self.servers.push(Server {
            backend: b,
            name,
            state: AdminState::Ready,
            count: 0,
            max_expiry: 0,
            last_expiry,
            drain_index,
            promised: BTreeMap::new(),
            evicted_until: 0,
        });
        self.set_state(id, state);
        id
    }

    /// The server with id `id` (ids come from this registry).
    pub(crate) fn server(&self, id: u32) -> &Server {
        &self.servers[id as usize]
    }

    /// The server with id `id`, mutably. Use [`Registry::set_state`] to change its state.
    pub(crate) fn server_mut(&mut self, id: u32) -> &mut Server {
        &mut self.servers[id as usize]
    }

    /// The backend with id `id`.
    pub(crate) fn backend(&self, id: u32) -> &Backend {
        &self.backends[id as usize]
    }

    /// Sets a server's admin state, keeping the draining set in step.
    pub(crate) fn set_state(&mut self, id: u32, state: AdminState) {
        let server = &mut self.servers[id as usize];
        server.state = state;
        if !matches!(state, AdminState::Drain { .. }) {
            server.drain_index = 0;
        }
        if matches!(state, AdminState::Drain { .. }) {
            self.draining.insert(id);
        } else {
            self.draining.remove(&id);
        }
    }

    /// Every server's id (for the rare whole-registry passes: membership changes).
    pub(crate) fn ids(&self) -> std::ops::Range<u32> {
        0..self.servers.len() as u32
    }

    /// Ids of the draining servers.
    pub(crate) fn draining(&self) -> &BTreeSet<u32> {
        &self.draining
    }

    /// Backend ids ordered by backend name.
    pub(crate) fn backends_by_name(&self) -> impl Iterator<Item = u32> + '_ {
        self.backend_ids.values().copied()
    }

    /// Server ids ordered by (backend name, server name).
    pub(crate) fn servers_by_name(&self) -> impl Iterator<Item = u32> + '_ {
        self.backends_by_name()
            .flat_map(|b| self.backends[b as usize].servers.values().copied())
    }

    /// Number of backends known.
    pub(crate) fn backend_count(&self) -> usize {
        self.backends.len()
    }

    /// Number of servers known.
    pub(crate) fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// The outside view of server `id`.
    pub(crate) fn status(&self, id: u32) -> ServerStatus {
        let s = self.server(id);
        ServerStatus {
            backend: self.backend(s.backend).name.to_string(),
            server: s.name.to_string(),
            admin_state: s.state,
            bindings: s.count,
            last_expiry: s.last_expiry,
            promised_until: s.promised.values().copied().max().unwrap_or(0),
            evicted_until: s.evicted_until,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_is_idempotent_and_ordered_by_name() {
        let mut r = Registry::default();
        assert_eq!(r.register("web", "s2"), (0, true));
        assert_eq!(r.register("app", "s1"), (1, true));
        assert_eq!(r.register("web", "s1"), (2, true));
        assert_eq!(r.register("web", "s2"), (0, false));
        assert_eq!(r.servers_by_name().collect::<Vec<_>>(), vec![1, 2, 0]);
        assert_eq!(r.server_id("web", "s1"), Some(2));
        assert_eq!(r.server_id("web", "s9"), None);
        assert_eq!(r.server_id("nope", "s1"), None);
    }

    #[test]
    fn draining_set_follows_state() {
        let mut r = Registry::default();
        let (id, _) = r.register("app", "s1");
        r.set_state(
            id,
            AdminState::Drain {
                since: 5,
                deadline: None,
            },
        );
        assert!(r.draining().contains(&id));
        r.set_state(id, AdminState::Maint);
        assert!(r.draining().is_empty());
    }
}
