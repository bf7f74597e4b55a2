//! Harness for the workspace integration tests: starts real `holdfast` node processes on
//! loopback with generated configs and data directories, talks to their admin API, and
//! kills, pauses or restarts them by process id. Only processes it started are touched.

mod backend;
pub mod browser;
mod configs;
mod disk;
pub mod h2raw;
mod http;
mod lab;
pub mod netns;
mod node;
mod observe;
mod recorder;
pub mod tls;
mod traffic;

pub use backend::{Answer, BackendProc, Jar, get, raw, raw_within};
pub use configs::{MODES, backend_of, in_every_mode, mode_hosts, plain_config, three_modes_config};
pub use disk::SmallDisk;
pub use http::{Reply, request};
pub use lab::{Lab, PATIENCE};
pub use node::{Cluster, ClusterOptions, NodeProc, TOKEN, check_config, holdfast_binary};
pub use observe::Release;
pub use recorder::{Received, Recorder};
pub use traffic::{
    Client, CtlRun, Tally, Traffic, TrafficOptions, Visit, assert_no_moves, last_request,
};

use std::time::{Duration, Instant};

use holdfast::api::ClusterStatus;

/// The leader every one of `seen` (each node's answer) names, if they all name the same.
pub fn agreed_leader(seen: &[Option<u64>]) -> Option<u64> {
    let first = (*seen.first()?)?;
    seen.iter().all(|l| *l == Some(first)).then_some(first)
}

/// Whether every member of `before` is in `after` with a watermark at least as new (e.g.
/// across a restart, watermarks come back from disk).
pub fn watermarks_kept(before: &ClusterStatus, after: &ClusterStatus) -> bool {
    before.members.iter().all(|b| {
        after
            .member(b.id)
            .is_some_and(|a| a.watermark >= b.watermark)
    })
}

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free TCP port on 127.0.0.1, below the ephemeral range (32768 and up), so that it
/// cannot collide with the source port of an outgoing connection: bound and released,
/// spread over 10000–31999 by process id and a counter shared by the process's tests.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000;
    let start = (std::process::id() % 1_000) * 22;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
