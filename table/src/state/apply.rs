//! Applying log entries and membership changes: the clock, binds, touches, watermarks,
//! admin states, parameters and expiry. Release is evaluated last (see `release.rs`).

use std::collections::BTreeSet;

use super::StickTable;
use super::change::Change;
use super::store::SlotId;
use crate::model::{
    AdminState, Bind, Command, Millis, NodeBatch, NodeId, Proposal, RequestedState, Response,
    SessionEnd, TableParams, Touch,
};

/// What one bind or touch came to.
enum Outcome {
    Bound,
    Conflict,
    Touched,
    Revived,
    Rebound,
    Refused,
}

/// `expires_at`, held to a binding's `maxlife` cap if it has one.
fn cap(expires_at: Millis, limit: Option<Millis>) -> Millis {
    limit.map_or(expires_at, |l| expires_at.min(l))
}

/// The expiry horizon for clock `now` and the slowest member's watermark (see
/// [`StickTable::horizon`]).
pub(crate) fn expiry_horizon(now: Millis, params: &TableParams, slowest: Option<Millis>) -> Millis {
    match slowest {
        None => now,
        Some(w) => now.min(
            w.saturating_sub(params.max_skew)
                .max(now.saturating_sub(params.expiry_grace)),
        ),
    }
}

impl StickTable {
    /// Notes the log index of the entry about to be applied (every entry, membership and
    /// blank ones included). A drain remembers it, so only watermarks taken by a member
    /// after it applied the drain count toward its release. Replicas apply the same log,
    /// so this is replicated state like the rest.
    pub fn note_index(&mut self, index: u64) {
        self.index = self.index.max(index);
    }

    /// Applies one log entry's proposal.
    ///
    /// Advances the clock to `max(clock, p.now)`, expires bindings whose `expires_at` is
    /// before the clock, applies the command, then evaluates the release rule and drain
    /// deadlines. (Expiry runs before the command rather than after: a command never makes
    /// anything expire, and this way a bind or touch never sees a dead binding as live.)
    pub fn apply(&mut self, p: &Proposal) -> Response {
        self.now = self.now.max(p.now);
        self.expire();
        let response = match &p.command {
            Command::Tick => Response::Empty,
            Command::Batch(batch) => self.apply_batch(batch),
            Command::SetServerState {
                backend,
                server,
                state,
            } => {
                let id = self.set_state(backend, server, *state);
                self.evaluate_release();
                return Response::ServerState(self.registry.server(id).state);
            }
            Command::SetParams(params) => {
                self.params = *params;
                Response::Params
            }
            Command::SetLimits(limits) => {
                self.limits = *limits;
                self.make_room(0);
                Response::Params
            }
        };
        // A batch's watermark or new parameters may have moved the expiry horizon.
        self.expire();
        self.evaluate_release();
        response
    }

    /// Bindings whose `expires_at` is before this time are dead. It is the clock, held
    /// back to just below the slowest member's watermark (less the skew) so a touch still
    /// on its way from a node cannot find its binding gone, but never more than
    /// `expiry_grace` behind the clock.
    pub fn horizon(&self) -> Millis {
        expiry_horizon(
            self.now,
            &self.params,
            self.watermarks.values().min().copied(),
        )
    }

    /// Membership changed (at the position of a Raft membership entry).
    ///
    /// New members start with watermark 0 and block release until they report; removed
    /// members' watermarks are dropped and stop counting. Re-evaluates release.
    pub fn set_members(&mut self, members: &BTreeSet<NodeId>) {
        self.watermarks.retain(|node, _| members.contains(node));
        self.reported.retain(|node, _| members.contains(node));
        for id in self.registry.ids() {
            let promised = &mut self.registry.server_mut(id).promised;
            promised.retain(|node, _| members.contains(node));
        }
        for &m in members {
            self.watermarks.entry(m).or_insert(0);
            self.reported.entry(m).or_insert(0);
        }
        self.members = members.clone();
        self.expire();
        self.evaluate_release();
    }

