//! One node's process assembled, the same way for `holdfast run` and `holdfast demo`:
//! config → admin listener → cluster node → admin API, then, once the node may serve,
//! the data plane over the node's table access; reloads and the stop in the same order.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::cluster::Node;
use crate::config::Config;
use crate::http::table::TableAccess;
use crate::http::{HttpMetrics, Running};

/// A started node with its admin API, and its data plane once serving.
pub struct Process {
    /// The cluster node.
    pub node: Arc<Node>,
    /// The data plane's metrics (served by the admin API's `/metrics`).
    pub metrics: Arc<HttpMetrics>,
    admin: JoinHandle<()>,
    plane: Option<Running>,
}

impl Process {
    /// Binds the admin listener, starts the node and serves its admin API; no client
    /// traffic yet.
    pub async fn start(config: Config) -> anyhow::Result<Process> {
        let admin_addr = config.admin.listen;
        let admin = TcpListener::bind(admin_addr)
            .await
            .with_context(|| format!("cannot listen for admin on {admin_addr}"))?;
        let node = Node::start(config).await?;
        tracing::info!(id = node.id(), admin = %admin_addr, peer = %node.config().cluster.peer_listen, "node started");
        let metrics = Arc::new(HttpMetrics::default());
        let admin = tokio::spawn(crate::admin::serve(
            admin,
            Arc::clone(&node),
            Some(metrics.clone()),
            std::future::pending(),
        ));
        Ok(Process {
            node,
            metrics,
            admin,
            plane: None,
        })
    }

    /// Opens the frontends (the data plane over the node's table access) and reports
    /// the node serving.
    pub async fn serve(&mut self) -> anyhow::Result<()> {
        let config = self.node.config();
        let access = TableAccess::of(&self.node);
        self.plane = Some(crate::http::start(&config, access, self.metrics.clone()).await?);
        self.node.set_serving();
        Ok(())
    }

    /// Applies `config` to the node and the data plane, or to neither.
    pub fn reload(&mut self, config: Config) -> Result<(), String> {
        let previous = self.node.config();
        self.node.reload_config(config)?;
        let Some(plane) = self.plane.as_mut() else {
            return Ok(());
        };
        plane.reload(&self.node.config()).map_err(|e| {
            // Keep node and data plane on the same config.
            let _ = self.node.reload_config((*previous).clone());
            e.to_string()
        })
    }

    /// Stops: no new connections, requests in flight given `grace`, then the admin API
    /// and the node.
    pub async fn stop(self, grace: Duration) {
        if let Some(plane) = self.plane {
            plane.shutdown(grace).await;
        }
        self.admin.abort();
        self.node.shutdown().await;
    }
}
