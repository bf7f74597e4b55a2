//! What the stats page shows over time: each drain's bindings and open streams since it
//! began and its release, the cluster's recent events, and the node's own figures.

use serde::{Deserialize, Serialize};

/// One drain seen by the node answering, from its start to its release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainSeries {
    /// Backend name.
    pub backend: String,
    /// Server name.
    pub server: String,
    /// When this node first saw the drain (ms since epoch).
    pub began: u64,
    /// One sample a second (thinned to at most [`DrainSeries::MAX_POINTS`]).
    pub points: Vec<Sample>,
    /// When the drain ended (ms since epoch), if it has.
    pub ended: Option<u64>,
    /// How it ended, if it has.
    pub outcome: Option<DrainOutcome>,
}

impl DrainSeries {
    /// Most samples kept; older ones are thinned out two to one.
    pub const MAX_POINTS: usize = 1800;
}

/// A sample of a draining server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// When (ms since epoch).
    pub at: u64,
    /// Live bindings (the replicated count).
    pub bindings: u64,
    /// Requests, streams and tunnels open to the server from this node.
    pub open: u64,
}

/// How a drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainOutcome {
    /// Released by the rule: safe to shut down.
    Released,
    /// Released by its deadline while something still held it.
    Forced,
    /// Set back to ready.
    Cancelled,
}

/// Something that happened in the cluster, as this node saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When (ms since epoch).
    pub at: u64,
    /// What.
    pub kind: EventKind,
    /// In words.
    pub text: String,
}

/// The kinds of [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A server began draining.
    Drain,
    /// A drain was released by the rule.
    Release,
    /// A drain was released by its deadline.
    ForcedRelease,
    /// A server was set ready or maint by an operator.
    State,
    /// The leader changed.
    Leader,
    /// A member was added.
    MemberAdded,
    /// A member was removed.
    MemberRemoved,
}

/// The answering node's own figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFacts {
    /// Resident memory of the process (bytes).
    pub rss_bytes: u64,
    /// Bindings in the table.
    pub table_bindings: u64,
    /// Size of the latest snapshot file (bytes; 0: none).
    pub snapshot_bytes: u64,
    /// Age of the latest snapshot file (ms; 0: none).
    pub snapshot_age_ms: u64,
    /// The leader's commit index as last announced to this node.
    pub commit_index: u64,
}
