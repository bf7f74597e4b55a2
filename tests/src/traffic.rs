//! Client traffic for the end-to-end scenarios: simulated clients, each with its own
//! session (cookie jar, and its own forwarded address for `source` persistence), sent in
//! rounds over a rotation of node frontends by worker threads. Every visit is recorded so
//! the test judges afterwards; loops are bounded in rounds and in time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::backend::{Jar, get};
use crate::configs::backend_of;
use crate::lab::{Lab, PATIENCE};
use crate::node::{NodeProc, TOKEN};
use crate::wait_for;

/// One request of a client.
#[derive(Clone, Debug)]
pub struct Visit {
    /// When the request was sent (before connecting).
    pub sent: Instant,
    /// Index of the node whose frontend it went to.
    pub node: usize,
    /// The server that answered 200, or what went wrong.
    pub outcome: Result<String, String>,
}

/// A simulated client with its own session.
#[derive(Clone, Debug)]
pub struct Client {
    /// Its number (unique within a test).
    pub n: usize,
    /// The Host header it sends (selects the backend).
    pub host: String,
    /// Its address as a trusted proxy forwards it (`X-Forwarded-For`).
    pub xff: String,
    /// Its cookies.
    pub jar: Jar,
    /// Every request it made.
    pub visits: Vec<Visit>,
}

impl Client {
    /// Client number `n` sending `Host: host`, forwarded as from 10.77.x.y.
    pub fn new(host: &str, n: usize) -> Client {
        Client {
            n,
            host: host.to_string(),
            xff: format!("10.77.{}.{}", n / 250, n % 250 + 1),
            jar: Jar::default(),
            visits: Vec::new(),
        }
    }

    /// The backend its Host header selects (see [`backend_of`]).
    pub fn backend(&self) -> &'static str {
        backend_of(&self.host)
    }

    /// One `GET /` through node `node`'s frontend `addr`, recorded.
    pub fn visit(&mut self, node: usize, addr: &str) -> &Visit {
        let cookie = self.jar.header();
        let mut extra = vec![("X-Forwarded-For", self.xff.as_str())];
        if let Some(c) = &cookie {
            extra.push(("Cookie", c.as_str()));
        }
        let sent = Instant::now();
        let outcome = match get(addr, &self.host, "/", &extra) {
            Ok(a) if a.status == 200 => {
                self.jar.update(&a);
                Ok(a.body)
            }
            Ok(a) => Err(format!("status {}: {}", a.status, a.body)),
            Err(e) => Err(e.to_string()),
        };
        self.visits.push(Visit {
            sent,
            node,
            outcome,
        });
        self.visits.last().expect("just pushed")
    }

    /// [`Client::visit`] that must be answered: the server that answered; panics on
    /// anything else.
    pub fn served(&mut self, node: usize, addr: &str) -> String {
        match self.visit(node, addr).outcome.clone() {
            Ok(server) => server,
            Err(e) => panic!("client {} ({}) through {addr}: {e}", self.n, self.host),
        }
    }

    /// The server of its first answered request.
    pub fn first_server(&self) -> Option<&str> {
        self.visits
            .iter()
            .find_map(|v| v.outcome.as_ref().ok())
            .map(String::as_str)
    }

    /// When it sent its first request.
    pub fn first_sent(&self) -> Option<Instant> {
        self.visits.first().map(|v| v.sent)
    }

    /// Answers from a server other than its first one (session moves).
    pub fn moves(&self) -> usize {
        let first = self.first_server();
        self.visits
            .iter()
            .filter(|v| v.outcome.as_ref().is_ok_and(|s| Some(s.as_str()) != first))
            .count()
    }
}

/// Panics with the trail of the first of `clients` that moved between servers, if any.
pub fn assert_no_moves<'a>(clients: impl IntoIterator<Item = &'a Client>) {
    if let Some(c) = clients.into_iter().find(|c| c.moves() > 0) {
        let trail: Vec<String> = c
            .visits
            .iter()
            .map(|v| format!("node {}: {:?}", v.node + 1, v.outcome))
            .collect();
        panic!(
            "client {} ({}) moved between servers: {trail:?}",
            c.n, c.host
        );
    }
}