    fn apply_batch(&mut self, batch: &NodeBatch) -> Response {
        let (mut bound, mut conflicts, mut refused) = (0u32, 0u32, 0u32);
        for b in &batch.binds {
            match self.bind(b) {
                Outcome::Bound => bound = bound.saturating_add(1),
                Outcome::Conflict => conflicts = conflicts.saturating_add(1),
                Outcome::Refused => refused = refused.saturating_add(1),
                Outcome::Touched | Outcome::Revived | Outcome::Rebound => {}
            }
        }
        for t in &batch.touches {
            self.touch(t);
        }
        for e in &batch.ends {
            self.end(e);
        }
        if let Some(w) = self.watermarks.get_mut(&batch.node) {
            *w = (*w).max(batch.watermark);
        }
        if let Some(a) = self.reported.get_mut(&batch.node) {
            *a = (*a).max(batch.applied);
        }
        if let Some(promises) = &batch.promises
            && self.members.contains(&batch.node)
        {
            // Servers are few: the pass does not grow with the table.
            for id in self.registry.ids() {
                self.registry.server_mut(id).promised.remove(&batch.node);
            }
            for p in promises {
                let (_, id) = self.mention(&p.backend, &p.server);
                let promised = self.registry.server_mut(id).promised.entry(batch.node);
                let until = promised.or_insert(0);
                *until = (*until).max(p.until);
            }
        }
        Response::Batch {
            bound,
            conflicts,
            refused,
        }
    }

    /// Expiry for a binding refreshed now with `ttl`.
    fn expiry_for(&self, ttl: Millis) -> Millis {
        self.now
            .saturating_add(ttl)
            .saturating_add(self.params.max_skew)
    }

    /// Registers a server on first mention; returns (backend id, server id).
    fn mention(&mut self, backend: &str, server: &str) -> (u32, u32) {
        let (id, new) = self.registry.register(backend, server);
        if new {
            self.changes.servers_changed();
        }
        (self.registry.server(id).backend, id)
    }

    fn bind(&mut self, b: &Bind) -> Outcome {
        let (backend, server) = self.mention(&b.backend, &b.server);
        if self.registry.server(server).state == AdminState::Maint {
            self.counters.refused += 1;
            return Outcome::Refused;
        }
        let expires_at = self.expiry_for(b.ttl);
        let limit = self.limit_for(b.maxlife);
        if let Some(slot) = self.store.find_any(backend, &b.key)
            && self.store.is_ended(slot)
        {
            // The application gave the ended session's key out again: a new binding.
            self.make_room(1);
            self.expiry.revived();
            self.store.revive(slot, server, cap(expires_at, limit));
            self.store.set_limit(slot, limit);
            self.registry.server_mut(server).count += 1;
            self.counters.bound += 1;
            self.record_upsert(slot);
            return Outcome::Bound;
        }
        if let Some(slot) = self.store.find(backend, &b.key) {
            let current = self.store.get(slot).map(|s| s.server());
            if let (Some(from), Some(replaced)) = (current, b.replaces.as_deref())
                && from != server
                && *self.registry.server(from).name == *replaced
            {
                self.rebind(slot, from, server, expires_at);
                return Outcome::Rebound;
            }
            // The first committed bind wins: this one is a touch of the winner. A repeat
            // of the same bind (same server) is no race and is not counted as one.
            let same = current == Some(server);
            self.extend(slot, expires_at);
            self.counters.touched += 1;
            if same {
                return Outcome::Touched;
            }
            self.counters.conflicts += 1;
            return Outcome::Conflict;
        }
        self.create(backend, &b.key, server, expires_at, limit);
        self.counters.bound += 1;
        Outcome::Bound
    }

