//! The vocabulary of the stick table: the commands that enter the Raft log, the responses
//! they produce, and the read-only views the rest of holdfast sees. Everything here is plain
//! data (serde), so it travels in log entries, snapshots and peer messages unchanged.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A cluster member's id (the Raft node id).
pub type NodeId = u64;

/// Milliseconds since the Unix epoch. All table time is in this unit.
pub type Millis = u64;

/// Administrative state of a backend server, replicated through the log.
///
/// `Ready` servers get new clients; `Drain` servers keep only clients bound to them;
/// `Maint` servers get no traffic. A draining server turns `Maint` by itself at release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum AdminState {
    /// New clients may be balanced to the server.
    #[default]
    Ready,
    /// Only clients already bound to the server reach it.
    Drain {
        /// State-machine time at which the drain was applied.
        since: Millis,
        /// Release is forced when the state-machine clock reaches this time.
        deadline: Option<Millis>,
    },
    /// No traffic: the server is safe to shut down.
    Maint,
}

impl AdminState {
    /// The state's name as operators write it: `ready`, `drain` or `maint`.
    pub fn name(&self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain { .. } => "drain",
            AdminState::Maint => "maint",
        }
    }
}

/// The admin state an operator asks for; the table fills in `since` from its own clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestedState {
    /// Back to `ready`.
    Ready,
    /// Start draining; `deadline_after` forces release that long after the drain applies.
    Drain {
        /// Milliseconds after the drain is applied at which release is forced.
        deadline_after: Option<Millis>,
    },
    /// Straight to `maint` (an operator act; bindings to it are re-dispatched by the proxy).
    Maint,
}

/// A new client bound to a server by one node's balancer.
///
/// If the key is already bound (another node won the race, or the bind is a retry),
/// the first committed bind wins and this one is applied as a touch of the winner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    /// Backend name, e.g. `app`.
    pub backend: String,
    /// The persistence key: session id, application cookie value or client address.
    pub key: Vec<u8>,
    /// Server name within the backend, e.g. `s1`.
    pub server: String,
    /// The backend's time-to-live for bindings, in milliseconds.
    pub ttl: Millis,
    /// Set when the node re-dispatched a bound client because its server was down or in
    /// maintenance: the server the key was bound to. If the key is still bound there, the
    /// binding moves to `server` (a session break, counted as `rebound`); if it is bound
    /// elsewhere, the first committed move wins as with any bind.
    #[serde(default)]
    pub replaces: Option<String>,
    /// The backend's `maxlife`: a binding this bind creates expires at most this long
    /// after it was created, however often it is touched (HAProxy's cookie `maxlife`).
    #[serde(default)]
    pub maxlife: Option<Millis>,
}

/// A request matched an existing binding: extend its expiry.
///
/// Carries the server the node routed to, so a touch that arrives after the binding
/// expired in the table re-creates it (the client was still being served).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touch {
    /// Backend name.
    pub backend: String,
    /// The persistence key.
    pub key: Vec<u8>,
    /// Server the node routed the request to.
    pub server: String,
    /// The backend's time-to-live for bindings, in milliseconds.
    pub ttl: Millis,
    /// The backend's `maxlife`, for a binding this touch re-creates (see [`Bind`]).
    #[serde(default)]
    pub maxlife: Option<Millis>,
}

/// The application ended a session (its cookie deleted, an MCP session `DELETE`d): the
/// binding goes at once instead of a ttl later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnd {
    /// Backend name.
    pub backend: String,
    /// The persistence key.
    pub key: Vec<u8>,
}

/// A node's promise for a server: something of the node's holds the server until `until`
/// (node clock): an exchange that closed then plus its hold, or [`Promise::OPEN`] while a
/// request, stream or tunnel is still open. The release rule waits for the table clock to
/// pass every member's promise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promise {
    /// Backend name.
    pub backend: String,
    /// Server name.
    pub server: String,
    /// Until when the node holds the server.
    pub until: Millis,
}

impl Promise {
    /// `until` of a server something is still open to: no clock passes it.
    pub const OPEN: Millis = Millis::MAX;
}

/// One node's flushed batch of binds and touches, with its watermark.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeBatch {
    /// The node that served the requests.
    pub node: NodeId,
    /// New bindings, in the order the node made them.
    pub binds: Vec<Bind>,
    /// Coalesced touches (one per key per flush interval).
    pub touches: Vec<Touch>,
    /// Every request this node served up to this time (node clock) is in this batch or an
    /// earlier one.
    pub watermark: Millis,
    /// The log index this node had applied (and made visible to its data plane) when it
    /// took `watermark`: the watermark counts toward a drain only if this is at least the
    /// drain's index.
    pub applied: u64,
    /// Sessions that ended, applied after the binds and touches.
    pub ends: Vec<SessionEnd>,
    /// This node's promises, one per server at most: all of them, replacing the ones it
    /// reported before (`None`: this batch says nothing about them, e.g. an operator's
    /// pin). A node that restarted reports none, clearing what it held before.
    pub promises: Option<Vec<Promise>>,
}