/// Knobs of a [`Traffic`] run.
#[derive(Clone, Debug)]
pub struct TrafficOptions {
    /// Host headers, given to clients in turn (client `n` gets `hosts[n % len]`).
    pub hosts: Vec<String>,
    /// Clients present from the start.
    pub clients: usize,
    /// Number of the first client (keeps forwarded addresses distinct between runs).
    pub first: usize,
    /// Worker threads; clients are dealt out to them.
    pub workers: usize,
    /// New clients each worker adds at the start of every round.
    pub newcomers: usize,
    /// A round (every client of a worker once) takes at least this long: a client's
    /// think time between two requests.
    pub think: Duration,
    /// Rounds per worker, at most.
    pub max_rounds: usize,
    /// Time per worker, at most.
    pub max_time: Duration,
}

impl TrafficOptions {
    /// `clients` clients of `hosts`, 300 ms think time, no newcomers, 2 workers, bounded
    /// to `max_rounds` rounds and 60 s.
    pub fn new(hosts: &[&str], clients: usize, max_rounds: usize) -> TrafficOptions {
        TrafficOptions {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            clients,
            first: 0,
            workers: 2,
            newcomers: 0,
            think: Duration::from_millis(300),
            max_rounds,
            max_time: Duration::from_secs(60),
        }
    }
}

/// Clients sending requests in the background until stopped or out of rounds or time.
/// Client `c` sends its `k`-th request to node `rotation[(c.n + k) % rotation.len()]`, so
/// consecutive requests of a client go to different nodes.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    rotation: Arc<Mutex<Vec<usize>>>,
    rounds: Vec<Arc<AtomicU64>>,
    handles: Vec<JoinHandle<Vec<Client>>>,
}

impl Traffic {
    /// Starts new clients over the frontends of `lab`'s nodes in `rotation`.
    pub fn start(lab: &Lab, rotation: &[usize], options: TrafficOptions) -> Traffic {
        let clients = (options.first..options.first + options.clients)
            .map(|n| Client::new(&options.hosts[n % options.hosts.len()], n))
            .collect();
        Traffic::resume(lab, rotation, clients, options)
    }

    /// Starts `clients` (e.g. returned by [`Traffic::stop`]) again; `options.clients` is
    /// ignored, newcomers are numbered after `options.first + options.clients`.
    pub fn resume(
        lab: &Lab,
        rotation: &[usize],
        clients: Vec<Client>,
        options: TrafficOptions,
    ) -> Traffic {
        let addrs: Vec<String> = (0..lab.cluster.nodes.len()).map(|i| lab.http(i)).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let rotation = Arc::new(Mutex::new(rotation.to_vec()));
        let workers = options.workers.max(1);
        let mut dealt: Vec<Vec<Client>> = (0..workers).map(|_| Vec::new()).collect();
        for (i, c) in clients.into_iter().enumerate() {
            dealt[i % workers].push(c);
        }
        let mut rounds = Vec::new();
        let mut handles = Vec::new();
        for (w, clients) in dealt.into_iter().enumerate() {
            let counter = Arc::new(AtomicU64::new(0));
            rounds.push(counter.clone());
            let worker = Worker {
                clients,
                next: options.first + options.clients + w,
                step: workers,
                addrs: addrs.clone(),
                stop: stop.clone(),
                rotation: rotation.clone(),
                rounds: counter,
                options: options.clone(),
            };
            handles.push(std::thread::spawn(move || worker.run()));
        }
        Traffic {
            stop,
            rotation,
            rounds,
            handles,
        }
    }

    /// Sends the next requests only to the frontends of `nodes`.
    pub fn set_rotation(&self, nodes: &[usize]) {
        *self.rotation.lock().expect("rotation lock") = nodes.to_vec();
    }

    /// Waits until every worker has completed `n` more rounds (or finished); after a
    /// [`Traffic::set_rotation`], one round guarantees no request is still on its way to
    /// a node that left the rotation.
    pub fn wait_rounds(&self, n: u64) {
        let start: Vec<u64> = self
            .rounds
            .iter()
            .map(|r| r.load(Ordering::SeqCst))
            .collect();
        wait_for(&format!("{n} more rounds of traffic"), PATIENCE, || {
            self.rounds
                .iter()
                .zip(&start)
                .zip(&self.handles)
                .all(|((r, s), h)| r.load(Ordering::SeqCst) >= s + n || h.is_finished())
                .then_some(())
        });
    }

