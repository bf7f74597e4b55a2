//! The replicated stick table across real node processes over loopback TCP: formation,
//! forwarding, leader loss, restart catch-up, joining by snapshot, peer authentication.

use std::time::Duration;

use holdfast_tests::{Cluster, ClusterOptions, NodeProc, wait_for};

const PATIENCE: Duration = Duration::from_secs(30);

fn pin(node: &NodeProc, key: &str, server: &str) -> u16 {
    node.pin("app", key, server)
}

fn keys_of(node: &NodeProc) -> Option<Vec<(String, String)>> {
    let table = node.table("app")?;
    let mut keys: Vec<(String, String)> = table
        .bindings
        .into_iter()
        .map(|b| (b.key, b.server))
        .collect();
    keys.sort();
    Some(keys)
}

fn wait_table(cluster: &Cluster, i: usize, expected: &[(String, String)]) {
    wait_for(
        &format!("node {} to hold {} bindings", i + 1, expected.len()),
        PATIENCE,
        || (keys_of(cluster.node(i)).as_deref() == Some(expected)).then_some(()),
    );
}

fn expected(keys: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut v: Vec<_> = keys.into_iter().collect();
    v.sort();
    v
}

#[test]
fn forms_from_static_config_and_forwards_follower_writes() {
    let cluster = Cluster::start(3, ClusterOptions::default());
    let leader = cluster.wait_leader();
    for i in 0..3 {
        let c = cluster.node(i).cluster_status().expect("cluster status");
        assert_eq!(c.members.len(), 3, "{c:?}");
        assert_eq!(c.leader, Some(leader));
    }
    let follower = cluster.a_follower();
    assert_eq!(pin(cluster.node(follower), "alice", "s1"), 200);
    assert_eq!(pin(cluster.node(follower), "bob", "s2"), 200);
    // A conflicting bind of an existing key loses: the first committed bind wins.
    assert_eq!(
        pin(cluster.node(cluster.index_of(leader)), "alice", "s2"),
        200
    );
    let want = expected([("alice".into(), "s1".into()), ("bob".into(), "s2".into())]);
    for i in 0..3 {
        wait_table(&cluster, i, &want);
        let backends = cluster.node(i).backends().expect("backends");
        let s1 = backends
            .servers()
            .next()
            .map(|(_, s)| (s.name.as_str(), s.bindings));
        assert_eq!(s1, Some(("s1", 1)), "{backends:?}");
    }
}

#[test]
fn leader_killed_new_leader_keeps_every_committed_binding() {
    let mut cluster = Cluster::start(3, ClusterOptions::default());
    let leader = cluster.wait_leader();
    let keys: Vec<(String, String)> = (0..20)
        .map(|i| (format!("k{i}"), "s1".to_string()))
        .collect();
    for (k, s) in &keys {
        assert_eq!(pin(cluster.node(cluster.index_of(leader)), k, s), 200);
    }
    cluster.kill(cluster.index_of(leader));
    let new_leader = cluster.wait_leader();
    assert_ne!(new_leader, leader);
    let survivor = cluster.running()[0];
    assert_eq!(pin(cluster.node(survivor), "after", "s2"), 200);
    let want = expected(
        keys.into_iter()
            .chain([("after".to_string(), "s2".to_string())]),
    );
    for i in cluster.running() {
        wait_table(&cluster, i, &want);
    }
}

#[test]
fn restarted_node_catches_up_from_its_own_log() {
    let mut cluster = Cluster::start(3, ClusterOptions::default());
    let leader = cluster.wait_leader();
    let victim = cluster.a_follower();
    let writer = cluster.index_of(leader);
    assert_eq!(pin(cluster.node(writer), "before", "s1"), 200);
    wait_table(
        &cluster,
        victim,
        &expected([("before".into(), "s1".into())]),
    );
    cluster.kill(victim);
    for i in 0..10 {
        assert_eq!(pin(cluster.node(writer), &format!("during{i}"), "s2"), 200);
    }
    cluster.restart(victim);
    let want = keys_of(cluster.node(writer)).expect("leader table");
    assert_eq!(want.len(), 11);
    wait_table(&cluster, victim, &want);
    let status = |i: usize| cluster.node(i).backends();
    wait_for("same server counts on the restarted node", PATIENCE, || {
        (status(victim) == status(writer)).then_some(())
    });
}

#[test]
fn fresh_node_joins_and_catches_up_by_snapshot() {
    let options = ClusterOptions {
        snapshot_every: 20,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(3, options);
    let leader = cluster.wait_leader();
    let writer = cluster.index_of(leader);
    for i in 0..80 {
        assert_eq!(pin(cluster.node(writer), &format!("k{i:03}"), "s1"), 200);
    }
    // The leader has compacted its log: a newcomer cannot replay it from the start.
    wait_for("the leader to purge its log", PATIENCE, || {
        let c = cluster.node(writer).cluster_status()?;
        (c.purged_index > 0).then_some(())
    });
    let follower = cluster.a_follower();
    let newcomer = cluster.start_extra(4, None);
    let added = cluster
        .node(follower)
        .add_member(4, &cluster.node(newcomer).peer)
        .expect("members add");
    assert_eq!(added.status, 200, "{}", added.body);
    let want = keys_of(cluster.node(writer)).expect("leader table");
    wait_table(&cluster, newcomer, &want);
    let c = cluster.node(newcomer).cluster_status().expect("cluster");
    assert_eq!(c.members.len(), 4, "{c:?}");
    assert!(c.snapshot_index > 0, "{c:?}");
}

#[test]
fn peer_with_wrong_secret_is_refused() {
    let mut cluster = Cluster::start(3, ClusterOptions::default());
    let leader = cluster.wait_leader();
    let intruder = cluster.start_extra(9, Some("not-the-cluster-secret-at-all"));
    // Ask the cluster to add it: replication to it must be refused, so the add fails.
    let reply = cluster
        .node(cluster.index_of(leader))
        .add_member(9, &cluster.node(intruder).peer);
    let status = reply.map(|r| r.status).unwrap_or(0);
    assert_ne!(status, 200, "a node with the wrong secret was added");
    wait_for("both sides to log the refusal", PATIENCE, || {
        let intruder_log = cluster.node(intruder).log_text();
        let leader_log = cluster.node(cluster.index_of(leader)).log_text();
        (intruder_log.contains("wrong cluster secret")
            && leader_log.contains("wrong cluster secret"))
        .then_some(())
    });
    let c = cluster
        .node(intruder)
        .cluster_status()
        .expect("intruder status");
    assert_eq!(c.leader, None, "intruder learned a leader: {c:?}");
}
