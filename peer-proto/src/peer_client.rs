//! Application-side client: sends forwarded client writes and opaque queries to another
//! node by address, keeping a small pool of authenticated connections per address so that
//! forwarding does not pay a TCP/TLS handshake per request.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::RaftTypeConfig;
use openraft::raft::ClientWriteResponse;

use crate::config::PeerConfig;
use crate::connection::Connection;
use crate::error::{ForwardError, PeerError};
use crate::frame;
use crate::message::{PeerRequest, PeerResponse};

/// Idle connections kept per address.
const MAX_IDLE_PER_ADDR: usize = 4;

/// Failure of a [`PeerClient`] call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The request did not reach the peer or no valid answer came back; the write may or
    /// may not have been applied if the failure happened after sending.
    #[error(transparent)]
    Transport(#[from] PeerError),
    /// The peer answered with an error.
    #[error(transparent)]
    Remote(#[from] ForwardError),
}

/// Sends forwarded writes and queries to other nodes (cheap to clone; clones share the pool).
pub struct PeerClient<C> {
    config: Arc<PeerConfig>,
    pool: Arc<Mutex<HashMap<String, Vec<Connection>>>>,
    _types: PhantomData<fn() -> C>,
}

impl<C> Clone for PeerClient<C> {
    fn clone(&self) -> Self {
        PeerClient {
            config: self.config.clone(),
            pool: self.pool.clone(),
            _types: PhantomData,
        }
    }
}

impl<C: RaftTypeConfig> PeerClient<C> {
    /// A client authenticating with `config`.
    pub fn new(config: Arc<PeerConfig>) -> Self {
        PeerClient {
            config,
            pool: Arc::default(),
            _types: PhantomData,
        }
    }

    /// Forwards a client write to the node at `addr` (bounded by `config.request_timeout`);
    /// the answer carries the entry's log id and the state machine's response.
    pub async fn client_write(
        &self,
        addr: &str,
        req: C::D,
    ) -> Result<ClientWriteResponse<C>, CallError> {
        self.client_write_timeout(addr, req, self.config.request_timeout)
            .await
    }

    /// Like [`Self::client_write`] with an explicit overall timeout.
    pub async fn client_write_timeout(
        &self,
        addr: &str,
        req: C::D,
        timeout: Duration,
    ) -> Result<ClientWriteResponse<C>, CallError> {
        match self
            .call(addr, PeerRequest::ClientWrite(req), timeout)
            .await?
        {
            PeerResponse::ClientWrite(r) => Ok(r?),
            other => Err(mismatch(&other, "client_write")),
        }
    }

    /// Sends an opaque query to the node at `addr` (bounded by `config.request_timeout`).
    pub async fn query(&self, addr: &str, q: Vec<u8>) -> Result<Vec<u8>, CallError> {
        self.query_timeout(addr, q, self.config.request_timeout)
            .await
    }

    /// Like [`Self::query`] with an explicit overall timeout.
    pub async fn query_timeout(
        &self,
        addr: &str,
        q: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        match self.call(addr, PeerRequest::Query(q), timeout).await? {
            PeerResponse::Query(r) => Ok(r?),
            other => Err(mismatch(&other, "query")),
        }
    }

    /// Drops every pooled connection (e.g. after a membership change).
    pub fn clear(&self) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.clear();
        }
    }

    async fn call(
        &self,
        addr: &str,
        req: PeerRequest<C>,
        timeout: Duration,
    ) -> Result<PeerResponse<C>, PeerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let frame = frame::encode_frame(&req, self.config.max_frame)?;
        drop(req);
        let mut conn = loop {
            let Some(mut c) = self.checkout(addr) else {
                break Connection::open(addr, &self.config, None, timeout).await?;
            };
            if c.is_alive().await {
                break c;
            }
            // Closed by the peer (restart, idle timeout): drop it and try the next one.
        };
        match tokio::time::timeout_at(deadline, conn.call::<C>(&frame)).await {
            Ok(Ok(resp)) => {
                self.checkin(addr, conn);
                Ok(resp)
            }
            Ok(Err(e)) => {
                tracing::debug!(peer_addr = addr, peer_node = conn.peer().node_id, error = %e, "peer call failed");
                Err(e)
            }
            Err(_) => Err(PeerError::Timeout(timeout)),
        }
    }

    /// Takes a pooled connection that is not too old to trust.
    fn checkout(&self, addr: &str) -> Option<Connection> {
        let max_idle = self.config.idle_timeout / 2;
        let mut pool = self.pool.lock().ok()?;
        let conns = pool.get_mut(addr)?;
        while let Some(conn) = conns.pop() {
            if conn.idle_for() < max_idle {
                return Some(conn);
            }
        }
        None
    }

    fn checkin(&self, addr: &str, conn: Connection) {
        if let Ok(mut pool) = self.pool.lock() {
            let conns = pool.entry(addr.to_owned()).or_default();
            if conns.len() < MAX_IDLE_PER_ADDR {
                conns.push(conn);
            }
        }
    }
}

fn mismatch<C: RaftTypeConfig>(got: &PeerResponse<C>, want: &str) -> CallError {
    CallError::Transport(PeerError::Protocol(format!(
        "expected a {want} response, got {}",
        got.kind()
    )))
}
