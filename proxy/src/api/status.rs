//! What the admin API answers: cluster members and leader, readiness, backends and their
//! servers, the stick table, and the stats page's poll.

use serde::{Deserialize, Serialize};

use super::history::{DrainSeries, Event, NodeFacts};
use super::traffic::ServerTraffic;
use super::{AdminState, Health, Role};
pub use holdfast_table::state::Holder;

/// `GET /v1/cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

impl ClusterStatus {
    /// The member with id `id`, if it is one.
    pub fn member(&self, id: u64) -> Option<&MemberStatus> {
        self.members.iter().find(|m| m.id == id)
    }
}

/// One member in [`ClusterStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Node id.
    pub id: u64,
    /// Peer address.
    pub address: String,
    /// Leader, follower or learner.
    pub role: Role,
    /// Last watermark the member reported (ms since epoch; 0: none yet).
    pub watermark: u64,
    /// The member's own readiness, asked over the peer protocol (`None`: it did not
    /// answer).
    pub readiness: Option<Readiness>,
    /// On the leader: how many log entries the member is behind the leader's log.
    pub replication_lag: Option<u64>,
}

/// `GET /readyz` (and a member's line in `ctl cluster`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// Whether the node serves clients and speaks for the table.
    pub ready: bool,
    /// Why not, when not ready.
    pub reason: Option<String>,
    /// The last log index this node applied.
    pub applied: u64,
    /// The leader's commit index as last announced to this node (the leader's own last
    /// log index on the leader).
    pub leader_commit: u64,
    /// How far behind `leader_commit` this node's applied index is.
    pub lag: u64,
}

/// `GET /healthz`: the process answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alive {
    /// Always true when anyone answers.
    pub alive: bool,
}

/// `GET /v1/backends`: every backend with its servers, in configuration order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Backends(pub Vec<BackendStatus>);

impl Backends {
    /// `backend/server`, if this answer lists it.
    pub fn server(&self, backend: &str, server: &str) -> Option<&ServerView> {
        self.0
            .iter()
            .find(|b| b.name == backend)?
            .servers
            .iter()
            .find(|s| s.name == server)
    }

    /// Every server with the name of its backend.
    pub fn servers(&self) -> impl Iterator<Item = (&str, &ServerView)> {
        self.0
            .iter()
            .flat_map(|b| b.servers.iter().map(move |s| (b.name.as_str(), s)))
    }
}

/// One backend in [`Backends`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendStatus {
    /// Backend name.
    pub name: String,
    /// Its servers.
    pub servers: Vec<ServerView>,
}

/// One server in [`BackendStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    /// Server name.
    pub name: String,
    /// Ready, drain or maint.
    pub admin_state: AdminState,
    /// Forced-release time of a drain (ms since epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_deadline: Option<u64>,
    /// This node's own health check of the server.
    pub health: Health,
    /// Live bindings (the replicated count).
    pub bindings: u64,
    /// Members whose watermark, unapplied drain or promise still holds a drain's release
    /// back.
    pub release_blockers: Vec<u64>,
    /// Requests, streams and tunnels open to the server from the node answering.
    pub open_here: u64,
    /// The latest time any member promised the server to a client it holds no binding
    /// for (open exchanges; ms since epoch, 0: none).
    pub promised_until: u64,
    /// A draining server: when it is released if no client comes back (ms since epoch,
    /// the first apply after every member's watermark passes the table's projection);
    /// `None` when it cannot be projected (open streams, a silent member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected_release: Option<u64>,
    /// A draining server: what its release waits for last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_held_by: Option<Holder>,
}

/// `GET /v1/table/{backend}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

impl TableStatus {
    /// The binding of `key`, if listed.
    pub fn binding(&self, key: &str) -> Option<&TableEntry> {
        self.bindings.iter().find(|b| b.key == key)
    }
}

/// One binding in [`TableStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// `GET /stats.json`: what the stats page polls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// As `GET /v1/cluster`.
    pub cluster: ClusterStatus,
    /// As `GET /v1/backends`.
    pub backends: Backends,
    /// Drains this node saw, running and recently ended, sampled once a second.
    #[serde(default)]
    pub drains: Vec<DrainSeries>,
    /// Recent cluster events as this node saw them, oldest first.
    #[serde(default)]
    pub events: Vec<Event>,
    /// This node's own figures.
    #[serde(default)]
    pub node: NodeFacts,
    /// Traffic per server through this node since it started.
    #[serde(default)]
    pub traffic: Vec<ServerTraffic>,
}
