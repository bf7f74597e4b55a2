//! Node configuration: the TOML file an operator writes, as typed values with defaults.
//! Parsing and the checks that name a key and a line live in [`load`].

mod duration;
mod load;
mod proxy;
mod proxy_check;
mod spans;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use duration::parse_duration;
pub use load::{ConfigError, Problem, load, parse};
pub use proxy::{
    Balance, CertSection, CheckSection, CheckType, Cidr, FrontendProto, FrontendSection,
    LimitsSection, OnLost, Persistence, RouteSection, SameSite, StatusRange, TimeoutsSection,
    TlsSection,
};
pub use proxy_check::{read_chain, read_key};

/// A whole node configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node.
    pub node: NodeSection,
    /// The cluster it belongs to.
    #[serde(default)]
    pub cluster: ClusterSection,
    /// The admin API listener.
    #[serde(default)]
    pub admin: AdminSection,
    /// Backends and their servers.
    #[serde(default, rename = "backend")]
    pub backends: Vec<BackendSection>,
    /// HTTP(S) listeners and their routes.
    #[serde(default, rename = "frontend")]
    pub frontends: Vec<FrontendSection>,
    /// Data-plane sizes and counts.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Data-plane timeouts.
    #[serde(default)]
    pub timeouts: TimeoutsSection,
}

/// `[node]`: who this node is and where it keeps its data.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Raft node id, unique in the cluster, never reused.
    pub id: u64,
    /// Directory for the Raft log and snapshots.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("holdfast-data")
}

/// `[cluster]`: peers, authentication and replication timing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// Cluster name; peers of another cluster are refused.
    #[serde(default = "default_cluster_name")]
    pub name: String,
    /// Pre-shared cluster secret (peer authentication when TLS is off, cookie MAC key).
    #[serde(default = "default_secret")]
    pub secret: String,
    /// Mutual TLS between peers, replacing the secret handshake.
    #[serde(default)]
    pub tls: Option<PeerTlsSection>,
    /// Address the peer protocol listens on.
    #[serde(default = "default_peer_listen")]
    pub peer_listen: SocketAddr,
    /// Initial members (including this node). Empty: a cluster of one.
    #[serde(default)]
    pub members: Vec<MemberSection>,
    /// Start empty and wait to be added to an existing cluster (`ctl members add`)
    /// instead of forming one.
    #[serde(default)]
    pub join: bool,
    /// Largest clock difference tolerated between nodes.
    #[serde(default = "default_max_skew", with = "duration::serde_ms")]
    pub max_skew: Duration,
    /// How long a member that stopped reporting (down, partitioned) may hold back the
    /// expiry of bindings past their TTL; it holds a drain's release back regardless.
    #[serde(default = "default_expiry_grace", with = "duration::serde_ms")]
    pub expiry_grace: Duration,
    /// How often the leader proposes an idle tick so expiry advances.
    #[serde(default = "default_tick", with = "duration::serde_ms")]
    pub tick: Duration,
    /// How often each node flushes coalesced touches and its watermark.
    #[serde(default = "default_flush", with = "duration::serde_ms")]
    pub flush: Duration,
    /// Bound of the node's queue of binds and touches waiting to be flushed.
    #[serde(default = "default_queue")]
    pub queue_limit: usize,
    /// Take a snapshot once at least this many binds, touches and commands were applied
    /// since the last one, and at least as many as it held bindings (so snapshot work per
    /// applied operation stays constant as the table grows).
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
    /// How long an admin write waits for commit before failing with "no quorum".
    #[serde(default = "default_write_timeout", with = "duration::serde_ms")]
    pub write_timeout: Duration,
    /// The most bindings the table holds; the leader's value is replicated. When full,
    /// the binding closest to expiry is evicted (its server's release still waits for
    /// it). Default: what a quarter of this machine's memory holds (see
    /// [`default_max_bindings`]).
    #[serde(default = "default_max_bindings")]
    pub max_bindings: u64,
}

/// Resident bytes a binding is budgeted at when sizing `max_bindings` (measured: about 72
/// at ten million, `bench/README.md`; the rest is headroom for snapshots and the log).
pub const BUDGET_PER_BINDING: u64 = 128;

/// The default `max_bindings`: a quarter of the machine's memory (`MemTotal` in
/// `/proc/meminfo`; 4 GiB if unknown) at [`BUDGET_PER_BINDING`] bytes each.
pub fn default_max_bindings() -> u64 {
    memory_total().unwrap_or(4 << 30) / 4 / BUDGET_PER_BINDING
}

/// The machine's memory in bytes (`MemTotal`), if known.
pub fn memory_total() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// One initial cluster member.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MemberSection {
    /// Its node id.
    pub id: u64,
    /// Its peer address.
    pub addr: String,
}

/// `[cluster.tls]`: PEM files for mutual TLS between peers.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerTlsSection {
    /// CA certificate that signs every node's certificate.
    pub ca: PathBuf,
    /// This node's certificate chain.
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
    /// Name the peer certificates are issued for.
    #[serde(default = "default_peer_server_name")]
    pub server_name: String,
}

/// `[admin]`: the operator API.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Listen address (loopback by default).
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// Bearer token required on every call but `/metrics` and the stats page.
    #[serde(default)]
    pub token: Option<String>,
}