    fn touch(&mut self, t: &Touch) -> Outcome {
        let (backend, server) = self.mention(&t.backend, &t.server);
        let expires_at = self.expiry_for(t.ttl);
        if self
            .store
            .find_any(backend, &t.key)
            .is_some_and(|slot| self.store.is_ended(slot))
        {
            // A request from before the end, flushed late by another node: the session
            // stays ended.
            return Outcome::Touched;
        }
        if let Some(slot) = self.store.find(backend, &t.key) {
            self.extend(slot, expires_at);
            self.counters.touched += 1;
            return Outcome::Touched;
        }
        if self.registry.server(server).state == AdminState::Maint {
            self.counters.refused += 1;
            return Outcome::Refused;
        }
        let limit = self.limit_for(t.maxlife);
        self.create(backend, &t.key, server, expires_at, limit);
        self.counters.revived += 1;
        Outcome::Revived
    }

    /// The `maxlife` cap of a binding created now.
    fn limit_for(&self, maxlife: Option<Millis>) -> Option<Millis> {
        maxlife.map(|m| {
            self.now
                .saturating_add(m)
                .saturating_add(self.params.max_skew)
        })
    }

    fn create(
        &mut self,
        backend: u32,
        key: &[u8],
        server: u32,
        expires_at: Millis,
        limit: Option<Millis>,
    ) {
        let expires_at = cap(expires_at, limit);
        self.make_room(1);
        let slot = self.store.insert(backend, key, server, expires_at);
        self.store.set_limit(slot, limit);
        self.expiry.file(slot, expires_at);
        self.registry.server_mut(server).count += 1;
        self.record_upsert(slot);
    }

    /// Evicts until `adding` more bindings fit within `max_bindings`.
    fn make_room(&mut self, adding: usize) {
        let max = self.limits.max_bindings;
        while max > 0 && (self.store.len() + adding) as u64 > max && self.evict_one() {}
    }

    /// Evicts the binding closest to expiry (ties: backend name, then key), folding its
    /// expiry into its server's `evicted_until`. False if there is none.
    fn evict_one(&mut self) -> bool {
        let (store, reg) = (&self.store, &self.registry);
        let live = |s: SlotId| {
            if store.is_ended(s) {
                return None;
            }
            let held = store.get(s)?;
            let backend = reg.server(held.server()).backend;
            Some((
                held.expires_at(),
                (reg.backend(backend).name.clone(), store.key(s)?),
            ))
        };
        let expires_at = |s: SlotId| store.get(s).map(|h| h.expires_at());
        let Some(slot) = self.expiry.evict_next(expires_at, live) else {
            return false;
        };
        let Some(r) = self.store.remove(slot) else {
            return false;
        };
        let server = self.registry.server_mut(r.server);
        server.count = server.count.saturating_sub(1);
        server.evicted_until = server.evicted_until.max(r.expires_at);
        self.counters.evicted += 1;
        if self.changes.enabled() {
            let backend = self.registry.backend(r.backend).name.clone();
            self.changes.push(Change::Remove {
                backend,
                key: r.key.as_bytes().to_vec(),
            });
        }
        true
    }

    /// Moves a live binding from server `from` to `to`. For `from` the binding ends now:
    /// its `last_expiry` moves to the clock, so a drain of `from` still waits for every
    /// node's watermark to pass the move.
    fn rebind(&mut self, slot: SlotId, from: u32, to: u32, expires_at: Millis) {
        let old = self.registry.server_mut(from);
        old.count = old.count.saturating_sub(1);
        old.last_expiry = old.last_expiry.max(self.now);
        self.registry.server_mut(to).count += 1;
        self.store.set_server(slot, to);
        let expires_at = cap(expires_at, self.store.limit(slot));
        if self
            .store
            .get(slot)
            .is_some_and(|s| expires_at > s.expires_at())
        {
            self.store.set_expires_at(slot, expires_at);
        }
        self.counters.rebound += 1;
        self.record_upsert(slot);
    }

