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

/// How long a new member may take to catch up before the add is abandoned.
const CATCH_UP: Duration = Duration::from_secs(15);

/// Waits until the leader has replicated to learner `id` up to `target`.
async fn wait_caught_up(raft: &Raft, id: u64, target: Option<u64>) -> Result<(), String> {
    let Some(target) = target else {
        return Ok(());
    };
    raft.wait(Some(CATCH_UP))
        .metrics(
            |m| {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten())
                    .is_some_and(|log_id| log_id.index >= target)
            },
            "learner caught up",
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            format!("node {id} did not catch up within {CATCH_UP:?} (unreachable or refused?): {e}")
        })
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
            if let Err(e) = wait_caught_up(raft, *id, target).await {
                // Leave no unreachable learner behind.
                let _ = raft
                    .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([*id])), false)
                    .await;
                return Err(e);
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
