//! The openraft state-machine adapter: feeds committed entries to the pure [`StickTable`],
//! keeps the last applied log id and membership, builds, persists and installs snapshots
//! (encoded off the async runtime from a copy taken in a size-independent moment), and
//! keeps the node-local [`ReadView`] reading the live table.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use parking_lot::Mutex;

use crate::model::{Command, NodeId, Proposal, Response};
use crate::raft::snapshot_file::{Loaded, SnapshotFile};
use crate::raft::types::TypeConfig;
use crate::raft::types::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership};
use crate::state::StickTable;
use crate::view::{ReadView, ServerStates};

/// Everything the adapter owns, shared with the node for reads (status, metrics, admin).
pub struct SharedState {
    table: Mutex<StickTable>,
    applied: Mutex<(Option<LogId>, StoredMembership)>,
    /// The metadata of the snapshot on disk.
    snapshot: Mutex<Option<SnapshotMeta>>,
    view: Arc<ReadView>,
    /// The last applied log index whose effects the read view shows.
    visible: AtomicU64,
    /// Binds, touches, ends and other commands applied since the last snapshot.
    since_snapshot: AtomicU64,
    /// Bindings in the last snapshot.
    snapshot_bindings: AtomicU64,
}

impl SharedState {
    /// Runs `f` with the table locked. For operator reads, never for the request path.
    pub fn with_table<T>(&self, f: impl FnOnce(&StickTable) -> T) -> T {
        f(&self.table.lock())
    }

    /// The last applied log id.
    pub fn applied(&self) -> Option<LogId> {
        self.applied.lock().0
    }

    /// The data plane's read view.
    pub fn view(&self) -> &Arc<ReadView> {
        &self.view
    }

    /// The last log index applied *and* published to the read view: every request the
    /// data plane routes from now on sees at least the state after this entry. A node's
    /// batch reports it next to its watermark.
    pub fn visible_index(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// Whether a snapshot is due: the operations applied since the last one outweigh the
    /// bindings it holds (and number at least `at_least`). Building one costs a pass over
    /// the table, so this keeps the cost per applied operation constant as it grows.
    pub fn snapshot_due(&self, at_least: u64) -> bool {
        let since = self.since_snapshot.load(Ordering::Relaxed);
        since >= at_least.max(self.snapshot_bindings.load(Ordering::Relaxed))
    }

    /// Pushes the server list to the read view, and a new reader when the table learned a
    /// name.
    fn publish(&self, table: &StickTable) {
        if self.view.names() != table.names() {
            self.view.attach(table.reader());
        }
        self.view.publish_states(ServerStates {
            servers: table.servers(),
            now: table.now(),
        });
        if let Some(applied) = self.applied.lock().0 {
            self.visible.fetch_max(applied.index, Ordering::Release);
        }
    }

    /// Replaces the table (restore or snapshot install); the view swaps to it whole.
    fn replace(&self, mut table: StickTable, applied: (Option<LogId>, StoredMembership)) {
        table.set_change_tracking(false);
        self.snapshot_bindings
            .store(table.len() as u64, Ordering::Relaxed);
        self.since_snapshot.store(0, Ordering::Relaxed);
        let mut current = self.table.lock();
        *current = table;
        *self.applied.lock() = applied;
        self.view.attach(current.reader());
        self.publish(&current);
    }
}

/// The state machine openraft drives. Clone-cheap handles share one [`SharedState`].
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<SharedState>,
    file: SnapshotFile,
}

/// Why the state machine could not be restored from its data directory.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The snapshot file exists but could not be read.
    #[error("cannot read snapshot {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The snapshot file is not a valid snapshot.
    #[error("snapshot {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl StateMachineStore {
    /// Opens the state machine in `dir`, restoring the last persisted snapshot if any.
    /// Entries after the snapshot are replayed by openraft from the log.
    pub fn open(dir: &Path, view: Arc<ReadView>) -> Result<StateMachineStore, RestoreError> {
        use crate::raft::snapshot_file::ReadError;
        let file = SnapshotFile::in_dir(dir);
        let path = file.path().display().to_string();
        let loaded = SnapshotFile::read(file.path()).map_err(|e| match e {
            ReadError::Io(source) => RestoreError::Read {
                path: path.clone(),
                source,
            },
            ReadError::Corrupt(reason) => RestoreError::Corrupt {
                path: path.clone(),
                reason,
            },
        })?;
        let shared = Arc::new(SharedState {
            table: Mutex::new(StickTable::new()),
            applied: Mutex::new((None, StoredMembership::default())),
            snapshot: Mutex::new(None),
            view,
            visible: AtomicU64::new(0),
            since_snapshot: AtomicU64::new(0),
            snapshot_bindings: AtomicU64::new(0),
        });
        match loaded {
            Some(Loaded { meta, table }) => {
                let applied = (meta.last_log_id, meta.last_membership.clone());
                *shared.snapshot.lock() = Some(meta);
                shared.replace(table, applied);
            }
            None => shared.replace(StickTable::new(), (None, StoredMembership::default())),
        }
        Ok(StateMachineStore { shared, file })
    }

    /// The state shared with the node.
    pub fn shared(&self) -> &Arc<SharedState> {
        &self.shared
    }

    /// An error naming the snapshot file, for the fail-stop message.
    fn named(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(
            e.kind(),
            format!("snapshot {}: {e}", self.file.path().display()),
        )
    }

    /// The snapshot on disk, opened for openraft to read.
    async fn open_current(&self, meta: SnapshotMeta) -> Result<Snapshot, StorageError> {
        let file = tokio::fs::File::open(self.file.path())
            .await
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &self.named(e)))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

