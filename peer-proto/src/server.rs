//! Inbound side: accepts TCP connections (bounded by a connection limit), authenticates
//! each in its own task, then serves requests sequentially by calling the local `Raft` or
//! the application's [`PeerHandler`]. Bad frames close the connection with a warning.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::raft::ClientWriteResponse;
use openraft::{Raft, RaftTypeConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::codec;
use crate::config::PeerConfig;
use crate::error::{ForwardError, PeerError};
use crate::frame::{self, FrameError};
use crate::message::{PeerRequest, PeerResponse};
use crate::stream::{self, BoxedStream};
use crate::throttle::Throttle;

/// What a node exposes to its peers.
pub trait PeerHandler<C: RaftTypeConfig>: Send + Sync + 'static {
    /// The local Raft instance; append/vote/install_snapshot are served by calling it.
    fn raft(&self) -> &Raft<C>;

    /// Applies a client write forwarded by node `from` (normally: `raft.client_write`,
    /// mapping `ForwardToLeader` to [`ForwardError::NotLeader`]). The answer carries the
    /// entry's log id, so the sender can wait until it has applied the write itself.
    fn client_write(
        &self,
        from: C::NodeId,
        req: C::D,
    ) -> impl Future<Output = Result<ClientWriteResponse<C>, ForwardError>> + Send;

    /// Answers an opaque application query from node `from`.
    fn query(
        &self,
        from: C::NodeId,
        q: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, ForwardError>> + Send;

    /// Sees every AppendEntries before Raft serves it: `leader_commit` is the commit
    /// index the leader announced. A node uses it to tell whether it has caught up (its
    /// readiness); the default ignores it.
    fn observe_append(&self, leader_commit: Option<u64>) {
        let _ = leader_commit;
    }
}

/// Serves peers on `listener` until `shutdown` completes; open connections are then aborted.
pub async fn serve<C, H>(
    listener: TcpListener,
    config: Arc<PeerConfig>,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()> + Send,
) where
    C: RaftTypeConfig,
    C::NodeId: From<u64>,
    H: PeerHandler<C>,
{
    let local = listener.local_addr().ok();
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    // Refusals logged per server: a flood writes a few lines per window, with counts.
    let (refusals, at_limit) = (Arc::new(Throttle::new()), Throttle::new());
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    tracing::info!(local_addr = ?local, cluster = %config.cluster, node_id = config.node_id, "peer server listening");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        if let Some(folded) = at_limit.note() {
                            tracing::warn!(remote_addr = %remote, max_connections = config.max_connections,
                                folded, "peer connection limit reached; closing new connection (`folded`: refusals not logged since the last line)");
                        }
                        continue;
                    };
                    let (config, handler, logs) = (config.clone(), handler.clone(), refusals.clone());
                    conns.spawn(async move {
                        handle_connection::<C, H>(tcp, remote, config, handler, logs).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "peer accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    conns.shutdown().await;
    tracing::info!(local_addr = ?local, "peer server stopped");
}

/// Handle to a server started with [`spawn_server`].
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// Address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, aborts open connections and waits for the server task to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Spawns [`serve`] on the current runtime; dropping or stopping the handle stops it.
pub fn spawn_server<C, H>(
    listener: TcpListener,
    config: Arc<PeerConfig>,
    handler: Arc<H>,
) -> std::io::Result<ServerHandle>
where
    C: RaftTypeConfig,
    C::NodeId: From<u64>,
    H: PeerHandler<C>,
{
    let local_addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve::<C, H>(listener, config, handler, async move {
        let _ = rx.await;
    }));
    Ok(ServerHandle {
        local_addr,
        stop: Some(tx),
        task,
    })
}

async fn handle_connection<C, H>(
    tcp: TcpStream,
    remote: SocketAddr,
    cfg: Arc<PeerConfig>,
    handler: Arc<H>,
    refusals: Arc<Throttle>,
) where
    C: RaftTypeConfig,
    C::NodeId: From<u64>,
    H: PeerHandler<C>,
{
    let (mut io, peer) = match stream::accept(tcp, &cfg).await {
        Ok(ok) => ok,
        Err(e) => return log_handshake_failure(remote, &e, &refusals),
    };
    tracing::debug!(remote_addr = %remote, peer_node = peer.node_id, "peer authenticated");
    loop {
        let payload = match timeout(cfg.idle_timeout, frame::read_frame(&mut io, cfg.max_frame))
            .await
        {
            Ok(Ok(payload)) => payload,
            Ok(Err(FrameError::Closed)) => return,
            Ok(Err(e)) => {
                tracing::warn!(remote_addr = %remote, peer_node = peer.node_id, error = %e, "bad frame from peer; closing connection");
                return;
            }
            Err(_) => {
                tracing::debug!(remote_addr = %remote, peer_node = peer.node_id, "idle peer connection closed");
                return;
            }
        };
        let req: PeerRequest<C> = match codec::decode(&payload) {
            Ok(req) => req,
            Err(e) => {
                tracing::warn!(remote_addr = %remote, peer_node = peer.node_id, error = %e, len = payload.len(),
                    "undecodable request from peer; closing connection");
                return;
            }
        };
        drop(payload);
        let kind = req.kind();
        let from = C::NodeId::from(peer.node_id);
        let Ok(resp) = timeout(cfg.request_timeout, dispatch(&*handler, from, req)).await else {
            tracing::warn!(remote_addr = %remote, peer_node = peer.node_id, request = kind,
                timeout = ?cfg.request_timeout, "peer request handler timed out; closing connection");
            return;
        };
        if let Err(e) = respond(&mut io, &resp, &cfg).await {
            tracing::warn!(remote_addr = %remote, peer_node = peer.node_id, request = kind, error = %e,
                "cannot send response to peer; closing connection");
            return;
        }
    }
}

async fn respond<C: RaftTypeConfig>(
    io: &mut BoxedStream,
    resp: &PeerResponse<C>,
    cfg: &PeerConfig,
) -> Result<(), PeerError> {
    let bytes = frame::encode_frame(resp, cfg.max_frame)?;
    timeout(cfg.io_timeout, frame::write_frame(io, &bytes))
        .await
        .map_err(|_| PeerError::Timeout(cfg.io_timeout))??;
    Ok(())
}

async fn dispatch<C, H>(handler: &H, from: C::NodeId, req: PeerRequest<C>) -> PeerResponse<C>
where
    C: RaftTypeConfig,
    H: PeerHandler<C>,
{
    match req {
        PeerRequest::AppendEntries(rpc) => {
            handler.observe_append(rpc.leader_commit.as_ref().map(|c| c.index));
            PeerResponse::AppendEntries(handler.raft().append_entries(rpc).await)
        }
        PeerRequest::Vote(rpc) => PeerResponse::Vote(handler.raft().vote(rpc).await),
        PeerRequest::InstallSnapshot(rpc) => {
            PeerResponse::InstallSnapshot(handler.raft().install_snapshot(rpc).await)
        }
        PeerRequest::ClientWrite(d) => {
            PeerResponse::ClientWrite(handler.client_write(from, d).await)
        }
        PeerRequest::Query(q) => PeerResponse::Query(handler.query(from, q).await),
    }
}

fn log_handshake_failure(remote: SocketAddr, e: &PeerError, refusals: &Throttle) {
    if matches!(e, PeerError::Frame(FrameError::Closed)) {
        // Port probes and health checks connect and close without a word.
        tracing::debug!(remote_addr = %remote, "connection closed before the peer handshake");
        return;
    }
    let hint = match e {
        PeerError::Frame(f) if f.looks_like_tls() => "peer speaks TLS but TLS is off on this node",
        PeerError::Tls(_) => "check that both nodes use certificates from the same cluster CA",
        _ => "",
    };
    let reason = e.refuse_reason().map(tracing::field::display);
    if let Some(folded) = refusals.note() {
        tracing::warn!(remote_addr = %remote, error = %e, reason, hint, folded,
            "peer handshake failed; connection refused (`folded`: refusals not logged since the last line)");
    }
}
