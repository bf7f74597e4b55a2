//! Traffic per server through this node, for the stats page: answers by status class,
//! a response-time histogram and bytes each way, as atomics behind a map that is only
//! written when a server is first seen.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::api::traffic::{LATENCY_BOUNDS_MS, ServerTraffic};

/// One server's counters.
#[derive(Debug, Default)]
pub struct Counters {
    classes: [AtomicU64; 5],
    latency: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// (backend, server).
type ServerKey = (Arc<str>, Arc<str>);

/// Every server's counters, by (backend, server).
#[derive(Default)]
pub struct Traffic {
    servers: RwLock<HashMap<ServerKey, Arc<Counters>>>,
}

impl Traffic {
    /// Server `server` of `backend`'s counters, made on first use: a caller keeps them
    /// rather than finding them by name for every request.
    pub fn counters(&self, backend: &Arc<str>, server: &Arc<str>) -> Arc<Counters> {
        let key = (backend.clone(), server.clone());
        let found = self.servers.read().get(&key).cloned();
        found.unwrap_or_else(|| self.servers.write().entry(key).or_default().clone())
    }

    /// Every server's traffic so far.
    pub fn snapshot(&self) -> Vec<ServerTraffic> {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out: Vec<ServerTraffic> = self
            .servers
            .read()
            .iter()
            .map(|((b, s), c)| ServerTraffic {
                backend: b.to_string(),
                server: s.to_string(),
                classes: std::array::from_fn(|i| load(&c.classes[i])),
                latency: c.latency.iter().map(load).collect(),
                bytes_in: load(&c.bytes_in),
                bytes_out: load(&c.bytes_out),
            })
            .collect();
        out.sort_by(|a, b| (&a.backend, &a.server).cmp(&(&b.backend, &b.server)));
        out
    }
}

impl Counters {
    /// Counts one answered exchange: its status, its time and its bytes (in, out).
    pub fn record(&self, code: u16, ms: f64, bytes: (u64, u64)) {
        let class = usize::from(code / 100).clamp(1, 5) - 1;
        self.classes[class].fetch_add(1, Ordering::Relaxed);
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes.0, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes.1, Ordering::Relaxed);
    }
}
