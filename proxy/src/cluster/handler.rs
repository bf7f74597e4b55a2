//! What this node answers to its peers: Raft RPCs (served by openraft), client writes
//! forwarded by followers (stamped and proposed here when leader), and membership changes
//! forwarded as application queries.

use std::sync::Arc;

use holdfast_peer_proto::{ForwardError, PeerHandler};
use holdfast_table::model::{Proposal, Response};
use holdfast_table::raft::{Raft, TypeConfig};

use super::membership::{self, ClusterOp};
use super::writer::Writer;

/// The peer-protocol handler of one node.
pub struct Handler {
    pub(super) raft: Raft,
    pub(super) writer: Arc<Writer>,
}

impl PeerHandler<TypeConfig> for Handler {
    fn raft(&self) -> &Raft {
        &self.raft
    }

    async fn client_write(&self, _from: u64, req: Proposal) -> Result<Response, ForwardError> {
        self.writer.propose_local(req).await
    }

    async fn query(&self, from: u64, q: Vec<u8>) -> Result<Vec<u8>, ForwardError> {
        let op: ClusterOp = serde_json::from_slice(&q)
            .map_err(|e| ForwardError::Rejected(format!("bad cluster operation: {e}")))?;
        let leader = self.raft.metrics().borrow().current_leader;
        if leader != Some(self.raft.metrics().borrow().id) {
            return Err(ForwardError::NotLeader { leader });
        }
        tracing::info!(from, ?op, "membership change forwarded by a peer");
        membership::execute(&self.raft, &op)
            .await
            .map_err(ForwardError::Rejected)?;
        Ok(Vec::new())
    }
}
