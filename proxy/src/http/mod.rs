//! The HTTP/HTTPS data plane: frontends (listeners with routes, TLS by SNI), backends
//! (balancing, persistence through the node's read view and bind queue, health checks),
//! and the forwarding of requests to servers. [`start`] brings it all up for one node.
//!
//! Every decision about a request (`exchange`, `persist`, `headers`, `framing`,
//! `refusal`) is made once, for every engine that moves its bytes: the HTTP/1.1 fast
//! path (`h1/`), holdfast's HTTP/2 engine (`h2/`, `multiplexed`), and the streamed
//! engine (`streamed`, on hyper for upgrades and streamed HTTP/1 request bodies).

pub mod body;
mod conn;
pub mod cookie;
mod deadline;
mod exchange;
pub mod fields;
pub mod framing;
mod h1;
mod h2;
pub mod headers;
mod health;
mod idle;
mod listener;
pub mod metrics;
mod multiplexed;
mod per_client;
pub mod persist;
pub mod pool;
pub mod recent;
pub mod refusal;
pub mod route;
mod running;
mod session;
mod streamed;
pub mod table;
pub mod target;
pub mod tls;
mod traffic;
mod tunnel;

use std::collections::HashMap;
use std::sync::Arc;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

pub use h1::MAX_FIELDS as MAX_HEADER_FIELDS;
pub use metrics::HttpMetrics;
pub use running::{Running, StartError, start};

use crate::config::{LimitsSection, TimeoutsSection};
use body::Body;
use cookie::CookieSigner;
use pool::Pool;
use recent::Recent;
use route::Router;
use table::TableAccess;

/// One frontend at run time.
pub struct Frontend {
    /// Its name.
    pub name: String,
    /// Its routes.
    pub router: Router,
    /// Redirect every request to HTTPS.
    pub redirect_https: bool,
    /// Speak HTTP/2 only (`proto = "h2"`).
    pub h2_only: bool,
    /// TLS acceptor when it is an HTTPS listener.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// What the data plane keeps as long as the node runs, across reloads.
pub struct Lasting {
    /// The cluster as the data plane sees it (read view, bind queue, leader lookups).
    pub table: TableAccess,
    /// Metrics.
    pub metrics: Arc<HttpMetrics>,
    /// hyper's pooled keep-alive connections to servers (the streamed engine's).
    pub client: Client<HttpConnector, Body>,
    /// Bindings this node made (new learn/source clients, re-dispatches) until they are
    /// applied here: without a leader or quorum that may take long, and "bindings keep
    /// working locally" (DESIGN.md), a reload included.
    pub overrides: Recent<Arc<str>>,
    /// Learn-mode session cookies looked up in vain a moment ago.
    pub misses: Recent<()>,
    /// Open connections per client address (`limits.max_connections_per_client`).
    pub per_client: Arc<per_client::PerClient>,
    /// Open client connections, the idle ones closed first when every slot is taken.
    pub idle: Arc<idle::IdleSet>,
}

/// What every request handler of one node shares: the lasting state and one
/// configuration's backends, secrets, timeouts and limits (rebuilt by a reload).
pub struct DataPlane {
    /// State kept across reloads.
    pub lasting: Arc<Lasting>,
    /// Backends by name.
    pub pools: HashMap<String, Arc<Pool>>,
    /// Insert-cookie MAC.
    pub signer: CookieSigner,
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
