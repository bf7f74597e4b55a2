//! Read-only views of a node for operators: cluster members and leader, backends and
//! their servers, the stick table. Serialized as the admin API's JSON.

use std::collections::BTreeSet;

use holdfast_table::model::AdminState;
use serde::Serialize;

use super::membership::PeerQuery;
use super::node::Node;
use super::readiness::Readiness;

/// `GET /v1/cluster`.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    /// The node answering.
    pub id: u64,
    /// Current leader, if any.
    pub leader: Option<u64>,
    /// Current Raft term.
    pub term: u64,
    /// Index of the last applied log entry.
    pub applied_index: u64,
    /// Index of the last log entry included in the latest snapshot.
    pub snapshot_index: u64,
    /// Log entries up to this index have been purged (compacted into a snapshot).
    pub purged_index: u64,
    /// The state machine's clock (ms since epoch).
    pub table_now: u64,
    /// Members, voters and learners.
    pub members: Vec<MemberStatus>,
}

/// One member in [`ClusterStatus`].
#[derive(Clone, Debug, Serialize)]
pub struct MemberStatus {
    /// Node id.
    pub id: u64,
    /// Peer address.
    pub address: String,
    /// `leader`, `follower` or `learner`.
    pub role: &'static str,
    /// Last watermark the member reported (ms since epoch; 0: none yet).
    pub watermark: u64,
    /// The member's own readiness, asked over the peer protocol (`None`: it did not
    /// answer).
    pub readiness: Option<Readiness>,
    /// On the leader: how many log entries the member is behind the leader's log.
    pub replication_lag: Option<u64>,
}

/// One backend in `GET /v1/backends`.
#[derive(Clone, Debug, Serialize)]
pub struct BackendStatus {
    /// Backend name.
    pub name: String,
    /// Its servers.
    pub servers: Vec<ServerView>,
}

/// One server in [`BackendStatus`].
#[derive(Clone, Debug, Serialize)]
pub struct ServerView {
    /// Server name.
    pub name: String,
    /// `ready`, `drain` or `maint`.
    pub admin_state: &'static str,
    /// Forced-release time of a drain (ms since epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_deadline: Option<u64>,
    /// `up`, `down`, or `unknown` when not checked.
    pub health: &'static str,
    /// Live bindings (the replicated count).
    pub bindings: u64,
    /// Members whose watermark, unapplied drain or promise still holds a drain's release
    /// back.
    pub release_blockers: Vec<u64>,
    /// Requests, streams and tunnels open to the server from the node answering.
    pub open_here: u64,
    /// The latest time any member promised the server to a client it holds no binding
    /// for (open exchanges; ms since epoch, 0: none).
    pub promised_until: u64,
}

/// `GET /v1/table/{backend}`.
#[derive(Clone, Debug, Serialize)]
pub struct TableStatus {
    /// Backend name.
    pub backend: String,
    /// The state machine's clock.
    pub now: u64,
    /// Live bindings in the backend.
    pub total: usize,
    /// Up to `limit` bindings, by key.
    pub bindings: Vec<TableEntry>,
}

/// One binding in [`TableStatus`].
#[derive(Clone, Debug, Serialize)]
pub struct TableEntry {
    /// The key (lossy UTF-8).
    pub key: String,
    /// Server name.
    pub server: String,
    /// Expiry (ms since epoch).
    pub expires_at: u64,
    /// Milliseconds left at the state machine's clock.
    pub expires_in_ms: u64,
}

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
        let mut asks = tokio::task::JoinSet::new();
        for (id, node) in membership.nodes() {
            let (id, addr, me) = (*id, node.addr.clone(), *id == self.id());
            let local = me.then(|| self.readiness());
            let peers = self.peer_client().clone();
            asks.spawn(async move {
                if local.is_some() {
                    return (id, local);
                }
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
        let readiness: std::collections::BTreeMap<u64, Option<Readiness>> =
            asks.join_all().await.into_iter().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| MemberStatus {
                id: *id,
                address: node.addr.clone(),
                role: if m.current_leader == Some(*id) {
                    "leader"
                } else if voters.contains(id) {
                    "follower"
                } else {
                    "learner"
                },
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

    /// `GET /v1/backends`: configured servers, plus any the table knows of. `health`
    /// gives this node's own observation of a server (`up`, `down` or `unknown`).
    pub fn backends_status(
        &self,
        health: impl Fn(&str, &str) -> &'static str,
    ) -> Vec<BackendStatus> {
        let open = self.open_set().counts();
        let open_here = |b: &str, s: &str| {
            open.iter()
                .find(|((ob, os), _)| &**ob == b && &**os == s)
                .map_or(0, |(_, n)| *n)
        };
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
                let view = ServerView {
                    name: server.clone(),
                    admin_state: state.name(),
                    drain_deadline: match state {
                        AdminState::Drain { deadline, .. } => deadline,
                        _ => None,
                    },
                    health: health(&backend, &server),
                    bindings: t.bindings_of(&backend, &server),
                    release_blockers: t.release_blockers(&backend, &server),
                    open_here: open_here(&backend, &server),
                    promised_until: status.as_ref().map_or(0, |s| s.promised_until),
                };
                match out.iter_mut().find(|b| b.name == backend) {
                    Some(b) => b.servers.push(view),
                    None => out.push(BackendStatus {
                        name: backend,
                        servers: vec![view],
                    }),
                }
            }
            out
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
