//! Versioned, authenticated connection handshake (runs inside TLS when TLS is on).
//!
//! Client → `Hello` frame: `b"HFPP"`, version `u16` BE, then bincode [`HelloBody`].
//! Server → [`ServerHello`] (`Accept` with its nonce and, in secret mode, its HMAC proof, or
//! `Refuse`). Client → [`ClientFinish`] (its proof, or `Abort`). Server → [`Verdict`].
//! In secret mode each proof is HMAC-SHA256(secret, transcript) with distinct role labels,
//! and both sides then derive the connection's keys from the secret and both nonces: every
//! later byte is sealed ([`crate::sealed`]). In TLS mode each side checks that the peer's
//! certificate names the node id it announced ([`crate::identity`]).

use hmac::{Hmac, KeyInit, Mac};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::codec;
use crate::config::PeerConfig;
use crate::error::PeerError;
use crate::frame::{self, FrameError, HANDSHAKE_MAX_FRAME};
use crate::identity;
use crate::sealed::{KeyInput, SessionKeys};

/// Protocol magic opening every Hello.
pub const MAGIC: [u8; 4] = *b"HFPP";
/// Protocol version spoken by this build (2: a forwarded write's answer carries its log
/// id; 3: secret-mode connections are encrypted, TLS node ids bound to certificates).
pub const PROTOCOL_VERSION: u16 = 3;

/// Length of handshake nonces and HMAC proofs.
pub const NONCE_LEN: usize = 32;

const ROLE_SERVER: &[u8] = b"server";
const ROLE_CLIENT: &[u8] = b"client";

/// Why a handshake was refused; sent to the peer and reported on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RefuseReason {
    /// The first bytes were not a holdfast peer Hello.
    #[error("bad protocol magic (not a holdfast peer)")]
    BadMagic,
    /// The peer speaks a protocol version this node does not.
    #[error("unsupported protocol version {requested} (this node speaks version {supported})")]
    UnsupportedVersion {
        /// Version the client asked for.
        requested: u16,
        /// Version the server speaks.
        supported: u16,
    },
    /// The peer belongs to another cluster.
    #[error("wrong cluster: this node is in cluster {expected:?}, peer is in {got:?}")]
    WrongCluster {
        /// This node's cluster.
        expected: String,
        /// The peer's cluster.
        got: String,
    },
    /// The HMAC proof did not verify.
    #[error("peer authentication failed: wrong cluster secret")]
    AuthFailed,
    /// Any other refusal (malformed message, unexpected node...).
    #[error("{0}")]
    Other(String),
    /// TLS mode: the peer's certificate does not name the node id it announced.
    #[error("the peer's certificate is not node {node_id}'s: it does not carry the SAN {san}")]
    CertificateNotForNode {
        /// The node id the peer announced.
        node_id: u64,
        /// The DNS SAN the certificate of that node carries.
        san: String,
    },
}

/// What a completed handshake yields: who the peer is and, in secret mode, the keys that
/// seal the rest of the connection.
pub(crate) struct Established {
    /// The authenticated peer.
    pub peer: PeerInfo,
    /// Secret mode: this side's keys for the connection.
    pub keys: Option<SessionKeys>,
}

/// Identity of an authenticated peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's node id.
    pub node_id: u64,
}

/// Body of the Hello frame after the magic and version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelloBody {
    /// Client's cluster name.
    pub cluster: String,
    /// Client's node id.
    pub node_id: u64,
    /// Client's random challenge.
    pub nonce: [u8; NONCE_LEN],
}

/// Server's answer to a Hello.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ServerHello {
    /// Hello accepted; in secret mode `proof` proves the server knows the secret.
    Accept {
        /// Server's node id.
        node_id: u64,
        /// Server's random challenge.
        nonce: [u8; NONCE_LEN],
        /// HMAC proof (secret mode only).
        proof: Option<[u8; NONCE_LEN]>,
    },
    /// Hello refused.
    Refuse(RefuseReason),
}

/// Client's second message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientFinish {
    /// Client's HMAC proof (secret mode) or `None` (TLS mode).
    Proof(Option<[u8; NONCE_LEN]>),
    /// The client refuses the server (e.g. its proof did not verify).
    Abort(RefuseReason),
}

/// Server's final word.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Verdict {
    /// Handshake complete; requests may follow.
    Accepted,
    /// Handshake refused.
    Refuse(RefuseReason),
}

