//! Forming a brand-new cluster from the static member list. The lowest id initializes it
//! once a quorum of members accepts connections on its peer port; the others step in only
//! if nothing has formed after a grace period (the lowest may be down at first boot).
//! Whoever initialized then sets the replicated table parameters once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use holdfast_peer_proto::PeerClient;
use holdfast_table::model::{Command, NodeId, TableParams};
use holdfast_table::raft::Raft;
use holdfast_table::raft::TypeConfig;
use openraft::BasicNode;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::membership::{FormedAnswer, PeerQuery};
use super::writer::Writer;

/// How long the lowest id waits for a quorum of members to be reachable.
const QUORUM_WAIT: Duration = Duration::from_secs(10);
/// How long the other members wait before initializing themselves.
const GRACE: Duration = Duration::from_secs(10);

/// What [`form`] needs to know and to reach.
pub(super) struct Formation {
    pub raft: Raft,
    pub writer: Arc<Writer>,
    pub peers: PeerClient<TypeConfig>,
    pub id: NodeId,
    pub members: BTreeMap<NodeId, BasicNode>,
    pub params: TableParams,
    pub data_dir: std::path::PathBuf,
}

/// Initializes the cluster if this node is the one to do it, then sets `params`.
pub(super) async fn form(f: Formation) {
    let Formation {
        raft,
        writer,
        peers,
        id,
        members,
        params,
        data_dir,
    } = f;
    let lowest = members.keys().next().copied() == Some(id);
    if lowest {
        wait_for_quorum(id, &members).await;
    } else {
        tokio::time::sleep(GRACE).await;
    }
    if raft.is_initialized().await.unwrap_or(true) {
        return;
    }
    // A member may have come up meanwhile and may tell that this node's data was lost.
    let formed = std::sync::atomic::AtomicBool::new(false);
    if let Err(e) = refuse_if_formed_without_me(&peers, id, &members, &data_dir, &formed).await {
        tracing::error!(id, "{e:#}");
        eprintln!("holdfast: {e:#}");
        let _ = raft.shutdown().await;
        return;
    }
    if formed.load(std::sync::atomic::Ordering::Acquire) {
        tracing::info!(
            id,
            "a cluster is formed: waiting for its leader to replicate here"
        );
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

/// A node with no cluster state asks every configured member whether a cluster has
/// already been formed that counts it as a voter. If one has, this node's data was lost
/// (a wiped or replaced data dir): taking part with an empty log could vote twice in a
/// term and serve an empty table, so it refuses to start and says what to run instead.
/// Members that do not answer (first boot: they are starting too) are skipped.
pub(super) async fn refuse_if_formed_without_me(
    peers: &PeerClient<TypeConfig>,
    id: NodeId,
    members: &BTreeMap<NodeId, BasicNode>,
    data_dir: &std::path::Path,
    formed: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<()> {
    let mut asks = tokio::task::JoinSet::new();
    for (_, node) in members.iter().filter(|(m, _)| **m != id) {
        let (peers, addr) = (peers.clone(), node.addr.clone());
        asks.spawn(async move {
            let query = serde_json::to_vec(&PeerQuery::Formed).ok()?;
            let reply = tokio::time::timeout(Duration::from_secs(2), peers.query(&addr, query))
                .await
                .ok()?
                .ok()?;
            serde_json::from_slice::<FormedAnswer>(&reply).ok()
        });
    }
    let answers: Vec<FormedAnswer> = asks.join_all().await.into_iter().flatten().collect();
    if answers.iter().any(|a| a.initialized) {
        // Never initialize a second cluster: wait for the formed one's leader.
        formed.store(true, std::sync::atomic::Ordering::Release);
    }
    // Only a leader that had replicated to this node proves its data was lost; a member
    // that never started yet (first boot, started late) has nothing to lose.
    let Some(formed) = answers
        .into_iter()
        .find(|a| a.initialized && a.voters.contains(&id) && a.matched.is_some())
    else {
        return Ok(());
    };
    let addr = members
        .get(&id)
        .map(|n| n.addr.clone())
        .unwrap_or_else(|| "ADDR".into());
    let leader = formed
        .leader
        .map(|l| format!("leader {l}"))
        .unwrap_or_else(|| "no leader right now".into());
    bail!(
        "node {id} has no cluster state in {dir}, but the cluster it belongs to (node {peer} \
         answered: voters {voters:?}, {leader}) still counts node {id} as a voter: its data \
         was lost. Starting it empty could vote twice in one term and serve an empty table, \
         so it does not start. To bring it back: on a live node run \
         `holdfast ctl members remove {id}`, set `join = true` in this node's [cluster] \
         section, start it, then run `holdfast ctl members add {id} {addr}`; it catches up \
         as a learner from a snapshot and becomes a voter when it has.",
        dir = data_dir.display(),
        peer = formed.id,
        voters = formed.voters,
    )
}
