//! The deployment in `deploy/` end to end, on a real Docker engine: builds the
//! `holdfast:dev` image (deploy/image/build.sh, nothing pulled), brings up
//! deploy/compose.yaml (three nodes, three demo backends, a private bridge network),
//! binds a real client to s1 through the published HTTP ports, drains s1, cuts the
//! leader off with `docker network disconnect`, and checks that the release waits for the
//! cut-off node's watermark and happens on every node once it is reconnected.
//!
//! Without a Docker engine (or without docker-compose) it prints `SKIPPED: no docker
//! engine` and passes. Everything it creates carries the compose project name
//! `holdfast-test` and is removed by `docker-compose down -v` when the test ends, passed
//! or failed.
//!
//! A second test needs no Docker: the compose node configs pass `holdfast check`, and the
//! Grafana dashboard names only metrics a node exports.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use holdfast::api::{
    AdminState, Backends, ClusterStatus, ServerView, StateChange, TableStatus, paths,
};
use holdfast_tests::{Jar, Lab, agreed_leader, holdfast_binary, request, wait_for};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Compose project name: the prefix of every container, network and volume we create.
const PROJECT: &str = "holdfast-test";
/// The project's network as docker-compose names it (`<project>_<network>`).
const NETWORK: &str = "holdfast-test_cluster";
/// Admin token in deploy/compose/node*.toml.
const TOKEN: &str = "compose-token";
/// Binding ttl of backend `app` in deploy/compose/node*.toml.
const TTL: Duration = Duration::from_secs(5);
/// How long anything cluster-wide may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long a docker or docker-compose command may run (image pulls never happen; this
/// bounds a wedged engine).
const DOCKER_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the image build may run: a cold release build on two shared cores, plus
/// waiting for cargo's lock while someone else builds.
const BUILD_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// One node of the compose cluster, as the host sees it.
struct Node {
    id: u64,
    service: &'static str,
    /// Its fixed address in the project network (deploy/compose.yaml).
    ip: &'static str,
    admin: &'static str,
    http: &'static str,
}

const NODES: [Node; 3] = [
    Node {
        id: 1,
        service: "node1",
        ip: "10.89.0.11",
        admin: "127.0.0.1:18411",
        http: "127.0.0.1:18081",
    },
    Node {
        id: 2,
        service: "node2",
        ip: "10.89.0.12",
        admin: "127.0.0.1:18412",
        http: "127.0.0.1:18082",
    },
    Node {
        id: 3,
        service: "node3",
        ip: "10.89.0.13",
        admin: "127.0.0.1:18413",
        http: "127.0.0.1:18083",
    },
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root exists")
}

/// What a finished command said.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with its output in temporary files (no pipe to fill up), killing it after
/// `timeout`.
fn run(cmd: &mut Command, timeout: Duration) -> Ran {
    let out = tempfile::tempfile().expect("temporary file for stdout");
    let err = tempfile::tempfile().expect("temporary file for stderr");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup stdout file"))
        .stderr(err.try_clone().expect("dup stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {timeout:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = |mut f: File| {
        use std::io::{Read, Seek};
        let mut s = String::new();
        let _ = f.rewind();
        let _ = f.read_to_string(&mut s);
        s
    };
    Ran {
        ok: status.success(),
        stdout: read(out),
        stderr: read(err),
    }
}

/// Why this machine cannot run the test, if it cannot. Bounded: a wedged engine fails
/// the test (after `DOCKER_TIMEOUT`) rather than hanging it.
fn docker_missing() -> Option<String> {
    // Client-only commands first (no daemon involved): are the programs there at all?
    let installed = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !installed("docker", "--version") {
        return Some("no `docker` command".into());
    }
    if !run(Command::new("docker").args(["info"]), DOCKER_TIMEOUT).ok {
        return Some("`docker info` failed".into());
    }
    if !installed("docker-compose", "version") {
        return Some("the engine answers but `docker-compose` is not installed".into());
    }
    None
}

/// The compose project. Dropping it removes its containers, network and volumes, also
/// when the test fails (after printing the nodes' last log lines).
struct Stack {
    root: PathBuf,
}

impl Stack {
    fn compose(&self) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(&self.root)
            .args(["-p", PROJECT, "-f", "deploy/compose.yaml"]);
        cmd
    }

    /// `down -v` first: a run killed before its guard could clean up leaves the same
    /// project behind, and only that project is touched.
    fn up(root: PathBuf) -> Stack {
        let stack = Stack { root };
        stack.down();
        let up = run(stack.compose().args(["up", "-d"]), DOCKER_TIMEOUT);
        assert!(up.ok, "docker-compose up failed:\n{}", up.stderr);
        stack
    }

    fn down(&self) {
        let down = run(
            self.compose().args(["down", "-v", "--remove-orphans"]),
            DOCKER_TIMEOUT,
        );
        if !down.ok {
            eprintln!("docker-compose down failed:\n{}", down.stderr);
        }
    }

    /// Container id of `service`.
    fn container(&self, service: &str) -> String {
        let ps = run(self.compose().args(["ps", "-q", service]), DOCKER_TIMEOUT);
        let id = ps.stdout.trim().to_string();
        assert!(
            ps.ok && !id.is_empty(),
            "no container for {service}: {}",
            ps.stderr
        );
        id
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = run(
                self.compose().args(["logs", "--no-color", "--tail", "40"]),
                DOCKER_TIMEOUT,
            );
            eprintln!("== compose logs (last lines)\n{}", logs.stdout);
        }
        self.down();
    }
}

