//! The HTTP/HTTPS data plane: frontends (listeners with routes, TLS by SNI), backends
//! (balancing, persistence through the node's read view and bind queue, health checks),
//! and the forwarding of requests to servers. [`start`] brings it all up for one node.

pub mod body;
mod conn;
pub mod cookie;
mod forward;
pub mod headers;
mod health;
mod listener;
pub mod metrics;
mod persist;
pub mod pool;
pub mod route;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

pub use metrics::HttpMetrics;

use crate::cluster::Node;
use crate::config::{LimitsSection, TimeoutsSection};
use body::Body;
use cookie::CookieSigner;
use persist::Overrides;
use pool::Pool;
use route::Router;

/// Why the data plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A frontend's certificates could not be used.
    #[error("frontend {frontend}: {source}")]
    Tls {
        /// The frontend.
        frontend: String,
        /// Why.
        source: tls::TlsError,
    },
    /// A frontend could not listen.
    #[error("frontend {frontend}: cannot listen on {addr}: {source}")]
    Listen {
        /// The frontend.
        frontend: String,
        /// Its address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// One frontend at run time.
pub struct Frontend {
    /// Its name.
    pub name: String,
    /// Its routes.
    pub router: Router,
    /// Redirect every request to HTTPS.
    pub redirect_https: bool,
    /// TLS acceptor when it is an HTTPS listener.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// What every request handler of one node shares.
pub struct DataPlane {
    /// The cluster node (read view, bind queue, leader reads).
    pub node: Arc<Node>,
    /// Backends by name.
    pub pools: HashMap<String, Arc<Pool>>,
    /// Pooled keep-alive connections to servers.
    pub client: Client<HttpConnector, Body>,
    /// Insert-cookie MAC.
    pub signer: CookieSigner,
    /// Metrics.
    pub metrics: Arc<HttpMetrics>,
    /// Local re-dispatches of learn/source bindings.
    pub overrides: Overrides,
    /// Timeouts.
    pub timeouts: TimeoutsSection,
    /// Limits.
    pub limits: LimitsSection,
}

/// The running data plane; its tasks stop when it is dropped.
pub struct Running {
    /// The shared state (for tests and the stats page).
    pub plane: Arc<DataPlane>,
    /// Bound listener addresses, in frontend order.
    pub addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Builds the data plane of `node` from its config, binds every frontend and starts the
/// health checks.
pub async fn start(node: Arc<Node>, metrics: Arc<HttpMetrics>) -> Result<Running, StartError> {
    let config = node.config().clone();
    let pools: HashMap<String, Arc<Pool>> = config
        .backends
        .iter()
        .map(|b| (b.name.clone(), Arc::new(Pool::new(b))))
        .collect();
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.timeouts.connect));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(config.timeouts.pool_idle)
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(256)
        .build(connector);
    let plane = Arc::new(DataPlane {
        signer: CookieSigner::new(config.cluster.secret.as_bytes()),
        node,
        client,
        metrics: metrics.clone(),
        overrides: Overrides::default(),
        timeouts: config.timeouts.clone(),
        limits: config.limits.clone(),
        pools,
    });
    let mut tasks = Vec::new();
    for pool in plane.pools.values() {
        tasks.extend(health::spawn(pool, &metrics));
    }
    let slots = Arc::new(Semaphore::new(config.limits.max_connections));
    let mut addrs = Vec::new();
    for f in &config.frontends {
        let tls = match &f.tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(
                tls::server_config(t).map_err(|source| StartError::Tls {
                    frontend: f.name.clone(),
                    source,
                })?,
            )),
            None => None,
        };
        let router = Router::new(f, |name| plane.pools.get(name).cloned());
        let frontend = Arc::new(Frontend {
            name: f.name.clone(),
            router,
            redirect_https: f.redirect_https,
            tls,
        });
        let listener = TcpListener::bind(f.listen)
            .await
            .map_err(|source| StartError::Listen {
                frontend: f.name.clone(),
                addr: f.listen,
                source,
            })?;
        addrs.push(listener.local_addr().unwrap_or(f.listen));
        tracing::info!(frontend = %f.name, listen = %f.listen, tls = f.tls.is_some(), "frontend listening");
        tasks.push(tokio::spawn(listener::accept_loop(
            listener,
            plane.clone(),
            frontend,
            slots.clone(),
        )));
    }
    Ok(Running {
        plane,
        addrs,
        tasks,
    })
}
