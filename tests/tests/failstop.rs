//! Fail-stop under real faults (issue 9), each with client traffic running and a drain in
//! progress: a follower whose disk fills up or whose log turns unwritable stops (exit 70, the file and
//! the OS error on stderr) and the release waits for it; a node restarted with a wiped
//! data dir refuses to start until the operator removes and re-adds it; a `members add`
//! whose caller hangs up leaves no learner behind. Every test asserts no session broken
//! and a release never earlier than the ttl after the server's last request.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use holdfast::api::{MemberAdd, paths};
use holdfast_tests::{
    Client, ClusterOptions, Lab, MODES, PATIENCE, SmallDisk, TOKEN, Tally, Traffic, TrafficOptions,
    assert_no_moves, in_every_mode, last_request, mode_hosts, three_modes_config, wait_for,
};

const TTL: Duration = Duration::from_secs(2);

fn lab(snapshot_every: u64) -> Lab {
    let options = ClusterOptions {
        expiry_grace: "1s".into(),
        snapshot_every,
        ..ClusterOptions::default()
    };
    Lab::start_with(3, options, |s| three_modes_config(s, "2s"))
}

fn traffic(lab: &Lab, rotation: &[usize]) -> Traffic {
    let mut options = TrafficOptions::new(&mode_hosts(), 30, 400);
    options.workers = 3;
    options.newcomers = 1;
    options.max_time = Duration::from_secs(90);
    Traffic::start(lab, rotation, options)
}

/// Waits until node `i` is ready and its frontend accepts.
fn wait_ready(lab: &Lab, i: usize) {
    wait_for(&format!("node {} ready", i + 1), PATIENCE, || {
        lab.cluster.node(i).ready().then_some(())
    });
    lab.cluster.wait_frontends(&[i], PATIENCE);
}

/// Checks the releases of s1: never before ttl after its last request, `maint` with no
/// binding everywhere, no session break counted. Prints the figures.
fn check_releases(lab: &Lab, clients: &[Client], held: Instant, what: &str) {
    let tally = Tally::of(clients);
    assert_no_moves(clients);
    let s1 = in_every_mode("s1");
    let releases = lab.watch_release_held_at(&s1, Some(held));
    for ((backend, server), release) in s1.iter().zip(&releases) {
        if let Some(last) = last_request(clients, backend, server) {
            assert!(
                release.held_until >= last + TTL,
                "{what}: {backend}/{server} released before the ttl after its last request"
            );
            println!(
                "  {backend}/{server}: released {:?} after its last request",
                release.seen - last
            );
        }
        lab.assert_released(backend, server, what);
    }
    let breaks: f64 = MODES.iter().map(|(b, _)| lab.session_breaks(b)).sum();
    println!(
        "  {what}: {} clients, {} requests, failed {:?} (by node index), moves {}, breaks {breaks}",
        clients.len(),
        tally.requests,
        tally.failures,
        tally.moves
    );
    assert_eq!(breaks, 0.0, "{what}: session breaks counted");
}

