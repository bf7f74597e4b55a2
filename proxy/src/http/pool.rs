//! A backend at run time: its servers with their health and in-flight counts (atomics),
//! and the balancer that picks a server for a new client (smooth weighted round-robin or
//! weighted least-connections) under a lock private to the backend.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use holdfast_table::model::AdminState;
use holdfast_table::view::ServerStates;
use http::uri::Authority;
use parking_lot::Mutex;

use super::h1::upstream::IdleList;
use super::metrics::ServerMeters;
use crate::config::{BackendSection, Balance};

/// One server of a backend.
#[derive(Debug)]
pub struct Server {
    /// Server name.
    pub name: Arc<str>,
    /// `host:port` to connect to.
    pub addr: String,
    /// `addr` parsed once as a URI authority (`None` if it is not a valid one).
    pub authority: Option<Authority>,
    /// Relative share of new clients (0: none).
    pub weight: u32,
    /// Insert mode: the HAProxy cookie value still honoured as this server's.
    pub legacy_cookie: Option<String>,
    /// Idle keep-alive connections of the fast path (kept by a reload that keeps the
    /// server).
    pub idle: Arc<IdleList>,
    /// Its metrics, found by name the first time it answers (a server belongs to one
    /// backend, whose name is part of them).
    pub meters: OnceLock<ServerMeters>,
    up: AtomicBool,
    inflight: AtomicUsize,
}

impl Server {
    /// True while this node's health checks see the server up.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records this node's health observation.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    /// Requests in flight to the server from this node.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// A request in flight to a server (for least-connections); decrements on drop.
#[derive(Debug)]
pub struct InFlight(Arc<Server>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The rendezvous score of `server` for `key`: the best of `weight` (at most 16) draws of
/// XXH3-64, whose output its specification fixes, over `key`, a 0 byte and the server's
/// name, seeded by the draw. Every node, whatever compiler built it, computes the same
/// score (std's `DefaultHasher` promises no such thing across Rust releases).
pub fn placement_score(key: &[u8], server: &str, weight: u32) -> u64 {
    let mut input = Vec::with_capacity(key.len() + 1 + server.len());
    input.extend_from_slice(key);
    input.push(0);
    input.extend_from_slice(server.as_bytes());
    (0..u64::from(weight.min(16)))
        .map(|draw| xxhash_rust::xxh3::xxh3_64_with_seed(&input, draw))
        .max()
        .unwrap_or(0)
}

/// A backend's servers and balancer.
#[derive(Debug)]
pub struct Pool {
    /// Backend name.
    pub name: Arc<str>,
    /// Its configuration.
    pub config: BackendSection,
    /// Binding time-to-live in ms.
    pub ttl: u64,
    /// Longest life of a session in ms (`maxlife`), if capped.
    pub maxlife: Option<u64>,
    /// Its servers, in configuration order.
    pub servers: Vec<Arc<Server>>,
    /// Smooth weighted round-robin: current weight per server.
    current: Mutex<Vec<i64>>,
    /// Least-connections: rotating start for ties.
    rotor: AtomicUsize,
}

/// Whether a server may take a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usable {
    /// Ready and up: any client.
    Any,
    /// Draining and up: clients bound to it only.
    BoundOnly,
    /// Maint, down or unknown: nobody.
    No,
}

impl Pool {
    /// Builds the run-time backend from its configuration. A server `before` (the same
    /// backend's previous generation) also had, with the same address, keeps its health
    /// and its idle connections.
    pub fn new(config: &BackendSection, before: Option<&Pool>) -> Pool {
        let servers: Vec<Arc<Server>> = config
            .servers
            .iter()
            .map(|s| {
                let was = before
                    .and_then(|b| b.server(&s.name))
                    .filter(|w| w.addr == s.addr);
                Arc::new(Server {
                    name: Arc::from(s.name.as_str()),
                    addr: s.addr.clone(),
                    authority: Authority::try_from(s.addr.as_str()).ok(),
                    weight: s.weight,
                    legacy_cookie: s.cookie.clone(),
                    idle: was.map(|w| w.idle.clone()).unwrap_or_default(),
                    meters: OnceLock::new(),
                    up: AtomicBool::new(was.is_none_or(|w| w.is_up())),
                    inflight: AtomicUsize::new(0),
                })
            })
            .collect();
        Pool {
            name: Arc::from(config.name.as_str()),
            ttl: config.ttl.as_millis() as u64,
            maxlife: config.maxlife.map(|m| m.as_millis() as u64),
            current: Mutex::new(vec![0; servers.len()]),
            servers,
            rotor: AtomicUsize::new(0),
            config: config.clone(),
        }
    }

    /// The server named `name`.
    pub fn server(&self, name: &str) -> Option<&Arc<Server>> {
        self.servers.iter().find(|s| &*s.name == name)
    }

    /// Whether `server` may take a request now, from its admin state and health.
    pub fn usable(&self, states: &ServerStates, server: &Server) -> Usable {
        if !server.is_up() {
            return Usable::No;
        }
        match states.admin_state(&self.name, &server.name) {
            AdminState::Ready if server.weight > 0 => Usable::Any,
            AdminState::Ready | AdminState::Drain { .. } => Usable::BoundOnly,
            AdminState::Maint => Usable::No,
        }
    }

    /// Picks a server for a new client among the ready, healthy, weighted servers, never
    /// `exclude`. `None` when no server qualifies.
    pub fn pick(&self, states: &ServerStates, exclude: Option<&str>) -> Option<Arc<Server>> {
        let eligible: Vec<bool> = self
            .servers
            .iter()
            .map(|s| self.usable(states, s) == Usable::Any && exclude.is_none_or(|e| e != &*s.name))
            .collect();
        let index = match self.config.balance {
            Balance::Roundrobin => self.pick_wrr(&eligible),
            Balance::Leastconn => self.pick_leastconn(&eligible),
        }?;
        self.servers.get(index).cloned()
    }

