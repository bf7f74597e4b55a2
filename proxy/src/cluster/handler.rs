//! What this node answers to its peers: Raft RPCs (served by openraft), client writes
//! forwarded by followers (stamped and proposed here when leader), and membership changes
//! forwarded as application queries.

use std::sync::Arc;

use holdfast_peer_proto::{ForwardError, PeerHandler};
use holdfast_table::model::Proposal;
use holdfast_table::raft::{Raft, TypeConfig};
use openraft::raft::ClientWriteResponse;

use holdfast_table::raft::SharedState;

use super::membership::{self, FormedAnswer, PeerQuery};
use super::readiness::{self, CommitWatch};
use super::writer::{Leader, Writer};

/// The peer-protocol handler of one node.
pub struct Handler {
    pub(super) raft: Raft,
    pub(super) writer: Arc<Writer>,
    pub(super) shared: Arc<SharedState>,
    pub(super) commits: Arc<CommitWatch>,
}

impl Handler {
    fn require_leader(&self) -> Result<(), ForwardError> {
        match self.writer.leader() {
            Leader::Me => Ok(()),
            Leader::Other(leader, _) => Err(ForwardError::NotLeader {
                leader: Some(leader),
            }),
            Leader::Unknown => Err(ForwardError::NotLeader { leader: None }),
        }
    }
}

impl PeerHandler<TypeConfig> for Handler {
    fn raft(&self) -> &Raft {
        &self.raft
    }

    fn observe_append(&self, leader_commit: Option<u64>) {
        self.commits.observe(leader_commit);
    }

    async fn client_write(
        &self,
        _from: u64,
        req: Proposal,
    ) -> Result<ClientWriteResponse<TypeConfig>, ForwardError> {
        self.writer.propose_local(req).await
    }

    async fn query(&self, from: u64, q: Vec<u8>) -> Result<Vec<u8>, ForwardError> {
        let query: PeerQuery = serde_json::from_slice(&q)
            .map_err(|e| ForwardError::Rejected(format!("bad query: {e}")))?;
        match query {
            PeerQuery::Formed => serde_json::to_vec(&FormedAnswer::of(&self.raft, from))
                .map_err(|e| ForwardError::Rejected(e.to_string())),
            PeerQuery::Readiness => {
                let id = self.raft.metrics().borrow().id;
                serde_json::to_vec(&readiness::evaluate(&self.raft, id, &self.commits))
                    .map_err(|e| ForwardError::Rejected(e.to_string()))
            }
            PeerQuery::Cluster(op) => {
                self.require_leader()?;
                tracing::info!(from, ?op, "membership change forwarded by a peer");
                membership::execute(&self.raft, self.writer.peers(), &op)
                    .await
                    .map_err(ForwardError::Rejected)?;
                Ok(Vec::new())
            }
            PeerQuery::Lookup { backend, key } => {
                self.require_leader()?;
                // Read index: everything committed before the query is applied here first.
                self.raft
                    .ensure_linearizable()
                    .await
                    .map_err(|e| ForwardError::NoQuorum(e.to_string()))?;
                let server = self
                    .shared
                    .with_table(|t| t.lookup(&backend, &key).map(|b| b.server));
                serde_json::to_vec(&server).map_err(|e| ForwardError::Rejected(e.to_string()))
            }
        }
    }
}
