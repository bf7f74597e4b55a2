//! One established, authenticated client-side connection: sends a request frame and reads
//! the response frame. A connection that failed or timed out mid-call must be dropped (its
//! stream may hold a late response), which callers do by discarding it on any error.

use std::time::{Duration, Instant};

use openraft::RaftTypeConfig;
use tokio::io::AsyncReadExt;

use crate::config::PeerConfig;
use crate::error::PeerError;
use crate::frame;
use crate::handshake::PeerInfo;
use crate::message::PeerResponse;
use crate::stream::{self, BoxedStream};

/// An authenticated connection to one peer.
pub(crate) struct Connection {
    io: BoxedStream,
    peer: PeerInfo,
    max_frame: usize,
    last_used: Instant,
}

impl Connection {
    /// Connects, runs TLS + handshake, within `budget`.
    pub(crate) async fn open(
        addr: &str,
        cfg: &PeerConfig,
        expected: Option<u64>,
        budget: Duration,
    ) -> Result<Self, PeerError> {
        let (io, peer) = stream::connect(addr, cfg, expected, budget).await?;
        tracing::debug!(
            peer_addr = addr,
            peer_node = peer.node_id,
            "peer connection established"
        );
        Ok(Connection {
            io,
            peer,
            max_frame: cfg.max_frame,
            last_used: Instant::now(),
        })
    }

    /// Node id the peer announced in the handshake.
    pub(crate) fn peer(&self) -> PeerInfo {
        self.peer
    }

    /// How long since the last completed call.
    pub(crate) fn idle_for(&self) -> Duration {
        self.last_used.elapsed()
    }

    /// Cheap liveness probe before reusing a pooled connection: polls one read without
    /// waiting. EOF, an error or unsolicited bytes mean the connection must be dropped.
    pub(crate) async fn is_alive(&mut self) -> bool {
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::ZERO, self.io.read(&mut byte))
            .await
            .is_err()
    }

    /// Sends a pre-encoded request frame and reads the response. No timeout here: the
    /// caller bounds the call and drops the connection if it expires.
    pub(crate) async fn call<C: RaftTypeConfig>(
        &mut self,
        frame_bytes: &[u8],
    ) -> Result<PeerResponse<C>, PeerError> {
        frame::write_frame(&mut self.io, frame_bytes).await?;
        let resp = frame::read_message(&mut self.io, self.max_frame).await?;
        self.last_used = Instant::now();
        Ok(resp)
    }
}
