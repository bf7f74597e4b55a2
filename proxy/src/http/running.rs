//! The running data plane of one node: built from the configuration around the node's
//! lasting state, its frontends bound and health checks started; a reload swaps in a new
//! generation for new connections, a shutdown waits for requests in flight.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::body::Body;
use super::cookie::CookieSigner;
use super::pool::Pool;
use super::recent::Recent;
use super::route::Router;
use super::table::TableAccess;
use super::{DataPlane, Frontend, HttpMetrics, Lasting, Live, health, listener, tls};
use crate::config::{Config, FrontendProto, FrontendSection, TimeoutsSection};

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

/// The backends of `config` as pools around `lasting`. A server that stays (same backend,
/// name and address) keeps the health this node saw and its idle connections.
pub(super) fn build_plane(
    lasting: Arc<Lasting>,
    config: &Config,
    previous: Option<&DataPlane>,
) -> Arc<DataPlane> {
    let pools: HashMap<String, Arc<Pool>> = config
        .backends
        .iter()
        .map(|b| {
            let before = previous.and_then(|p| p.pools.get(&b.name)).map(|p| &**p);
            (b.name.clone(), Arc::new(Pool::new(b, before)))
        })
        .collect();
    Arc::new(DataPlane {
        signer: CookieSigner::new(config.cluster.secret.as_bytes()),
        lasting,
        timeouts: config.timeouts.clone(),
        limits: config.limits.clone(),
        pools,
    })
}

/// A frontend's routes and TLS acceptor (certificates read now).
fn build_frontend(f: &FrontendSection, plane: &DataPlane) -> Result<Frontend, StartError> {
    let h2_only = f.proto == FrontendProto::H2;
    let tls = match &f.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(
            tls::server_config(t, h2_only).map_err(|source| StartError::Tls {
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
        h2_only,
        tls,
    })
}

/// Health checks of every server, and the pruning of idle server connections.
fn health_tasks(plane: &Arc<DataPlane>) -> Vec<JoinHandle<()>> {
    let mut tasks: Vec<JoinHandle<()>> = plane
        .pools
        .values()
        .flat_map(|pool| health::spawn(pool, &plane.lasting.metrics))
        .collect();
    tasks.push(prune_task(plane));
    tasks
}

/// Closes idle server connections on time (see `IdleList::prune`): every server of
/// every backend, a few times per `pool_idle`.
fn prune_task(plane: &Arc<DataPlane>) -> JoinHandle<()> {
    let plane = plane.clone();
    tokio::spawn(async move {
        let max_idle = plane.timeouts.pool_idle;
        let every = (max_idle / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for server in plane.pools.values().flat_map(|p| p.servers.iter()) {
                server.idle.prune(max_idle);
            }
        }
    })
}

/// hyper's client for the streamed engine: pooled keep-alive connections to servers.
pub(super) fn client(t: &TimeoutsSection) -> Client<HttpConnector, Body> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(t.connect));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(t.pool_idle)
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// The state a node's data plane keeps across reloads, new.
pub(crate) fn lasting(table: TableAccess, metrics: Arc<HttpMetrics>, config: &Config) -> Lasting {
    Lasting {
        table,
        metrics,
        client: client(&config.timeouts),
        overrides: Recent::default(),
        misses: Recent::default(),
        per_client: Arc::default(),
        idle: Arc::default(),
    }
}

/// Builds the data plane from `config` around the cluster access `table`, binds every
/// frontend and starts the health checks.
pub async fn start(
    config: &Config,
    table: TableAccess,
    metrics: Arc<HttpMetrics>,
) -> Result<Running, StartError> {
    let lasting = Arc::new(lasting(table, metrics, config));
    let plane = build_plane(lasting, config, None);
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
    pub fn reload(&mut self, config: &Config) -> Result<(), StartError> {
        let listens: Vec<(String, SocketAddr)> = config
            .frontends
            .iter()
            .map(|f| (f.name.clone(), f.listen))
            .collect();
        if listens != self.listens {
            return Err(StartError::Frontends);
        }
        let plane = build_plane(self.plane.lasting.clone(), config, Some(&self.plane));
        let frontends = config
            .frontends
            .iter()
            .map(|f| build_frontend(f, &plane).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
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
