//! The table semantics written the obvious way (BTreeMaps and full scans), for the
//! property tests to compare the real table against.

use std::collections::{BTreeMap, BTreeSet};

use holdfast_table::model::{
    AdminState, Command, Millis, NodeId, Proposal, RequestedState, Response, ServerStatus,
    TableCounters,
};

/// The table semantics written the obvious way, for comparison.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub now: Millis,
    pub skew: Millis,
    pub grace: Millis,
    /// (backend, key) -> (server, expires_at)
    pub bindings: BTreeMap<(String, Vec<u8>), (String, Millis)>,
    /// Sessions ended, kept until their old expiry: (backend, key) -> expires_at. A touch
    /// does not bring them back; a bind makes a new binding.
    pub ended: BTreeMap<(String, Vec<u8>), Millis>,
    /// `maxlife` caps: (backend, key) -> the latest expiry the binding may reach.
    pub limits: BTreeMap<(String, Vec<u8>), Millis>,
    /// (backend, server) -> (state, last_expiry)
    pub servers: BTreeMap<(String, String), (AdminState, Millis)>,
    pub watermarks: BTreeMap<NodeId, Millis>,
    /// The applied index each member reported with its latest watermark.
    pub reported: BTreeMap<NodeId, u64>,
    /// (backend, server) -> the log index at which its current drain was applied.
    pub drain_index: BTreeMap<(String, String), u64>,
    /// The index of the entry being applied.
    pub index: u64,
    /// (backend, server) -> member -> latest promise.
    pub promised: BTreeMap<(String, String), BTreeMap<NodeId, Millis>>,
    pub counters: TableCounters,
    /// The bound on bindings (0: none).
    pub max_bindings: u64,
    /// (backend, server) -> the latest expiry among its evicted bindings.
    pub evicted: BTreeMap<(String, String), Millis>,
}

impl Model {
    pub fn new() -> Self {
        Model {
            skew: 250,
            grace: 30_000,
            ..Model::default()
        }
    }

    fn count(&self, backend: &str, server: &str) -> u64 {
        self.bindings
            .iter()
            .filter(|((b, _), (s, _))| b == backend && s == server)
            .count() as u64
    }

    fn register(&mut self, backend: &str, server: &str) -> AdminState {
        self.servers
            .entry((backend.into(), server.into()))
            .or_insert((AdminState::Ready, 0))
            .0
    }

    fn refresh(
        &mut self,
        backend: &str,
        key: &[u8],
        server: &str,
        ttl: Millis,
        maxlife: Option<Millis>,
        bind: Option<Option<&str>>,
    ) {
        let replaces = bind.flatten();
        let bind = bind.is_some();
        let state = self.register(backend, server);
        let uncapped = self.now.saturating_add(ttl).saturating_add(self.skew);
        let new_limit = maxlife.map(|m| self.now.saturating_add(m).saturating_add(self.skew));
        let k = (backend.to_string(), key.to_vec());
        let cap = |e: Millis, l: Option<Millis>| l.map_or(e, |l| e.min(l));
        let e = cap(uncapped, self.limits.get(&k).copied());
        let maint = state == AdminState::Maint;
        if bind && maint {
            self.counters.refused += 1;
            return;
        }
        let now = self.now;
        if let Some(old) = self.ended.get(&k).copied() {
            if bind {
                self.ended.remove(&k);
                self.make_room();
                let e = old.max(cap(uncapped, new_limit));
                self.bindings.insert(k.clone(), (server.into(), e));
                self.set_limit(k, new_limit);
                self.counters.bound += 1;
            }
            return;
        }
        if let Some((bound_to, old)) = self.bindings.get_mut(&(backend.into(), key.to_vec()))
            && bound_to.as_str() != server
            && replaces == Some(bound_to.as_str())
        {
            let from = std::mem::replace(bound_to, server.into());
            *old = (*old).max(e);
            self.counters.rebound += 1;
            if let Some((_, last)) = self.servers.get_mut(&(backend.into(), from)) {
                *last = (*last).max(now);
            }
            return;
        }
        if let Some((bound_to, old)) = self.bindings.get_mut(&(backend.into(), key.to_vec())) {
            *old = (*old).max(e);
            self.counters.touched += 1;
            self.counters.conflicts += u64::from(bind && bound_to.as_str() != server);
        } else if maint {
            self.counters.refused += 1;
        } else {
            let e = cap(uncapped, new_limit);
            self.make_room();
            self.bindings
                .insert((backend.into(), key.to_vec()), (server.into(), e));
            self.set_limit(k, new_limit);
            if bind {
                self.counters.bound += 1;
            } else {
                self.counters.revived += 1;
            }
        }
    }

