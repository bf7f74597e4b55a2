//! Peer protocol configuration: cluster identity, authentication mode (shared secret or
//! mutual TLS), frame size limit, timeouts and the server's connection limit.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::error::ConfigError;
use crate::frame::HANDSHAKE_MAX_FRAME;
use crate::tls::TlsMaterial;

/// Default maximum frame size: 32 MiB.
pub const DEFAULT_MAX_FRAME: usize = 32 * 1024 * 1024;

/// Largest accepted `max_frame`: 256 MiB.
const MAX_MAX_FRAME: usize = 256 * 1024 * 1024;

/// Default TLS server name every node certificate must carry as a SAN.
pub const DEFAULT_SERVER_NAME: &str = "holdfast-peer";

/// How peers prove they belong to the cluster.
#[derive(Clone)]
pub enum PeerAuth {
    /// TCP; both sides prove knowledge of this secret with HMAC-SHA256 challenge-response,
    /// then seal every byte under AES-256-GCM keys derived from the secret and both
    /// handshake nonces. The secret is the only key: use at least 32 random bytes.
    Secret(Vec<u8>),
    /// Mutual TLS: every node's certificate is signed by the cluster CA.
    Tls(TlsMaterial),
}

impl fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAuth::Secret(_) => f.write_str("Secret(<redacted>)"),
            PeerAuth::Tls(t) => f.debug_tuple("Tls").field(t).finish(),
        }
    }
}

/// Configuration shared by the server, [`crate::PeerNetwork`] and [`crate::PeerClient`].
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Cluster name; peers of another cluster are refused.
    pub cluster: String,
    /// This node's id, announced in the handshake.
    pub node_id: u64,
    /// Authentication mode.
    pub auth: PeerAuth,
    /// Maximum frame payload after the handshake (default 32 MiB).
    pub max_frame: usize,
    /// TCP connect timeout (default 3 s).
    pub connect_timeout: Duration,
    /// Timeout for TLS + protocol handshake (default 5 s).
    pub handshake_timeout: Duration,
    /// Timeout for writing one frame (default 30 s).
    pub io_timeout: Duration,
    /// Server side: a connection with no request for this long is closed (default 120 s).
    /// Client side: pooled connections idle for half of it are not reused.
    pub idle_timeout: Duration,
    /// Server side: bound on handling one request; client side: default bound on a
    /// [`crate::PeerClient`] call (default 30 s).
    pub request_timeout: Duration,
    /// Maximum concurrent inbound connections; more are closed at once (default 256).
    pub max_connections: usize,
}

impl PeerConfig {
    /// Configuration using a shared cluster secret, with default limits and timeouts.
    pub fn with_secret(
        cluster: impl Into<String>,
        node_id: u64,
        secret: impl Into<Vec<u8>>,
    ) -> Result<Self, ConfigError> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(ConfigError::EmptySecret);
        }
        Self::new(cluster.into(), node_id, PeerAuth::Secret(secret))
    }

    /// Configuration using mutual TLS, loading the cluster CA, this node's certificate chain
    /// and private key from PEM files; errors name the file that failed.
    pub fn with_tls_files(
        cluster: impl Into<String>,
        node_id: u64,
        ca: impl AsRef<Path>,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, ConfigError> {
        let tls = TlsMaterial::from_pem_files(ca, cert, key, DEFAULT_SERVER_NAME)?;
        Self::new(cluster.into(), node_id, PeerAuth::Tls(tls))
    }

    /// Configuration with explicit `auth` and default limits and timeouts.
    pub fn new(cluster: String, node_id: u64, auth: PeerAuth) -> Result<Self, ConfigError> {
        let cfg = PeerConfig {
            cluster,
            node_id,
            auth,
            max_frame: DEFAULT_MAX_FRAME,
            connect_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            max_connections: 256,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the values; call again after changing fields by hand.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = self.cluster.len();
        if n == 0 || n > 255 {
            return Err(ConfigError::ClusterName(n));
        }
        if let PeerAuth::Secret(s) = &self.auth
            && s.is_empty()
        {
            return Err(ConfigError::EmptySecret);
        }
        if !(HANDSHAKE_MAX_FRAME..=MAX_MAX_FRAME).contains(&self.max_frame) {
            return Err(ConfigError::MaxFrame {
                got: self.max_frame,
                min: HANDSHAKE_MAX_FRAME,
                max: MAX_MAX_FRAME,
            });
        }
        Ok(())
    }

    /// The shared secret, when in secret mode.
    pub(crate) fn secret(&self) -> Option<&[u8]> {
        match &self.auth {
            PeerAuth::Secret(s) => Some(s),
            PeerAuth::Tls(_) => None,
        }
    }

    /// The TLS material, when in TLS mode.
    pub(crate) fn tls(&self) -> Option<&TlsMaterial> {
        match &self.auth {
            PeerAuth::Secret(_) => None,
            PeerAuth::Tls(t) => Some(t),
        }
    }
}
