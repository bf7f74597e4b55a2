//! Replication of the stick table on a three-node cluster on loopback, through the real
//! path (data-plane queue → flusher → Raft with a durable redb log → apply on every node):
//! committed bindings per second, and propose-to-visible lag on another node at a paced
//! 10,000 bindings/s.
//!
//! Run: `cargo run --release -p holdfast-bench --bin replication`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use holdfast::cluster::Node;
use holdfast::config;
use holdfast_table::model::Bind;

fn port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_cluster(dir: &std::path::Path) -> anyhow::Result<Vec<Arc<Node>>> {
    let peers: Vec<String> = (0..3)
        .map(|_| port().map(|p| format!("127.0.0.1:{p}")))
        .collect::<Result<_, _>>()?;
    let members = peers
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{{ id = {}, addr = \"{a}\" }}", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    let mut nodes = Vec::new();
    for (i, peer) in peers.iter().enumerate() {
        let text = format!(
            "[node]\nid = {}\ndata_dir = \"{}\"\n[cluster]\nsecret = \"bench-secret-0123456789\"\npeer_listen = \"{peer}\"\nmembers = [{members}]\nqueue_limit = 200000\nsnapshot_every = 100000\n[admin]\nlisten = \"127.0.0.1:{}\"\n",
            i + 1,
            dir.join(format!("n{}", i + 1)).display(),
            port()?
        );
        let config = config::parse(&text).map_err(|p| anyhow::anyhow!("{p:?}"))?;
        nodes.push(Node::start(config).await?);
    }
    let start = Instant::now();
    while nodes[0].raft().metrics().borrow().current_leader.is_none() {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(20), "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(nodes)
}

fn bind(key: String) -> Bind {
    Bind {
        backend: "app".into(),
        key: key.into_bytes(),
        server: "s1".into(),
        ttl: 3_600_000,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Pushes `total` binds spread over the three nodes' queues as fast as the queues take
/// them, and measures until the leader's table has applied them all.
async fn throughput(nodes: &[Arc<Node>], total: usize) -> anyhow::Result<f64> {
    let leader = &nodes[0];
    let base = leader.shared().with_table(|t| t.len());
    let start = Instant::now();
    let mut sent = 0usize;
    while sent < total {
        for (n, node) in nodes.iter().enumerate() {
            for _ in 0..500 {
                node.queue().bind(bind(format!("tp-{n}-{sent:012}")));
                sent += 1;
            }
        }
        tokio::task::yield_now().await;
        if sent.is_multiple_of(30_000) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    loop {
        let applied = leader.shared().with_table(|t| t.len()) - base;
        if applied >= total {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(120),
            "only {applied} applied"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let overflow: u64 = nodes
        .iter()
        .map(|n| {
            n.queue()
                .stats()
                .overflow
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    anyhow::ensure!(overflow == 0, "{overflow} binds overflowed the queues");
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Binds at `rate` per second on node 1 for `secs`, sampling every 10th key's time to
/// become visible in node 2's read view.
async fn lag(nodes: &[Arc<Node>], rate: usize, secs: u64) -> anyhow::Result<Vec<Duration>> {
    let (from, to) = (nodes[1].clone(), nodes[2].clone());
    let per_ms = rate / 1000;
    let mut watchers = Vec::new();
    let start = Instant::now();
    let mut n = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        for _ in 0..per_ms {
            let key = format!("lag-{n:012}");
            let sent = Instant::now();
            from.queue().bind(bind(key.clone()));
            if n.is_multiple_of(10) {
                let to = to.clone();
                watchers.push(tokio::spawn(async move {
                    loop {
                        if to.shared().view().lookup("app", key.as_bytes()).is_some() {
                            return Some(sent.elapsed());
                        }
                        if sent.elapsed() > Duration::from_secs(10) {
                            return None;
                        }
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                }));
            }
            n += 1;
        }
    }
    let mut lags = Vec::new();
    for w in watchers {
        lags.push(w.await?.context("a binding never became visible")?);
    }
    lags.sort();
    Ok(lags)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let nodes = start_cluster(dir.path()).await?;
    // Let the cluster settle (params, first ticks).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rate = throughput(&nodes, 300_000).await?;
    println!("committed bindings/s (3 nodes, durable log, 300k binds): {rate:.0}");
    let lags = lag(&nodes, 10_000, 5).await?;
    println!(
        "lag node2 -> node3 at 10k binds/s ({} samples): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lags.len(),
        percentile(&lags, 0.5).as_secs_f64() * 1e3,
        percentile(&lags, 0.99).as_secs_f64() * 1e3,
        lags.last().map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0),
    );
    for node in &nodes {
        node.shutdown().await;
    }
    Ok(())
}
