//! Membership changes an operator asks for (`ctl members add|remove`). They run on the
//! leader; a follower forwards them as an application query over the peer protocol.

use std::collections::BTreeSet;
use std::time::Duration;

use holdfast_table::raft::Raft;
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
            matched: m
                .replication
                .as_ref()
                .and_then(|r| r.get(&asker).cloned().flatten())
                .map(|l| l.index),
        }
    }
}

/// How long a new member may go without catching up any further before the add is
/// abandoned (an unreachable or refusing node never starts).
const STALL: Duration = Duration::from_secs(15);

/// How long a new member that keeps catching up may take in all: a node joining a table
/// of ten million bindings receives a snapshot of hundreds of megabytes and then the log
/// written meanwhile. It stays under the 30 s a forwarded `members add` is given.
const CATCH_UP: Duration = Duration::from_secs(25);

/// Why a new member is not caught up.
enum Behind {
    /// Never reached: an unreachable or refusing node. The add is rolled back.
    Unreached,
    /// Reached, then no further for [`STALL`]. The add is rolled back.
    Stalled(u64),
    /// Still catching up when [`CATCH_UP`] ran out: it stays a learner, and a second
    /// `members add` promotes it once it has caught up.
    Slow(u64),
}

impl Behind {
    /// What the operator is told.
    fn explain(&self, id: u64, target: u64) -> String {
        match self {
            Behind::Unreached => format!(
                "node {id} was not reached within {STALL:?} (unreachable or refused?); \
                 the add is rolled back"
            ),
            Behind::Stalled(at) => format!(
                "node {id} stopped catching up at log index {at} of {target} for {STALL:?}; \
                 the add is rolled back"
            ),
            Behind::Slow(at) => format!(
                "node {id} is still catching up (log index {at} of {target} after \
                 {CATCH_UP:?}); it stays a learner: run `members add` again to make it a voter"
            ),
        }
    }
}

/// Waits until the leader has replicated to learner `id` up to `target`, as long as the
/// learner's replicated index keeps moving (at least once every [`STALL`]) and at most
/// [`CATCH_UP`] in all.
async fn wait_caught_up(raft: &Raft, id: u64, target: u64) -> Result<(), Behind> {
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
        let matched = match (waited, seen) {
            (Ok(m), _) => learner_matched(&m, id),
            (Err(_), None) => return Err(Behind::Unreached),
            (Err(_), Some(at)) if left > STALL => return Err(Behind::Stalled(at)),
            (Err(_), Some(at)) => return Err(Behind::Slow(at)),
        };
        if matched.is_some_and(|i| i >= target) {
            return Ok(());
        }
        seen = matched;
    }
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
pub async fn execute(raft: &Raft, op: &ClusterOp) -> Result<(), String> {
    if let ClusterOp::AddMember { addr, .. } = op {
        validate_addr(addr)?;
    }
    let (raft, op) = (raft.clone(), op.clone());
    tokio::spawn(async move { run(&raft, &op).await })
        .await
        .map_err(|e| format!("membership change task failed: {e}"))?
}

async fn run(raft: &Raft, op: &ClusterOp) -> Result<(), String> {
    match op {
        ClusterOp::AddMember { id, addr } => {
            let node = BasicNode { addr: addr.clone() };
            let target = raft.metrics().borrow().last_log_index;
            raft.add_learner(*id, node, false)
                .await
                .map_err(|e| format!("add learner {id}: {e}"))?;
            if let Some(target) = target
                && let Err(behind) = wait_caught_up(raft, *id, target).await
            {
                if !matches!(behind, Behind::Slow(_)) {
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
