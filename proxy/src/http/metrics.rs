//! The data plane's Prometheus metrics: requests by backend/server/status, latency,
//! session breaks, server health and error counters. Updated on the request path with
//! atomics; registered into the admin listener's registry at scrape time.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use arc_swap::ArcSwap;

use super::traffic::{Counters, Traffic};

/// Labels of `holdfast_requests_total`. Shared names (`Arc<str>`), so counting a request
/// allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Backend name (`-` when no backend was chosen).
    pub backend: Arc<str>,
    /// Server name (`-` when no server answered).
    pub server: Arc<str>,
    /// HTTP status sent to the client.
    pub code: u16,
}

/// One server's meters, found by name once and kept with the server: its stats-page
/// counters and its `holdfast_requests_total` counter for each status it answered.
#[derive(Debug)]
pub struct ServerMeters {
    backend: Arc<str>,
    server: Arc<str>,
    traffic: Arc<Counters>,
    /// Grown by copy when a new status shows up, which stops happening early.
    by_code: ArcSwap<Vec<(u16, Counter)>>,
}

impl ServerMeters {
    /// The requests counter for `code`, from `family` the first time.
    fn requests(&self, family: &Family<RequestLabels, Counter>, code: u16) -> Counter {
        if let Some((_, c)) = self.by_code.load().iter().find(|(k, _)| *k == code) {
            return c.clone();
        }
        let labels = RequestLabels {
            backend: self.backend.clone(),
            server: self.server.clone(),
            code,
        };
        let counter = family.get_or_create(&labels).clone();
        self.by_code.rcu(|known| {
            let mut known = Vec::clone(known);
            if !known.iter().any(|(k, _)| *k == code) {
                known.push((code, counter.clone()));
            }
            known
        });
        counter
    }
}

/// Labels naming one backend.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// Backend name.
    pub backend: String,
}

/// Labels naming one server.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    /// Backend name.
    pub backend: String,
    /// Server name.
    pub server: String,
}

/// Labels of `holdfast_http_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// What went wrong (see [`ErrorKind`]).
    pub kind: &'static str,
}

/// The kinds of data-plane errors, each with its own counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed or smuggling-prone request (400).
    BadRequest,
    /// Request head too large (431).
    HeaderTooLarge,
    /// Client too slow to send its request head (connection closed).
    HeaderTimeout,
    /// Kept-alive connection idle too long (closed; not an error to the client).
    IdleTimeout,
    /// An idle connection closed to give its slot to a new client (every slot taken).
    IdleReclaimed,
    /// A client stalled a body in progress (sent or read none of it) longer than
    /// `timeouts.client`: cut.
    ClientTimeout,
    /// TLS handshake failed or timed out.
    TlsHandshake,
    /// A client address over `limits.max_connections_per_client`: connection closed.
    ClientLimit,
    /// No usable server in the backend (503).
    NoServer,
    /// No route and no default backend (503).
    NoRoute,
    /// Connecting to the server failed (502/503).
    Connect,
    /// The server did not answer in time (504).
    ServerTimeout,
    /// The server broke the exchange (502).
    Backend,
    /// A connect failure retried on another server.
    Redispatch,
    /// A bound client's server is gone and the backend rejects instead of rebalancing.
    SessionLost,
}

impl ErrorKind {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::HeaderTooLarge => "header_too_large",
            ErrorKind::HeaderTimeout => "header_timeout",
            ErrorKind::IdleTimeout => "idle_timeout",
            ErrorKind::IdleReclaimed => "idle_reclaimed",
            ErrorKind::ClientTimeout => "client_timeout",
            ErrorKind::TlsHandshake => "tls_handshake",
            ErrorKind::ClientLimit => "client_limit",
            ErrorKind::NoServer => "no_server",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::Connect => "connect",
            ErrorKind::ServerTimeout => "server_timeout",
            ErrorKind::Backend => "backend",
            ErrorKind::Redispatch => "redispatch",
            ErrorKind::SessionLost => "session_lost",
        }
    }
}

/// Every data-plane metric of one node. Cheap to share (`Arc`); families are
/// internally synchronized per label set.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
    session_breaks: Family<BackendLabels, Counter>,
    health: Family<ServerLabels, Gauge>,
    errors: Family<ErrorLabels, Counter>,
    connections: Gauge,
    traffic: Arc<Traffic>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: Family::default(),
            duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            session_breaks: Family::default(),
            health: Family::default(),
            errors: Family::default(),
            connections: Gauge::default(),
            traffic: Arc::default(),
        }
    }
}

impl HttpMetrics {
    /// Counts one answered request, its duration and its bytes (in, out), finding the
    /// server's counters by name (for answers no server gave, and the rare path).
    pub fn request(
        &self,
        backend: &Arc<str>,
        server: &Arc<str>,
        code: u16,
        seconds: f64,
        bytes: (u64, u64),
    ) {
        if &**server != "-" {
            self.traffic
                .counters(backend, server)
                .record(code, seconds * 1000.0, bytes);
        }
        self.requests
            .get_or_create(&RequestLabels {
                backend: backend.clone(),
                server: server.clone(),
                code,
            })
            .inc();
        self.duration.observe(seconds);
    }