    /// Before a new binding: makes room for it.
    fn make_room(&mut self) {
        if self.max_bindings > 0 {
            self.evict_down_to(self.max_bindings as usize - 1);
        }
    }

    /// Evicts the bindings closest to expiry (ties by backend, then key) until at most
    /// `n` are left.
    fn evict_down_to(&mut self, n: usize) {
        while self.bindings.len() > n {
            let victim = self
                .bindings
                .iter()
                .min_by(|a, b| (a.1.1, a.0).cmp(&(b.1.1, b.0)))
                .map(|(k, _)| k.clone());
            let Some(k) = victim else { return };
            self.evict(&k);
        }
    }

    fn evict(&mut self, k: &(String, Vec<u8>)) {
        let (server, e) = self.bindings.remove(k).unwrap();
        self.limits.remove(k);
        let until = self.evicted.entry((k.0.clone(), server)).or_insert(0);
        *until = (*until).max(e);
        self.counters.evicted += 1;
    }

    fn set_limit(&mut self, k: (String, Vec<u8>), limit: Option<Millis>) {
        match limit {
            Some(l) => {
                self.limits.insert(k, l);
            }
            None => {
                self.limits.remove(&k);
            }
        }
    }

    /// The release point of a draining server (None if not draining).
    pub fn release_point(&self, state: AdminState, last_expiry: Millis) -> Option<Millis> {
        match state {
            AdminState::Drain { since, .. } => {
                Some(last_expiry.max(since).saturating_add(self.skew))
            }
            _ => None,
        }
    }

    fn release(&mut self) {
        let keys: Vec<_> = self.servers.keys().cloned().collect();
        for k in keys {
            let (state, last) = self.servers[&k];
            let evicted = self.evicted.get(&k).copied().unwrap_or(0);
            let Some(point) = self.release_point(state, last.max(evicted)) else {
                continue;
            };
            let AdminState::Drain { deadline, .. } = state else {
                continue;
            };
            let drained_at = self.drain_index.get(&k).copied().unwrap_or(0);
            let promises = self.promised.get(&k).cloned().unwrap_or_default();
            let all_past = self.watermarks.iter().all(|(n, &w)| {
                let promised = promises.get(n).copied();
                w >= point
                    && self.reported.get(n).copied().unwrap_or(0) >= drained_at
                    && promised.is_none_or(|u| u.saturating_add(self.skew) < self.now)
            });
            if self.count(&k.0, &k.1) == 0 && (evicted == 0 || evicted < self.horizon()) && all_past
            {
                self.counters.released += 1;
            } else if deadline.is_some_and(|d| self.now >= d) {
                self.counters.forced_releases += 1;
            } else {
                continue;
            }
            self.servers.get_mut(&k).unwrap().0 = AdminState::Maint;
            self.drain_index.remove(&k);
        }
    }

    /// Bindings expiring before this are dead: the clock, held back below the slowest
    /// member's watermark less the skew, but at most `grace` behind the clock.
    pub fn horizon(&self) -> Millis {
        match self.watermarks.values().min() {
            None => self.now,
            Some(&w) => self.now.min(
                w.saturating_sub(self.skew)
                    .max(self.now.saturating_sub(self.grace)),
            ),
        }
    }

    fn expire(&mut self) {
        let horizon = self.horizon();
        let dead: Vec<_> = self
            .bindings
            .iter()
            .filter(|(_, (_, e))| *e < horizon)
            .map(|(k, _)| k.clone())
            .collect();
        for k in dead {
            self.limits.remove(&k);
            let (server, e) = self.bindings.remove(&k).unwrap();
            let last = &mut self.servers.get_mut(&(k.0, server)).unwrap().1;
            *last = (*last).max(e);
            self.counters.expired += 1;
        }
        self.ended.retain(|_, e| *e >= horizon);
    }

    /// Notes the log index of the entry about to be applied.
    pub fn note_index(&mut self, index: u64) {
        self.index = self.index.max(index);
    }

