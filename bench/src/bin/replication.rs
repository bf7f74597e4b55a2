//! Replication of the stick table on a three-node cluster on loopback, through the real
//! path (data-plane queue → flusher → Raft with a durable redb log → apply on every node):
//! committed bindings per second, and propose-to-visible lag on another node at a paced
//! 10,000 bindings/s.
//!
//! Run: `cargo run --release -p holdfast-bench --bin replication`

use std::sync::Arc;
use std::time::{Duration, Instant};

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
        replaces: None,
        maxlife: None,
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

/// Binds at `rate` per second on one node for `secs`, sampling every 10th key's time to
/// become visible in another node's read view. One watcher checks the oldest unseen sample
/// every millisecond: binds from one node commit in order, so the samples show up in order,
/// and the measurement costs next to nothing (polling per key would eat the CPU it measures).
async fn lag(nodes: &[Arc<Node>], rate: usize, secs: u64) -> anyhow::Result<Vec<Duration>> {
    let pick = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (from, to) = (
        nodes[pick("LAG_FROM", 1)].clone(),
        nodes[pick("LAG_TO", 2)].clone(),
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watcher = tokio::spawn(async move {
        let mut lags = Vec::new();
        while let Some((key, sent)) = rx.recv().await {
            while to.shared().view().lookup("app", key.as_bytes()).is_none() {
                if sent.elapsed() > Duration::from_secs(10) {
                    return Err(anyhow::anyhow!("{key} never became visible"));
                }
                tokio::time::sleep(Duration::from_micros(250)).await;
            }
            lags.push(sent.elapsed());
        }
        Ok(lags)
    });
    let per_ms = rate / 1000;
    let start = Instant::now();
    let mut n = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        for _ in 0..per_ms {
            let key = format!("lag-{n:012}");
            from.queue().bind(bind(key.clone()));
            if n.is_multiple_of(10) {
                let _ = tx.send((key, Instant::now()));
            }
            n += 1;
        }
    }
    drop(tx);
    let mut lags = watcher.await??;
    lags.sort();
    Ok(lags)
}

/// Waits until every node has applied as many bindings as the first.
async fn settle(nodes: &[Arc<Node>]) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let lens: Vec<usize> = nodes
            .iter()
            .map(|n| n.shared().with_table(|t| t.len()))
            .collect();
        if lens.iter().all(|&l| l == lens[0]) {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "nodes never converged: {lens:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    settle(&nodes).await?;
    let lags = lag(&nodes, 10_000, 5).await?;
    println!(
        "lag (propose on one node -> visible on another) at 10k binds/s ({} samples): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
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
