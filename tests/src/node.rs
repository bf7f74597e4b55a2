//! Real `holdfast run` processes: config generation, start, kill, pause, restart.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use holdfast::api::{
    AdminState, Backends, ClusterStatus, MemberAdd, PinRequest, ServerView, StateChange,
    TableStatus, paths,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::http::{Reply, request};
use crate::{PATIENCE, agreed_leader, free_port, wait_for};

/// The admin token every test node uses.
pub const TOKEN: &str = "test-token";

/// Path of the `holdfast` binary, built once per test process.
pub fn holdfast_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(path) = std::env::var("HOLDFAST_BIN") {
            return PathBuf::from(path);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "holdfast", "--bin", "holdfast"])
            .current_dir(&root)
            .status()
            .expect("cannot run cargo build");
        assert!(status.success(), "cargo build of holdfast failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        target.join("debug").join("holdfast")
    })
    .clone()
}

/// Knobs of a test cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Cluster secret.
    pub secret: String,
    /// Snapshot after this many entries.
    pub snapshot_every: u64,
    /// Extra TOML appended to every node's config (backends, frontends); `{http}` in it
    /// is replaced by the node's own frontend address ([`NodeProc::http`]).
    pub extra: String,
    /// `cluster.expiry_grace`: how long a silent member holds expiry back.
    pub expiry_grace: String,
    /// Extra TOML lines of the `[cluster]` section (e.g. `max_bindings = 300`); `{id}` in
    /// them is replaced by the node's id.
    pub cluster_extra: String,
}

impl ClusterOptions {
    /// Options whose backend `app` (servers `s1`, `s2`) has the given binding TTL.
    pub fn with_ttl(ttl: &str) -> ClusterOptions {
        ClusterOptions {
            extra: format!(
                "[[backend]]\nname = \"app\"\nttl = \"{ttl}\"\nserver = [{{ name = \"s1\", addr = \"127.0.0.1:9\" }}, {{ name = \"s2\", addr = \"127.0.0.1:9\" }}]\n"
            ),
            ..ClusterOptions::default()
        }
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            secret: "test-cluster-secret-0123456789".into(),
            snapshot_every: 5000,
            expiry_grace: "30s".into(),
            cluster_extra: String::new(),
            extra: "[[backend]]\nname = \"app\"\nttl = \"60s\"\nserver = [{ name = \"s1\", addr = \"127.0.0.1:9\" }, { name = \"s2\", addr = \"127.0.0.1:9\" }]\n".into(),
        }
    }
}

/// One node process.
pub struct NodeProc {
    /// Node id.
    pub id: u64,
    /// Peer address.
    pub peer: String,
    /// Admin address.
    pub admin: String,
    /// Address reserved for the node's HTTP frontend (used when the config has `{http}`).
    pub http: String,
    /// Its config file.
    pub config: PathBuf,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
    child: Option<Child>,
}

