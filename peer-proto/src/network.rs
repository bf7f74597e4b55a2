//! openraft network implementation: [`PeerNetwork`] creates one [`PeerNetworkConnection`]
//! per target; each lazily connects on its first RPC, reuses the connection, and reconnects
//! after an error. Failures map onto openraft's `RPCError` variants.

use std::error::Error;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use openraft::RaftTypeConfig;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tokio::time::Instant;

use crate::config::PeerConfig;
use crate::connection::Connection;
use crate::error::PeerError;
use crate::frame::FrameError;
use crate::message::{PeerRequest, PeerResponse};

/// Implemented by the application's `Node` type: where that node's peer server listens.
pub trait PeerAddress {
    /// `host:port` of the node's peer listener.
    fn peer_addr(&self) -> &str;
}

/// openraft network factory over the peer protocol.
pub struct PeerNetwork<C> {
    config: Arc<PeerConfig>,
    _types: PhantomData<fn() -> C>,
}

impl<C> PeerNetwork<C> {
    /// A factory using `config` for every outbound Raft connection.
    pub fn new(config: Arc<PeerConfig>) -> Self {
        PeerNetwork {
            config,
            _types: PhantomData,
        }
    }
}

impl<C> RaftNetworkFactory<C> for PeerNetwork<C>
where
    C: RaftTypeConfig,
    C::Node: PeerAddress,
    C::NodeId: From<u64> + Into<u64>,
{
    type Network = PeerNetworkConnection<C>;

    async fn new_client(&mut self, target: C::NodeId, node: &C::Node) -> Self::Network {
        PeerNetworkConnection {
            config: self.config.clone(),
            target_id: target.clone().into(),
            target,
            addr: node.peer_addr().to_owned(),
            conn: None,
        }
    }
}

/// Raft RPC client for one target node (created by [`PeerNetwork`]).
pub struct PeerNetworkConnection<C: RaftTypeConfig> {
    config: Arc<PeerConfig>,
    target: C::NodeId,
    target_id: u64,
    addr: String,
    conn: Option<Connection>,
}

/// Why an RPC failed, before mapping to openraft's error type.
enum Failure {
    Unreachable(PeerError),
    Network(PeerError),
    Timeout,
    TooLarge,
}

impl<C> PeerNetworkConnection<C>
where
    C: RaftTypeConfig,
    C::NodeId: From<u64>,
{
    /// Sends `req` and returns the response, all within `ttl`.
    async fn rpc(
        &mut self,
        req: PeerRequest<C>,
        ttl: Duration,
    ) -> Result<PeerResponse<C>, Failure> {
        let deadline = Instant::now() + ttl;
        let frame = match crate::frame::encode_frame(&req, self.config.max_frame) {
            Ok(f) => f,
            Err(FrameError::TooLarge { .. }) => return Err(Failure::TooLarge),
            Err(e) => return Err(Failure::Network(e.into())),
        };
        drop(req);
        // One retry when a reused connection turns out to be dead (peer restarted).
        for attempt in 0..2 {
            let mut pooled = self.conn.take();
            if let Some(c) = pooled.as_mut()
                && !c.is_alive().await
            {
                pooled = None;
            }
            let reused = pooled.is_some();
            let mut conn = match pooled {
                Some(c) => c,
                None => {
                    let budget = deadline.saturating_duration_since(Instant::now());
                    match Connection::open(&self.addr, &self.config, Some(self.target_id), budget)
                        .await
                    {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::debug!(target_node = self.target_id, peer_addr = %self.addr, error = %e, "peer unreachable");
                            return Err(Failure::Unreachable(e));
                        }
                    }
                }
            };
            match tokio::time::timeout_at(deadline, conn.call::<C>(&frame)).await {
                Ok(Ok(resp)) => {
                    self.conn = Some(conn);
                    return Ok(resp);
                }
                Ok(Err(e)) => {
                    let stale = reused
                        && attempt == 0
                        && matches!(e, PeerError::Frame(FrameError::Closed | FrameError::Io(_)));
                    tracing::debug!(target_node = self.target_id, peer_addr = %self.addr, error = %e, stale, "peer RPC failed");
                    if !stale || Instant::now() >= deadline {
                        return Err(Failure::Network(e));
                    }
                }
                Err(_) => return Err(Failure::Timeout),
            }
        }
        Err(Failure::Timeout)
    }

    fn error<E: Error>(
        &self,
        f: Failure,
        action: RPCTypes,
        ttl: Duration,
        entries: usize,
    ) -> RPCError<C::NodeId, C::Node, E> {
        match f {
            Failure::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            Failure::Network(e) => RPCError::Network(NetworkError::new(&e)),
            Failure::Timeout => RPCError::Timeout(Timeout {
                action,
                id: C::NodeId::from(self.config.node_id),
                target: self.target.clone(),
                timeout: ttl,
            }),
            Failure::TooLarge if entries > 1 => {
                RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint((entries / 2) as u64))
            }
            Failure::TooLarge => {
                let e = PeerError::Protocol(format!(
                    "{action} request exceeds max_frame {}",
                    self.config.max_frame
                ));
                RPCError::Network(NetworkError::new(&e))
            }
        }
    }

    fn mismatch<E: Error>(
        &self,
        got: &PeerResponse<C>,
        want: RPCTypes,
    ) -> RPCError<C::NodeId, C::Node, E> {
        let e = PeerError::Protocol(format!("expected a {want} response, got {}", got.kind()));
        RPCError::Network(NetworkError::new(&e))
    }

    fn remote<E: Error>(&self, e: E) -> RPCError<C::NodeId, C::Node, E> {
        RPCError::RemoteError(RemoteError::new(self.target.clone(), e))
    }
}

