//! Pre-fills a one-node holdfast data directory with N bindings, for `bench/scale.sh`.
//!
//! ```sh
//! prefill --config FILE --bindings N [--backend app] [--servers s1,s2] [--ttl-secs 3600]
//! ```
//!
//! Starts the node FILE describes in this process (its cluster only: no frontends, no
//! admin API), waits until it leads its cluster of one and is ready, then proposes N binds
//! through Raft exactly as a node's flusher would (`Command::Batch`, 10,000 binds per
//! entry, a few entries in flight), triggers a snapshot and waits until `snapshot.bin`
//! holds the last index before it shuts down. The same data dir is then served by
//! `holdfast run --config FILE`, which loads that snapshot.
//!
//! Keys are 32 lowercase hex characters (like a PHP session id), distinct and deterministic:
//! key `i` is two 64-bit bijective mixes of `i`. Servers are assigned round robin.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use holdfast::cluster::Node;
use holdfast::config;
use holdfast_table::model::{Bind, Command, NodeBatch};

/// Binds per Raft entry.
const BATCH: u64 = 10_000;
/// Entries proposed and not yet committed at once.
const IN_FLIGHT: usize = 4;

struct Args {
    config: String,
    bindings: u64,
    backend: String,
    servers: Vec<String>,
    ttl_secs: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        config: String::new(),
        bindings: 0,
        backend: "app".into(),
        servers: vec!["s1".into(), "s2".into()],
        ttl_secs: 3600,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--config" => a.config = value()?,
            "--bindings" => a.bindings = value()?.replace('_', "").parse()?,
            "--backend" => a.backend = value()?,
            "--servers" => a.servers = value()?.split(',').map(str::to_owned).collect(),
            "--ttl-secs" => a.ttl_secs = value()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "prefill --config FILE --bindings N [--backend app] [--servers s1,s2] [--ttl-secs 3600]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    ensure!(!a.config.is_empty(), "--config FILE is required");
    ensure!(a.bindings > 0, "--bindings N is required");
    ensure!(!a.servers.is_empty(), "--servers needs at least one name");
    Ok(a)
}

/// splitmix64's finalizer: a bijection on u64, so distinct inputs give distinct keys.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The session id of binding `i`: 32 hex characters.
fn key(i: u64) -> Vec<u8> {
    format!("{:016x}{:016x}", mix(i), mix(!i)).into_bytes()
}

