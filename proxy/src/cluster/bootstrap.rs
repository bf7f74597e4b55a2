//! Forming a brand-new cluster from the static member list. The lowest id initializes it
//! once a quorum of members accepts connections on its peer port; the others step in only
//! if nothing has formed after a grace period (the lowest may be down at first boot).
//! Whoever initialized then sets the replicated table parameters once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use holdfast_table::model::{Command, NodeId, TableParams};
use holdfast_table::raft::Raft;
use openraft::BasicNode;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::writer::Writer;

/// How long the lowest id waits for a quorum of members to be reachable.
const QUORUM_WAIT: Duration = Duration::from_secs(10);
/// How long the other members wait before initializing themselves.
const GRACE: Duration = Duration::from_secs(10);

/// Initializes the cluster if this node is the one to do it, then sets `params`.
pub(super) async fn form(
    raft: Raft,
    writer: Arc<Writer>,
    id: NodeId,
    members: BTreeMap<NodeId, BasicNode>,
    params: TableParams,
) {
    let lowest = members.keys().next().copied() == Some(id);
    if lowest {
        wait_for_quorum(id, &members).await;
    } else {
        tokio::time::sleep(GRACE).await;
    }
    if raft.is_initialized().await.unwrap_or(true) {
        return;
    }
    if !lowest {
        tracing::warn!(
            id,
            "no cluster formed within {GRACE:?}: initializing it from this node"
        );
    }
    if let Err(e) = raft.initialize(members).await {
        tracing::debug!(error = %e, "initialize skipped");
        return;
    }
    tracing::info!(id, "cluster initialized");
    for _ in 0..100 {
        if writer.write(Command::SetParams(params)).await.is_ok() {
            return;
        }
    }
    tracing::warn!(id, "could not set the cluster parameters (no quorum?)");
}

/// Waits (bounded) until a majority of `members`, this node included, accept TCP
/// connections on their peer address, so the first election has someone to talk to.
async fn wait_for_quorum(id: NodeId, members: &BTreeMap<NodeId, BasicNode>) {
    let needed = members.len() / 2 + 1;
    let deadline = Instant::now() + QUORUM_WAIT;
    loop {
        let mut up = 1;
        for (_, node) in members.iter().filter(|(m, _)| **m != id) {
            let probe = TcpStream::connect(&node.addr);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), probe).await {
                up += 1;
            }
        }
        if up >= needed || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