/// `[[backend]]`: a pool of servers sharing one persistence scheme.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSection {
    /// Backend name.
    pub name: String,
    /// Binding time-to-live after the last request.
    #[serde(default = "default_ttl", with = "duration::serde_ms")]
    pub ttl: Duration,
    /// Servers of the backend.
    #[serde(default, rename = "server")]
    pub servers: Vec<ServerSection>,
    /// Persistence mode: `insert` (default), `learn`, `source` or `none`.
    #[serde(default)]
    pub persistence: Persistence,
    /// Cookie name: holdfast's own (insert, default `HFSID`) or the application's session
    /// cookie (learn, default `PHPSESSID`).
    #[serde(default)]
    pub cookie: Option<String>,
    /// Learn mode: the session travels in this header instead of a cookie (e.g.
    /// `Mcp-Session-Id` for MCP servers over Streamable HTTP): learned from the response,
    /// matched on later requests.
    #[serde(default)]
    pub header: Option<String>,
    /// The longest a session may pin a server, from its first request, however active
    /// (HAProxy's cookie `maxlife`); none by default.
    #[serde(default, with = "duration::serde_opt_ms")]
    pub maxlife: Option<Duration>,
    /// A bound client whose server is gone: `rebalance` (default) or `reject`.
    #[serde(default)]
    pub on_lost: OnLost,
    /// The status answered with `on_lost = "reject"` (default 404).
    #[serde(default = "default_lost_status")]
    pub lost_status: u16,
    /// `SameSite` of the insert cookie: `lax` (default), `strict` or `none`.
    #[serde(default)]
    pub same_site: SameSite,
    /// `roundrobin` (smooth weighted, default) or `leastconn`.
    #[serde(default)]
    pub balance: Balance,
    /// Learn mode: how long a request with an unknown session cookie may wait for the
    /// leader's answer before it is balanced.
    #[serde(default = "proxy::default_learn_wait", with = "duration::serde_ms")]
    pub learn_wait: Duration,
    /// Peers whose `X-Forwarded-For` is believed (CIDRs), for `source` mode and the
    /// forwarded headers.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    /// Active health check; absent: servers are always considered up.
    #[serde(default)]
    pub check: Option<CheckSection>,
}

fn default_lost_status() -> u16 {
    404
}

impl BackendSection {
    /// The persistence cookie name in force (configured, or the mode's default).
    pub fn cookie_name(&self) -> &str {
        match (&self.cookie, self.persistence) {
            (Some(c), _) => c,
            (None, Persistence::Learn) => "PHPSESSID",
            (None, _) => "HFSID",
        }
    }
}

/// `[[backend.server]]`: one server.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Server name, unique in its backend.
    pub name: String,
    /// Address (`host:port`).
    pub addr: String,
    /// Share of new clients relative to the other servers (0: none, default 1).
    #[serde(default = "proxy::default_weight")]
    pub weight: u32,
    /// Insert mode: a HAProxy cookie value for this server (`server … cookie SRV1`),
    /// honoured when a client still carries it after a switch from HAProxy; the answer
    /// replaces it with holdfast's signed cookie. Ignored by the other modes.
    #[serde(default)]
    pub cookie: Option<String>,
}

fn default_cluster_name() -> String {
    "holdfast".into()
}
fn default_secret() -> String {
    "holdfast-insecure-default-secret".into()
}
fn default_peer_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8420))
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8410))
}
fn default_peer_server_name() -> String {
    "holdfast-peer".into()
}
fn default_max_skew() -> Duration {
    Duration::from_millis(250)
}
fn default_expiry_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_tick() -> Duration {
    Duration::from_millis(500)
}
fn default_flush() -> Duration {
    Duration::from_millis(250)
}
fn default_queue() -> usize {
    100_000
}
fn default_snapshot_every() -> u64 {
    5_000
}
fn default_write_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_ttl() -> Duration {
    Duration::from_secs(30 * 60)
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            name: default_cluster_name(),
            secret: default_secret(),
            tls: None,
            peer_listen: default_peer_listen(),
            members: Vec::new(),
            join: false,
            max_skew: default_max_skew(),
            expiry_grace: default_expiry_grace(),
            tick: default_tick(),
            flush: default_flush(),
            queue_limit: default_queue(),
            snapshot_every: default_snapshot_every(),
            write_timeout: default_write_timeout(),
            max_bindings: default_max_bindings(),
        }
    }
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: default_admin_listen(),
            token: None,
        }
    }
}

impl Config {
    /// The backend named `name`.
    pub fn backend(&self, name: &str) -> Option<&BackendSection> {
        self.backends.iter().find(|b| b.name == name)
    }
}

/// `host:port` with a port from 1 to 65535 and a host that is an IP address (IPv6 in
/// brackets) or a DNS name; `Err` says what is wrong.
pub fn host_port(addr: &str) -> Result<(), &'static str> {
    let (host, port) = addr.rsplit_once(':').ok_or("no port")?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err("the port must be a number from 1 to 65535"),
    }
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if host.parse::<std::net::IpAddr>().is_ok() || (name && !host.is_empty()) {
        Ok(())
    } else {
        Err("the host is neither an IP address nor a DNS name")
    }
}

/// A backend or server name: it travels in URLs (`/v1/backends/NAME/...`), in `ctl`'s
/// `BACKEND/SERVER` and in metric labels, so 1 to 64 characters of letters, digits,
/// `.`, `_` and `-`.
pub fn valid_name(name: &str) -> Result<(), &'static str> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("names are 1 to 64 letters, digits, '.', '_' or '-'")
    }
}
