//! Drain and release across real node processes: a drained server turns `maint` on every
//! node only once its last binding has expired and every member's watermark has passed
//! it; a paused member delays release, a deadline or removing the member unblocks it; no
//! quorum fails admin writes clearly; everything survives a whole-cluster restart.

use std::time::{Duration, Instant};

use holdfast::api::{AdminState, paths};
use holdfast_tests::{Cluster, ClusterOptions, PATIENCE, wait_for, watermarks_kept};

fn bindings_of_s1(cluster: &Cluster, i: usize) -> Option<u64> {
    Some(cluster.node(i).server("app", "s1")?.bindings)
}

#[test]
fn drain_from_any_node_releases_only_after_the_last_binding_expires() {
    let cluster = Cluster::start(3, ClusterOptions::with_ttl("3s"));
    assert_eq!(cluster.node(1).pin("app", "alice", "s1"), 200);
    let pinned = Instant::now();
    // Drain through node 3 and wait with `ctl drain --wait` in the background.
    let waiter = cluster
        .node(2)
        .ctl_background(&["drain", "app/s1", "--wait"], PATIENCE);
    // s1 drains on every node (the drain is replicated like any command).
    cluster.wait_state("app", "s1", AdminState::Drain);
    let released = cluster.wait_state("app", "s1", AdminState::Maint);
    // Safety, not speed: release never comes before the binding's TTL has run out.
    assert!(released.duration_since(pinned) >= Duration::from_secs(3));
    for i in 0..3 {
        assert_eq!(
            bindings_of_s1(&cluster, i),
            Some(0),
            "node {}: {:?} {:?}",
            i + 1,
            cluster.node(i).backends(),
            cluster.node(i).table("app")
        );
    }
    let run = waiter.join().expect("ctl thread");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("released"), "{}", run.stdout);
    // While it waited, it said when the release was projected and what held it.
    assert!(
        run.stdout.contains("release projected at") && run.stdout.contains("held by its bindings"),
        "{}",
        run.stdout
    );
    assert!(
        run.ended.duration_since(pinned) >= Duration::from_secs(3),
        "{}",
        run.stdout
    );
    // Every node's metrics agree on the replicated count.
    for i in 0..3 {
        let metrics = cluster
            .node(i)
            .call("GET", paths::METRICS, None)
            .expect("metrics")
            .body;
        assert!(
            metrics.contains("holdfast_table_bindings{backend=\"app\",server=\"s1\"} 0"),
            "{metrics}"
        );
    }
}

#[test]
fn paused_member_holds_release_until_it_resumes() {
    // A short expiry grace: the paused node soon stops holding the binding's expiry back,
    // so what remains is its watermark holding the release back.
    let options = ClusterOptions {
        expiry_grace: "1s".into(),
        ..ClusterOptions::with_ttl("2s")
    };
    let cluster = Cluster::start(3, options);
    assert_eq!(cluster.node(0).pin("app", "alice", "s1"), 200);
    wait_for("node 3 to apply the pin", PATIENCE, || {
        (bindings_of_s1(&cluster, 2)? == 1).then_some(())
    });
    let paused_id = cluster.node(2).id;
    // Node 3 may be the leader: then the others elect a new one once it stops answering.
    cluster.pause(2);
    let (code, _, err) = {
        let mut result = (1, String::new(), String::new());
        for _ in 0..20 {
            result = cluster.node(0).ctl(&["drain", "app/s1"]);
            if result.0 == 0 {
                break;
            }
        }
        result
    };
    assert_eq!(code, 0, "{err}");
    // The binding expires and the live members report past it, but the paused node's
    // watermark holds the release back.
    let s1 = wait_for("only the paused node to hold s1 back", PATIENCE, || {
        let s = cluster.node(0).server("app", "s1")?;
        (s.bindings == 0 && s.release_blockers == [paused_id]).then_some(s)
    });
    assert_eq!(s1.admin_state, AdminState::Drain, "{s1:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        cluster.node(1).admin_state("app", "s1"),
        Some(AdminState::Drain)
    );
    cluster.resume(2);
    cluster.wait_state("app", "s1", AdminState::Maint);
}

