//! The drain story under real client traffic (issue 4, scenarios 1–3): three real node
//! processes, real backends s1..s3 and simulated clients over loopback whose every request
//! goes to the next node in turn. Sessions never move; a drained server keeps its bound
//! clients through every node, takes no new ones, and is released no earlier than ttl after
//! its last request — also when the leader dies mid-drain. The figures for the closing note
//! are printed (`--nocapture`), never asserted, except the safety lower bound.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use holdfast::api::AdminState;
use holdfast_tests::{
    Client, CtlRun, Lab, MODES, PATIENCE, Tally, Traffic, TrafficOptions, assert_no_moves,
    mode_hosts, three_modes_config, wait_for,
};

const ALL: [usize; 3] = [0, 1, 2];

/// Every mode's s1.
const S1: [(&str, &str); 3] = [("ins", "s1"), ("lrn", "s1"), ("src", "s1")];

/// Waits until s1 drains on every running node, in every backend.
fn wait_drained(lab: &Lab) -> Instant {
    wait_for("s1 draining on every node", PATIENCE, || {
        S1.iter()
            .all(|(b, s)| {
                lab.server_everywhere(b, s)
                    .iter()
                    .all(|(state, _)| *state == Some(AdminState::Drain))
            })
            .then(Instant::now)
    })
}

/// The drain guarantees over `clients` (s1 drained everywhere at `drained`): in every backend someone bound to s1 kept reaching it through every node of `nodes`
/// after the drain; nobody who arrived after it reached s1. Returns the send time of the
/// last request answered by s1, per backend.
fn judge_drain(clients: &[Client], drained: Instant, nodes: &[usize]) -> BTreeMap<String, Instant> {
    let mut last = BTreeMap::new();
    for (backend, _) in MODES {
        let mine: Vec<&Client> = clients.iter().filter(|c| c.backend() == backend).collect();
        let kept: Vec<&&Client> = mine
            .iter()
            .filter(|c| c.first_server() == Some("s1") && c.first_sent() < Some(drained))
            .filter(|c| {
                nodes.iter().all(|n| {
                    c.visits
                        .iter()
                        .any(|v| v.sent > drained && v.node == *n && v.outcome.is_ok())
                })
            })
            .collect();
        assert!(
            !kept.is_empty(),
            "{backend}: a client bound to s1 reached it through every node after the drain"
        );
        let newcomers: Vec<&&Client> = mine
            .iter()
            .filter(|c| c.first_sent() > Some(drained))
            .collect();
        assert!(
            !newcomers.is_empty(),
            "{backend}: clients arrived during the drain"
        );
        for c in &newcomers {
            assert_ne!(
                c.first_server(),
                Some("s1"),
                "{backend}: client {} arrived after the drain and reached s1",
                c.n
            );
        }
        let at = mine
            .iter()
            .flat_map(|c| &c.visits)
            .filter(|v| v.outcome.as_deref() == Ok("s1"))
            .map(|v| v.sent)
            .max()
            .expect("requests to s1");
        println!(
            "  {backend}: {} clients, {} bound to s1 kept it through every node, {} newcomers none on s1",
            mine.len(),
            kept.len(),
            newcomers.len()
        );
        last.insert(backend.to_string(), at);
    }
    last
}

/// The release of s1 in every backend once the clients are quiet: not before ttl after the
/// last request to it (safety), `maint` with zero bindings on every running node, `ctl drain
/// --wait` exited 0 at release, no session break counted anywhere. Prints the figures.
fn judge_release(
    lab: &Lab,
    ttl: Duration,
    last: &BTreeMap<String, Instant>,
    waits: Vec<CtlRunHandle>,
) {
    let releases = lab.watch_release(&S1);
    for ((backend, server), release) in S1.iter().zip(&releases) {
        let last = last[*backend];
        assert!(
            release.held_until >= last + ttl,
            "{backend}/{server} released {:?} after its last request, before the ttl {ttl:?}",
            release.held_until.saturating_duration_since(last)
        );
        lab.assert_released(backend, server, "after the drain");
        println!(
            "  {backend}/{server}: released between {:?} and {:?} after its last request (ttl {ttl:?})",
            release.held_until - last,
            release.seen - last
        );
    }
    for (wait, (backend, _)) in waits.into_iter().zip(S1) {
        let run: CtlRun = wait.join().expect("ctl thread");
        assert_eq!(run.code, 0, "{backend}: drain --wait: {run:?}");
        assert!(run.stdout.contains("released"), "{run:?}");
        assert!(
            run.ended >= last[backend] + ttl,
            "{backend}: drain --wait returned early"
        );
    }
    for (backend, _) in MODES {
        let breaks = lab.session_breaks(backend);
        println!("  {backend}: session breaks (metrics, all nodes) {breaks}");
        assert_eq!(breaks, 0.0, "{backend}: session breaks counted");
    }
}

type CtlRunHandle = std::thread::JoinHandle<CtlRun>;

/// Starts `ctl drain B/s1 --wait` through node `i` for every backend.
fn drain_and_wait(lab: &Lab, i: usize) -> Vec<CtlRunHandle> {
    S1.iter()
        .map(|(b, s)| {
            lab.cluster.node(i).ctl_background(
                &["drain", &format!("{b}/{s}"), "--wait"],
                Duration::from_secs(90),
            )
        })
        .collect()
}

