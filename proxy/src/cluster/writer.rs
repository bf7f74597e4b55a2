//! Getting a command committed from any node: the leader stamps it with its clock and
//! proposes it; a follower forwards it to the leader over the peer protocol. Every write
//! is bounded in time, so without quorum it fails with a clear error instead of hanging.

use std::time::Duration;

use holdfast_peer_proto::{CallError, ForwardError, PeerClient};
use holdfast_table::model::{Command, NodeId, Proposal, Response};
use holdfast_table::raft::{Raft, TypeConfig};
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;
use tokio::time::Instant;

use super::clock::now_ms;

/// Why a write did not commit.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// No leader, or the leader could not reach a quorum in time.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// The cluster refused the command.
    #[error("rejected: {0}")]
    Rejected(String),
}

/// A command the cluster committed.
#[derive(Clone, Debug)]
pub struct Committed {
    /// Index of its log entry: once a node has applied this index, its table shows the
    /// write (see [`Node::wait_applied`](super::Node::wait_applied)).
    pub index: u64,
    /// What the state machine answered.
    pub response: Response,
}

impl From<ClientWriteResponse<TypeConfig>> for Committed {
    fn from(r: ClientWriteResponse<TypeConfig>) -> Committed {
        Committed {
            index: r.log_id.index,
            response: r.data,
        }
    }
}

/// Submits commands to the cluster from this node.
pub struct Writer {
    id: NodeId,
    raft: Raft,
    peers: PeerClient<TypeConfig>,
    timeout: Duration,
}

impl Writer {
    /// A writer for node `id`; each write gives up after `timeout`.
    pub fn new(id: NodeId, raft: Raft, peers: PeerClient<TypeConfig>, timeout: Duration) -> Writer {
        Writer {
            id,
            raft,
            peers,
            timeout,
        }
    }

    /// The client this node reaches its peers with.
    pub fn peers(&self) -> &PeerClient<TypeConfig> {
        &self.peers
    }

    /// Commits `command` through the current leader, waiting at most the write timeout.
    pub async fn write(&self, command: Command) -> Result<Committed, WriteError> {
        let deadline = Instant::now() + self.timeout;
        let mut last_error = String::from("no leader elected");
        loop {
            let attempt = match self.leader() {
                Leader::Me => {
                    let proposal = Proposal {
                        now: 0,
                        command: command.clone(),
                    };
                    tokio::time::timeout_at(deadline, self.propose_local(proposal)).await
                }
                Leader::Other(_, Some(addr)) => {
                    let proposal = Proposal {
                        now: 0,
                        command: command.clone(),
                    };
                    let forwarded = self.peers.client_write(&addr, proposal);
                    tokio::time::timeout_at(deadline, forwarded)
                        .await
                        .map(|r| r.map_err(remote_or_transport))
                }
                Leader::Other(_, None) | Leader::Unknown => {
                    Ok(Err(ForwardError::NotLeader { leader: None }))
                }
            };
            match attempt {
                Ok(Ok(response)) => return Ok(response.into()),
                Ok(Err(ForwardError::Rejected(reason))) => {
                    return Err(WriteError::Rejected(reason));
                }
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => {
                    return Err(WriteError::NoQuorum(format!(
                        "not committed within {:?} ({last_error})",
                        self.timeout
                    )));
                }
            }
            if Instant::now() >= deadline {
                return Err(WriteError::NoQuorum(format!(
                    "not committed within {:?} ({last_error})",
                    self.timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// On the leader: stamps `proposal` with this node's clock and proposes it.
    pub async fn propose_local(
        &self,
        mut proposal: Proposal,
    ) -> Result<ClientWriteResponse<TypeConfig>, ForwardError> {
        proposal.now = now_ms();
        match self.raft.client_write(proposal).await {
            Ok(resp) => Ok(resp),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ForwardError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(ForwardError::Rejected(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => Err(ForwardError::NoQuorum(e.to_string())),
        }
    }

    /// Who leads, as this node's Raft metrics say.
    pub(super) fn leader(&self) -> Leader {
        leader_of(&self.raft, self.id)
    }
}

/// Who leads, as a node's Raft metrics say.
pub(super) enum Leader {
    /// This node.
    Me,
    /// Another member, with its peer address when the membership knows it.
    Other(NodeId, Option<String>),
    /// No leader known.
    Unknown,
}

/// Who leads, as the metrics of node `me`'s `raft` say: the one place a node decides
/// whether it leads and where its leader is.
pub(super) fn leader_of(raft: &Raft, me: NodeId) -> Leader {
    let metrics = raft.metrics();
    let m = metrics.borrow();
    match m.current_leader {
        Some(leader) if leader == me => Leader::Me,
        Some(leader) => {
            let membership = m.membership_config.membership();
            let addr = membership.get_node(&leader).map(|n| n.addr.clone());
            Leader::Other(leader, addr)
        }
        None => Leader::Unknown,
    }
}

/// A transport failure is retried like a leader change: the leader may have moved.
fn remote_or_transport(e: CallError) -> ForwardError {
    match e {
        CallError::Remote(e) => e,
        CallError::Transport(e) => ForwardError::NoQuorum(format!("leader unreachable: {e}")),
    }
}

/// On the leader, proposes an empty tick every `every` so expiry and release advance.
pub async fn run_ticker(writer: std::sync::Arc<Writer>, raft: Raft, id: NodeId, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if !matches!(leader_of(&raft, id), Leader::Me) {
            continue;
        }
        let tick = Proposal {
            now: 0,
            command: Command::Tick,
        };
        match tokio::time::timeout(every * 4, writer.propose_local(tick)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "tick not committed"),
            Err(_) => tracing::debug!("tick not committed in time (no quorum?)"),
        }
    }
}