/// A state change the table applies. Time comes from the [`Proposal`] around it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Leader's idle tick: only advances the clock (expiry, deadlines, release).
    Tick,
    /// One node's binds, touches and watermark; shared, so the copies the log hands to
    /// apply and to each follower cost a reference count (encoded as the batch itself).
    Batch(Arc<NodeBatch>),
    /// An operator changes a server's admin state.
    SetServerState {
        /// Backend name.
        backend: String,
        /// Server name.
        server: String,
        /// The state asked for.
        state: RequestedState,
    },
    /// Cluster-wide parameters every replica must agree on.
    SetParams(TableParams),
    /// The table's bounds (a variant of its own, added last, so older log entries still
    /// decode).
    SetLimits(TableLimits),
}

impl From<NodeBatch> for Command {
    fn from(batch: NodeBatch) -> Command {
        Command::Batch(Arc::new(batch))
    }
}

/// Bounds of the table, replicated like [`TableParams`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableLimits {
    /// The most bindings the table holds (0: no bound). When a new binding does not fit,
    /// the binding closest to expiry is evicted and its expiry folded into its server's
    /// `evicted_until`, which holds a drain's release back like the binding would have.
    pub max_bindings: u64,
}

/// Parameters of the table that must be identical on every replica, so they are replicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableParams {
    /// Maximum clock skew between nodes, in milliseconds. Added to every expiry and to the
    /// watermark comparisons of expiry and release.
    pub max_skew: Millis,
    /// A binding past its expiry is removed only once every member's watermark has passed
    /// it (a touch may still be on its way from a node, e.g. during a leader failover), or
    /// once it is this much past its expiry (so a dead member cannot stop all expiry).
    pub expiry_grace: Millis,
}

impl Default for TableParams {
    fn default() -> Self {
        TableParams {
            max_skew: 250,
            expiry_grace: 30_000,
        }
    }
}

/// What goes into one Raft entry: a command stamped with the leader's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Leader's clock when it proposed the entry (ms since epoch). The state machine's
    /// clock is the maximum `now` applied so far.
    pub now: Millis,
    /// The change.
    pub command: Command,
}

/// The outcome of applying one entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Nothing to report (ticks, membership and blank entries).
    #[default]
    Empty,
    /// A batch was applied.
    Batch {
        /// Binds recorded as new bindings.
        bound: u32,
        /// Binds that lost to an earlier committed bind and became touches of the winner.
        conflicts: u32,
        /// Binds refused because their server is in `maint`.
        refused: u32,
    },
    /// The admin state was set; carries the state now in force.
    ServerState(AdminState),
    /// Parameters applied.
    Params,
}

/// A binding as seen from outside the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingInfo {
    /// The persistence key.
    pub key: Vec<u8>,
    /// Server name.
    pub server: String,
    /// State-machine time at which the binding expires.
    pub expires_at: Millis,
}

/// A server as the table knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// Backend name.
    pub backend: String,
    /// Server name.
    pub server: String,
    /// Admin state in force.
    pub admin_state: AdminState,
    /// Live bindings to the server (the replicated count).
    pub bindings: u64,
    /// Latest `expires_at` among this server's bindings that have expired (0 if none).
    pub last_expiry: Millis,
    /// The latest time any member promised the server to a client (0 if none).
    pub promised_until: Millis,
    /// The latest expiry among its bindings evicted from a full table (0 if none): holds
    /// a drain's release back like those bindings would have.
    #[serde(default)]
    pub evicted_until: Millis,
}

/// Cumulative counters of what the table has applied (replicated, identical everywhere).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCounters {
    /// Bindings created by binds.
    pub bound: u64,
    /// Touches applied to live bindings (including binds that lost a race).
    pub touched: u64,
    /// Bindings re-created by a touch that arrived after they expired.
    pub revived: u64,
    /// Binds that lost to an earlier committed bind of the same key.
    pub conflicts: u64,
    /// Binds and touches refused because the server is in `maint`.
    pub refused: u64,
    /// Bindings removed by expiry.
    pub expired: u64,
    /// Bindings moved to another server because theirs was down or in maintenance.
    #[serde(default)]
    pub rebound: u64,
    /// Draining servers released by the release rule.
    pub released: u64,
    /// Draining servers released by their deadline.
    pub forced_releases: u64,
    /// Sessions the application ended (logout, session deleted): bindings removed at once.
    pub ended: u64,
    /// Bindings evicted because the table was full (`max_bindings`).
    #[serde(default)]
    pub evicted: u64,
}
