//! The stats page at `/` of the admin listener, in the spirit of HAProxy's and the NGINX
//! Plus dashboard: each drain's bindings over time with its projected release and what
//! holds it, per server state, health, traffic rates, response times and bytes, the
//! cluster's members and replication, recent events, and drain/ready/maint actions (with
//! the admin token). Token-free to read, like `/metrics`; it polls `/stats.json` once a
//! second.

use http::{Response, StatusCode};

use super::Admin;
use super::http::{Body, json, text};
use crate::api::Stats;
use crate::api::history::NodeFacts;

/// `GET /stats.json`.
pub async fn stats_json(admin: &Admin) -> Response<Body> {
    let (drains, events) = admin.history.snapshot();
    json(
        StatusCode::OK,
        &Stats {
            cluster: admin.node.cluster_status().await,
            backends: admin.node.backends_status(|b, s| admin.health(b, s)),
            drains,
            events,
            node: node_facts(admin),
            traffic: admin.http.as_ref().map(|h| h.traffic()).unwrap_or_default(),
        },
    )
}

/// The node's memory, table and snapshot figures.
fn node_facts(admin: &Admin) -> NodeFacts {
    let node = &admin.node;
    let snapshot = std::fs::metadata(node.config().node.data_dir.join("snapshot.bin")).ok();
    let age = snapshot
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.elapsed().ok())
        .map_or(0, |d| d.as_millis() as u64);
    NodeFacts {
        rss_bytes: resident_bytes(),
        table_bindings: node.shared().with_table(|t| t.len()) as u64,
        snapshot_bytes: snapshot.map_or(0, |m| m.len()),
        snapshot_age_ms: age,
        commit_index: node.readiness().leader_commit,
    }
}

/// The process's resident memory (`VmRSS` of `/proc/self/status`), 0 if unknown.
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `GET /`: the page itself (static; the data comes from `/stats.json`).
pub fn page() -> Response<Body> {
    text(StatusCode::OK, "text/html; charset=utf-8", PAGE.to_string())
}

/// The page: static HTML and script, no external assets (it works offline).
const PAGE: &str = include_str!("stats.html");