/// The members whose watermarks the release rule waits for: the voters. A learner is
/// not ready and serves no clients (`/readyz`), so it never holds a release; it starts
/// counting when it is promoted.
fn members_of(membership: &StoredMembership) -> std::collections::BTreeSet<NodeId> {
    membership.membership().voter_ids().collect()
}

/// How much an entry adds to the log a snapshot replaces: one per bind, touch and end.
fn weight(proposal: &Proposal) -> u64 {
    match &proposal.command {
        Command::Batch(b) => 1 + (b.binds.len() + b.touches.len() + b.ends.len()) as u64,
        _ => 1,
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (frozen, (last_log_id, last_membership), since) = {
            // The copy costs a pointer per shard; applied is read under the same lock.
            let table = self.shared.table.lock();
            let applied = self.shared.applied.lock().clone();
            let since = self.shared.since_snapshot.load(Ordering::Relaxed);
            (table.frozen_copy(), applied, since)
        };
        let bindings = frozen.len();
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{bindings}", id.leader_id, id.index),
            None => format!("empty-{bindings}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let file = self.file.clone();
        let written = {
            let meta = meta.clone();
            // Off the runtime and below the data plane's priority: nothing waits for it.
            super::background::run("hf-snapshot", move || file.write(&meta, &frozen))
                .await
                .and_then(|r| r)
        };
        let bytes = written
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &self.named(e)))?;
        tracing::info!(bindings, bytes, index = ?last_log_id.map(|l| l.index), "snapshot written");
        self.shared
            .since_snapshot
            .fetch_sub(since, Ordering::Relaxed);
        self.shared
            .snapshot_bindings
            .store(bindings as u64, Ordering::Relaxed);
        *self.shared.snapshot.lock() = Some(meta.clone());
        self.open_current(meta).await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok(self.shared.applied.lock().clone())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut table = self.shared.table.lock();
        let mut responses = Vec::new();
        let mut weight_sum = 0;
        for entry in entries {
            table.note_index(entry.log_id.index);
            let response = match &entry.payload {
                EntryPayload::Blank => Response::Empty,
                EntryPayload::Normal(proposal) => {
                    weight_sum += weight(proposal);
                    table.apply(proposal)
                }
                EntryPayload::Membership(m) => {
                    let stored = StoredMembership::new(Some(entry.log_id), m.clone());
                    table.set_members(&members_of(&stored));
                    self.shared.applied.lock().1 = stored;
                    Response::Empty
                }
            };
            self.shared.applied.lock().0 = Some(entry.log_id);
            responses.push(response);
        }
        self.shared
            .since_snapshot
            .fetch_add(weight_sum, Ordering::Relaxed);
        self.shared.publish(&table);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let path = self.file.receiving();
        // Read back by `install_snapshot`: opened for both.
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &self.named(e)))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let fail = |e: std::io::Error| StorageIOError::read_snapshot(Some(meta.signature()), &e);
        let mut snapshot = snapshot;
        let mut bytes = Vec::new();
        snapshot.rewind().await.map_err(|e| fail(self.named(e)))?;
        snapshot
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| fail(self.named(e)))?;
        drop(snapshot);
        let _ = std::fs::remove_file(self.file.receiving());
        let file = self.file.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let loaded = SnapshotFile::parse(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            file.write_bytes(&bytes)?;
            Ok::<_, std::io::Error>(loaded)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &self.named(e)))?;
        *self.shared.snapshot.lock() = Some(meta.clone());
        self.shared.replace(
            loaded.table,
            (meta.last_log_id, meta.last_membership.clone()),
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let meta = self.shared.snapshot.lock().clone();
        match meta {
            Some(meta) => self.open_current(meta).await.map(Some),
            None => Ok(None),
        }
    }
}
