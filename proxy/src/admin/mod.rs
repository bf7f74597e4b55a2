//! The operator-facing HTTP listener: admin API (JSON, bearer token) and `/metrics`.
//! What the JSON holds is defined once, in [`crate::api`].

mod history;
mod http;
mod metrics;
mod routes;
mod stats;

use std::future::Future;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

pub use stats::resident_bytes;

use crate::api::Health;
use crate::cluster::Node;
use crate::http::HttpMetrics;

/// What the admin API answers from: the node, and the data plane's metrics when this
/// node proxies traffic.
#[derive(Clone)]
pub struct Admin {
    /// The cluster node.
    pub node: Arc<Node>,
    /// The data plane's metrics (request counts, health), if any.
    pub http: Option<Arc<HttpMetrics>>,
    /// Drains over time and recent events, for the stats page.
    pub history: Arc<history::History>,
}

impl Admin {
    /// This node's view of a server's health, for status pages.
    pub fn health(&self, backend: &str, server: &str) -> Health {
        Health::from_check(self.http.as_ref().and_then(|h| h.health(backend, server)))
    }
}

/// Most admin connections open at once; more are closed at once (operators, scrapers
/// and `ctl` need a handful).
const MAX_CONNECTIONS: usize = 256;
/// Time to receive a whole request head on the admin listener (slowloris).
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the admin API on `listener` until `shutdown` completes; `/metrics` includes the
/// data plane's metrics when `http` is given.
pub async fn serve(
    listener: TcpListener,
    node: Arc<Node>,
    http: Option<Arc<HttpMetrics>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let history = Arc::new(history::History::default());
    let sampler = history.spawn(node.clone());
    let _stop_sampler = AbortOnDrop(sampler);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "admin connection limit reached; closing");
            continue;
        };
        let admin = Admin {
            node: node.clone(),
            http: http.clone(),
            history: history.clone(),
        };
        tokio::spawn(async move {
            let service = service_fn(move |req: ::http::Request<hyper::body::Incoming>| {
                let admin = admin.clone();
                async move { Ok::<_, std::convert::Infallible>(routes::handle(admin, req).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "admin connection ended with an error");
            }
            drop(slot);
        });
    }
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
