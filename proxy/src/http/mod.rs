//! The HTTP/HTTPS data plane: frontends (listeners with routes, TLS by SNI), backends
//! (balancing, persistence through the node's read view and bind queue, health checks),
//! and the forwarding of requests to servers. [`start`] brings it all up for one node.

pub mod body;
mod conn;
pub mod cookie;
mod forward;
mod h1;
pub mod headers;
mod health;
mod listener;
pub mod metrics;
mod persist;
pub mod pool;
pub mod recent;
pub mod route;
mod session;
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

pub use h1::MAX_FIELDS as MAX_HEADER_FIELDS;
pub use metrics::HttpMetrics;

use crate::cluster::Node;
use arc_swap::ArcSwap;

use crate::config::{Config, FrontendSection, LimitsSection, TimeoutsSection};
use body::Body;
use cookie::CookieSigner;
use pool::Pool;
use recent::Recent;
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
    /// A reload changed the frontends' names or listen addresses.
    #[error("frontends were added, removed, renamed or moved: restart the node for that")]
    Frontends,
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
    /// Bindings this node made (new learn/source clients, re-dispatches) until they are
    /// applied here: without a leader or quorum that may take long, and "bindings keep
    /// working locally".
    pub overrides: Recent<Arc<str>>,
    /// Learn-mode session cookies looked up in vain a moment ago.
    pub misses: Recent<()>,
    /// Timeouts.
    pub timeouts: TimeoutsSection,
    /// Limits.
    pub limits: LimitsSection,
}

/// What a frontend's accept loop serves new connections with; swapped on reload, while
/// connections already open keep the generation they started with.
pub struct Live {
    /// The shared state of this generation.
    pub plane: Arc<DataPlane>,
    /// The frontend's routes and certificates of this generation.
    pub frontend: Arc<Frontend>,
}

/// The running data plane; its tasks stop when it is dropped.
pub struct Running {
    /// The shared state (for tests and the stats page).
    pub plane: Arc<DataPlane>,
    /// Bound listener addresses, in frontend order.
    pub addrs: Vec<SocketAddr>,
    live: Vec<Arc<ArcSwap<Live>>>,
    listens: Vec<(String, SocketAddr)>,
    health: Vec<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in self.tasks.iter().chain(&self.health) {
            t.abort();
        }
    }
}

/// The backends of `config` as pools, with a fresh plane around them.
fn build_plane(
    node: Arc<Node>,
    config: &Config,
    client: Client<HttpConnector, Body>,
    metrics: &Arc<HttpMetrics>,
) -> Arc<DataPlane> {
    let pools: HashMap<String, Arc<Pool>> = config
        .backends
        .iter()
        .map(|b| (b.name.clone(), Arc::new(Pool::new(b))))
        .collect();
    Arc::new(DataPlane {
        signer: CookieSigner::new(config.cluster.secret.as_bytes()),
        node,
        client,
        metrics: metrics.clone(),
        overrides: Recent::default(),
        misses: Recent::default(),
        timeouts: config.timeouts.clone(),
        limits: config.limits.clone(),
        pools,
    })
}

/// A frontend's routes and TLS acceptor (certificates read now).
fn build_frontend(f: &FrontendSection, plane: &DataPlane) -> Result<Frontend, StartError> {
    let tls = match &f.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(
            tls::server_config(t).map_err(|source| StartError::Tls {
                frontend: f.name.clone(),
                source,
            })?,
        )),
        None => None,
    };
    Ok(Frontend {
        name: f.name.clone(),
        router: Router::new(f, |name| plane.pools.get(name).cloned()),
        redirect_https: f.redirect_https,
        tls,
    })
}

fn health_tasks(plane: &DataPlane) -> Vec<JoinHandle<()>> {
    plane
        .pools
        .values()
        .flat_map(|pool| health::spawn(pool, &plane.metrics))
        .collect()
}

/// Builds the data plane of `node` from its config, binds every frontend and starts the
/// health checks.
pub async fn start(node: Arc<Node>, metrics: Arc<HttpMetrics>) -> Result<Running, StartError> {
    let config = node.config();
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.timeouts.connect));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(config.timeouts.pool_idle)
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(256)
        .build(connector);
    let plane = build_plane(node, &config, client, &metrics);
    let health = health_tasks(&plane);
    let slots = Arc::new(Semaphore::new(config.limits.max_connections));
    let (mut addrs, mut live, mut listens, mut tasks) = (vec![], vec![], vec![], vec![]);
    for f in &config.frontends {
        let frontend = Arc::new(build_frontend(f, &plane)?);
        let listener = TcpListener::bind(f.listen)
            .await
            .map_err(|source| StartError::Listen {
                frontend: f.name.clone(),
                addr: f.listen,
                source,
            })?;
        addrs.push(listener.local_addr().unwrap_or(f.listen));
        tracing::info!(frontend = %f.name, listen = %f.listen, tls = f.tls.is_some(), "frontend listening");
        let current = Arc::new(ArcSwap::from_pointee(Live {
            plane: plane.clone(),
            frontend,
        }));
        tasks.push(tokio::spawn(listener::accept_loop(
            listener,
            current.clone(),
            slots.clone(),
        )));
        live.push(current);
        listens.push((f.name.clone(), f.listen));
    }
    Ok(Running {
        plane,
        addrs,
        live,
        listens,
        health,
        tasks,
    })
}

impl Running {
    /// Graceful stop (SIGTERM): closes the listeners, then waits at most `grace` for the
    /// requests in flight, response bodies included, to finish.
    pub async fn shutdown(mut self, grace: std::time::Duration) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let in_flight: usize = self
                .plane
                .pools
                .values()
                .flat_map(|p| p.servers.iter())
                .map(|s| s.inflight())
                .sum();
            if in_flight == 0 {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    in_flight,
                    "shutdown grace over: cutting requests still in flight"
                );
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Applies the node's (reloaded) config to new connections: backends, servers,
    /// weights, persistence and health checks, routes, certificates, timeouts. Open
    /// connections finish on the generation they started with. Frontends must keep their
    /// names and listen addresses (that needs a restart); otherwise nothing changes.
    pub fn reload(&mut self) -> Result<(), StartError> {
        let config = self.plane.node.config();
        let listens: Vec<(String, SocketAddr)> = config
            .frontends
            .iter()
            .map(|f| (f.name.clone(), f.listen))
            .collect();
        if listens != self.listens {
            return Err(StartError::Frontends);
        }
        let plane = build_plane(
            self.plane.node.clone(),
            &config,
            self.plane.client.clone(),
            &self.plane.metrics,
        );
        let frontends = config
            .frontends
            .iter()
            .map(|f| build_frontend(f, &plane).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        // A server that stays (same name and address) keeps the health this node saw.
        for (name, pool) in &plane.pools {
            let Some(old) = self.plane.pools.get(name) else {
                continue;
            };
            for server in &pool.servers {
                if let Some(was) = old.server(&server.name).filter(|o| o.addr == server.addr) {
                    server.set_up(was.is_up());
                }
            }
        }
        for t in self.health.drain(..) {
            t.abort();
        }
        self.health = health_tasks(&plane);
        for (current, frontend) in self.live.iter().zip(frontends) {
            current.store(Arc::new(Live {
                plane: plane.clone(),
                frontend,
            }));
        }
        self.plane = plane;
        Ok(())
    }
}