impl NodeProc {
    /// Calls the node's admin API with the test token.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Reply> {
        request(&self.admin, method, path, Some(TOKEN), body)
    }

    /// `POST path` with `body` (one of the admin API's request types) and the test token.
    pub fn post(&self, path: &str, body: &impl Serialize) -> std::io::Result<Reply> {
        let body = serde_json::to_value(body).map_err(std::io::Error::other)?;
        self.call("POST", path, Some(&body))
    }

    /// `GET path` parsed as `T`, or `None` if the node does not answer 200 with one.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Option<T> {
        self.call("GET", path, None)
            .ok()
            .filter(|r| r.status == 200)?
            .parse()
    }

    /// `GET /v1/cluster`.
    pub fn cluster_status(&self) -> Option<ClusterStatus> {
        self.get(paths::CLUSTER)
    }

    /// The leader this node knows of, if any.
    pub fn leader(&self) -> Option<u64> {
        self.cluster_status()?.leader
    }

    /// `GET /v1/backends`.
    pub fn backends(&self) -> Option<Backends> {
        self.get(paths::BACKENDS)
    }

    /// `GET /v1/table/{backend}`, every binding.
    pub fn table(&self, backend: &str) -> Option<TableStatus> {
        self.get(&paths::table(backend, 1_000_000))
    }

    /// A server's entry in `GET /v1/backends` (admin state, bindings, release blockers…).
    pub fn server(&self, backend: &str, server: &str) -> Option<ServerView> {
        self.backends()?.server(backend, server).cloned()
    }

    /// A server's admin state as this node sees it.
    pub fn admin_state(&self, backend: &str, server: &str) -> Option<AdminState> {
        self.server(backend, server).map(|s| s.admin_state)
    }

    /// Asks this node to put `backend/server` in `state`.
    pub fn set_state(
        &self,
        backend: &str,
        server: &str,
        state: AdminState,
    ) -> std::io::Result<Reply> {
        self.post(
            &paths::server_state(backend, server),
            &StateChange::to(state),
        )
    }

    /// Pins `key` to `server` in `backend` through this node (`POST /v1/table/{backend}`);
    /// returns the HTTP status (0 when the node did not answer).
    pub fn pin(&self, backend: &str, key: &str, server: &str) -> u16 {
        let body = PinRequest {
            key: key.into(),
            server: server.into(),
        };
        self.post(&format!("/v1/table/{backend}"), &body)
            .map(|r| r.status)
            .unwrap_or(0)
    }

    /// Asks this node to add member `id` at peer address `addr` (`POST /v1/members`).
    pub fn add_member(&self, id: u64, addr: &str) -> std::io::Result<Reply> {
        let body = MemberAdd {
            id,
            addr: addr.into(),
        };
        self.post(paths::MEMBERS, &body)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// What the node logged so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts the process. Every even-numbered node runs on one worker thread (tokio's
    /// current-thread runtime, as the benchmarks run it), the others on one per CPU: each
    /// cluster of two or more covers both runtimes.
    fn spawn(&mut self) {
        let threads = if self.id.is_multiple_of(2) { "1" } else { "0" };
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open node log");
        let child = Command::new(holdfast_binary())
            .args(["run", "--config"])
            .arg(&self.config)
            .env("HOLDFAST_LOG", "info,openraft=warn")
            .env("HOLDFAST_WORKER_THREADS", threads)
            .stdout(Stdio::from(log.try_clone().expect("dup log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn holdfast");
        self.child = Some(child);
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
        }
    }

    /// `holdfast ctl` aimed at this node's admin API with `token`, to be given its
    /// subcommand.
    pub fn ctl_command(&self, token: &str) -> Command {
        let mut ctl = Command::new(holdfast_binary());
        ctl.args([
            "ctl",
            "--admin",
            &format!("http://{}", self.admin),
            "--token",
            token,
        ]);
        ctl
    }

    /// Runs `holdfast ctl` against this node with the test token; returns (exit code,
    /// stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .ctl_command(TOKEN)
            .args(args)
            .output()
            .expect("run holdfast ctl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// SIGTERM, then waits (at most `timeout`) for the process to exit; true if it did.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        self.signal("-TERM");
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// SIGHUP: the node re-reads its config file.
    pub fn reload(&self) {
        self.signal("-HUP");
    }

    /// The exit code once the process has exited by itself (`None` while it runs or
    /// after it was killed by a signal; the child is reaped either way).
    pub fn exited(&mut self) -> Option<Option<i32>> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status.code())
    }

    /// Its data directory, as written in its config.
    pub fn data_dir(&self) -> std::path::PathBuf {
        let text = fs::read_to_string(&self.config).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("data_dir = \""))
            .and_then(|l| l.strip_suffix('"'))
            .map(std::path::PathBuf::from)
            .expect("data_dir in the node's config")
    }

    /// Rewrites its config to join an existing cluster (`join = true` instead of the
    /// static member list), as an operator does before `ctl members add`.
    pub fn set_join(&self) {
        let text = fs::read_to_string(&self.config).expect("read config");
        let text: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("members = [") {
                    "join = true".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect();
        fs::write(&self.config, text.join("\n") + "\n").expect("write config");
    }

    /// Starts the process again (after it exited or was killed).
    pub fn start(&mut self) {
        self.kill();
        self.spawn();
    }

    /// `GET /readyz`: whether the node says it is ready.
    pub fn ready(&self) -> bool {
        request(&self.admin, "GET", paths::READYZ, None, None).is_ok_and(|r| r.status == 200)
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.kill();
    }
}

