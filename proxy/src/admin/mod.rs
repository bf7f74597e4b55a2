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

/// Serves the admin API on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, node: Arc<Node>, shutdown: impl Future<Output = ()>) {
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
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let node = node.clone();
                async move { Ok::<_, std::convert::Infallible>(routes::handle(node, req).await) }
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
