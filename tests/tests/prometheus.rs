//! A real Prometheus (Debian's, CI installs it) scraping three nodes during a drain, with
//! the shipped scrape settings and rules (issue 15): PromQL sees the same table on every
//! node and the release in `holdfast_server_admin_state`; the stuck-drain alert fires
//! while a member is paused and clears once it resumes. Its `for:` is shortened from
//! "ttl plus a margin" in production to the test's 2 s ttl.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use holdfast::api::AdminState;
use holdfast_tests::{
    ClusterOptions, Lab, MODES, PATIENCE, Traffic, TrafficOptions, free_port, request,
    three_modes_config, wait_for,
};
use serde_json::Value;

/// The Prometheus server, killed (by its pid) when dropped.
struct Prometheus {
    child: Child,
    addr: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    /// Starts Prometheus on the shipped rules, scraping `targets` every second.
    fn start(dir: &Path, targets: &[String]) -> Prometheus {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let rules =
            std::fs::read_to_string(root.join("deploy/prometheus/rules/holdfast.rules.yml"))
                .expect("shipped rules");
        let rules = rules.replacen(
            "expr: holdfast:drain_without_bindings > 0\n        for: 35m",
            "expr: holdfast:drain_without_bindings > 0\n        for: 3s",
            1,
        );
        assert!(
            rules.contains("for: 3s"),
            "the stuck-drain rule was not found"
        );
        std::fs::write(dir.join("holdfast.rules.yml"), rules).expect("rules");
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             rule_files:\n  - holdfast.rules.yml\n\
             scrape_configs:\n  - job_name: holdfast\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("config");
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::from(log.try_clone().expect("dup")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, addr };
        wait_for("prometheus ready", PATIENCE, || {
            request(&p.addr, "GET", "/-/ready", None, None)
                .ok()
                .filter(|r| r.status == 200)
        });
        p
    }

    /// The result vector of an instant PromQL query.
    fn query(&self, promql: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let reply = request(&self.addr, "GET", &path, None, None).expect("query");
        assert_eq!(reply.status, 200, "{promql}: {}", reply.body);
        reply.json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The state of alert `name` (`pending`, `firing`), if active.
    fn alert(&self, name: &str) -> Option<String> {
        let reply = request(&self.addr, "GET", "/api/v1/alerts", None, None).ok()?;
        reply.json["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .and_then(|a| a["state"].as_str().map(str::to_string))
    }
}

fn installed(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.exists())
    })
}

fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn prometheus_sees_one_table_a_release_and_a_stuck_drain_alert() {
    if installed("prometheus").is_none() {
        println!("SKIPPED: no prometheus binary (Debian package `prometheus`)");
        return;
    }
    let options = ClusterOptions {
        expiry_grace: "1s".into(),
        ..ClusterOptions::default()
    };
    let lab = Lab::start_with(3, options, |s| three_modes_config(s, "2s"));
    let dir = tempfile::tempdir().expect("tempdir");
    let targets: Vec<String> = (0..3).map(|i| lab.cluster.node(i).admin.clone()).collect();
    let prom = Prometheus::start(dir.path(), &targets);
    println!("prometheus at {} scraping 3 nodes", prom.addr);

    let hosts: Vec<&str> = MODES.iter().map(|(_, h)| *h).collect();
    let traffic = Traffic::start(&lab, &[0, 1, 2], TrafficOptions::new(&hosts, 30, 20));
    traffic.wait_rounds(4);
    let clients = traffic.stop();
    println!("  {} clients bound", clients.len());
    // One table: every node reports the same bindings per server.
    let spread = "max by (backend, server) (holdfast_table_bindings) \
                  - min by (backend, server) (holdfast_table_bindings)";
    wait_for("every node's table scraped alike", PATIENCE, || {
        let nodes = prom.query("count by (backend, server) (holdfast_table_bindings)");
        let spread = prom.query(spread);
        (!nodes.is_empty()
            && nodes.iter().all(|s| value(s) == 3.0)
            && spread.iter().all(|s| value(s) == 0.0))
        .then_some(())
    });

    // Drain ins/s1 with a follower paused: its bindings expire, its watermark holds the
    // release, and the stuck-drain alert fires.
    let paused = lab.cluster.a_follower();
    let live: Vec<usize> = (0..3).filter(|&i| i != paused).collect();
    let (code, _, err) = lab.cluster.node(live[0]).ctl(&["drain", "ins/s1"]);
    assert_eq!(code, 0, "{err}");
    lab.cluster.wait_state("ins", "s1", AdminState::Drain);
    lab.cluster.pause(paused);
    wait_for("HoldfastDrainStuck firing", PATIENCE, || {
        (prom.alert("HoldfastDrainStuck").as_deref() == Some("firing")).then_some(())
    });
    println!("  node {} paused: HoldfastDrainStuck firing", paused + 1);
    lab.cluster.resume(paused);
    let released = "holdfast_server_admin_state{backend=\"ins\",server=\"s1\",state=\"maint\"}";
    wait_for(
        "the release seen by prometheus on every node",
        PATIENCE,
        || {
            let s = prom.query(released);
            (s.len() == 3 && s.iter().all(|s| value(s) == 1.0)).then_some(())
        },
    );
    wait_for("HoldfastDrainStuck cleared", PATIENCE, || {
        prom.alert("HoldfastDrainStuck").is_none().then_some(())
    });
    println!("  resumed: released on every node, the alert cleared");
}