    /// Picks a server for a new client by its key, the same on every node (weighted
    /// rendezvous hashing over the ready, healthy servers, like HAProxy's `balance
    /// source`): a source-mode client's next request, landing on another node before its
    /// bind is visible there, still reaches the same server.
    pub fn pick_by_key(&self, states: &ServerStates, key: &[u8]) -> Option<Arc<Server>> {
        self.servers
            .iter()
            .filter(|s| self.usable(states, s) == Usable::Any && s.weight > 0)
            .max_by_key(|s| placement_score(key, &s.name, s.weight))
            .cloned()
    }

    /// Smooth weighted round-robin (nginx): each pick raises every eligible server's
    /// current weight by its weight and lowers the winner's by the total.
    fn pick_wrr(&self, eligible: &[bool]) -> Option<usize> {
        let mut current = self.current.lock();
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, s) in self.servers.iter().enumerate() {
            if !eligible[i] {
                continue;
            }
            let w = i64::from(s.weight);
            current[i] += w;
            total += w;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        current[b] -= total;
        Some(b)
    }

    /// Fewest in-flight requests relative to weight; ties rotate.
    fn pick_leastconn(&self, eligible: &[bool]) -> Option<usize> {
        let n = self.servers.len();
        if n == 0 {
            return None;
        }
        let start = self.rotor.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(usize, usize, u32)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if !eligible[i] {
                continue;
            }
            let s = &self.servers[i];
            let (load, w) = (s.inflight(), s.weight.max(1));
            // load/w < best_load/best_w  <=>  load*best_w < best_load*w
            let better = best.is_none_or(|(_, bl, bw)| {
                (load as u128) * u128::from(bw) < (bl as u128) * u128::from(w)
            });
            if better {
                best = Some((i, load, w));
            }
        }
        best.map(|(i, _, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the keys of `placements_are_pinned_by_the_hash_specification` go.
    const PINNED: [&str; 4] = ["s1", "s1", "s0", "s1"];

    fn pool(balance: &str, weights: &[u32]) -> Pool {
        let servers = weights
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{{ name = \"s{i}\", addr = \"127.0.0.1:1\", weight = {w} }}"))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "[node]\nid = 1\n[[backend]]\nname = \"b\"\nbalance = \"{balance}\"\nserver = [{servers}]\n"
        );
        let config = crate::config::parse(&text).unwrap();
        Pool::new(&config.backends[0], None)
    }

    #[test]
    fn pick_by_key_agrees_across_nodes_and_spreads() {
        let (a, b) = (
            pool("roundrobin", &[1, 1, 1]),
            pool("roundrobin", &[1, 1, 1]),
        );
        let states = ServerStates::default();
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..300u32 {
            let key = format!("10.0.{}.{}", i / 256, i % 256);
            let x = a.pick_by_key(&states, key.as_bytes()).unwrap();
            let y = b.pick_by_key(&states, key.as_bytes()).unwrap();
            assert_eq!(x.name, y.name, "{key}");
            seen.insert(x.name.to_string());
        }
        assert_eq!(seen.len(), 3, "keys all went to {seen:?}");
        // Weight 0 takes no new client.
        let z = pool("roundrobin", &[0, 1]);
        assert!(
            (0..50u32).all(|i| &*z.pick_by_key(&states, &i.to_be_bytes()).unwrap().name == "s1")
        );
    }

    #[test]
    fn placements_are_pinned_by_the_hash_specification() {
        // These must never change: nodes of different builds place source clients alike.
        assert_eq!(
            placement_score(b"", "", 1),
            xxhash_rust::xxh3::xxh3_64(&[0])
        );
        let p = pool("roundrobin", &[1, 1, 1]);
        let states = ServerStates::default();
        let placed: Vec<String> = ["10.0.0.1", "10.0.0.2", "192.0.2.7", "2001:db8::1"]
            .iter()
            .map(|k| {
                p.pick_by_key(&states, k.as_bytes())
                    .unwrap()
                    .name
                    .to_string()
            })
            .collect();
        assert_eq!(placed, PINNED);
    }

    #[test]
    fn smooth_wrr_follows_weights_and_interleaves() {
        let p = pool("roundrobin", &[5, 1, 1]);
        let states = ServerStates::default();
        let picks: Vec<String> = (0..7)
            .map(|_| p.pick(&states, None).unwrap().name.to_string())
            .collect();
        assert_eq!(picks.iter().filter(|n| *n == "s0").count(), 5);
        // Smooth: the heavy server never takes more than 3 in a row.
        assert_eq!(picks, ["s0", "s0", "s1", "s0", "s2", "s0", "s0"]);
    }

    #[test]
    fn down_and_zero_weight_servers_get_no_new_client() {
        let p = pool("roundrobin", &[1, 0, 1]);
        p.servers[2].set_up(false);
        let states = ServerStates::default();
        for _ in 0..5 {
            assert_eq!(&*p.pick(&states, None).unwrap().name, "s0");
        }
        assert!(p.pick(&states, Some("s0")).is_none());
    }

    #[test]
    fn leastconn_prefers_idle_servers() {
        let p = pool("leastconn", &[1, 1]);
        let states = ServerStates::default();
        let _busy = p.servers[0].start();
        for _ in 0..4 {
            assert_eq!(&*p.pick(&states, None).unwrap().name, "s1");
        }
    }
}
