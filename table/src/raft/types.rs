//! The openraft type configuration for holdfast: log entries carry a [`Proposal`], applying
//! one yields a [`Response`], nodes are `u64` ids with their peer address. This is the port
//! boundary for a future move to openraft 0.10.

use crate::model::{Proposal, Response};

openraft::declare_raft_types!(
    /// The Raft type configuration of the holdfast stick table.
    pub TypeConfig:
        D = Proposal,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
);

/// The Raft instance replicating the stick table.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry of the stick table's log.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id (term, leader, index).
pub type LogId = openraft::LogId<u64>;
/// Storage error as openraft wants it.
pub type StorageError = openraft::StorageError<u64>;
/// A snapshot of the stick table as openraft moves it.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// Metadata of a snapshot.
pub type SnapshotMeta = openraft::SnapshotMeta<u64, openraft::BasicNode>;
/// The last applied membership as stored by the state machine.
pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;
