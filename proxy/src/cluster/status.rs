//! Read-only views of a node for operators: cluster members and leader, backends and
//! their servers, the stick table. Serialized as the admin API's JSON.

use serde::Serialize;

/// `GET /v1/cluster`.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    /// The node answering.
    pub id: u64,
    /// Current leader, if any.
    pub leader: Option<u64>,
    /// Current Raft term.
    pub term: u64,
    /// Index of the last applied log entry.
    pub applied_index: u64,
    /// Index of the last log entry included in the latest snapshot.
    pub snapshot_index: u64,
    /// Log entries up to this index have been purged (compacted into a snapshot).
    pub purged_index: u64,
    /// The state machine's clock (ms since epoch).
    pub table_now: u64,
    /// Members, voters and learners.
    pub members: Vec<MemberStatus>,
}

/// One member in [`ClusterStatus`].
#[derive(Clone, Debug, Serialize)]
pub struct MemberStatus {
    /// Node id.
    pub id: u64,
    /// Peer address.
    pub address: String,
    /// `leader`, `follower` or `learner`.
    pub role: &'static str,
    /// Last watermark the member reported (ms since epoch; 0: none yet).
    pub watermark: u64,
}

/// One backend in `GET /v1/backends`.
#[derive(Clone, Debug, Serialize)]
pub struct BackendStatus {
    /// Backend name.
    pub name: String,
    /// Its servers.
    pub servers: Vec<ServerView>,
}

/// One server in [`BackendStatus`].
#[derive(Clone, Debug, Serialize)]
pub struct ServerView {
    /// Server name.
    pub name: String,
    /// `ready`, `drain` or `maint`.
    pub admin_state: &'static str,
    /// Forced-release time of a drain (ms since epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_deadline: Option<u64>,
    /// `up`, `down`, or `unknown` when not checked.
    pub health: &'static str,
    /// Live bindings (the replicated count).
    pub bindings: u64,
    /// Members whose watermark still holds a drain's release back.
    pub release_blockers: Vec<u64>,
}

/// `GET /v1/table/{backend}`.
#[derive(Clone, Debug, Serialize)]
pub struct TableStatus {
    /// Backend name.
    pub backend: String,
    /// The state machine's clock.
    pub now: u64,
    /// Live bindings in the backend.
    pub total: usize,
    /// Up to `limit` bindings, by key.
    pub bindings: Vec<TableEntry>,
}

/// One binding in [`TableStatus`].
#[derive(Clone, Debug, Serialize)]
pub struct TableEntry {
    /// The key (lossy UTF-8).
    pub key: String,
    /// Server name.
    pub server: String,
    /// Expiry (ms since epoch).
    pub expires_at: u64,
    /// Milliseconds left at the state machine's clock.
    pub expires_in_ms: u64,
}