/// A set of node processes sharing one temporary directory.
pub struct Cluster {
    /// The nodes, index `i` holding node id `i + 1`.
    pub nodes: Vec<NodeProc>,
    options: ClusterOptions,
    members: Vec<(u64, String)>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes forming one cluster and waits for a leader known to all.
    pub fn start(n: usize, options: ClusterOptions) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let members: Vec<(u64, String)> = (1..=n as u64)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect();
        let mut cluster = Cluster {
            nodes: Vec::new(),
            options,
            members,
            dir,
        };
        for i in 0..n {
            let (id, peer) = cluster.members[i].clone();
            let node = cluster.prepare(id, peer, true, None);
            cluster.nodes.push(node);
        }
        for node in &mut cluster.nodes {
            node.spawn();
        }
        cluster.wait_leader();
        cluster
    }

    /// Writes a node's config; `member` says whether it is in the static member list.
    pub fn prepare(&self, id: u64, peer: String, member: bool, secret: Option<&str>) -> NodeProc {
        let admin = format!("127.0.0.1:{}", free_port());
        let http = format!("127.0.0.1:{}", free_port());
        let data = self.dir.path().join(format!("node{id}"));
        let mut members = self.members.clone();
        if !member {
            members.retain(|(m, _)| *m != id);
        }
        let list = members
            .iter()
            .map(|(m, a)| format!("{{ id = {m}, addr = \"{a}\" }}"))
            .collect::<Vec<_>>()
            .join(", ");
        let members_line = if member {
            format!("members = [{list}]\n")
        } else {
            "join = true\n".to_string()
        };
        let text = format!(
            "[node]\nid = {id}\ndata_dir = \"{}\"\n\n[cluster]\nsecret = \"{}\"\npeer_listen = \"{peer}\"\n{members_line}snapshot_every = {}\nflush = \"100ms\"\ntick = \"200ms\"\nmax_skew = \"50ms\"\nexpiry_grace = \"{}\"\n{}\n[admin]\nlisten = \"{admin}\"\ntoken = \"{TOKEN}\"\n\n{}",
            data.display(),
            secret.unwrap_or(&self.options.secret),
            self.options.snapshot_every,
            self.options.expiry_grace,
            self.options.cluster_extra.replace("{id}", &id.to_string()),
            self.options.extra.replace("{http}", &http),
        );
        let config = self.dir.path().join(format!("node{id}.toml"));
        fs::write(&config, text).expect("write config");
        NodeProc {
            id,
            peer,
            admin,
            http,
            config,
            log: self.dir.path().join(format!("node{id}.log")),
            child: None,
        }
    }

    /// Starts a node that is not in the static member list (to be added later).
    pub fn start_extra(&mut self, id: u64, secret: Option<&str>) -> usize {
        let peer = format!("127.0.0.1:{}", free_port());
        let mut node = self.prepare(id, peer, false, secret);
        node.spawn();
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// The node at index `i`.
    pub fn node(&self, i: usize) -> &NodeProc {
        &self.nodes[i]
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Restarts node `i` with its config and data directory.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        self.nodes[i].spawn();
    }

    /// SIGSTOP node `i` (it stops answering, like a partitioned node).
    pub fn pause(&self, i: usize) {
        self.nodes[i].signal("-STOP");
    }

    /// SIGCONT node `i`.
    pub fn resume(&self, i: usize) {
        self.nodes[i].signal("-CONT");
    }

    /// Indices of running (started, not killed) nodes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].child.is_some())
            .collect()
    }

    /// Waits until every running node reports the same leader; returns its id. Panics
    /// with the tail of every node's log if that does not happen in time (or a node
    /// process died), so a failure says why.
    pub fn wait_leader(&self) -> u64 {
        let running = self.running();
        let start = std::time::Instant::now();
        let patience = Duration::from_secs(60);
        wait_for(
            "a leader known to every running node",
            patience + Duration::from_secs(5),
            || {
                if start.elapsed() > patience {
                    self.explain_and_panic("no leader known to every running node");
                }
                let leaders: Vec<Option<u64>> =
                    running.iter().map(|&i| self.nodes[i].leader()).collect();
                let leader = agreed_leader(&leaders)?;
                running
                    .iter()
                    .any(|&i| self.nodes[i].id == leader)
                    .then_some(leader)
            },
        )
    }

    /// Waits (at most [`PATIENCE`]) until `check` holds on every running node; returns
    /// when it first did.
    pub fn wait_everywhere(&self, what: &str, check: impl Fn(&NodeProc) -> bool) -> Instant {
        wait_for(&format!("{what} on every running node"), PATIENCE, || {
            self.running()
                .iter()
                .all(|&i| check(&self.nodes[i]))
                .then(Instant::now)
        })
    }

    /// Waits until every running node reports `backend/server` in `state`; returns when
    /// it first did.
    pub fn wait_state(&self, backend: &str, server: &str, state: AdminState) -> Instant {
        self.wait_everywhere(&format!("{backend}/{server} to be {state}"), |n| {
            n.admin_state(backend, server) == Some(state)
        })
    }

    /// Index of a running node that is not the leader, once every running node agrees on
    /// one.
    pub fn a_follower(&self) -> usize {
        let leader = self.wait_leader();
        self.running()
            .into_iter()
            .find(|&i| self.nodes[i].id != leader)
            .expect("a follower")
    }

    /// Waits until the frontend of every node in `nodes` accepts connections; panics
    /// with every node's log tail if one does not within `timeout`.
    pub fn wait_frontends(&self, nodes: &[usize], timeout: Duration) {
        for &i in nodes {
            let http = self.nodes[i].http.clone();
            let start = std::time::Instant::now();
            while std::net::TcpStream::connect(&http).is_err() {
                if start.elapsed() > timeout {
                    self.explain_and_panic(&format!(
                        "node {}'s frontend ({http}) did not accept within {timeout:?}",
                        i + 1
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Panics with `what` and the last lines of every node's log.
    fn explain_and_panic(&self, what: &str) -> ! {
        let mut report = String::new();
        for node in &self.nodes {
            let log = node.log_text();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            report.push_str(&format!(
                "\n--- node {} (pid {:?}) log tail:\n",
                node.id,
                node.pid()
            ));
            for line in tail.into_iter().rev() {
                report.push_str(line);
                report.push('\n');
            }
        }
        panic!("{what}{report}");
    }

    /// Index of the node with id `id`.
    pub fn index_of(&self, id: u64) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .expect("no such node")
    }
}

/// Runs `holdfast check` on a config file holding `text`; returns its exit code and
/// everything it printed.
pub fn check_config(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.toml");
    fs::write(&path, text).expect("write config");
    let out = Command::new(holdfast_binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run holdfast check");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), all)
}
