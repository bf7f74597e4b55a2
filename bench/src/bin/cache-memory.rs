//! Memory and speed of the data plane's bounded memories (`Recent`: this node's
//! not-yet-applied binds and learn misses): fills one with N entries shaped like the real
//! ones (backend name, 32-byte session key, server name) and reports the resident memory
//! per entry, and the time per insert and per lookup (one thread, the keys made first).
//!
//! `cargo run --release -p holdfast-bench --bin cache-memory [N]` (default 131072, the
//! cache's capacity).

use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast::admin::resident_bytes as rss_bytes;
use holdfast::http::recent::Recent;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(holdfast::http::recent::CAPACITY);
    let backend: Arc<str> = Arc::from("app");
    let server: Arc<str> = Arc::from("s1");
    let keys: Vec<String> = (0..n).map(|i| format!("{i:032x}")).collect();
    let before = rss_bytes();
    let recent: Recent<Arc<str>> = Recent::with_capacity(n);
    let started = Instant::now();
    for key in &keys {
        recent.set(
            &backend,
            key.as_bytes(),
            server.clone(),
            Duration::from_secs(1800),
        );
    }
    let insert_ns = started.elapsed().as_nanos() as f64 / n.max(1) as f64;
    let after = rss_bytes();
    let started = Instant::now();
    let found = keys
        .iter()
        .filter(|k| recent.get(&backend, k.as_bytes()).is_some())
        .count();
    let lookup_ns = started.elapsed().as_nanos() as f64 / n.max(1) as f64;
    let held = recent.len();
    let per = (after.saturating_sub(before)) as f64 / held.max(1) as f64;
    println!("entries: {held} ({found} of {n} found)");
    println!(
        "resident memory: {:.1} MiB",
        (after - before) as f64 / 1048576.0
    );
    println!("per entry: {per:.0} B (key 32 B + backend Arc + value Arc)");
    println!("insert: {insert_ns:.0} ns, lookup: {lookup_ns:.0} ns");
}
