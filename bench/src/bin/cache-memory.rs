//! Memory of the data plane's moka caches (`Recent`: this node's not-yet-applied binds
//! and learn misses): fills one with N entries shaped like the real ones (backend name,
//! 32-byte session key, server name) and reports the resident memory per entry.
//!
//! `cargo run --release -p holdfast-bench --bin cache-memory [N]` (default 131072, the
//! cache's capacity).

use std::sync::Arc;
use std::time::Duration;

use holdfast::admin::resident_bytes as rss_bytes;
use holdfast::http::recent::Recent;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(holdfast::http::recent::CAPACITY);
    let backend: Arc<str> = Arc::from("app");
    let server: Arc<str> = Arc::from("s1");
    let before = rss_bytes();
    let recent: Recent<Arc<str>> = Recent::with_capacity(n);
    for i in 0..n {
        let key = format!("{i:032x}");
        recent.set(
            &backend,
            key.as_bytes(),
            server.clone(),
            Duration::from_secs(1800),
        );
    }
    let held = recent.len();
    let after = rss_bytes();
    let per = (after.saturating_sub(before)) as f64 / held.max(1) as f64;
    println!("entries: {held}");
    println!(
        "resident memory: {:.1} MiB",
        (after - before) as f64 / 1048576.0
    );
    println!("per entry: {per:.0} B (key 32 B + backend Arc + value Arc)");
}
