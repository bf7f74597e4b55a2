//! The operator-facing HTTP listener: admin API (JSON, bearer token) and `/metrics`.

mod http;
mod metrics;
mod routes;
mod stats;

use std::future::Future;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::cluster::Node;
use crate::http::HttpMetrics;

/// Serves the admin API on `listener` until `shutdown` completes; `/metrics` includes the
/// data plane's metrics when `http` is given.
pub async fn serve(
    listener: TcpListener,
    node: Arc<Node>,
    http: Option<Arc<HttpMetrics>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
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
        let node = node.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: ::http::Request<hyper::body::Incoming>| {
                let node = node.clone();
                let http = http.clone();
                async move {
                    if req.uri().path() == "/metrics" && req.method() == ::http::Method::GET {
                        return Ok(metrics::render_with(&node, http.as_deref()));
                    }
                    Ok::<_, std::convert::Infallible>(routes::handle(node, req).await)
                }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "admin connection ended with an error");
            }
        });
    }
}
