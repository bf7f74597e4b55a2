//! Membership changes an operator asks for (`ctl members add|remove`). They run on the
//! leader; a follower forwards them as an application query over the peer protocol.

use std::collections::BTreeSet;
use std::time::Duration;

use holdfast_peer_proto::PeerClient;
use holdfast_table::raft::{Raft, TypeConfig};
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};

/// A membership change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterOp {
    /// Add a node: it first catches up as a learner, then becomes a voter.
    AddMember {
        /// Its node id.
        id: u64,
        /// Its peer address.
        addr: String,
    },
    /// Remove a node from the membership (it stops counting for quorum and release).
    RemoveMember {
        /// Its node id.
        id: u64,
    },
}

/// What a node asks the leader over the peer protocol's application query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerQuery {
    /// Carry out a membership change.
    Cluster(ClusterOp),
    /// Where is `key` bound in `backend`, as of the leader's latest commit?
    Lookup {
        /// Backend name.
        backend: String,
        /// The persistence key.
        key: Vec<u8>,
    },
    /// Has a cluster been formed, and with which members? Answered by any node, leader or
    /// not: a node starting with no state asks before it may take part.
    Formed,
    /// Is the node ready (`/readyz`)? Answered by any node, for `ctl cluster`.
    Readiness,
}

/// The answer to [`PeerQuery::Formed`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormedAnswer {
    /// The answering node.
    pub id: u64,
    /// Whether it holds cluster state (it was initialized or added).
    pub initialized: bool,
    /// The voters it knows.
    pub voters: Vec<u64>,
    /// The leader it knows.
    pub leader: Option<u64>,
    /// When it is the leader: the last log index it replicated to the asking node (`None`:
    /// it never reached it, a member that has not started yet).
    pub matched: Option<u64>,
}

impl FormedAnswer {
    /// What node `raft` would answer to node `asker`.
    pub fn of(raft: &Raft, asker: u64) -> FormedAnswer {
        let m = raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        FormedAnswer {
            id: m.id,
            initialized: membership.nodes().next().is_some() || m.last_log_index.is_some(),
            voters,
            leader: m.current_leader,
            matched: learner_matched(&m, asker),
        }
    }
}

/// How long a new member may go without catching up any further before it is asked
/// whether it is there at all.
const STALL: Duration = Duration::from_secs(15);

/// How long a new member that answers may take to catch up in all: a node joining a
/// table of ten million bindings receives a snapshot of hundreds of megabytes (no
/// replicated index moves meanwhile) and then the log written since. It stays under the
/// 30 s a forwarded `members add` is given.
const CATCH_UP: Duration = Duration::from_secs(25);

/// How long the new member has to answer when asked whether it is there.
const PROBE: Duration = Duration::from_secs(3);

/// Why a new member is not caught up.
enum Behind {
    /// It does not answer (down, unreachable, or refusing this cluster's secret or
    /// certificate). The add is rolled back.
    Gone(Option<u64>),
    /// It answers but was still catching up when [`CATCH_UP`] ran out: it stays a
    /// learner, and a second `members add` promotes it once it has caught up.
    Slow(Option<u64>),
}

impl Behind {
    /// What the operator is told.
    fn explain(&self, id: u64, target: u64) -> String {
        let at = |i: &Option<u64>| match i {
            Some(i) => format!("log index {i} of {target}"),
            None => "receiving its first snapshot or entries".to_string(),
        };
        match self {
            Behind::Gone(i) => format!(
                "node {id} stopped catching up ({}) and does not answer (down, \
                 unreachable, or refused: check its cluster.secret or certificate); the add \
                 is rolled back",
                at(i)
            ),
            Behind::Slow(i) => format!(
                "node {id} is still catching up after {CATCH_UP:?} ({}); it stays a learner: \
                 run `members add` again to make it a voter, or `members remove {id}`",
                at(i)
            ),
        }
    }
}