/// Builds a Hello frame payload for `version` (tests use it to craft odd versions).
pub fn hello_payload(version: u16, body: &HelloBody) -> Result<Vec<u8>, PeerError> {
    let mut payload = Vec::with_capacity(64);
    payload.extend_from_slice(&MAGIC);
    payload.extend_from_slice(&version.to_be_bytes());
    codec::encode_into(body, &mut payload).map_err(FrameError::from)?;
    Ok(payload)
}

/// Both nonces and ids of one handshake, as covered by the proofs.
struct Transcript<'a> {
    cluster: &'a str,
    client_id: u64,
    server_id: u64,
    client_nonce: [u8; NONCE_LEN],
    server_nonce: [u8; NONCE_LEN],
}

impl Transcript<'_> {
    /// HMAC over the transcript; `None` only if the key is rejected (HMAC takes any length).
    fn mac(&self, secret: &[u8], role: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).ok()?;
        mac.update(&MAGIC);
        mac.update(&PROTOCOL_VERSION.to_be_bytes());
        mac.update(role);
        mac.update(&(self.cluster.len() as u32).to_be_bytes());
        mac.update(self.cluster.as_bytes());
        mac.update(&self.client_id.to_be_bytes());
        mac.update(&self.server_id.to_be_bytes());
        mac.update(&self.client_nonce);
        mac.update(&self.server_nonce);
        Some(mac)
    }

    fn proof(&self, secret: &[u8], role: &[u8]) -> Option<[u8; NONCE_LEN]> {
        Some(self.mac(secret, role)?.finalize().into_bytes().into())
    }

    /// This side's keys for the connection (secret mode).
    fn keys(&self, secret: &[u8], client_side: bool) -> SessionKeys {
        let input = KeyInput {
            secret,
            cluster: self.cluster,
            client: (self.client_id, &self.client_nonce),
            server: (self.server_id, &self.server_nonce),
        };
        match client_side {
            true => SessionKeys::client(&input),
            false => SessionKeys::server(&input),
        }
    }

    /// Constant-time check of a proof.
    fn verify(&self, secret: &[u8], role: &[u8], proof: Option<&[u8; NONCE_LEN]>) -> bool {
        match (proof, self.mac(secret, role)) {
            (Some(p), Some(mac)) => mac.verify_slice(p).is_ok(),
            _ => false,
        }
    }
}

/// Runs the client side of the handshake; `expected` is the node id we meant to reach and
/// `peer_cert` the certificate the server presented (TLS mode).
pub(crate) async fn client<S>(
    io: &mut S,
    cfg: &PeerConfig,
    expected: Option<u64>,
    peer_cert: Option<&CertificateDer<'static>>,
) -> Result<Established, PeerError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let client_nonce: [u8; NONCE_LEN] = rand::random();
    let body = HelloBody {
        cluster: cfg.cluster.clone(),
        node_id: cfg.node_id,
        nonce: client_nonce,
    };
    let hello = frame::raw_frame(
        &hello_payload(PROTOCOL_VERSION, &body)?,
        HANDSHAKE_MAX_FRAME,
    )?;
    frame::write_frame(io, &hello).await?;
    let (server_id, server_nonce, server_proof) = match read(io).await? {
        ServerHello::Refuse(reason) => return Err(PeerError::RefusedByPeer(reason)),
        ServerHello::Accept {
            node_id,
            nonce,
            proof,
        } => (node_id, nonce, proof),
    };
    if let Some(expected) = expected.filter(|e| *e != server_id) {
        let reason = RefuseReason::Other(format!(
            "expected node {expected}, reached node {server_id}"
        ));
        send(io, &ClientFinish::Abort(reason)).await?;
        return Err(PeerError::WrongNode {
            expected,
            found: server_id,
        });
    }
    if let Err(reason) = check_certificate(cfg, peer_cert, server_id) {
        send(io, &ClientFinish::Abort(reason.clone())).await?;
        return Err(PeerError::Rejected(reason));
    }
    let t = Transcript {
        cluster: &cfg.cluster,
        client_id: cfg.node_id,
        server_id,
        client_nonce,
        server_nonce,
    };
    let proof = match cfg.secret() {
        Some(secret) => {
            if !t.verify(secret, ROLE_SERVER, server_proof.as_ref()) {
                send(io, &ClientFinish::Abort(RefuseReason::AuthFailed)).await?;
                return Err(PeerError::Rejected(RefuseReason::AuthFailed));
            }
            t.proof(secret, ROLE_CLIENT)
        }
        None => None,
    };
    send(io, &ClientFinish::Proof(proof)).await?;
    match read(io).await? {
        Verdict::Accepted => Ok(Established {
            peer: PeerInfo { node_id: server_id },
            keys: cfg.secret().map(|secret| t.keys(secret, true)),
        }),
        Verdict::Refuse(reason) => Err(PeerError::RefusedByPeer(reason)),
    }
}

