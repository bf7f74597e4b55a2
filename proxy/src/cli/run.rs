//! `holdfast run` and `holdfast check`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::cluster::Node;
use crate::config::{self, ConfigError};

/// Installs the log subscriber (`HOLDFAST_LOG` filter, default `info,openraft=warn`).
pub(super) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOLDFAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

/// `holdfast check`: prints every problem and exits 1, or prints `ok`.
pub fn check(path: &Path) -> anyhow::Result<i32> {
    match config::load(path) {
        Ok(_) => {
            println!("{}: ok", path.display());
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

/// `holdfast run`: starts a node and serves until SIGINT or SIGTERM.
pub fn run(path: &Path, data_dir: Option<PathBuf>) -> anyhow::Result<i32> {
    init_logging();
    let mut config = config::load(path)?;
    if let Some(dir) = data_dir {
        config.node.data_dir = dir;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(0)
}

async fn serve(config: config::Config) -> anyhow::Result<()> {
    let admin_addr = config.admin.listen;
    let admin = TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("cannot listen for admin on {admin_addr}"))?;
    let node = Node::start(config).await?;
    tracing::info!(id = node.id(), admin = %admin_addr, peer = %node.config().cluster.peer_listen, "node started");
    let metrics = Arc::new(crate::http::HttpMetrics::default());
    let data_plane = crate::http::start(Arc::clone(&node), metrics.clone()).await?;
    let admin_task = tokio::spawn(crate::admin::serve(
        admin,
        Arc::clone(&node),
        Some(metrics),
        std::future::pending(),
    ));
    shutdown_signal().await;
    tracing::info!(id = node.id(), "shutting down");
    admin_task.abort();
    drop(data_plane);
    node.shutdown().await;
    Ok(())
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