/// Waits until the leader has replicated to learner `id` up to `target`. Whenever the
/// learner's replicated index has not moved for [`STALL`], and when [`CATCH_UP`] runs out,
/// it asks `answers` whether the learner is there at all.
async fn wait_caught_up<F: Future<Output = bool>>(
    raft: &Raft,
    id: u64,
    target: u64,
    answers: impl Fn() -> F,
) -> Result<(), Behind> {
    let started = tokio::time::Instant::now();
    let mut seen = None;
    loop {
        let left = CATCH_UP.saturating_sub(started.elapsed());
        let waited = raft
            .wait(Some(STALL.min(left)))
            .metrics(
                |m| {
                    let matched = learner_matched(m, id);
                    matched.is_some_and(|i| i >= target) || matched > seen
                },
                "learner caught up further",
            )
            .await;
        let Ok(m) = waited else {
            match (answers().await, left > STALL) {
                (false, _) => return Err(Behind::Gone(seen)),
                (true, false) => return Err(Behind::Slow(seen)),
                (true, true) => continue,
            }
        };
        let matched = learner_matched(&m, id);
        if matched.is_some_and(|i| i >= target) {
            return Ok(());
        }
        seen = matched;
    }
}

/// Whether the node at `addr` answers a peer query: it is up and accepts this cluster.
async fn answers(peers: &PeerClient<TypeConfig>, addr: &str) -> bool {
    let Ok(query) = serde_json::to_vec(&PeerQuery::Formed) else {
        return false;
    };
    peers.query_timeout(addr, query, PROBE).await.is_ok()
}

/// The last log index the leader has replicated to node `id`, if it reached it yet.
fn learner_matched(m: &openraft::RaftMetrics<u64, BasicNode>, id: u64) -> Option<u64> {
    m.replication
        .as_ref()
        .and_then(|r| r.get(&id).cloned().flatten())
        .map(|log_id| log_id.index)
}

/// Checks a peer address: `host:port`, a port above 0, a host of letters, digits, `.`,
/// `-` and `_` or a bracketed IPv6 address.
pub fn validate_addr(addr: &str) -> Result<(), String> {
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || format!("peer address {addr:?} is not host:port");
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(bad()),
    }
    let ok_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok_host { Ok(()) } else { Err(bad()) }
}

/// Carries `op` out on this node, which must be the leader. It runs as its own task:
/// once started, it finishes (or rolls back) whether or not whoever asked is still
/// connected, so a cancelled `members add` never leaves a learner behind.
/// `peers` asks a new member that seems stuck whether it is there.
pub async fn execute(
    raft: &Raft,
    peers: &PeerClient<TypeConfig>,
    op: &ClusterOp,
) -> Result<(), String> {
    if let ClusterOp::AddMember { addr, .. } = op {
        validate_addr(addr)?;
    }
    let (raft, peers, op) = (raft.clone(), peers.clone(), op.clone());
    tokio::spawn(async move { run(&raft, &peers, &op).await })
        .await
        .map_err(|e| format!("membership change task failed: {e}"))?
}

async fn run(raft: &Raft, peers: &PeerClient<TypeConfig>, op: &ClusterOp) -> Result<(), String> {
    match op {
        ClusterOp::AddMember { id, addr } => {
            let node = BasicNode { addr: addr.clone() };
            let target = raft.metrics().borrow().last_log_index;
            raft.add_learner(*id, node, false)
                .await
                .map_err(|e| format!("add learner {id}: {e}"))?;
            if let Some(target) = target
                && let Err(behind) =
                    wait_caught_up(raft, *id, target, || answers(peers, addr)).await
            {
                if let Behind::Gone(_) = behind {
                    // Leave no unreachable learner behind.
                    let remove = ChangeMembers::RemoveNodes(BTreeSet::from([*id]));
                    let _ = raft.change_membership(remove, false).await;
                }
                return Err(behind.explain(*id, target));
            }
            let voters = ChangeMembers::AddVoterIds(BTreeSet::from([*id]));
            raft.change_membership(voters, false)
                .await
                .map_err(|e| format!("promote {id} to voter: {e}"))?;
        }
        ClusterOp::RemoveMember { id } => {
            let metrics = raft.metrics().borrow().clone();
            let membership = metrics.membership_config.membership();
            if membership.voter_ids().any(|v| v == *id) {
                raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([*id])), false)
                    .await
                    .map_err(|e| format!("remove voter {id}: {e}"))?;
            } else if membership.get_node(id).is_some() {
                raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([*id])), false)
                    .await
                    .map_err(|e| format!("remove learner {id}: {e}"))?;
            } else {
                return Err(format!("node {id} is not a member"));
            }
        }
    }
    Ok(())
}
