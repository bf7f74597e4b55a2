//! The operator's surface driven through the real binary: `check` names key and line for
//! each kind of config error, a wrong token changes nothing, metrics carry their names and
//! labels, and the stats page renders in headless Chromium.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use holdfast::api::{AdminState, ApiError, StateChange, paths};
use holdfast_tests::browser::Browser;
use holdfast_tests::{Cluster, ClusterOptions, check_config, holdfast_binary, request, wait_for};

const GOOD: &str = r#"[node]
id = 1

[cluster]
secret = "0123456789abcdef0123"
members = [{ id = 1, addr = "127.0.0.1:1" }, { id = 2, addr = "127.0.0.1:2" }]

[[backend]]
name = "app"
ttl = "10s"
server = [{ name = "s1", addr = "127.0.0.1:9001" }, { name = "s2", addr = "127.0.0.1:9002" }]
"#;

#[test]
fn check_accepts_a_good_config_and_names_key_and_line_of_each_error() {
    let (code, out) = check_config(GOOD);
    assert_eq!(code, 0, "{out}");
    let cases = [
        // (change, expected key, expected line)
        (
            GOOD.replace("ttl = \"10s\"", "ttl = \"10 parsecs\""),
            "ttl: bad duration",
            "line 10",
        ),
        (
            GOOD.replace("id = 1\n\n", "id = 1\ncolour = \"red\"\n\n"),
            "colour",
            "line 3",
        ),
        (
            GOOD.replace("name = \"s2\"", "name = \"s1\""),
            "backend.server.name",
            "line 11",
        ),
        (
            GOOD.replace("[node]\nid = 1", "[node]\nid = 7"),
            "cluster.members",
            "line 6",
        ),
        (
            GOOD.replace("0123456789abcdef0123", "short"),
            "cluster.secret",
            "line 5",
        ),
        (
            format!("{GOOD}\n[[backend]]\nname = \"app\"\n"),
            "duplicate backend",
            "line 14",
        ),
        (GOOD.replace("[cluster]", "[cluster"), "(syntax)", "line 4"),
    ];
    for (text, key, line) in cases {
        let (code, out) = check_config(&text);
        assert_eq!(code, 1, "accepted:\n{text}\n{out}");
        assert!(out.contains(key), "{key} missing in: {out}");
        assert!(out.contains(line), "{line} missing in: {out}");
    }
}

/// `holdfast check | true`: the reader is gone before the report is written; the command
/// ends as Unix tools do (SIGPIPE), never with a panic.
#[test]
fn check_ends_quietly_when_its_reader_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.toml");
    std::fs::write(&path, GOOD).expect("write config");
    let script = format!(
        "{} check --config {} | true; echo \"${{PIPESTATUS[0]}}\"",
        holdfast_binary().display(),
        path.display()
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("run bash");
    let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        ["0", "141"].contains(&status.as_str()),
        "exit {status}: {stderr}"
    );
}

#[test]
fn shipped_example_configs_pass_check() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    for name in [
        "single-node.toml",
        "loopback/node1.toml",
        "loopback/node2.toml",
        "loopback/node3.toml",
    ] {
        let text = std::fs::read_to_string(examples.join(name)).expect("example config");
        let (code, out) = check_config(&text);
        assert_eq!(code, 0, "{name}: {out}");
    }
    // The HAProxy-story config names certificate files of a real deployment: on this
    // machine only those are missing.
    let text = std::fs::read_to_string(examples.join("haproxy-story.toml")).expect("example");
    let (code, out) = check_config(&text);
    assert_eq!(code, 1, "{out}");
    for line in out.lines() {
        assert!(line.contains("cannot read"), "unexpected problem: {line}");
    }
    assert!(out.contains("cluster.tls.ca"), "{out}");
    assert!(out.contains("frontend.tls.dir"), "{out}");
}

#[test]
fn wrong_token_is_refused_and_changes_nothing() {
    let cluster = Cluster::start(1, ClusterOptions::default());
    let node = cluster.node(0);
    let body = serde_json::to_value(StateChange::to(AdminState::Maint)).expect("a state change");
    let path = paths::server_state("app", "s1");
    for token in [Some("wrong-token"), None] {
        let reply = request(&node.admin, "POST", &path, token, Some(&body)).expect("admin");
        assert_eq!(reply.status, 401, "{}", reply.body);
        let error = reply.parse::<ApiError>().expect("an error answer");
        assert!(error.error.contains("token"), "{error}");
    }
    let out = node
        .ctl_command("nope")
        .args(["maint", "app/s1"])
        .output()
        .expect("ctl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("401"), "{err}");
    assert_eq!(node.admin_state("app", "s1"), Some(AdminState::Ready));
}

#[test]
fn metrics_carry_stable_names_and_labels() {
    let cluster = Cluster::start(1, ClusterOptions::default());
    let node = cluster.node(0);
    assert_eq!(node.pin("app", "alice", "s1"), 200);
    let metrics = wait_for("the pin in the metrics", Duration::from_secs(20), || {
        let m = node.call("GET", paths::METRICS, None).ok()?.body;
        m.contains("holdfast_table_bindings{backend=\"app\",server=\"s1\"} 1")
            .then_some(m)
    });
    for needle in [
        "holdfast_server_admin_state{backend=\"app\",server=\"s1\",state=\"ready\"} 1",
        "holdfast_server_admin_state{backend=\"app\",server=\"s1\",state=\"drain\"} 0",
        "holdfast_raft_term ",
        "holdfast_raft_leader_id 1",
        "holdfast_raft_applied_index ",
        "holdfast_replication_batches_total ",
        "holdfast_table_expired_total ",
    ] {
        assert!(metrics.contains(needle), "{needle} missing in:\n{metrics}");
    }
}

#[test]
fn stats_page_renders_in_headless_chromium() {
    let Some(browser) = Browser::new() else {
        return;
    };
    let cluster = Cluster::start(1, ClusterOptions::default());
    let node = cluster.node(0);
    let (code, _, err) = node.ctl(&["drain", "app/s2"]);
    assert_eq!(code, 0, "{err}");
    let url = format!("http://{}/", node.admin);
    let dom = browser.dom(&url, 4000);
    for needle in ["holdfast", "s1", "s2", "ready", "maint", "leader"] {
        assert!(dom.contains(needle), "{needle} not on the page:\n{dom}");
    }
    browser.screenshot(&url, 4000, "stats-page.png");
}