/// Serializes runs on this machine: the project name, the subnet and the host ports are
/// fixed, so two `cargo test` runs at once (two engineers, one engine) would collide.
fn machine_lock() -> File {
    let path = std::env::temp_dir().join("holdfast-compose-test.lock");
    let file = File::create(&path).expect("create the compose test lock file");
    wait_for(
        "the compose test lock (another run holds it)",
        BUILD_TIMEOUT,
        || file.try_lock().ok(),
    );
    file
}

fn admin_get<T: DeserializeOwned>(node: &Node, path: &str) -> Option<T> {
    let reply = request(node.admin, "GET", path, Some(TOKEN), None).ok()?;
    (reply.status == 200).then(|| reply.parse()).flatten()
}

/// A POST that may meet an election in progress: retried on 503 or a refused connection
/// until `PATIENCE`; any other answer is returned.
fn admin_post(node: &Node, path: &str, body: &Value) -> u16 {
    wait_for(
        &format!("POST {path} through node {}", node.id),
        PATIENCE,
        || match request(node.admin, "POST", path, Some(TOKEN), Some(body)) {
            Ok(r) if r.status == 503 => None,
            Ok(r) => Some(r.status),
            Err(_) => None,
        },
    )
}

/// Server `s1` of backend `app` as `node` reports it.
fn s1(node: &Node) -> Option<ServerView> {
    let backends: Backends = admin_get(node, paths::BACKENDS)?;
    backends.server("app", "s1").cloned()
}

/// The server `key` is bound to in backend `app`, as `node`'s table says.
fn bound_server(node: &Node, key: &str) -> Option<String> {
    let table: TableStatus = admin_get(node, &paths::table("app", 1000))?;
    Some(table.binding(key)?.server.clone())
}

fn leader_seen_by(node: &Node) -> Option<u64> {
    admin_get::<ClusterStatus>(node, paths::CLUSTER)?.leader
}

