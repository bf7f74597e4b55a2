//! `GET /metrics` in Prometheus text format (prometheus-client). Values are read from the
//! node at scrape time, so the replicated ones are identical on every node once applied.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use holdfast_table::model::TableCounters;
use http::{Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::http::{Body, text};
use crate::api::AdminState;
use crate::cluster::Node;
use crate::http::HttpMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    backend: String,
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    backend: String,
    server: String,
    state: String,
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge<i64, AtomicI64> = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter<u64, AtomicU64> = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// Renders the node's metrics, with the data plane's when `http` is given.
pub fn render(node: &Node, http: Option<&HttpMetrics>) -> Response<Body> {
    let mut registry = Registry::default();
    if let Some(http) = http {
        http.register(&mut registry);
    }
    raft_metrics(&mut registry, node);
    replication_metrics(&mut registry, node);
    let counters = server_metrics(&mut registry, node);
    table_counters(&mut registry, &counters);
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &registry) {
        Ok(()) => text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            out,
        ),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            e.to_string(),
        ),
    }
}

/// Readiness and the Raft core's term, leader and indexes.
fn raft_metrics(registry: &mut Registry, node: &Node) {
    let m = node.raft().metrics().borrow().clone();
    let readiness = node.readiness();
    let gauges = [
        (
            "holdfast_node_ready",
            "1 when this node may serve clients and speak for the table (/readyz), else 0",
            i64::from(readiness.ready),
        ),
        (
            "holdfast_node_applied_lag",
            "Log entries this node's applied index is behind the leader's commit",
            readiness.lag as i64,
        ),
        (
            "holdfast_raft_term",
            "Current Raft term",
            m.current_term as i64,
        ),
        (
            "holdfast_raft_leader_id",
            "Node id of the current leader (-1: none)",
            m.current_leader.map(|l| l as i64).unwrap_or(-1),
        ),
        (
            "holdfast_raft_applied_index",
            "Index of the last applied log entry",
            m.last_applied.map(|l| l.index as i64).unwrap_or(0),
        ),
        (
            "holdfast_raft_last_log_index",
            "Index of the last log entry",
            m.last_log_index.map(|l| l as i64).unwrap_or(0),
        ),
    ];
    for (name, help, value) in gauges {
        gauge(registry, name, help, value);
    }
}

/// This node's batches into the log and its queue.
fn replication_metrics(registry: &mut Registry, node: &Node) {
    let stats = node.flush_stats();
    let counters = [
        (
            "holdfast_replication_batches",
            "Batches of binds and touches committed by this node",
            stats.batches.load(Ordering::Relaxed),
        ),
        (
            "holdfast_replication_batch_failures",
            "Batches that failed to commit and were retried",
            stats.failures.load(Ordering::Relaxed),
        ),
        (
            "holdfast_replication_queue_overflow",
            "Binds and touches dropped because the replication queue was full",
            node.queue().stats().overflow.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        counter(registry, name, help, value);
    }
}

/// Per server: open exchanges here, bindings, promises and admin state; returns the
/// table's counters, read under the same lock.
fn server_metrics(registry: &mut Registry, node: &Node) -> TableCounters {
    let open = Family::<ServerLabels, Gauge>::default();
    for ((backend, server), n) in node.open_set().counts() {
        let labels = ServerLabels {
            backend: backend.to_string(),
            server: server.to_string(),
        };
        open.get_or_create(&labels).set(n as i64);
    }
    registry.register(
        "holdfast_server_open",
        "Requests, streams and tunnels open to the server from this node (they hold its release)",
        open,
    );
    let bindings = Family::<ServerLabels, Gauge>::default();
    let promised = Family::<ServerLabels, Gauge>::default();
    let evicted = Family::<ServerLabels, Gauge>::default();
    let states = Family::<StateLabels, Gauge>::default();
    let counters = node.shared().with_table(|t| {
        for s in t.servers() {
            let labels = ServerLabels {
                backend: s.backend.clone(),
                server: s.server.clone(),
            };
            if s.promised_until > 0 {
                promised
                    .get_or_create(&labels)
                    .set((s.promised_until / 1000) as i64);
            }
            if s.evicted_until > 0 {
                evicted
                    .get_or_create(&labels)
                    .set((s.evicted_until / 1000) as i64);
            }
            bindings.get_or_create(&labels).set(s.bindings as i64);
            let current = AdminState::from(s.admin_state);
            for state in AdminState::ALL {
                let l = StateLabels {
                    backend: s.backend.clone(),
                    server: s.server.clone(),
                    state: state.to_string(),
                };
                states.get_or_create(&l).set((current == state) as i64);
            }
        }
        t.counters()
    });
    registry.register(
        "holdfast_table_bindings",
        "Live bindings per server in the replicated stick table",
        bindings,
    );
    registry.register(
        "holdfast_server_promised_until_seconds",
        "The latest time any member promised the server to a client it holds no binding for",
        promised,
    );
    registry.register(
        "holdfast_server_evicted_until_seconds",
        "The latest expiry among the server's bindings evicted from a full table",
        evicted,
    );
    registry.register(
        "holdfast_server_admin_state",
        "Admin state of a server (1 for the state in force)",
        states,
    );
    counters
}

/// The table's cumulative counters (the same on every node).
fn table_counters(registry: &mut Registry, counters: &TableCounters) {
    for (name, help, value) in [
        ("holdfast_table_bound", "Bindings created", counters.bound),
        (
            "holdfast_table_touched",
            "Touches applied",
            counters.touched,
        ),
        (
            "holdfast_table_expired",
            "Bindings expired",
            counters.expired,
        ),
        (
            "holdfast_table_conflicts",
            "Binds that lost a race to an earlier bind",
            counters.conflicts,
        ),
        (
            "holdfast_table_releases",
            "Draining servers released",
            counters.released,
        ),
        (
            "holdfast_table_forced_releases",
            "Draining servers released by deadline",
            counters.forced_releases,
        ),
        (
            "holdfast_table_ended",
            "Sessions the application ended (cookie deleted, session DELETEd): bindings removed at once",
            counters.ended,
        ),
        (
            "holdfast_table_evicted",
            "Bindings evicted because the table held max_bindings (their servers' drains still wait for them)",
            counters.evicted,
        ),
    ] {
        counter(registry, name, help, value);
    }
}