#[test]
fn deadline_forces_release_and_removing_a_dead_member_unblocks_it() {
    let mut cluster = Cluster::start(3, ClusterOptions::with_ttl("1s"));
    let victim = cluster.a_follower();
    let others: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    let victim_id = cluster.node(victim).id;
    cluster.kill(victim);
    // s1 drains with a deadline: the dead member blocks the rule, the deadline forces it.
    let (code, _, err) = cluster
        .node(others[0])
        .ctl(&["drain", "app/s1", "--deadline", "2s"]);
    assert_eq!(code, 0, "{err}");
    cluster.wait_state("app", "s1", AdminState::Maint);
    // s2 drains without a deadline: held by the dead member until it is removed.
    let (code, _, err) = cluster.node(others[1]).ctl(&["drain", "app/s2"]);
    assert_eq!(code, 0, "{err}");
    let s2 = wait_for("s2 to be held by the dead member", PATIENCE, || {
        let s = cluster.node(others[0]).server("app", "s2")?;
        (s.release_blockers == [victim_id]).then_some(s)
    });
    assert_eq!(s2.admin_state, AdminState::Drain, "{s2:?}");
    let (code, _, err) =
        cluster
            .node(others[1])
            .ctl(&["members", "remove", &victim_id.to_string()]);
    assert_eq!(code, 0, "{err}");
    cluster.wait_state("app", "s2", AdminState::Maint);
}

#[test]
fn without_quorum_admin_writes_fail_clearly_and_the_cluster_converges_after() {
    let mut cluster = Cluster::start(3, ClusterOptions::with_ttl("60s"));
    assert_eq!(cluster.node(0).pin("app", "alice", "s1"), 200);
    wait_for("every node to apply the pin", PATIENCE, || {
        (0..3)
            .all(|i| bindings_of_s1(&cluster, i) == Some(1))
            .then_some(())
    });
    cluster.kill(1);
    cluster.kill(2);
    let started = Instant::now();
    let (code, out, err) = cluster.node(0).ctl(&["drain", "app/s1"]);
    assert_ne!(code, 0, "drain without quorum succeeded: {out}");
    assert!(err.contains("no quorum"), "{err}");
    // Bounded: the write timeout (5 s) plus process start, far below the harness's patience.
    assert!(started.elapsed() < PATIENCE);
    // Reads keep working on the survivor.
    assert_eq!(bindings_of_s1(&cluster, 0), Some(1));
    cluster.restart(1);
    cluster.restart(2);
    cluster.wait_leader();
    let (code, _, err) = cluster.node(2).ctl(&["drain", "app/s2"]);
    assert_eq!(code, 0, "{err}");
    wait_for("every node to agree after recovery", PATIENCE, || {
        (0..3)
            .all(|i| {
                cluster.node(i).admin_state("app", "s2") == Some(AdminState::Maint)
                    && bindings_of_s1(&cluster, i) == Some(1)
            })
            .then_some(())
    });
}

#[test]
fn whole_cluster_restart_keeps_bindings_states_and_watermarks() {
    let mut cluster = Cluster::start(3, ClusterOptions::with_ttl("120s"));
    for k in ["a", "b", "c"] {
        assert_eq!(cluster.node(0).pin("app", k, "s1"), 200);
    }
    let (code, _, err) = cluster.node(1).ctl(&["drain", "app/s1"]);
    assert_eq!(code, 0, "{err}");
    cluster.wait_state("app", "s1", AdminState::Drain);
    let before = cluster.node(0).cluster_status().expect("cluster");
    for i in 0..3 {
        cluster.kill(i);
    }
    for i in 0..3 {
        cluster.restart(i);
    }
    cluster.wait_leader();
    wait_for("the table to come back on every node", PATIENCE, || {
        (0..3)
            .all(|i| bindings_of_s1(&cluster, i) == Some(3))
            .then_some(())
    });
    cluster.wait_state("app", "s1", AdminState::Drain);
    let after = cluster.node(0).cluster_status().expect("cluster");
    assert!(watermarks_kept(&before, &after), "{before:?} -> {after:?}");
}
