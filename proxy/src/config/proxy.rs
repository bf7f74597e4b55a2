//! Data-plane configuration: `[[frontend]]` listeners and routes, `[limits]`, `[timeouts]`,
//! and the per-backend persistence, balancing and health-check settings, with defaults
//! chosen to match what a HAProxy operator expects.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// `[[frontend]]`: one listener and its routing rules.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendSection {
    /// Frontend name (in logs and metrics).
    pub name: String,
    /// Listen address, e.g. `0.0.0.0:443`.
    pub listen: SocketAddr,
    /// TLS on this listener (HTTPS); absent: plain HTTP.
    #[serde(default)]
    pub tls: Option<TlsSection>,
    /// Routing rules, first match wins.
    #[serde(default)]
    pub routes: Vec<RouteSection>,
    /// Backend for requests no route matches; without it they get 503.
    #[serde(default)]
    pub default_backend: Option<String>,
    /// Answer every request with a 308 redirect to `https://` on the same host and path.
    #[serde(default)]
    pub redirect_https: bool,
    /// The HTTP versions the listener speaks.
    #[serde(default)]
    pub proto: FrontendProto,
}

/// `frontend.proto`: what a listener speaks (HAProxy's `bind ... proto h2`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrontendProto {
    /// HTTP/1.1, or HTTP/2 by ALPN (TLS) or by its preface (plain HTTP).
    #[default]
    Auto,
    /// HTTP/2 only: ALPN offers only `h2`, and on plain HTTP every connection is HTTP/2
    /// with prior knowledge (anything else is a connection error, RFC 9113 §3.4).
    H2,
}

/// `[frontend.tls]`: certificates, chosen by SNI; the first one is the default.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Certificate and key PEM files.
    #[serde(default)]
    pub certs: Vec<CertSection>,
    /// A directory of certificates: `NAME.pem`/`NAME.crt` with `NAME.key` beside it (or
    /// the key in the same file), loaded in name order after `certs`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// One certificate chain and its private key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertSection {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// One routing rule: a request matches when its host and path match.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Exact host (`app.example.com`) or wildcard (`*.example.com`); absent: any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix (`/api/`); absent: any path.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Backend the request goes to.
    pub backend: String,
}

/// `[limits]`: sizes and counts, per node.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Concurrent client connections per node (HAProxy `maxconn`); more wait in the backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Largest request head in bytes (HTTP/1 buffer, HTTP/2 header list); beyond: 431.
    #[serde(default = "default_max_header_size")]
    pub max_header_size: usize,
    /// Most header fields in one request; beyond: 431.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Concurrent connections from one client address (0: no limit); more are closed
    /// at once (nginx `limit_conn`).
    #[serde(default)]
    pub max_connections_per_client: usize,
}

/// `[timeouts]`: HAProxy-style timeouts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSection {
    /// Time to receive a whole request head (HAProxy `timeout http-request`; slowloris).
    #[serde(default = "default_client_header", with = "duration::serde_ms")]
    pub client_header: Duration,
    /// Idle time allowed between requests on a kept-alive connection
    /// (`timeout http-keep-alive`).
    #[serde(default = "default_keep_alive", with = "duration::serde_ms")]
    pub keep_alive: Duration,
    /// Time to complete a TLS handshake.
    #[serde(default = "default_tls_handshake", with = "duration::serde_ms")]
    pub tls_handshake: Duration,
    /// Time to open a connection to a server (`timeout connect`); beyond: 503.
    #[serde(default = "default_connect", with = "duration::serde_ms")]
    pub connect: Duration,
    /// Time for a server to send its response head (`timeout server`); beyond: 504.
    #[serde(default = "default_server", with = "duration::serde_ms")]
    pub server: Duration,
    /// Idle time of a pooled server connection before it is closed.
    #[serde(default = "default_pool_idle", with = "duration::serde_ms")]
    pub pool_idle: Duration,
    /// Longest time a client may stall a request or response in progress: sending no
    /// byte of its body, or reading none of the response (HAProxy `timeout client`). A
    /// client that stops reading would otherwise hold its connection slot and a server
    /// connection for as long as it likes.
    #[serde(default = "default_client", with = "duration::serde_ms")]
    pub client: Duration,
}

/// How a backend keeps a client on one server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// holdfast's own MAC-signed cookie.
    #[default]
    Insert,
    /// Learned from the application's session cookie.
    Learn,
    /// Client address.
    Source,
    /// No persistence: every request is balanced.
    None,
}

/// What happens to a bound client whose server is gone (`maint`, down, removed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLost {
    /// Balance it to another server and bind it there (a counted session break).
    #[default]
    Rebalance,
    /// Answer `lost_status` (404 by default: an MCP client then starts a new session);
    /// counted as a session break too.
    Reject,
}

/// How new clients are spread over servers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    /// Smooth weighted round-robin.
    #[default]
    Roundrobin,
    /// Fewest requests in flight, weighted.
    Leastconn,
}