fn batch(a: &Args, node: u64, from: u64, to: u64) -> Command {
    let binds = (from..to)
        .map(|i| Bind {
            backend: a.backend.clone(),
            key: key(i),
            server: a.servers[(i % a.servers.len() as u64) as usize].clone(),
            ttl: a.ttl_secs * 1000,
            replaces: None,
            maxlife: None,
        })
        .collect();
    Command::from(NodeBatch {
        node,
        binds,
        ..NodeBatch::default()
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Arc::new(args()?);
    let text =
        std::fs::read_to_string(&a.config).with_context(|| format!("cannot read {}", a.config))?;
    let cfg = config::parse(&text).map_err(|p| anyhow::anyhow!("{}: {p:?}", a.config))?;
    ensure!(
        cfg.cluster.members.len() <= 1 && !cfg.cluster.join,
        "prefill runs a cluster of one: no members, no join"
    );
    ensure!(
        cfg.backends.is_empty() || cfg.backend(&a.backend).is_some(),
        "backend {:?} is not in {}",
        a.backend,
        a.config
    );
    if let Some(b) = cfg.backend(&a.backend) {
        for s in &a.servers {
            ensure!(
                b.servers.iter().any(|x| &x.name == s),
                "no server {s:?} in backend {:?}",
                a.backend
            );
        }
    }
    let data_dir = cfg.node.data_dir.clone();
    let id = cfg.node.id;
    let _ = rustls::crypto::ring::default_provider().install_default();

    let started = Instant::now();
    let node = Node::start(cfg).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.raft().metrics().borrow().current_leader != Some(id) {
        ensure!(Instant::now() < deadline, "node {id} did not become leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::timeout(Duration::from_secs(60), node.wait_ready())
        .await
        .context("node not ready in 60 s")?;
    let before = node.shared().with_table(|t| t.len());
    eprintln!(
        "prefill: node {id} leads (data dir {}, {before} bindings already) after {:.1} s",
        data_dir.display(),
        started.elapsed().as_secs_f64()
    );

    // Propose the binds, IN_FLIGHT entries at a time.
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut from = 0u64;
    let mut last_report = Instant::now();
    let mut last_index = 0u64;
    while from < a.bindings || !tasks.is_empty() {
        while from < a.bindings && tasks.len() < IN_FLIGHT {
            let to = (from + BATCH).min(a.bindings);
            let command = batch(&a, id, from, to);
            let node = node.clone();
            tasks.spawn(async move { node.writer().write(command).await });
            from = to;
        }
        if let Some(done) = tasks.join_next().await {
            let committed = done?.map_err(|e| anyhow::anyhow!("write failed: {e:?}"))?;
            last_index = last_index.max(committed.index);
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "prefill: {from} proposed, {} in the table, {:.0} s",
                node.shared().with_table(|t| t.len()),
                t0.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    let proposing = t0.elapsed();
    let len = node.shared().with_table(|t| t.len());
    ensure!(
        len >= before + a.bindings as usize,
        "only {len} bindings in the table after proposing {} (max_bindings too low?)",
        a.bindings
    );

    // Snapshot what was applied, and wait until the file holds it.
    let applied = node
        .raft()
        .metrics()
        .borrow()
        .last_applied
        .map(|l| l.index)
        .unwrap_or(0)
        .max(last_index);
    let t1 = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut triggered = Instant::now() - Duration::from_secs(60);
    loop {
        let snap = node.raft().metrics().borrow().snapshot.map(|l| l.index);
        if snap.is_some_and(|i| i >= applied) && data_dir.join("snapshot.bin").exists() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "no snapshot at index {applied} after 600 s (have {snap:?})"
        );
        // openraft ignores a trigger while a snapshot is building: re-trigger now and then.
        if triggered.elapsed() >= Duration::from_secs(1) {
            node.raft()
                .trigger()
                .snapshot()
                .await
                .context("triggering a snapshot")?;
            triggered = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let snapshotting = t1.elapsed();
    // openraft purges the log up to the snapshot (less what it keeps) after building it:
    // wait (bounded) for that too, so the data dir holds the table and not prefill's log.
    let keep = node.config().cluster.snapshot_every.min(1_000);
    let purge_deadline = Instant::now() + Duration::from_secs(30);
    while node
        .raft()
        .metrics()
        .borrow()
        .purged
        .map(|l| l.index)
        .unwrap_or(0)
        + keep
        < applied
    {
        if Instant::now() >= purge_deadline {
            eprintln!("prefill: the log was not purged up to the snapshot in 30 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let snap_bytes = std::fs::metadata(data_dir.join("snapshot.bin"))?.len();
    node.shutdown().await;

    let secs = proposing.as_secs_f64();
    // Two sample keys and their servers, for the caller's sanity check.
    println!(
        "sample: {} {} {} {}",
        String::from_utf8_lossy(&key(0)),
        a.servers[0],
        String::from_utf8_lossy(&key(1)),
        a.servers[1 % a.servers.len()]
    );
    println!(
        "prefill: {} bindings (table: {len}) committed in {secs:.1} s ({:.0} bindings/s); \
         snapshot at index {applied}: {snap_bytes} bytes ({:.1} B/binding) in {:.1} s; total {:.1} s",
        a.bindings,
        a.bindings as f64 / secs,
        snap_bytes as f64 / len.max(1) as f64,
        snapshotting.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