type RaftRpcError<C, E = openraft::error::Infallible> = RPCError<
    <C as RaftTypeConfig>::NodeId,
    <C as RaftTypeConfig>::Node,
    RaftError<<C as RaftTypeConfig>::NodeId, E>,
>;

impl<C> RaftNetwork<C> for PeerNetworkConnection<C>
where
    C: RaftTypeConfig,
    C::NodeId: From<u64>,
{
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C::NodeId>, RaftRpcError<C>> {
        let (ttl, n, action) = (
            option.hard_ttl(),
            rpc.entries.len(),
            RPCTypes::AppendEntries,
        );
        match self.rpc(PeerRequest::AppendEntries(rpc), ttl).await {
            Ok(PeerResponse::AppendEntries(Ok(r))) => Ok(r),
            Ok(PeerResponse::AppendEntries(Err(e))) => Err(self.remote(e)),
            Ok(other) => Err(self.mismatch(&other, action)),
            Err(f) => Err(self.error(f, action, ttl, n)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<C::NodeId>, RaftRpcError<C, InstallSnapshotError>> {
        let (ttl, action) = (option.hard_ttl(), RPCTypes::InstallSnapshot);
        match self.rpc(PeerRequest::InstallSnapshot(rpc), ttl).await {
            Ok(PeerResponse::InstallSnapshot(Ok(r))) => Ok(r),
            Ok(PeerResponse::InstallSnapshot(Err(e))) => Err(self.remote(e)),
            Ok(other) => Err(self.mismatch(&other, action)),
            Err(f) => Err(self.error(f, action, ttl, 0)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C::NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<C::NodeId>, RaftRpcError<C>> {
        let (ttl, action) = (option.hard_ttl(), RPCTypes::Vote);
        match self.rpc(PeerRequest::Vote(rpc), ttl).await {
            Ok(PeerResponse::Vote(Ok(r))) => Ok(r),
            Ok(PeerResponse::Vote(Err(e))) => Err(self.remote(e)),
            Ok(other) => Err(self.mismatch(&other, action)),
            Err(f) => Err(self.error(f, action, ttl, 0)),
        }
    }
}

impl PeerAddress for openraft::BasicNode {
    fn peer_addr(&self) -> &str {
        &self.addr
    }
}