/// `holdfast_session_breaks_total` of backend `app` on `node` (0 when never counted).
fn session_breaks(node: &Node) -> u64 {
    let reply = request(node.admin, "GET", "/metrics", None, None).expect("GET /metrics");
    reply
        .body
        .lines()
        .find(|l| l.starts_with("holdfast_session_breaks_total{backend=\"app\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().expect("a counter value"))
        .unwrap_or(0)
}

/// A request through `node`'s published HTTP port with the client's cookies; returns the
/// server that answered (the demo backends answer their name).
fn visit(jar: &mut Jar, node: &Node, requests: &mut u64) -> String {
    *requests += 1;
    let answer = jar
        .get(node.http, "app.local")
        .expect("request through node");
    assert_eq!(answer.status, 200, "through node {}: {answer:?}", node.id);
    answer.body
}

#[test]
fn compose_cluster_release_waits_for_a_cut_off_node() {
    if let Some(why) = docker_missing() {
        println!("SKIPPED: no docker engine ({why})");
        return;
    }
    let _lock = machine_lock();
    let root = workspace_root();

    // The image, built the way an operator builds it. SKIP_CARGO / BINARY in the
    // environment reach the script unchanged (e.g. to reuse a binary already built).
    let build_started = Instant::now();
    let build = run(
        Command::new(root.join("deploy/image/build.sh")).current_dir(&root),
        BUILD_TIMEOUT,
    );
    assert!(
        build.ok,
        "deploy/image/build.sh failed:\n{}\n{}",
        build.stdout, build.stderr
    );
    let build_time = build_started.elapsed();

    let stack = Stack::up(root);
    let started = Instant::now();
    let leader = wait_for("all three nodes to agree on a leader", PATIENCE, || {
        let seen: Vec<Option<u64>> = NODES.iter().map(leader_seen_by).collect();
        agreed_leader(&seen)
    });
    // A node takes client traffic only once ready (/readyz): what an operator's load
    // balancer, keepalived or orchestrator waits for too.
    wait_for("every node ready", PATIENCE, || {
        NODES
            .iter()
            .all(|n| {
                request(n.admin, "GET", paths::READYZ, None, None).is_ok_and(|r| r.status == 200)
            })
            .then_some(())
    });
    println!(
        "compose: image built in {build_time:?}; cluster up, leader node {leader}, every node \
         ready {:?} after `up -d` returned",
        started.elapsed()
    );

    // A real client bound to s1: new clients through node 1 until one lands there (round
    // robin over three servers), then the same client through every node.
    let mut requests = 0u64;
    let mut client = wait_for("a new client balanced to s1", PATIENCE, || {
        let mut jar = Jar::default();
        (visit(&mut jar, &NODES[0], &mut requests) == "s1").then_some(jar)
    });
    let session = client
        .cookies
        .get("PHPSESSID")
        .cloned()
        .expect("s1 set a PHPSESSID");
    // A learn-mode binding is visible cluster-wide about one commit after it was made
    // (DESIGN.md): let it reach every node before the client crosses nodes.
    wait_for("the client's binding on every node", PATIENCE, || {
        NODES
            .iter()
            .all(|n| bound_server(n, &session).as_deref() == Some("s1"))
            .then_some(())
    });
    for node in &NODES {
        assert_eq!(visit(&mut client, node, &mut requests), "s1");
    }

    // Drain s1 through node 2; every node applies it.
    let drain = serde_json::to_value(StateChange::to(AdminState::Drain)).expect("a state change");
    let status = admin_post(&NODES[1], &paths::server_state("app", "s1"), &drain);
    assert_eq!(status, 200);
    wait_for("s1 to drain on every node", PATIENCE, || {
        NODES
            .iter()
            .all(|n| s1(n).is_some_and(|s| s.admin_state == AdminState::Drain))
            .then_some(())
    });
    // The bound client keeps reaching s1 through every node; new clients never do.
    for node in &NODES {
        assert_eq!(visit(&mut client, node, &mut requests), "s1");
    }
    let last_request = Instant::now();
    for node in &NODES {
        let mut newcomer = Jar::default();
        assert_ne!(visit(&mut newcomer, node, &mut requests), "s1");
    }

    // Cut the leader off its network: the others elect a new leader, and the cut-off
    // node's watermark stops advancing.
    let leader = leader_seen_by(&NODES[0]).expect("node 1 knows the leader");
    let victim = NODES
        .iter()
        .find(|n| n.id == leader)
        .expect("the leader is a node");
    let survivors: Vec<&Node> = NODES.iter().filter(|n| n.id != leader).collect();
    let victim_container = stack.container(victim.service);
    let cut = run(
        Command::new("docker").args(["network", "disconnect", NETWORK, &victim_container]),
        DOCKER_TIMEOUT,
    );
    assert!(cut.ok, "network disconnect: {}", cut.stderr);
    let cut_at = Instant::now();
    let new_leader = wait_for("the survivors to elect a new leader", PATIENCE, || {
        let seen: Vec<Option<u64>> = survivors.iter().map(|n| leader_seen_by(n)).collect();
        agreed_leader(&seen).filter(|l| *l != victim.id)
    });
    let failover = cut_at.elapsed();

    // The binding expires, but the cut-off node could have served s1's client since its
    // last report: s1 stays in drain, held by that node alone.
    let held = wait_for(
        "s1's binding to expire with only the cut-off node holding the release",
        PATIENCE,
        || {
            let s = s1(survivors[0])?;
            assert_ne!(
                s.admin_state,
                AdminState::Maint,
                "s1 released while node {} was cut off: {s:?}",
                victim.id
            );
            (s.bindings == 0 && s.release_blockers == [victim.id]).then_some(s)
        },
    );
    assert_eq!(held.admin_state, AdminState::Drain, "{held:?}");
    // And it keeps waiting: watched on both survivors for longer than a ttl.
    let watch_until = Instant::now() + TTL + Duration::from_secs(2);
    let mut seen = [0u32; 2];
    while Instant::now() < watch_until {
        for (node, seen) in survivors.iter().zip(seen.iter_mut()) {
            if let Some(s) = s1(node) {
                assert_eq!(s.admin_state, AdminState::Drain, "node {}: {s:?}", node.id);
                *seen += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        seen.iter().all(|&n| n > 0),
        "the survivors did not answer while the node was cut off: {seen:?}"
    );

    // Reconnect with its own address (members are configured by address): it catches up,
    // reports its watermark, and the release happens on every node.
    let reconnect = run(
        Command::new("docker").args([
            "network",
            "connect",
            "--ip",
            victim.ip,
            NETWORK,
            &victim_container,
        ]),
        DOCKER_TIMEOUT,
    );
    assert!(reconnect.ok, "network connect: {}", reconnect.stderr);
    let reconnected_at = Instant::now();
    wait_for(
        "s1 released (maint, no binding) on every node",
        PATIENCE,
        || {
            NODES
                .iter()
                .all(|n| {
                    s1(n).is_some_and(|s| s.admin_state == AdminState::Maint && s.bindings == 0)
                })
                .then_some(())
        },
    );
    let released_after = reconnected_at.elapsed();
    let breaks: Vec<u64> = NODES.iter().map(session_breaks).collect();
    assert_eq!(breaks, vec![0, 0, 0], "session breaks per node");
    println!(
        "compose: {requests} client requests, 0 session breaks; leader {} cut off, new leader \
         {new_leader} after {failover:?}; release held while cut off; released {released_after:?} \
         after reconnect, {:?} after the client's last request",
        victim.id,
        last_request.elapsed()
    );
}

/// The metric names in the dashboard's queries (`holdfast_...`, as Prometheus stores them).
fn dashboard_metrics(dashboard: &Value, out: &mut Vec<String>) {
    match dashboard {
        Value::Object(map) => {
            for (key, value) in map {
                if let (Some(expr), "expr") = (value.as_str(), key.as_str()) {
                    let mut rest = expr;
                    while let Some(at) = rest.find("holdfast_") {
                        let name: String = rest[at..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        rest = &rest[at + name.len()..];
                        out.push(name);
                    }
                } else {
                    dashboard_metrics(value, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_metrics(v, out)),
        _ => {}
    }
}

#[test]
fn compose_configs_pass_check_and_the_dashboard_names_exported_metrics() {
    let root = workspace_root();
    for i in 1..=3 {
        let config = root.join(format!("deploy/compose/node{i}.toml"));
        let check = run(
            Command::new(holdfast_binary())
                .arg("check")
                .arg("--config")
                .arg(&config),
            DOCKER_TIMEOUT,
        );
        assert!(
            check.ok,
            "{}: {}{}",
            config.display(),
            check.stdout,
            check.stderr
        );
    }

    let text = std::fs::read_to_string(root.join("deploy/grafana/holdfast.json"))
        .expect("read deploy/grafana/holdfast.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut names = Vec::new();
    dashboard_metrics(&dashboard, &mut names);
    names.sort();
    names.dedup();
    assert!(
        names.len() > 10,
        "too few metrics in the dashboard: {names:?}"
    );

    // A node with a frontend, scraped before any traffic. OpenMetrics names a counter
    // family without `_total` and a histogram without `_bucket`. A labelled family with
    // no sample yet (errors, session breaks) is not rendered at all: those must at least
    // be registered under that name in the sources.
    let lab = Lab::start(1, |servers| {
        format!(
            "[[frontend]]\nname = \"http\"\nlisten = \"{{http}}\"\ndefault_backend = \"app\"\n\n\
             [[backend]]\nname = \"app\"\n{servers}\n"
        )
    });
    let metrics = lab
        .cluster
        .node(0)
        .call("GET", "/metrics", None)
        .expect("GET /metrics")
        .body;
    for name in &names {
        let family = name
            .strip_suffix("_total")
            .or_else(|| name.strip_suffix("_bucket"))
            .unwrap_or(name);
        let registered = || {
            ["proxy/src/admin/metrics.rs", "proxy/src/http/metrics.rs"]
                .iter()
                .any(|f| {
                    std::fs::read_to_string(root.join(f))
                        .expect("read the metrics sources")
                        .contains(&format!("\"{family}\""))
                })
        };
        assert!(
            metrics.contains(&format!("# TYPE {family} ")) || registered(),
            "the dashboard queries {name}, which a node does not export:\n{metrics}"
        );
    }
}
