//! Reading snapshots of format 2 (before the table was bounded): the same layout without
//! the `evicted` counter, each server's `evicted_until` and the table's limits, so a node
//! upgraded in place keeps its table.

use bincode::config;
use serde::Deserialize;

use super::snapshot::{BackendIn, BindingIn, ServerIn, SnapIn};
use crate::model::{AdminState, Millis, NodeId, TableCounters, TableLimits, TableParams};

#[derive(Deserialize)]
struct SnapV2<'a> {
    now: Millis,
    index: u64,
    params: TableParams,
    counters: CountersV2,
    watermarks: Vec<(NodeId, Millis, u64)>,
    #[serde(borrow)]
    backends: Vec<BackendV2<'a>>,
}

#[derive(Deserialize)]
struct CountersV2 {
    bound: u64,
    touched: u64,
    revived: u64,
    conflicts: u64,
    refused: u64,
    expired: u64,
    rebound: u64,
    released: u64,
    forced_releases: u64,
    ended: u64,
}

#[derive(Deserialize)]
struct BackendV2<'a> {
    name: &'a str,
    #[serde(borrow)]
    servers: Vec<ServerV2<'a>>,
    #[serde(borrow)]
    bindings: Vec<BindingIn<'a>>,
    #[serde(borrow)]
    ended: Vec<(&'a [u8], Millis)>,
}

#[derive(Deserialize)]
struct ServerV2<'a> {
    name: &'a str,
    state: AdminState,
    last_expiry: Millis,
    drain_index: u64,
    promised: Vec<(NodeId, Millis)>,
}

/// Decodes a format-2 body (after the version byte) as the current format's input, and
/// how many bytes it read.
pub(super) fn decode(body: &[u8]) -> Result<(SnapIn<'_>, usize), bincode::error::DecodeError> {
    let (v2, read): (SnapV2<'_>, usize) =
        bincode::serde::borrow_decode_from_slice(body, config::standard())?;
    let c = v2.counters;
    let snap = SnapIn {
        now: v2.now,
        index: v2.index,
        params: v2.params,
        counters: TableCounters {
            bound: c.bound,
            touched: c.touched,
            revived: c.revived,
            conflicts: c.conflicts,
            refused: c.refused,
            expired: c.expired,
            rebound: c.rebound,
            released: c.released,
            forced_releases: c.forced_releases,
            ended: c.ended,
            evicted: 0,
        },
        watermarks: v2.watermarks,
        backends: v2.backends.into_iter().map(backend).collect(),
        limits: TableLimits::default(),
    };
    Ok((snap, read))
}

fn backend(b: BackendV2<'_>) -> BackendIn<'_> {
    BackendIn {
        name: b.name,
        servers: b
            .servers
            .into_iter()
            .map(|s| ServerIn {
                name: s.name,
                state: s.state,
                last_expiry: s.last_expiry,
                drain_index: s.drain_index,
                promised: s.promised,
                evicted_until: 0,
            })
            .collect(),
        bindings: b.bindings,
        ended: b.ended,
    }
}
