//! Request and response messages exchanged after the handshake: the three openraft RPCs
//! (each response carries the remote `Result` unchanged), forwarded client writes, and
//! opaque application queries.

use openraft::RaftTypeConfig;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, ClientWriteResponse, InstallSnapshotRequest,
    InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::error::ForwardError;

/// One request frame.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub enum PeerRequest<C: RaftTypeConfig> {
    /// Raft AppendEntries (replication and heartbeats).
    AppendEntries(AppendEntriesRequest<C>),
    /// Raft RequestVote.
    Vote(VoteRequest<C::NodeId>),
    /// Raft InstallSnapshot (one chunk).
    InstallSnapshot(InstallSnapshotRequest<C>),
    /// A client write forwarded to (what the sender believes is) the leader.
    ClientWrite(C::D),
    /// An opaque application query (e.g. a read from the leader).
    Query(Vec<u8>),
}

impl<C: RaftTypeConfig> PeerRequest<C> {
    /// Short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerRequest::AppendEntries(_) => "append_entries",
            PeerRequest::Vote(_) => "vote",
            PeerRequest::InstallSnapshot(_) => "install_snapshot",
            PeerRequest::ClientWrite(_) => "client_write",
            PeerRequest::Query(_) => "query",
        }
    }
}

/// One response frame; the variant always matches the request's.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub enum PeerResponse<C: RaftTypeConfig> {
    /// Result of `Raft::append_entries` on the remote node.
    AppendEntries(Result<AppendEntriesResponse<C::NodeId>, RaftError<C::NodeId>>),
    /// Result of `Raft::vote` on the remote node.
    Vote(Result<VoteResponse<C::NodeId>, RaftError<C::NodeId>>),
    /// Result of `Raft::install_snapshot` on the remote node.
    InstallSnapshot(
        Result<InstallSnapshotResponse<C::NodeId>, RaftError<C::NodeId, InstallSnapshotError>>,
    ),
    /// Result of the forwarded client write: its log id and the state machine's answer.
    ClientWrite(Result<ClientWriteResponse<C>, ForwardError>),
    /// Result of the application query.
    Query(Result<Vec<u8>, ForwardError>),
}

impl<C: RaftTypeConfig> PeerResponse<C> {
    /// Short name for logs and protocol errors.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerResponse::AppendEntries(_) => "append_entries",
            PeerResponse::Vote(_) => "vote",
            PeerResponse::InstallSnapshot(_) => "install_snapshot",
            PeerResponse::ClientWrite(_) => "client_write",
            PeerResponse::Query(_) => "query",
        }
    }
}