/// TLS mode: the presented certificate must name `node_id`; secret mode has none to check.
fn check_certificate(
    cfg: &PeerConfig,
    peer_cert: Option<&CertificateDer<'static>>,
    node_id: u64,
) -> Result<(), RefuseReason> {
    let Some(tls) = cfg.tls() else {
        return Ok(());
    };
    match peer_cert {
        Some(cert) => identity::check(cert, node_id, tls.server_name_str()),
        None => Err(RefuseReason::CertificateNotForNode {
            node_id,
            san: identity::node_san(node_id, tls.server_name_str()),
        }),
    }
}

/// Runs the server side of the handshake; `peer_cert` is the client's certificate (TLS).
pub(crate) async fn server<S>(
    io: &mut S,
    cfg: &PeerConfig,
    peer_cert: Option<&CertificateDer<'static>>,
) -> Result<Established, PeerError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let payload = frame::read_frame(io, HANDSHAKE_MAX_FRAME).await?;
    let parsed = parse_hello(&payload, cfg).and_then(|hello| {
        check_certificate(cfg, peer_cert, hello.node_id)?;
        Ok(hello)
    });
    let hello = match parsed {
        Ok(hello) => hello,
        Err(reason) => return refuse(io, ServerHello::Refuse(reason.clone()), reason).await,
    };
    let server_nonce: [u8; NONCE_LEN] = rand::random();
    let t = Transcript {
        cluster: &cfg.cluster,
        client_id: hello.node_id,
        server_id: cfg.node_id,
        client_nonce: hello.nonce,
        server_nonce,
    };
    let proof = cfg.secret().and_then(|s| t.proof(s, ROLE_SERVER));
    send(
        io,
        &ServerHello::Accept {
            node_id: cfg.node_id,
            nonce: server_nonce,
            proof,
        },
    )
    .await?;
    let client_proof = match read(io).await? {
        ClientFinish::Abort(reason) => return Err(PeerError::RefusedByPeer(reason)),
        ClientFinish::Proof(p) => p,
    };
    if let Some(secret) = cfg.secret()
        && !t.verify(secret, ROLE_CLIENT, client_proof.as_ref())
    {
        let reason = RefuseReason::AuthFailed;
        return refuse(io, Verdict::Refuse(reason.clone()), reason).await;
    }
    send(io, &Verdict::Accepted).await?;
    Ok(Established {
        peer: PeerInfo {
            node_id: hello.node_id,
        },
        keys: cfg.secret().map(|secret| t.keys(secret, false)),
    })
}

fn parse_hello(payload: &[u8], cfg: &PeerConfig) -> Result<HelloBody, RefuseReason> {
    if payload.len() < 6 || payload[..4] != MAGIC {
        return Err(RefuseReason::BadMagic);
    }
    let version = u16::from_be_bytes([payload[4], payload[5]]);
    if version != PROTOCOL_VERSION {
        return Err(RefuseReason::UnsupportedVersion {
            requested: version,
            supported: PROTOCOL_VERSION,
        });
    }
    let body: HelloBody = codec::decode(&payload[6..])
        .map_err(|e| RefuseReason::Other(format!("malformed hello: {e}")))?;
    if body.cluster != cfg.cluster {
        return Err(RefuseReason::WrongCluster {
            expected: cfg.cluster.clone(),
            got: body.cluster,
        });
    }
    Ok(body)
}

/// Best-effort sends the refusal, then fails with `Rejected(reason)`.
async fn refuse<S, M, T>(io: &mut S, msg: M, reason: RefuseReason) -> Result<T, PeerError>
where
    S: AsyncWrite + Unpin,
    M: Serialize,
{
    let _ = send(io, &msg).await;
    Err(PeerError::Rejected(reason))
}

async fn send<S: AsyncWrite + Unpin, M: Serialize>(io: &mut S, msg: &M) -> Result<(), PeerError> {
    Ok(frame::write_message(io, msg, HANDSHAKE_MAX_FRAME).await?)
}

async fn read<S: AsyncRead + Unpin, M: serde::de::DeserializeOwned>(
    io: &mut S,
) -> Result<M, PeerError> {
    Ok(frame::read_message(io, HANDSHAKE_MAX_FRAME).await?)
}
