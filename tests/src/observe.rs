//! What a lab observes of its cluster through the admin API while clients run: session
//! breaks, when a draining server was released on every node, server states and tables
//! per node, and when every table agrees.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use holdfast::api::{AdminState, Backends};

use crate::configs::MODES;
use crate::lab::{Lab, PATIENCE};
use crate::wait_for;

/// When a draining server was released, as seen by polling every running node.
#[derive(Clone, Copy, Debug)]
pub struct Release {
    /// Start of the last poll in which every running node still reported `drain`: the
    /// release (on any node) happened after this instant.
    pub held_until: Instant,
    /// End of the first poll in which every running node reported `maint`.
    pub seen: Instant,
}

impl Lab {
    /// Sum over the running nodes of `holdfast_session_breaks_total` of `backend`.
    pub fn session_breaks(&self, backend: &str) -> f64 {
        let series = format!("holdfast_session_breaks_total{{backend=\"{backend}\"}}");
        self.cluster
            .running()
            .iter()
            .map(|&i| self.metric(i, &series).unwrap_or(0.0))
            .sum()
    }

    /// Polls every running node until each of `servers` (backend, server) is `maint`
    /// everywhere; panics if one is not draining at the first poll or after [`PATIENCE`].
    pub fn watch_release(&self, servers: &[(&str, &str)]) -> Vec<Release> {
        self.watch_release_held_at(servers, None)
    }

    /// [`Lab::watch_release`] for servers the caller saw draining everywhere at `held`
    /// (e.g. just before resuming the node that held them), so a release that lands before
    /// the first poll still has a known lower bound.
    pub fn watch_release_held_at(
        &self,
        servers: &[(&str, &str)],
        held: Option<Instant>,
    ) -> Vec<Release> {
        let start = Instant::now();
        let mut held: Vec<Option<Instant>> = vec![held; servers.len()];
        let mut seen: Vec<Option<Instant>> = vec![None; servers.len()];
        while seen.iter().any(Option::is_none) {
            assert!(
                start.elapsed() < PATIENCE,
                "not released in {PATIENCE:?}: {servers:?}"
            );
            let poll = Instant::now();
            let states: Vec<Option<Backends>> = self
                .cluster
                .running()
                .iter()
                .map(|&i| self.cluster.node(i).backends())
                .collect();
            let done = Instant::now();
            for (k, (b, s)) in servers.iter().enumerate() {
                let each: Vec<Option<AdminState>> = states
                    .iter()
                    .map(|v| Some(v.as_ref()?.server(b, s)?.admin_state))
                    .collect();
                let all = |want: AdminState| each.iter().all(|e| *e == Some(want));
                if all(AdminState::Drain) {
                    held[k] = Some(poll);
                } else if all(AdminState::Maint) && seen[k].is_none() {
                    seen[k] = Some(done);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        held.into_iter()
            .zip(seen)
            .zip(servers)
            .map(|((h, s), what)| Release {
                held_until: h.unwrap_or_else(|| panic!("{what:?} was not draining when watched")),
                seen: s.expect("seen"),
            })
            .collect()
    }

    /// Waits until, on every node of `live`, `server` of every backend of [`MODES`] is
    /// draining with no binding left and only node id `blocker` holding its release.
    pub fn wait_held_only_by(&self, live: &[usize], server: &str, blocker: u64) {
        let what = format!("only node {blocker} holding {server} back");
        wait_for(&what, PATIENCE, || {
            MODES
                .iter()
                .all(|(b, _)| {
                    live.iter().all(|&i| {
                        self.cluster.node(i).server(b, server).is_some_and(|s| {
                            s.admin_state == AdminState::Drain
                                && s.bindings == 0
                                && s.release_blockers == [blocker]
                        })
                    })
                })
                .then_some(())
        });
    }

    /// `backend/server`'s (admin state, bindings) on every running node.
    pub fn server_everywhere(
        &self,
        backend: &str,
        server: &str,
    ) -> Vec<(Option<AdminState>, Option<u64>)> {
        self.cluster
            .running()
            .iter()
            .map(|&i| {
                let s = self.cluster.node(i).server(backend, server);
                (s.as_ref().map(|s| s.admin_state), s.map(|s| s.bindings))
            })
            .collect()
    }

    /// Panics, saying `what`, unless `backend/server` is `maint` with no binding left on
    /// every running node.
    pub fn assert_released(&self, backend: &str, server: &str, what: &str) {
        let everywhere = self.server_everywhere(backend, server);
        assert!(
            everywhere
                .iter()
                .all(|e| *e == (Some(AdminState::Maint), Some(0))),
            "{what}: {backend}/{server} not maint with no binding on every node: {everywhere:?}"
        );
    }

    /// Bindings per (backend, server) in the replicated table of node `i`.
    pub fn table_counts(&self, i: usize) -> Option<BTreeMap<(String, String), u64>> {
        let backends = self.cluster.node(i).backends()?;
        let counts = backends
            .servers()
            .map(|(b, s)| ((b.to_string(), s.name.clone()), s.bindings));
        Some(counts.collect())
    }

    /// Waits until every running node reports the same table counts; returns them.
    pub fn wait_same_tables(&self) -> BTreeMap<(String, String), u64> {
        wait_for(
            "the same table counts on every running node",
            PATIENCE,
            || {
                let counts: Vec<_> = self
                    .cluster
                    .running()
                    .iter()
                    .map(|&i| self.table_counts(i))
                    .collect::<Option<Vec<_>>>()?;
                let first = counts.first()?.clone();
                counts.iter().all(|c| *c == first).then_some(first)
            },
        )
    }

    /// Waits until every running node's frontend accepts connections.
    pub fn wait_frontends(&self) {
        self.cluster
            .wait_frontends(&self.cluster.running(), PATIENCE);
    }
}