    /// Waits until every worker ran out of rounds or time, and returns the clients.
    pub fn finish(self) -> Vec<Client> {
        let mut clients: Vec<Client> = self
            .handles
            .into_iter()
            .flat_map(|h| h.join().expect("traffic worker panicked"))
            .collect();
        clients.sort_by_key(|c| c.n);
        clients
    }

    /// Stops the clients (each finishes its current request) and returns them.
    pub fn stop(self) -> Vec<Client> {
        self.stop.store(true, Ordering::SeqCst);
        self.finish()
    }
}

struct Worker {
    clients: Vec<Client>,
    next: usize,
    step: usize,
    addrs: Vec<String>,
    stop: Arc<AtomicBool>,
    rotation: Arc<Mutex<Vec<usize>>>,
    rounds: Arc<AtomicU64>,
    options: TrafficOptions,
}

impl Worker {
    fn run(mut self) -> Vec<Client> {
        let started = Instant::now();
        let stopped =
            |s: &Worker| s.stop.load(Ordering::SeqCst) || started.elapsed() > s.options.max_time;
        for _ in 0..self.options.max_rounds {
            if stopped(&self) {
                break;
            }
            let round = Instant::now();
            for _ in 0..self.options.newcomers {
                let hosts = &self.options.hosts;
                self.clients
                    .push(Client::new(&hosts[self.next % hosts.len()], self.next));
                self.next += self.step;
            }
            for i in 0..self.clients.len() {
                if stopped(&self) {
                    break;
                }
                let node = {
                    let rotation = self.rotation.lock().expect("rotation lock");
                    let c = &self.clients[i];
                    rotation[(c.n + c.visits.len()) % rotation.len()]
                };
                let addr = self.addrs[node].clone();
                self.clients[i].visit(node, &addr);
            }
            self.rounds.fetch_add(1, Ordering::SeqCst);
            while round.elapsed() < self.options.think && !stopped(&self) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.clients
    }
}

/// Figures of a set of clients, for the assertions and the closing note.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Requests made.
    pub requests: usize,
    /// Failed requests (not 200) per node index.
    pub failures: BTreeMap<usize, usize>,
    /// Answers from a server other than the client's first one.
    pub moves: usize,
    /// Clients by first server.
    pub by_server: BTreeMap<String, usize>,
}

impl Tally {
    /// Counts `clients`.
    pub fn of<'a>(clients: impl IntoIterator<Item = &'a Client>) -> Tally {
        let mut t = Tally::default();
        for c in clients {
            t.requests += c.visits.len();
            for v in c.visits.iter().filter(|v| v.outcome.is_err()) {
                *t.failures.entry(v.node).or_default() += 1;
            }
            t.moves += c.moves();
            if let Some(s) = c.first_server() {
                *t.by_server.entry(s.to_string()).or_default() += 1;
            }
        }
        t
    }

    /// Failures on the nodes of `nodes`.
    pub fn failures_on(&self, nodes: &[usize]) -> usize {
        nodes
            .iter()
            .map(|n| self.failures.get(n).copied().unwrap_or(0))
            .sum()
    }
}

/// Send time of the last request answered by `server` among `clients` of `backend`.
pub fn last_request(clients: &[Client], backend: &str, server: &str) -> Option<Instant> {
    clients
        .iter()
        .filter(|c| c.backend() == backend)
        .flat_map(|c| &c.visits)
        .filter(|v| v.outcome.as_deref() == Ok(server))
        .map(|v| v.sent)
        .max()
}

/// What a `holdfast ctl` run in the background ended with.
#[derive(Clone, Debug)]
pub struct CtlRun {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// When it exited.
    pub ended: Instant,
}

impl NodeProc {
    /// Runs `holdfast ctl args…` against this node in a background thread (e.g.
    /// `drain app/s1 --wait`, which returns at release); killed after `limit`.
    pub fn ctl_background(&self, args: &[&str], limit: Duration) -> JoinHandle<CtlRun> {
        let mut child = self
            .ctl_command(TOKEN)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run holdfast ctl");
        std::thread::spawn(move || {
            let started = Instant::now();
            while child.try_wait().ok().flatten().is_none() && started.elapsed() < limit {
                std::thread::sleep(Duration::from_millis(20));
            }
            let ended = Instant::now();
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait for holdfast ctl");
            CtlRun {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                ended,
            }
        })
    }
}
