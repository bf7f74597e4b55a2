//! A real 3-node openraft cluster over the peer protocol (in-memory stores): leader
//! election, replicated writes, forwarding from a follower, snapshot install for a new
//! learner after a log purge, and re-election after the leader stops.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use holdfast_peer_proto::{CallError, ForwardError, PeerClient};
use openraft::ServerState;

use crate::common::{Node, Put, TC, secret_config, start_node};

const SECRET: &[u8] = b"cluster-test-secret-cluster-test";
const WAIT: Option<Duration> = Some(Duration::from_secs(15));

fn put(key: &str, value: &str) -> Put {
    Put {
        key: key.into(),
        value: value.into(),
    }
}

async fn leader_of(nodes: &[Node]) -> u64 {
    let m = nodes[0]
        .raft
        .wait(WAIT)
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .expect("leader elected");
    m.current_leader.expect("leader")
}

async fn wait_applied(nodes: &[Node], index: u64) {
    for n in nodes {
        n.raft
            .wait(WAIT)
            .applied_index_at_least(Some(index), "replicated")
            .await
            .expect("applied on every node");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_forward_and_fail_over() {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start_node(secret_config(id, SECRET)).await);
    }
    let members: BTreeMap<u64, _> = nodes.iter().map(|n| (n.id, n.member())).collect();
    nodes[0].raft.initialize(members).await.expect("initialize");

    let leader_id = leader_of(&nodes).await;
    let leader = nodes
        .iter()
        .find(|n| n.id == leader_id)
        .expect("leader node");
    let resp = leader
        .raft
        .client_write(put("a", "1"))
        .await
        .expect("write on leader");
    wait_applied(&nodes, resp.log_id.index).await;
    for n in &nodes {
        assert_eq!(
            n.sm.data().get("a").map(String::as_str),
            Some("1"),
            "node {}",
            n.id
        );
    }

    // A follower answers NotLeader naming the leader; forwarding to the leader commits.
    let follower = nodes.iter().find(|n| n.id != leader_id).expect("follower");
    let client = PeerClient::<TC>::new(Arc::new(secret_config(follower.id, SECRET)));
    match client.client_write(&follower.addr, put("b", "2")).await {
        Err(CallError::Remote(ForwardError::NotLeader { leader })) => {
            assert_eq!(leader, Some(leader_id))
        }
        other => panic!("expected NotLeader, got {other:?}"),
    }
    let forwarded = client
        .client_write(&leader.addr, put("b", "2"))
        .await
        .expect("forwarded write")
        .data;
    wait_applied(&nodes, forwarded.index).await;

    // Snapshot + purge on the leader, then a new learner can only catch up by
    // InstallSnapshot (chunked over this protocol).
    leader
        .raft
        .trigger()
        .snapshot()
        .await
        .expect("trigger snapshot");
    leader
        .raft
        .wait(WAIT)
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= forwarded.index),
            "snapshot built",
        )
        .await
        .expect("snapshot");
    leader
        .raft
        .trigger()
        .purge_log(forwarded.index)
        .await
        .expect("trigger purge");
    leader
        .raft
        .wait(WAIT)
        .metrics(
            |m| m.purged.is_some_and(|p| p.index >= forwarded.index),
            "log purged",
        )
        .await
        .expect("purged");
    let learner = start_node(secret_config(4, SECRET)).await;
    leader
        .raft
        .add_learner(4, learner.member(), true)
        .await
        .expect("add learner");
    learner
        .raft
        .wait(WAIT)
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= forwarded.index),
            "snapshot installed",
        )
        .await
        .expect("learner got the snapshot");
    assert_eq!(learner.sm.data().get("b").map(String::as_str), Some("2"));

    // Stop the leader: the two survivors elect a new one and keep committing.
    let pos = nodes
        .iter()
        .position(|n| n.id == leader_id)
        .expect("leader position");
    let old = nodes.remove(pos);
    old.stop().await;
    let new_leader = nodes[0]
        .raft
        .wait(WAIT)
        .metrics(
            |m| {
                m.current_leader.is_some_and(|l| l != leader_id)
                    && m.state != ServerState::Candidate
            },
            "new leader",
        )
        .await
        .expect("re-election")
        .current_leader
        .expect("new leader id");
    let new_leader = nodes
        .iter()
        .find(|n| n.id == new_leader)
        .expect("new leader node");
    let after = client
        .client_write(&new_leader.addr, put("c", "3"))
        .await
        .expect("write after failover")
        .data;
    wait_applied(&nodes, after.index).await;
    for n in &nodes {
        let data = n.sm.data();
        assert_eq!(data.len(), 3, "node {} has {data:?}", n.id);
        assert_eq!(data.get("c").map(String::as_str), Some("3"));
    }
    learner
        .raft
        .wait(WAIT)
        .applied_index_at_least(Some(after.index), "learner follows the new leader")
        .await
        .expect("learner applied");
    assert_eq!(learner.sm.data().get("c").map(String::as_str), Some("3"));
    learner.stop().await;
    for n in nodes {
        n.stop().await;
    }
}