/// The `SameSite` attribute of the insert cookie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// `SameSite=Lax`.
    #[default]
    Lax,
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=None` (browsers then require `Secure`).
    None,
}

impl SameSite {
    /// The attribute value as written in `Set-Cookie`.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// The kind of active health check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// An HTTP request whose status must fall in `expect`.
    #[default]
    Http,
    /// A TCP connect.
    Tcp,
}

/// `[backend.check]`: active health checks, run by every node on its own.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSection {
    /// `http` (default) or `tcp`.
    #[serde(default, rename = "type")]
    pub kind: CheckType,
    /// HTTP method.
    #[serde(default = "default_check_method")]
    pub method: String,
    /// HTTP path.
    #[serde(default = "default_check_path")]
    pub path: String,
    /// `Host` header; default: the server address.
    #[serde(default)]
    pub host: Option<String>,
    /// Status range that counts as up, `"200-399"` or `"200"`.
    #[serde(default)]
    pub expect: StatusRange,
    /// Time between checks.
    #[serde(default = "default_check_interval", with = "duration::serde_ms")]
    pub interval: Duration,
    /// Time allowed for one check.
    #[serde(default = "default_check_timeout", with = "duration::serde_ms")]
    pub timeout: Duration,
    /// Consecutive successes that bring a down server up.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures that take an up server down.
    #[serde(default = "default_fall")]
    pub fall: u32,
}

/// An inclusive range of HTTP status codes, written `"200-399"` or `"204"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct StatusRange {
    /// Lowest accepted status.
    pub low: u16,
    /// Highest accepted status.
    pub high: u16,
}

impl Default for StatusRange {
    fn default() -> Self {
        StatusRange {
            low: 200,
            high: 399,
        }
    }
}

impl StatusRange {
    /// True when `status` is in the range.
    pub fn contains(&self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

impl TryFrom<String> for StatusRange {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("bad status range {text:?}: expected e.g. \"200-399\" or \"200\"");
        let (low, high) = match text.split_once('-') {
            Some((a, b)) => (a.trim().parse(), b.trim().parse()),
            None => (text.trim().parse(), text.trim().parse()),
        };
        let (low, high): (u16, u16) = (low.map_err(|_| bad())?, high.map_err(|_| bad())?);
        if !(100..=599).contains(&low) || !(100..=599).contains(&high) || low > high {
            return Err(bad());
        }
        Ok(StatusRange { low, high })
    }
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `::1/128`, or a bare address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
}

impl Cidr {
    /// True when `ip` is inside the network (IPv4-mapped IPv6 addresses match IPv4 nets).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("bad network {text:?}: expected e.g. \"10.0.0.0/8\" or \"::1\"");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.as_str(), None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_connections: default_max_connections(),
            max_header_size: default_max_header_size(),
            max_headers: default_max_headers(),
            max_connections_per_client: 0,
        }
    }
}

impl Default for TimeoutsSection {
    fn default() -> Self {
        TimeoutsSection {
            client_header: default_client_header(),
            keep_alive: default_keep_alive(),
            tls_handshake: default_tls_handshake(),
            connect: default_connect(),
            server: default_server(),
            pool_idle: default_pool_idle(),
            client: default_client(),
        }
    }
}

fn default_max_connections() -> usize {
    10_000
}
fn default_max_header_size() -> usize {
    16 * 1024
}
fn default_max_headers() -> usize {
    100
}
fn default_client_header() -> Duration {
    Duration::from_secs(10)
}
fn default_keep_alive() -> Duration {
    Duration::from_secs(60)
}
fn default_tls_handshake() -> Duration {
    Duration::from_secs(10)
}
fn default_connect() -> Duration {
    Duration::from_secs(5)
}
fn default_server() -> Duration {
    Duration::from_secs(60)
}
fn default_pool_idle() -> Duration {
    Duration::from_secs(30)
}
fn default_client() -> Duration {
    Duration::from_secs(60)
}
fn default_check_method() -> String {
    "GET".into()
}
fn default_check_path() -> String {
    "/".into()
}
fn default_check_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_check_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

/// Default `learn_wait`: how long a learn-mode request may wait for the leader.
pub(super) fn default_learn_wait() -> Duration {
    Duration::from_millis(50)
}

/// Default server weight.
pub(super) fn default_weight() -> u32 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let net = Cidr::try_from("10.1.0.0/16".to_string()).unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let all = Cidr::try_from("0.0.0.0/0".to_string()).unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let one = Cidr::try_from("::1".to_string()).unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(Cidr::try_from("10.0.0.0/33".to_string()).is_err());
        assert!(Cidr::try_from("nonsense".to_string()).is_err());
    }

    #[test]
    fn status_ranges() {
        let r = StatusRange::try_from("200-299".to_string()).unwrap();
        assert!(r.contains(204) && !r.contains(302));
        assert_eq!(StatusRange::try_from("204".to_string()).unwrap().low, 204);
        assert!(StatusRange::try_from("300-200".to_string()).is_err());
        assert!(StatusRange::try_from("abc".to_string()).is_err());
    }
}
