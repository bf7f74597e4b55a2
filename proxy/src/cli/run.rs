//! `holdfast run` and `holdfast check`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::process::Process;
use crate::cluster::Node;
use crate::config::{self, ConfigError};

/// Installs the log subscriber. `HOLDFAST_LOG` is the filter, by default
/// `info,openraft=warn,rustls=error`: what a client sent wrong is logged at debug, never
/// above, since any client could fill the log with it (rustls warns of a client's
/// renegotiation attempt). The access log is target `holdfast::access` at debug.
/// `HOLDFAST_LOG_FORMAT=json` switches to JSON lines; colours only when stdout is a
/// terminal.
pub(super) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOLDFAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn,rustls=error"));
    // Colours only on a terminal: a log file or journald gets plain text (and `NO_COLOR`
    // turns them off anywhere).
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    // HOLDFAST_LOG_FORMAT=json: one JSON object per line, for log shippers.
    let _ = if std::env::var("HOLDFAST_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// `holdfast check`: prints every problem and exits 1, or prints `ok`.
pub fn check(path: &Path) -> anyhow::Result<i32> {
    match config::load(path) {
        Ok(config) => {
            println!("{}: ok", path.display());
            println!("{}", explain_max_bindings(config.cluster.max_bindings));
            Ok(0)
        }
        Err(ConfigError::Invalid { path, problems }) => {
            for p in problems {
                eprintln!("{path}: {p}");
            }
            Ok(1)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
    }
}

/// What `max_bindings` means on this machine, for `holdfast check`.
fn explain_max_bindings(max: u64) -> String {
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    let total = config::memory_total().unwrap_or(0);
    let at = max.saturating_mul(config::BUDGET_PER_BINDING);
    let origin = if max == config::default_max_bindings() {
        "the default: a quarter of this machine's memory"
    } else {
        "as configured"
    };
    format!(
        "max_bindings = {max} ({origin}); at {} bytes each a full table takes {:.1} GiB \
         of {:.1} GiB here. When full, the binding closest to expiry is evicted; its \
         server's drain still waits for it.",
        config::BUDGET_PER_BINDING,
        gib(at),
        gib(total)
    )
}

/// `holdfast run`: starts a node and serves until SIGINT or SIGTERM; SIGHUP reloads the
/// config file.
pub fn run(path: &Path, data_dir: Option<PathBuf>) -> anyhow::Result<i32> {
    init_logging();
    let config = load(path, data_dir.as_deref())?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = match worker_threads()? {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, path, data_dir.as_deref()))?;
    Ok(0)
}

/// `HOLDFAST_WORKER_THREADS`: the number of async worker threads (unset or `0`: one per
/// CPU). `1` runs the whole node on one thread, like HAProxy's `nbthread 1` (the
/// benchmarks in `bench/` use it), on tokio's current-thread scheduler: its tasks run in
/// the order they were woken, so an HTTP/2 connection writes the answers of all its
/// streams that finished in one turn together: about ten answers per write under
/// `bench/h2.sh`, where the multi-thread scheduler, which runs a task woken by another
/// next, wrote about three. The Raft log's fsyncs still run on tokio's blocking pool.
fn worker_threads() -> anyhow::Result<Option<usize>> {
    match std::env::var("HOLDFAST_WORKER_THREADS") {
        Err(_) => Ok(None),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(n)),
            _ => anyhow::bail!("HOLDFAST_WORKER_THREADS={v:?}: expected a number"),
        },
    }
}

/// How long SIGTERM waits for requests in flight before the node exits.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

fn load(path: &Path, data_dir: Option<&Path>) -> Result<config::Config, ConfigError> {
    let mut config = config::load(path)?;
    if let Some(dir) = data_dir {
        config.node.data_dir = dir.to_path_buf();
    }
    Ok(config)
}

async fn serve(config: config::Config, path: &Path, data_dir: Option<&Path>) -> anyhow::Result<()> {
    let mut process = Process::start(config).await?;
    let node = process.node.clone();
    let stop = shutdown_signal();
    tokio::pin!(stop);
    // No client traffic before the node has caught up with the cluster (`/readyz`).
    tokio::select! {
        _ = node.wait_ready() => {}
        reason = node.fatal() => fail_stop(&node, &reason),
        _ = &mut stop => {
            process.stop(SHUTDOWN_GRACE).await;
            return Ok(());
        }
    }
    process.serve().await?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = hup.recv() => reload(&mut process, path, data_dir),
            reason = node.fatal() => fail_stop(&node, &reason),
        }
    }
    tracing::info!(
        id = node.id(),
        "shutting down: no new connections, finishing requests in flight"
    );
    process.stop(SHUTDOWN_GRACE).await;
    Ok(())
}

/// Exit status of a node that stopped because it can no longer keep its table true
/// (`EX_SOFTWARE`): a supervisor restarts it.
pub const EXIT_FAIL_STOP: i32 = 70;

/// The Raft core stopped on a fatal error (a log or snapshot write failed, a full disk, a
/// broken invariant): the table here is no longer kept true, so the node stops serving
/// clients and reporting watermarks at once, says why, and exits for its supervisor to
/// restart it. Nothing is drained gracefully: every answer from now on could be wrong.
fn fail_stop(node: &Node, reason: &str) -> ! {
    tracing::error!(id = node.id(), %reason, "fail-stop: the raft core stopped; exiting");
    eprintln!(
        "holdfast: node {} stops: its raft core stopped and the table can no longer be kept true: {reason}",
        node.id()
    );
    std::process::exit(EXIT_FAIL_STOP)
}

/// SIGHUP: re-reads the config; a bad file or a change that needs a restart is logged
/// and the node keeps running on what it had.
fn reload(process: &mut Process, path: &Path, data_dir: Option<&Path>) {
    let config = match load(path, data_dir) {
        Ok(c) => c,
        Err(ConfigError::Invalid { path, problems }) => {
            for p in problems {
                tracing::error!(%path, problem = %p, "reload refused: config has problems");
            }
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "reload refused");
            return;
        }
    };
    match process.reload(config) {
        Ok(()) => tracing::info!(path = %path.display(), "config reloaded"),
        Err(e) => tracing::error!(error = %e, "reload refused"),
    }
}

pub(super) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
