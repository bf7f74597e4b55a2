//! Drain and release across real node processes: a drained server turns `maint` on every
//! node only once its last binding has expired and every member's watermark has passed
//! it; a paused member delays release, a deadline or removing the member unblocks it; no
//! quorum fails admin writes clearly; everything survives a whole-cluster restart.

use std::time::{Duration, Instant};

use holdfast_tests::{Cluster, ClusterOptions, wait_for};

const PATIENCE: Duration = Duration::from_secs(40);

/// Waits until every running node reports `state` for app/s1; returns when it did.
fn wait_state_everywhere(cluster: &Cluster, state: &str) -> Instant {
    wait_for(
        &format!("app/s1 to be {state} on every running node"),
        PATIENCE,
        || {
            cluster
                .running()
                .iter()
                .all(|&i| cluster.node(i).admin_state("app", "s1").as_deref() == Some(state))
                .then(Instant::now)
        },
    )
}

fn bindings_of_s1(cluster: &Cluster, i: usize) -> Option<u64> {
    cluster.node(i).server("app", "s1")?["bindings"].as_u64()
}

#[test]
fn drain_from_any_node_releases_only_after_the_last_binding_expires() {
    let cluster = Cluster::start(3, ClusterOptions::with_ttl("3s"));
    assert_eq!(cluster.node(1).pin("app", "alice", "s1"), 200);
    let pinned = Instant::now();
    // Drain through node 3 and wait with `ctl drain --wait` in the background.
    let waiter = {
        let node = cluster.node(2);
        let admin = node.admin.clone();
        std::thread::spawn(move || {
            let out = std::process::Command::new(holdfast_tests::holdfast_binary())
                .args([
                    "ctl",
                    "--admin",
                    &format!("http://{admin}"),
                    "--token",
                    "test-token",
                ])
                .args(["drain", "app/s1", "--wait"])
                .output()
                .expect("ctl");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                Instant::now(),
            )
        })
    };
    // s1 drains on every node (the drain is replicated like any command).
    wait_state_everywhere(&cluster, "drain");
    let released = wait_state_everywhere(&cluster, "maint");
    // Safety, not speed: release never comes before the binding's TTL has run out.
    assert!(released.duration_since(pinned) >= Duration::from_secs(3));
    for i in 0..3 {
        assert_eq!(
            bindings_of_s1(&cluster, i),
            Some(0),
            "node {}: {:?} {:?}",
            i + 1,
            cluster.node(i).get("/v1/backends"),
            cluster.node(i).get("/v1/table/app")
        );
    }
    let (code, out, done) = waiter.join().expect("ctl thread");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("released"), "{out}");
    assert!(
        done.duration_since(pinned) >= Duration::from_secs(3),
        "{out}"
    );
    // Every node's metrics agree on the replicated count.
    for i in 0..3 {
        let metrics = cluster
            .node(i)
            .call("GET", "/metrics", None)
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
        (s["bindings"].as_u64()? == 0 && s["release_blockers"] == serde_json::json!([paused_id]))
            .then_some(s)
    });
    assert_eq!(s1["admin_state"], "drain", "{s1}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        cluster.node(1).admin_state("app", "s1").as_deref(),
        Some("drain")
    );
    cluster.resume(2);
    wait_state_everywhere(&cluster, "maint");
}

#[test]
fn deadline_forces_release_and_removing_a_dead_member_unblocks_it() {
    let mut cluster = Cluster::start(3, ClusterOptions::with_ttl("1s"));
    let leader = cluster.wait_leader();
    let victim = (0..3)
        .find(|&i| cluster.node(i).id != leader)
        .expect("a follower");
    let others: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    let victim_id = cluster.node(victim).id;
    cluster.kill(victim);
    // s1 drains with a deadline: the dead member blocks the rule, the deadline forces it.
    let (code, _, err) = cluster
        .node(others[0])
        .ctl(&["drain", "app/s1", "--deadline", "2s"]);
    assert_eq!(code, 0, "{err}");
    wait_state_everywhere(&cluster, "maint");
    // s2 drains without a deadline: held by the dead member until it is removed.
    let (code, _, err) = cluster.node(others[1]).ctl(&["drain", "app/s2"]);
    assert_eq!(code, 0, "{err}");
    let s2 = wait_for("s2 to be held by the dead member", PATIENCE, || {
        let s = cluster.node(others[0]).server("app", "s2")?;
        (s["release_blockers"] == serde_json::json!([victim_id])).then_some(s)
    });
    assert_eq!(s2["admin_state"], "drain", "{s2}");
    let (code, _, err) =
        cluster
            .node(others[1])
            .ctl(&["members", "remove", &victim_id.to_string()]);
    assert_eq!(code, 0, "{err}");
    wait_for("s2 released after the member is removed", PATIENCE, || {
        others
            .iter()
            .all(|&i| cluster.node(i).admin_state("app", "s2").as_deref() == Some("maint"))
            .then_some(())
    });
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
                cluster.node(i).admin_state("app", "s2").as_deref() == Some("maint")
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
    wait_state_everywhere(&cluster, "drain");
    let before = cluster.node(0).get("/v1/cluster").expect("cluster");
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
    wait_state_everywhere(&cluster, "drain");
    let after = cluster.node(0).get("/v1/cluster").expect("cluster");
    for (b, a) in before["members"]
        .as_array()
        .unwrap()
        .iter()
        .zip(after["members"].as_array().unwrap())
    {
        assert!(
            a["watermark"].as_u64() >= b["watermark"].as_u64(),
            "{before} -> {after}"
        );
    }
}
