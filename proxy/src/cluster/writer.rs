//! Getting a command committed from any node: the leader stamps it with its clock and
//! proposes it; a follower forwards it to the leader over the peer protocol. Every write
//! is bounded in time, so without quorum it fails with a clear error instead of hanging.

use std::time::Duration;

use holdfast_peer_proto::{CallError, ForwardError, PeerClient};
use holdfast_table::model::{Command, NodeId, Proposal, Response};
use holdfast_table::raft::{Raft, TypeConfig};
use openraft::error::{ClientWriteError, RaftError};
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

    /// Commits `command` through the current leader, waiting at most the write timeout.
    pub async fn write(&self, command: Command) -> Result<Response, WriteError> {
        let deadline = Instant::now() + self.timeout;
        let mut last_error = String::from("no leader elected");
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            let attempt = match leader {
                Some(leader) if leader == self.id => {
                    let proposal = Proposal {
                        now: 0,
                        command: command.clone(),
                    };
                    tokio::time::timeout_at(deadline, self.propose_local(proposal)).await
                }
                Some(leader) => match self.leader_addr(leader) {
                    Some(addr) => {
                        let proposal = Proposal {
                            now: 0,
                            command: command.clone(),
                        };
                        let forwarded = self.peers.client_write(&addr, proposal);
                        tokio::time::timeout_at(deadline, forwarded)
                            .await
                            .map(|r| r.map_err(remote_or_transport))
                    }
                    None => Ok(Err(ForwardError::NotLeader { leader: None })),
                },
                None => Ok(Err(ForwardError::NotLeader { leader: None })),
            };
            match attempt {
                Ok(Ok(response)) => return Ok(response),
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
    pub async fn propose_local(&self, mut proposal: Proposal) -> Result<Response, ForwardError> {
        proposal.now = now_ms();
        match self.raft.client_write(proposal).await {
            Ok(resp) => Ok(resp.data),
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

    fn leader_addr(&self, leader: NodeId) -> Option<String> {
        let metrics = self.raft.metrics().borrow().clone();
        metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
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
        if raft.metrics().borrow().current_leader != Some(id) {
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
