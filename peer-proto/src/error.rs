//! Error types: `ConfigError` (building a `PeerConfig`), `PeerError` (connecting, the
//! handshake, and the transport), and `ForwardError`, the serializable application-level
//! failure of a forwarded write or query.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::frame::FrameError;
use crate::handshake::RefuseReason;

/// Error building a [`crate::PeerConfig`] (bad values, unreadable TLS material).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A PEM file could not be read or parsed.
    #[error("cannot load {what} from {}: {source}", path.display())]
    Pem {
        /// What the file should contain ("CA certificate", "certificate chain", "private key").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Underlying PEM/I/O error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A PEM file parsed but held nothing usable.
    #[error("{} contains no {what}", path.display())]
    EmptyPem {
        /// What was expected.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the material (bad CA cert, key not matching the cert, ...).
    #[error("invalid TLS material ({what}): {source}")]
    Tls {
        /// Which step failed.
        what: &'static str,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built from the CA.
    #[error("cannot build client certificate verifier from the cluster CA: {0}")]
    Verifier(String),
    /// The TLS server name is not a valid DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// The shared cluster secret is empty.
    #[error("cluster secret must not be empty")]
    EmptySecret,
    /// The cluster name is empty or longer than 255 bytes.
    #[error("cluster name must be 1..=255 bytes, got {0} bytes")]
    ClusterName(usize),
    /// `max_frame` is outside the supported range.
    #[error("max_frame must be between {min} and {max} bytes, got {got}")]
    MaxFrame {
        /// Configured value.
        got: usize,
        /// Smallest accepted value.
        min: usize,
        /// Largest accepted value.
        max: usize,
    },
}

/// Error talking to a peer: connecting, the handshake, or exchanging frames.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The TCP connection could not be established.
    #[error("cannot connect to peer {addr}: {source}")]
    Connect {
        /// Target address.
        addr: String,
        /// Socket error.
        #[source]
        source: std::io::Error,
    },
    /// The TCP connection was not established within the connect timeout.
    #[error("timed out connecting to peer {addr} after {timeout:?}")]
    ConnectTimeout {
        /// Target address.
        addr: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The TLS handshake failed (unknown CA, bad certificate, name mismatch, alert...).
    #[error("TLS handshake with peer failed: {0}{hint}", hint = tls_hint(.0))]
    Tls(#[source] std::io::Error),
    /// The remote node refused our handshake and said why.
    #[error("peer refused the handshake: {0}")]
    RefusedByPeer(RefuseReason),
    /// This node refused the remote peer's handshake.
    #[error("rejected peer: {0}")]
    Rejected(RefuseReason),
    /// The peer at the address is not the node we expected.
    #[error("unexpected peer identity: expected node {expected}, found node {found}")]
    WrongNode {
        /// Node id we wanted.
        expected: u64,
        /// Node id the peer announced.
        found: u64,
    },
    /// The handshake did not complete in time.
    #[error("peer handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// A request did not complete in time; the connection is dropped.
    #[error("peer request timed out after {0:?}")]
    Timeout(Duration),
    /// Framing/codec/transport error on an established connection.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer answered something that does not fit the protocol.
    #[error("peer protocol violation: {0}")]
    Protocol(String),
}

impl PeerError {
    /// The handshake refusal reason, whichever side refused.
    pub fn refuse_reason(&self) -> Option<&RefuseReason> {
        match self {
            PeerError::RefusedByPeer(r) | PeerError::Rejected(r) => Some(r),
            _ => None,
        }
    }

    /// True when the error happened before a usable connection existed (connect, TLS,
    /// handshake): openraft treats such a target as unreachable and backs off.
    pub fn is_connect_phase(&self) -> bool {
        matches!(
            self,
            PeerError::Connect { .. }
                | PeerError::ConnectTimeout { .. }
                | PeerError::Tls(_)
                | PeerError::RefusedByPeer(_)
                | PeerError::Rejected(_)
                | PeerError::WrongNode { .. }
                | PeerError::HandshakeTimeout(_)
        )
    }
}

/// Plain-words explanation of the common TLS failures between nodes.
fn tls_hint(e: &std::io::Error) -> &'static str {
    let text = e.to_string();
    if text.contains("UnknownCA")
        || text.contains("BadCertificate")
        || text.contains("CertificateUnknown")
    {
        " (the peer rejected this node's certificate: is it signed by the cluster CA?)"
    } else if text.contains("UnknownIssuer") {
        " (the peer's certificate is not signed by the cluster CA)"
    } else if text.contains("NotValidForName") {
        " (the peer's certificate lacks the configured peer server name)"
    } else if text.contains("CertificateRequired") {
        " (the peer requires a client certificate)"
    } else {
        ""
    }
}

/// Why a forwarded client write or application query failed on the remote node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardError {
    /// The remote node is not the leader; `leader` is the leader it knows of, if any.
    #[error("not the leader (known leader: {leader:?})")]
    NotLeader {
        /// Node id of the current leader, when known.
        leader: Option<u64>,
    },
    /// The write was not committed in time (no quorum reachable).
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// The remote node refused the request.
    #[error("rejected: {0}")]
    Rejected(String),
}
