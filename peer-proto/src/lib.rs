//! holdfast node-to-node protocol: length-framed bincode messages carrying Raft RPCs and
//! forwarded application requests, behind a versioned, authenticated handshake (shared
//! secret HMAC or mutual TLS), encrypted in both modes. Generic over openraft's
//! `RaftTypeConfig`.
//!
//! Wire format, per TCP connection:
//!
//! 1. optional TLS (mutual, cluster CA, node id bound to the certificate) when
//!    [`PeerAuth::Tls`] is configured;
//! 2. handshake frames (at most [`HANDSHAKE_MAX_FRAME`] bytes each), see [`handshake`];
//! 3. secret mode: from here on every byte travels in AEAD records keyed from the
//!    handshake (see `sealed.rs`);
//! 4. request/response frames: one [`PeerRequest`], then one [`PeerResponse`], sequentially.
//!
//! Every frame is a `u32` big-endian payload length followed by the payload.

pub mod codec;
mod config;
mod connection;
mod error;
pub mod frame;
pub mod handshake;
mod identity;
mod message;
mod network;
mod peer_client;
mod sealed;
mod server;
mod stream;
pub mod throttle;
mod tls;

pub use codec::CodecError;
pub use config::{DEFAULT_MAX_FRAME, DEFAULT_SERVER_NAME, PeerAuth, PeerConfig};
pub use error::{ConfigError, ForwardError, PeerError};
pub use frame::{FrameError, HANDSHAKE_MAX_FRAME};
pub use handshake::{MAGIC, PROTOCOL_VERSION, PeerInfo, RefuseReason};
pub use identity::node_san;
pub use message::{PeerRequest, PeerResponse};
pub use network::{PeerAddress, PeerNetwork, PeerNetworkConnection};
pub use peer_client::{CallError, PeerClient};
pub use server::{PeerHandler, ServerHandle, serve, spawn_server};
pub use stream::{BoxedStream, PeerIo, connect_stream};
pub use tls::TlsMaterial;