#[test]
fn sessions_stay_on_one_server_across_nodes_in_every_mode() {
    let started = Instant::now();
    let lab = Lab::start(3, |s| three_modes_config(s, "20s"));
    println!(
        "scenario 1: sessions across nodes (cluster up in {:?})",
        started.elapsed()
    );
    for (k, (backend, host)) in MODES.iter().enumerate() {
        let mut options = TrafficOptions::new(&[host], 100, 10);
        options.first = k * 1000;
        options.workers = 4;
        let started = Instant::now();
        let clients = Traffic::start(&lab, &ALL, options).finish();
        let took = started.elapsed();
        let tally = Tally::of(&clients);
        assert!(tally.failures.is_empty(), "{backend}: failures {tally:?}");
        assert_no_moves(&clients);
        assert_eq!(tally.requests, 1000, "{backend}: {tally:?}");
        assert!(
            clients
                .iter()
                .all(|c| ALL.iter().all(|n| c.visits.iter().any(|v| v.node == *n))),
            "{backend}: every client went through every node"
        );
        assert_eq!(
            tally.by_server.len(),
            3,
            "{backend}: clients spread over s1..s3: {tally:?}"
        );
        let breaks = lab.session_breaks(backend);
        println!(
            "  {backend}: {} clients, {} requests in {took:?}, clients per server {:?}, moves {}, session breaks {breaks}",
            clients.len(),
            tally.requests,
            tally.by_server,
            tally.moves
        );
        assert_eq!(breaks, 0.0, "{backend}: session breaks counted");
    }
}

#[test]
fn drain_through_node_2_under_traffic_keeps_sessions_and_releases_after_ttl() {
    let ttl = Duration::from_secs(3);
    let lab = Lab::start(3, |s| three_modes_config(s, "3s"));
    println!("scenario 2: drain s1 through node 2 under traffic");
    let mut options = TrafficOptions::new(&mode_hosts(), 45, 300);
    options.workers = 3;
    options.newcomers = 1;
    let traffic = Traffic::start(&lab, &ALL, options);
    traffic.wait_rounds(3);
    let waits = drain_and_wait(&lab, 1);
    let drained = wait_drained(&lab);
    traffic.wait_rounds(6);
    let clients = traffic.stop();
    let tally = Tally::of(&clients);
    println!(
        "  {} clients, {} requests, failures {:?}",
        clients.len(),
        tally.requests,
        tally.failures
    );
    assert!(tally.failures.is_empty(), "failures {tally:?}");
    assert_no_moves(&clients);
    let last = judge_drain(&clients, drained, &ALL);
    judge_release(&lab, ttl, &last, waits);
}

#[test]
fn leader_killed_mid_drain_keeps_sessions_and_proxying_on_the_survivors() {
    // The ttl is below the failover time: touches queued on the survivors while there is
    // no leader must still find their bindings (expiry waits for every member's watermark).
    let ttl = Duration::from_secs(3);
    let mut lab = Lab::start(3, |s| three_modes_config(s, "3s"));
    println!("scenario 3: leader killed mid-drain");
    let mut options = TrafficOptions::new(&mode_hosts(), 36, 400);
    options.workers = 3;
    options.newcomers = 1;
    let traffic = Traffic::start(&lab, &ALL, options);
    traffic.wait_rounds(3);
    let leader_id = lab.cluster.wait_leader();
    let leader = lab.cluster.index_of(leader_id);
    let survivors: Vec<usize> = ALL.into_iter().filter(|&i| i != leader).collect();
    let waits = drain_and_wait(&lab, survivors[0]);
    let drained = wait_drained(&lab);
    traffic.wait_rounds(2);

    let killed = Instant::now();
    lab.cluster.kill(leader);
    traffic.set_rotation(&survivors);
    let rotated = Instant::now();
    // The killed node no longer runs: the leader the survivors agree on is a new one.
    let new_leader = lab.cluster.wait_leader();
    let leader_seen = Instant::now();
    let failover = leader_seen - killed;
    traffic.wait_rounds(4);

    // The old leader comes back (its watermark must pass for the release) and rejoins.
    lab.cluster.restart(leader);
    lab.wait_frontends();
    lab.cluster.wait_leader();
    let back = Instant::now();
    traffic.set_rotation(&ALL);
    traffic.wait_rounds(4);
    let clients = traffic.stop();

    let tally = Tally::of(&clients);
    println!(
        "  {} clients, {} requests, failures on survivors {}, on the killed node {}",
        clients.len(),
        tally.requests,
        tally.failures_on(&survivors),
        tally.failures_on(&[leader])
    );
    println!(
        "  leader {leader_id} killed; node {new_leader} leader after {failover:?} (kill to new leader seen by both survivors)"
    );
    assert_eq!(
        tally.failures_on(&survivors),
        0,
        "survivors failed: {tally:?}"
    );
    // Only requests already on their way to the killed node when it died failed.
    for c in &clients {
        for v in c.visits.iter().filter(|v| v.outcome.is_err()) {
            assert!(
                v.node == leader && v.sent >= killed && v.sent <= rotated,
                "client {} failed outside the kill window: {v:?}",
                c.n
            );
        }
    }
    assert!(back > killed);
    // A client whose first request came in the failover window may move: its bind was lost
    // with the leader or could not replicate without one (the data plane does not wait for
    // consensus). Everyone else keeps their server.
    let window = |c: &&Client| {
        c.first_sent().is_some_and(|t| {
            t + Duration::from_secs(1) >= killed && t <= leader_seen + Duration::from_secs(1)
        })
    };
    let (windowed, others): (Vec<&Client>, Vec<&Client>) = clients.iter().partition(window);
    println!(
        "  clients arriving in the failover window: {}, of which moved {}; others moved {}",
        windowed.len(),
        windowed.iter().filter(|c| c.moves() > 0).count(),
        others.iter().filter(|c| c.moves() > 0).count()
    );
    assert_no_moves(others);
    let last = judge_drain(&clients, drained, &ALL);
    judge_release(&lab, ttl, &last, waits);
}