/// Waits (bounded) for node `i` to exit by itself; returns its exit code.
fn wait_exit(lab: &mut Lab, i: usize, within: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(code) = lab.cluster.nodes[i].exited() {
            return code;
        }
        assert!(
            start.elapsed() < within,
            "node {} still running {within:?} after its storage failed:\n{}",
            i + 1,
            lab.cluster.node(i).log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    DiskFull,
    LogImmutable,
}

fn storage_fault(fault: Fault) {
    let mut lab = lab(5_000);
    let victim = lab.cluster.a_follower();
    let id = lab.cluster.node(victim).id;
    let live: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    // The victim's data dir onto a 16 MiB ext4 image (restarted on it, caught up, ready).
    lab.cluster.kill(victim);
    let Some(disk) = SmallDisk::over(&lab.cluster.node(victim).data_dir(), 16) else {
        println!("  skipped: mounting a tmpfs needs root");
        return;
    };
    lab.cluster.nodes[victim].start();
    wait_ready(&lab, victim);
    println!("fail-stop, {fault:?}: node {id}'s data dir on a 16 MiB ext4 image");

    let traffic = traffic(&lab, &[0, 1, 2]);
    traffic.wait_rounds(3);
    lab.drain_in_every_mode(live[0], "s1");
    traffic.wait_rounds(2);
    match fault {
        Fault::DiskFull => disk.fill(),
        Fault::LogImmutable => disk.immutable("raft-log.redb", true),
    }
    let failed_at = Instant::now();
    let code = wait_exit(&mut lab, victim, Duration::from_secs(30));
    let stopped_in = failed_at.elapsed();
    traffic.set_rotation(&live);
    traffic.wait_rounds(4);
    let clients = traffic.stop();
    // A node that stops takes its queue with it: a new client whose first request it
    // answered in its last moments may have had its bind die with it (as with kill -9).
    // That is not a stale node's answer; those sessions are set apart and counted.
    let (begun_on_victim, clients): (Vec<Client>, Vec<Client>) =
        clients.into_iter().partition(|c| {
            c.visits
                .first()
                .is_some_and(|v| v.node == victim && v.sent + Duration::from_secs(1) >= failed_at)
        });
    println!(
        "  {} sessions begun on node {id} in its last second set apart",
        begun_on_victim.len()
    );
    let log = lab.cluster.node(victim).log_text();
    assert_eq!(code, Some(70), "exit code; log:\n{log}");
    let os_error = match fault {
        Fault::DiskFull => "No space left on device",
        Fault::LogImmutable => "Operation not permitted",
    };
    assert!(log.contains("fail-stop") && log.contains(os_error), "{log}");
    assert!(
        log.contains(&lab.cluster.node(victim).data_dir().display().to_string()),
        "the failing file is named: {log}"
    );
    println!("  node {id} stopped {stopped_in:?} after its storage failed, exit 70");

    // Bindings to s1 expire; only the stopped node's watermark holds the release back.
    lab.wait_held_only_by(&live, "s1", id);
    std::thread::sleep(Duration::from_secs(1));
    let held = Instant::now();
    // Its disk repaired, the node comes back, catches up, and lets the release through.
    match fault {
        Fault::DiskFull => disk.free(),
        Fault::LogImmutable => disk.immutable("raft-log.redb", false),
    }
    lab.cluster.nodes[victim].start();
    wait_ready(&lab, victim);
    check_releases(&lab, &clients, held, &format!("{fault:?}"));
    drop(disk);
}

#[test]
fn a_follower_whose_disk_fills_up_stops_and_the_release_waits_for_it() {
    storage_fault(Fault::DiskFull);
}

#[test]
fn a_follower_whose_raft_log_turns_unwritable_stops_and_the_release_waits_for_it() {
    storage_fault(Fault::LogImmutable);
}

fn wiped_restart(snapshot_every: u64) {
    let mut lab = lab(snapshot_every);
    let victim = lab.cluster.a_follower();
    let id = lab.cluster.node(victim).id;
    let peer = lab.cluster.node(victim).peer.clone();
    let live: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    println!("wiped data dir, snapshot_every {snapshot_every}: node {id}");
    let traffic = traffic(&lab, &[0, 1, 2]);
    traffic.wait_rounds(6);
    if snapshot_every < 1_000 {
        wait_for("the leader purged its log", PATIENCE, || {
            let c = lab.cluster.node(live[0]).cluster_status()?;
            (c.purged_index > 0).then_some(())
        });
    }
    traffic.set_rotation(&live);
    traffic.wait_rounds(1);
    lab.cluster.kill(victim);
    let purged = lab
        .cluster
        .node(live[0])
        .cluster_status()
        .map_or(0, |c| c.purged_index);
    std::fs::remove_dir_all(lab.cluster.node(victim).data_dir()).expect("wipe");
    lab.drain_in_every_mode(live[0], "s1");
    lab.cluster.nodes[victim].start();
    let code = wait_exit(&mut lab, victim, Duration::from_secs(20));
    let log = lab.cluster.node(victim).log_text();
    assert!(code.is_some_and(|c| c != 0), "it started: {log}");
    assert!(
        log.contains(&format!("ctl members remove {id}")) && log.contains("members add"),
        "the refusal says what to run: {log}"
    );
    println!("  leader purged up to {purged}; node {id} refused to start (exit {code:?})");

    // What the message says: remove it, start it in join mode, add it again.
    let (code, _, err) = lab
        .cluster
        .node(live[0])
        .ctl(&["members", "remove", &id.to_string()]);
    assert_eq!(code, 0, "{err}");
    lab.cluster.node(victim).set_join();
    lab.cluster.nodes[victim].start();
    let (code, _, err) = lab
        .cluster
        .node(live[0])
        .ctl(&["members", "add", &id.to_string(), &peer]);
    assert_eq!(code, 0, "{err}");
    wait_ready(&lab, victim);
    traffic.set_rotation(&[0, 1, 2]);
    traffic.wait_rounds(3);
    let clients = traffic.stop();
    let held = Instant::now();
    let tables: Vec<BTreeMap<(String, String), u64>> = (0..3)
        .map(|i| lab.table_counts(i).expect("table"))
        .collect();
    println!("  tables after the rejoin: {:?}", tables[victim]);
    lab.wait_same_tables();
    check_releases(&lab, &clients, held, "wiped");
}

#[test]
fn a_node_restarted_with_a_wiped_data_dir_refuses_to_start_until_re_added() {
    wiped_restart(100_000);
}

#[test]
fn a_node_wiped_after_the_leader_purged_its_log_refuses_and_rejoins_by_snapshot() {
    wiped_restart(50);
}

#[test]
fn a_members_add_whose_caller_hangs_up_leaves_no_learner_behind() {
    let lab = lab(5_000);
    println!("members add, caller hangs up");
    let admin = lab.cluster.node(0).admin.clone();
    let bad = lab
        .cluster
        .node(0)
        .add_member(9, "not an addr")
        .expect("answer");
    assert_eq!(bad.status, 400, "{}", bad.body);

    let traffic = traffic(&lab, &[0, 1, 2]);
    traffic.wait_rounds(3);
    // An unreachable learner, asked for by a client that gives up after a second.
    let body = MemberAdd {
        id: 8,
        addr: "127.0.0.1:2".into(),
    };
    let body = serde_json::to_string(&body).expect("a member add");
    let mut stream = std::net::TcpStream::connect(&admin).expect("connect");
    write!(
        stream,
        "POST {} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        paths::MEMBERS,
        TOKEN,
        body.len()
    )
    .expect("send");
    std::thread::sleep(Duration::from_secs(1));
    drop(stream);
    lab.drain_in_every_mode(1, "s1");
    let member_8 = || {
        lab.cluster
            .node(0)
            .cluster_status()
            .is_some_and(|c| c.member(8).is_some())
    };
    wait_for("node 8 added as a learner", PATIENCE, || {
        member_8().then_some(())
    });
    let added = Instant::now();
    wait_for("the abandoned learner rolled back", PATIENCE, || {
        (!member_8()).then_some(())
    });
    println!(
        "  learner 8 removed {:?} after it was added",
        added.elapsed()
    );
    traffic.wait_rounds(2);
    let clients = traffic.stop();
    check_releases(&lab, &clients, Instant::now(), "members add");
}

/// The applied-index rule over real processes: a follower paused before a drain resumes
/// and is flooded with new clients in its first second, before it has applied the drain.
/// Whatever it balanced to the draining server in that second holds the release back; no
/// session breaks and the release is never earlier than the ttl after s1's last request.
#[test]
fn a_follower_paused_before_a_drain_and_flooded_on_resume_never_lets_it_release_early() {
    let lab = lab(5_000);
    let victim = lab.cluster.a_follower();
    let id = lab.cluster.node(victim).id;
    let live: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    println!("paused before a drain, flooded on resume: node {id}");
    let warm = traffic(&lab, &[0, 1, 2]);
    warm.wait_rounds(2);
    warm.set_rotation(&live);
    warm.wait_rounds(1);
    lab.cluster.pause(victim);
    lab.drain_in_every_mode(live[0], "s1");
    warm.wait_rounds(3);
    let mut clients = warm.stop();
    lab.cluster.resume(victim);
    // The flood: new clients only, all through the resumed node, from its first moment.
    let mut options = TrafficOptions::new(&mode_hosts(), 0, 10);
    options.first = 10_000;
    options.workers = 4;
    options.newcomers = 10;
    options.think = Duration::from_millis(100);
    options.max_time = Duration::from_secs(1);
    let flood = Traffic::start(&lab, &[victim], options);
    let flooded = flood.finish();
    let on_s1 = flooded
        .iter()
        .filter(|c| c.first_server() == Some("s1"))
        .count();
    println!(
        "  flood: {} new clients through node {id}, {on_s1} of them first answered by s1",
        flooded.len()
    );
    clients.extend(flooded);
    check_releases(&lab, &clients, Instant::now(), "paused+flood");
}
