//! The release rule: when a draining server becomes `maint` by itself (no live binding and
//! every member's watermark past its release point, taken after that member applied the
//! drain), and when a drain deadline forces it.

use super::StickTable;
use super::servers::Server;
use crate::model::{AdminState, Millis, NodeId, Promise};

/// What a draining server's release waits for last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "node")]
pub enum Holder {
    /// Its live bindings running out (a ttl after each one's last request).
    Bindings,
    /// A member's promise for a client it holds no binding for.
    Promise(NodeId),
    /// Streams or requests open to it on a member: no time can be projected.
    OpenStreams(NodeId),
    /// A member that has not applied the drain, or whose watermark has not moved for
    /// longer than the grace: no time can be projected.
    Member(NodeId),
    /// The time since the drain began plus the clock skew (binds a node made before it
    /// saw the drain).
    Drain,
    /// The drain's deadline forces the release.
    Deadline,
}

/// When a draining server is released if no client comes back, and what holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Projection {
    /// The table time (ms) from which every member's next watermark releases it; `None`
    /// when it cannot be projected (open streams, a silent member).
    pub at: Option<Millis>,
    /// What it waits for last.
    pub holder: Holder,
}

impl StickTable {
    /// The watermark every member must reach before draining server `s` may be released:
    /// `max(last_expiry, since) + max_skew` (`None` if `s` is not draining).
    ///
    /// The `since` term covers binds a node made before it saw the drain.
    fn release_point(&self, s: &Server) -> Option<Millis> {
        match s.state {
            AdminState::Drain { since, .. } => Some(
                s.last_expiry
                    .max(s.evicted_until)
                    .max(since)
                    .saturating_add(self.params.max_skew),
            ),
            _ => None,
        }
    }

    /// Evaluates the release rule for every draining server (usually very few).
    pub(super) fn evaluate_release(&mut self) {
        let mut released = Vec::new();
        for &id in self.registry.draining() {
            let s = self.registry.server(id);
            let AdminState::Drain { deadline, .. } = s.state else {
                continue;
            };
            let point = self.release_point(s).unwrap_or(Millis::MAX);
            // An evicted binding holds the release like a live one: until the horizon
            // passes its expiry (as it would have been swept), and watermarks its point.
            let evicted_gone = s.evicted_until == 0 || s.evicted_until < self.horizon();
            if s.count == 0 && evicted_gone && self.blockers(s, point).next().is_none() {
                released.push((id, false));
            } else if deadline.is_some_and(|d| self.now >= d) {
                released.push((id, true));
            }
        }
        for (id, forced) in released {
            self.registry.set_state(id, AdminState::Maint);
            if forced {
                self.counters.forced_releases += 1;
            } else {
                self.counters.released += 1;
            }
            self.changes.servers_changed();
        }
    }

    /// The log index at which the drain of `backend/server` was applied (`None` if it is
    /// not draining).
    pub fn drain_index(&self, backend: &str, server: &str) -> Option<u64> {
        let s = self
            .registry
            .server(self.registry.server_id(backend, server)?);
        matches!(s.state, AdminState::Drain { .. }).then_some(s.drain_index)
    }

    /// When draining `backend/server` is released if no client comes back (`None` when it
    /// is not draining). Computed from the table: the latest expiry any of its live
    /// bindings has, the drain's start, each member's promise, the skew and the deadline;
    /// releases happen at the first apply after every member's watermark passes `at`.
    pub fn projected_release(&self, backend: &str, server: &str) -> Option<Projection> {
        let s = self
            .registry
            .server(self.registry.server_id(backend, server)?);
        let AdminState::Drain { since, deadline } = s.state else {
            return None;
        };
        let skew = self.params.max_skew;
        let mut best = (since.max(s.last_expiry).saturating_add(skew), Holder::Drain);
        let mut raise = |at: Millis, holder: Holder| {
            if at > best.0 {
                best = (at, holder);
            }
        };
        if s.count > 0 {
            raise(s.max_expiry.saturating_add(skew), Holder::Bindings);
        }
        raise(s.evicted_until.saturating_add(skew), Holder::Bindings);
        for (&node, &until) in &s.promised {
            if until == Promise::OPEN {
                return Some(self.capped(None, Holder::OpenStreams(node), deadline));
            }
            raise(until.saturating_add(skew), Holder::Promise(node));
        }
        let grace = self.params.expiry_grace;
        for (&node, &w) in &self.watermarks {
            let applied = self.reported.get(&node).copied().unwrap_or(0);
            if applied < s.drain_index || w.saturating_add(grace) < self.now {
                return Some(self.capped(None, Holder::Member(node), deadline));
            }
        }
        Some(self.capped(Some(best.0), best.1, deadline))
    }

    fn capped(&self, at: Option<Millis>, holder: Holder, deadline: Option<Millis>) -> Projection {
        match deadline {
            Some(d) if at.is_none_or(|a| d < a) => Projection {
                at: Some(d),
                holder: Holder::Deadline,
            },
            _ => Projection { at, holder },
        }
    }

    /// Each member's latest promise for `backend/server` (empty if none or unknown).
    pub fn promises(&self, backend: &str, server: &str) -> Vec<(NodeId, Millis)> {
        self.registry
            .server_id(backend, server)
            .map(|id| {
                let s = self.registry.server(id);
                s.promised.iter().map(|(&n, &u)| (n, u)).collect()
            })
            .unwrap_or_default()
    }

    /// Members whose watermark is not yet past what release of this draining server needs
    /// (empty if the server is not draining or no member holds it back).
    ///
    /// Live bindings are not reported here; see [`StickTable::bindings_of`].
    pub fn release_blockers(&self, backend: &str, server: &str) -> Vec<NodeId> {
        let Some(id) = self.registry.server_id(backend, server) else {
            return Vec::new();
        };
        let Some(point) = self.release_point(self.registry.server(id)) else {
            return Vec::new();
        };
        self.blockers(self.registry.server(id), point).collect()
    }

    /// Members holding the release of draining server `s` back: their watermark is not
    /// past `point`, or it was taken before they had applied the drain, or the table
    /// clock has not passed their promise for `s` (plus the skew).
    fn blockers<'a>(&'a self, s: &'a Server, point: Millis) -> impl Iterator<Item = NodeId> + 'a {
        self.watermarks
            .iter()
            .filter(move |&(node, &w)| {
                let applied = self.reported.get(node).copied().unwrap_or(0);
                let promised = s.promised.get(node).copied();
                w < point
                    || applied < s.drain_index
                    || promised.is_some_and(|u| u.saturating_add(self.params.max_skew) >= self.now)
            })
            .map(|(&node, _)| node)
    }
}