    /// Server `server` of `backend`'s meters, to keep with the server (see
    /// [`HttpMetrics::request_to`]).
    pub fn meters(&self, backend: &Arc<str>, server: &Arc<str>) -> ServerMeters {
        ServerMeters {
            backend: backend.clone(),
            server: server.clone(),
            traffic: self.traffic.counters(backend, server),
            by_code: ArcSwap::default(),
        }
    }

    /// [`HttpMetrics::request`] for an answer from the server whose `meters` these are:
    /// no lookup by name once the server has answered with `code` before.
    pub fn request_to(&self, meters: &ServerMeters, code: u16, seconds: f64, bytes: (u64, u64)) {
        meters.traffic.record(code, seconds * 1000.0, bytes);
        meters.requests(&self.requests, code).inc();
        self.duration.observe(seconds);
    }

    /// Counts a session break in `backend`: a bound client moved to another server.
    pub fn session_break(&self, backend: &str) {
        self.session_breaks
            .get_or_create(&BackendLabels {
                backend: backend.to_string(),
            })
            .inc();
    }

    /// Session breaks counted so far in `backend`.
    pub fn session_breaks(&self, backend: &str) -> u64 {
        self.session_breaks
            .get_or_create(&BackendLabels {
                backend: backend.to_string(),
            })
            .get()
    }

    /// Publishes a server's health (true: up).
    pub fn set_health(&self, backend: &str, server: &str, up: bool) {
        self.health
            .get_or_create(&ServerLabels {
                backend: backend.to_string(),
                server: server.to_string(),
            })
            .set(up as i64);
    }

    /// A server's health as last published: `Some(true)` up, `Some(false)` down, `None`
    /// when nothing was published for it.
    pub fn health(&self, backend: &str, server: &str) -> Option<bool> {
        let labels = ServerLabels {
            backend: backend.to_string(),
            server: server.to_string(),
        };
        self.health.get(&labels).map(|g| g.get() == 1)
    }

    /// Counts one error.
    pub fn error(&self, kind: ErrorKind) {
        self.errors
            .get_or_create(&ErrorLabels { kind: kind.name() })
            .inc();
    }

    /// Errors of `kind` counted so far.
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors
            .get_or_create(&ErrorLabels { kind: kind.name() })
            .get()
    }

    /// Traffic per server so far (for the stats page).
    pub fn traffic(&self) -> Vec<crate::api::traffic::ServerTraffic> {
        self.traffic.snapshot()
    }

    /// A client connection opened (+1) or closed (-1).
    pub fn connection(&self, delta: i64) {
        self.connections.inc_by(delta);
    }

    /// Registers every metric (as shared handles) into `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "holdfast_requests",
            "Requests answered, by backend, server and status",
            self.requests.clone(),
        );
        registry.register(
            "holdfast_request_duration_seconds",
            "Time from request head to response head",
            self.duration.clone(),
        );
        registry.register(
            "holdfast_session_breaks",
            "Bound clients re-dispatched to another server (server down or in maint)",
            self.session_breaks.clone(),
        );
        registry.register(
            "holdfast_server_health",
            "Health of a server as this node's checks see it (1 up, 0 down)",
            self.health.clone(),
        );
        registry.register(
            "holdfast_http_errors",
            "Data-plane errors by kind",
            self.errors.clone(),
        );
        registry.register(
            "holdfast_client_connections",
            "Open client connections",
            self.connections.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text exposition's lines, sorted (a family's series come in hash order).
    fn exposition(m: &HttpMetrics) -> Vec<String> {
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encodes");
        let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }

    #[test]
    fn a_servers_kept_meters_count_into_the_same_series_as_a_lookup_by_name() {
        let (by_name, kept) = (HttpMetrics::default(), HttpMetrics::default());
        let (be, s1): (Arc<str>, Arc<str>) = (Arc::from("app"), Arc::from("s1"));
        let meters = kept.meters(&be, &s1);
        for (code, n) in [(200, 3), (404, 1), (200, 2), (502, 1)] {
            for _ in 0..n {
                by_name.request(&be, &s1, code, 0.002, (10, 20));
                kept.request_to(&meters, code, 0.002, (10, 20));
            }
        }
        assert_eq!(exposition(&by_name), exposition(&kept));
        let five = r#"holdfast_requests_total{backend="app",server="s1",code="200"} 5"#;
        assert!(exposition(&kept).iter().any(|l| l == five));
        let (a, b) = (by_name.traffic(), kept.traffic());
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].classes, a[0].bytes_in), (b[0].classes, b[0].bytes_in));
        assert_eq!(b[0].classes, [0, 5, 0, 1, 1]);
    }
}