    pub fn apply(&mut self, p: &Proposal) -> Response {
        self.now = self.now.max(p.now);
        let now = self.now;
        self.expire();
        let response = match &p.command {
            Command::Tick => Response::Empty,
            Command::Batch(b) => {
                let before = self.counters;
                for x in &b.binds {
                    let replaces = Some(x.replaces.as_deref());
                    self.refresh(&x.backend, &x.key, &x.server, x.ttl, x.maxlife, replaces);
                }
                let mid = self.counters;
                for x in &b.touches {
                    self.refresh(&x.backend, &x.key, &x.server, x.ttl, x.maxlife, None);
                }
                for e in &b.ends {
                    let k = (e.backend.clone(), e.key.clone());
                    if let Some((server, e)) = self.bindings.remove(&k) {
                        self.limits.remove(&k);
                        self.ended.insert(k.clone(), e);
                        let last = &mut self.servers.get_mut(&(k.0, server)).unwrap().1;
                        *last = (*last).max(now);
                        self.counters.ended += 1;
                    }
                }
                if let Some(w) = self.watermarks.get_mut(&b.node) {
                    *w = (*w).max(b.watermark);
                }
                if let Some(a) = self.reported.get_mut(&b.node) {
                    *a = (*a).max(b.applied);
                }
                if let Some(promises) = b
                    .promises
                    .as_ref()
                    .filter(|_| self.watermarks.contains_key(&b.node))
                {
                    for per_server in self.promised.values_mut() {
                        per_server.remove(&b.node);
                    }
                    for p in promises {
                        self.register(&p.backend, &p.server);
                        let k = (p.backend.clone(), p.server.clone());
                        let until = self
                            .promised
                            .entry(k)
                            .or_default()
                            .entry(b.node)
                            .or_insert(0);
                        *until = (*until).max(p.until);
                    }
                }
                Response::Batch {
                    bound: (mid.bound - before.bound) as u32,
                    conflicts: (mid.conflicts - before.conflicts) as u32,
                    refused: (mid.refused - before.refused) as u32,
                }
            }
            Command::SetServerState {
                backend,
                server,
                state,
            } => {
                let old = self.register(backend, server);
                let new = match *state {
                    RequestedState::Ready => AdminState::Ready,
                    RequestedState::Maint => AdminState::Maint,
                    RequestedState::Drain { deadline_after } => AdminState::Drain {
                        since: match old {
                            AdminState::Drain { since, .. } => since,
                            _ => now,
                        },
                        deadline: deadline_after.map(|d| now.saturating_add(d)),
                    },
                };
                let k = (backend.clone(), server.clone());
                self.servers.get_mut(&k).unwrap().0 = new;
                match (old, new) {
                    (AdminState::Drain { .. }, AdminState::Drain { .. }) => {}
                    (_, AdminState::Drain { .. }) => {
                        self.drain_index.insert(k.clone(), self.index);
                    }
                    _ => {
                        self.drain_index.remove(&k);
                    }
                }
                self.release();
                return Response::ServerState(self.servers[&k].0);
            }
            Command::SetParams(params) => {
                self.skew = params.max_skew;
                self.grace = params.expiry_grace;
                Response::Params
            }
            Command::SetLimits(limits) => {
                self.max_bindings = limits.max_bindings;
                if self.max_bindings > 0 {
                    self.evict_down_to(self.max_bindings as usize);
                }
                Response::Params
            }
        };
        self.expire();
        self.release();
        response
    }

    pub fn set_members(&mut self, members: &BTreeSet<NodeId>) {
        self.watermarks.retain(|n, _| members.contains(n));
        self.reported.retain(|n, _| members.contains(n));
        for promises in self.promised.values_mut() {
            promises.retain(|n, _| members.contains(n));
        }
        for &m in members {
            self.watermarks.entry(m).or_insert(0);
            self.reported.entry(m).or_insert(0);
        }
        self.expire();
        self.release();
    }

    pub fn server_statuses(&self) -> Vec<ServerStatus> {
        self.servers
            .iter()
            .map(|((b, s), &(state, last))| ServerStatus {
                backend: b.clone(),
                server: s.clone(),
                admin_state: state,
                bindings: self.count(b, s),
                last_expiry: last,
                promised_until: self
                    .promised
                    .get(&(b.clone(), s.clone()))
                    .and_then(|p| p.values().copied().max())
                    .unwrap_or(0),
                evicted_until: self
                    .evicted
                    .get(&(b.clone(), s.clone()))
                    .copied()
                    .unwrap_or(0),
            })
            .collect()
    }
}