    /// Ends the session `e` names, if bound: the binding goes now, and for its server it
    /// ends now (its `last_expiry` moves to the clock), so a drain still waits for every
    /// member's watermark to pass the end.
    fn end(&mut self, e: &SessionEnd) {
        let Some(backend) = self.registry.backend_id(&e.backend) else {
            return;
        };
        let Some(slot) = self.store.find(backend, &e.key) else {
            return;
        };
        let Some(server) = self.store.end(slot) else {
            return;
        };
        let s = self.registry.server_mut(server);
        s.count = s.count.saturating_sub(1);
        s.last_expiry = s.last_expiry.max(self.now);
        self.counters.ended += 1;
        if self.changes.enabled() {
            let backend = self.registry.backend(backend).name.clone();
            self.changes.push(Change::Remove {
                backend,
                key: e.key.clone(),
            });
        }
    }

    /// Moves a live binding's expiry to `expires_at` if that is later.
    fn extend(&mut self, slot: SlotId, expires_at: Millis) {
        let expires_at = cap(expires_at, self.store.limit(slot));
        let Some(s) = self.store.get(slot) else {
            return;
        };
        if expires_at > s.expires_at() {
            // Stays filed under its old bucket; the sweep re-files it when it gets there.
            self.store.set_expires_at(slot, expires_at);
            self.record_upsert(slot);
        }
    }

    /// A binding was created or given a later expiry: its server's `max_expiry`, and the
    /// change for the read view.
    fn record_upsert(&mut self, slot: SlotId) {
        if let Some(s) = self.store.get(slot) {
            let (server, expires_at) = (s.server(), s.expires_at());
            let server = self.registry.server_mut(server);
            server.max_expiry = server.max_expiry.max(expires_at);
        }
        if !self.changes.enabled() {
            return;
        }
        let (Some(s), Some(key)) = (self.store.get(slot), self.store.key(slot)) else {
            return;
        };
        let server = self.registry.server(s.server());
        let change = Change::Upsert {
            backend: self.registry.backend(server.backend).name.clone(),
            key,
            server: server.name.clone(),
            expires_at: s.expires_at(),
        };
        self.changes.push(change);
    }

    /// Removes every binding whose `expires_at` is before the horizon.
    fn expire(&mut self) {
        let mut due = Vec::new();
        let store = &self.store;
        let horizon = self.horizon();
        self.expiry
            .sweep(horizon, |s| store.get(s).map(|s| s.expires_at()), &mut due);
        for slot in due {
            let Some(r) = self.store.remove(slot) else {
                continue;
            };
            if r.ended {
                // Counted when its session ended.
                continue;
            }
            let server = self.registry.server_mut(r.server);
            server.count = server.count.saturating_sub(1);
            server.last_expiry = server.last_expiry.max(r.expires_at);
            self.counters.expired += 1;
            if self.changes.enabled() {
                let backend = self.registry.backend(r.backend).name.clone();
                self.changes.push(Change::Remove {
                    backend,
                    key: r.key.as_bytes().to_vec(),
                });
            }
        }
    }

    /// Applies an operator's admin state change; returns the server id.
    fn set_state(&mut self, backend: &str, server: &str, requested: RequestedState) -> u32 {
        let (_, id) = self.mention(backend, server);
        let old = self.registry.server(id).state;
        let new = match requested {
            RequestedState::Ready => AdminState::Ready,
            RequestedState::Maint => AdminState::Maint,
            RequestedState::Drain { deadline_after } => {
                let since = match old {
                    AdminState::Drain { since, .. } => since,
                    _ => self.now,
                };
                AdminState::Drain {
                    since,
                    deadline: deadline_after.map(|d| self.now.saturating_add(d)),
                }
            }
        };
        if new != old {
            self.registry.set_state(id, new);
            if !matches!(old, AdminState::Drain { .. }) && matches!(new, AdminState::Drain { .. }) {
                self.registry.server_mut(id).drain_index = self.index;
            }
            self.changes.servers_changed();
        }
        id
    }
}
