//! Read-only views of a node for operators, built as the admin API's types
//! ([`crate::api`]): cluster members and leader, backends and their servers, the stick
//! table.

use std::collections::{BTreeMap, BTreeSet};

use holdfast_table::model::AdminState as TableState;

use super::membership::PeerQuery;
use super::node::Node;
use crate::api::{
    BackendStatus, Backends, ClusterStatus, Health, MemberStatus, Readiness, Role, ServerView,
    TableEntry, TableStatus,
};

impl Node {
    /// `GET /v1/cluster`.
    pub async fn cluster_status(&self) -> ClusterStatus {
        let m = self.raft().metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let (watermarks, table_now) = self
            .shared()
            .with_table(|t| (t.watermarks().clone(), t.now()));
        let last = m.last_log_index.unwrap_or(0);
        let addrs = membership.nodes().map(|(id, n)| (*id, n.addr.clone()));
        let readiness = self.members_readiness(addrs.collect()).await;
        let role = |id: &u64| match (m.current_leader == Some(*id), voters.contains(id)) {
            (true, _) => Role::Leader,
            (false, true) => Role::Follower,
            (false, false) => Role::Learner,
        };
        let members = membership
            .nodes()
            .map(|(id, node)| MemberStatus {
                id: *id,
                address: node.addr.clone(),
                role: role(id),
                watermark: watermarks.get(id).copied().unwrap_or(0),
                readiness: readiness.get(id).cloned().flatten(),
                replication_lag: m.replication.as_ref().map(|r| {
                    let matched = r.get(id).cloned().flatten().map(|l| l.index);
                    last.saturating_sub(matched.unwrap_or(0))
                }),
            })
            .collect();
        ClusterStatus {
            id: self.id(),
            leader: m.current_leader,
            term: m.current_term,
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
            purged_index: m.purged.map(|l| l.index).unwrap_or(0),
            table_now,
            members,
        }
    }

    /// Each member's readiness, this node's own and the others' asked over the peer
    /// protocol at once (`None`: no answer within a second).
    async fn members_readiness(
        &self,
        members: Vec<(u64, String)>,
    ) -> BTreeMap<u64, Option<Readiness>> {
        let mut asks = tokio::task::JoinSet::new();
        for (id, addr) in members {
            if id == self.id() {
                let here = self.readiness();
                asks.spawn(async move { (id, Some(here)) });
                continue;
            }
            let peers = self.peer_client().clone();
            asks.spawn(async move {
                let query = serde_json::to_vec(&PeerQuery::Readiness).unwrap_or_default();
                let asked = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    peers.query(&addr, query),
                );
                let answer = match asked.await {
                    Ok(Ok(bytes)) => serde_json::from_slice(&bytes).ok(),
                    _ => None,
                };
                (id, answer)
            });
        }
        asks.join_all().await.into_iter().collect()
    }

    /// `GET /v1/backends`: configured servers, plus any the table knows of. `health`
    /// gives this node's own observation of a server.
    pub fn backends_status(&self, health: impl Fn(&str, &str) -> Health) -> Backends {
        let open = self.open_set().counts();
        let open_here = |b: &str, s: &str| {
            open.iter()
                .find(|((ob, os), _)| &**ob == b && &**os == s)
                .map_or(0, |(_, n)| *n)
        };
        let cluster = &self.config().cluster;
        // A release happens at the first tick after every member's next watermark.
        let settle = (cluster.flush + cluster.tick).as_millis() as u64;
        self.shared().with_table(|t| {
            let mut out: Vec<BackendStatus> = Vec::new();
            let mut names: Vec<(String, String)> = self
                .config()
                .backends
                .iter()
                .flat_map(|b| b.servers.iter().map(|s| (b.name.clone(), s.name.clone())))
                .collect();
            for s in t.servers() {
                if !names.contains(&(s.backend.clone(), s.server.clone())) {
                    names.push((s.backend, s.server));
                }
            }
            for (backend, server) in names {
                let status = t.server(&backend, &server);
                let state = status.as_ref().map(|s| s.admin_state).unwrap_or_default();
                let projection = t.projected_release(&backend, &server);
                let view = ServerView {
                    name: server.clone(),
                    admin_state: state.into(),
                    drain_deadline: match state {
                        TableState::Drain { deadline, .. } => deadline,
                        _ => None,
                    },
                    health: health(&backend, &server),
                    bindings: t.bindings_of(&backend, &server),
                    release_blockers: t.release_blockers(&backend, &server),
                    open_here: open_here(&backend, &server),
                    promised_until: status.as_ref().map_or(0, |s| s.promised_until),
                    projected_release: projection
                        .and_then(|p| p.at)
                        .map(|at| at.saturating_add(settle)),
                    release_held_by: projection.map(|p| p.holder),
                };
                match out.iter_mut().find(|b| b.name == backend) {
                    Some(b) => b.servers.push(view),
                    None => out.push(BackendStatus {
                        name: backend,
                        servers: vec![view],
                    }),
                }
            }
            Backends(out)
        })
    }

    /// `GET /v1/table/{backend}`.
    pub fn table_status(&self, backend: &str, limit: usize) -> TableStatus {
        self.shared().with_table(|t| {
            let now = t.now();
            let total = t
                .servers()
                .iter()
                .filter(|s| s.backend == backend)
                .map(|s| s.bindings as usize)
                .sum();
            let bindings = t
                .bindings(backend, limit)
                .into_iter()
                .map(|b| TableEntry {
                    key: String::from_utf8_lossy(&b.key).into_owned(),
                    server: b.server,
                    expires_at: b.expires_at,
                    expires_in_ms: b.expires_at.saturating_sub(now),
                })
                .collect();
            TableStatus {
                backend: backend.to_string(),
                now,
                total,
                bindings,
            }
        })
    }
}
