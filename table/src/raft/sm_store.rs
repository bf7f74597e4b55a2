//! The openraft state-machine adapter: feeds committed entries to the pure [`StickTable`],
//! keeps the last applied log id and membership, builds, persists and installs snapshots,
//! and forwards every change to the node-local [`ReadView`].

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::codec;
use crate::model::{NodeId, Response};
use crate::raft::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::state::StickTable;
use crate::view::{ReadView, ServerStates};

/// Everything the adapter owns, shared with the node for reads (status, metrics, admin).
pub struct SharedState {
    table: Mutex<StickTable>,
    applied: Mutex<(Option<LogId>, StoredMembership)>,
    snapshot: Mutex<Option<StoredSnapshot>>,
    view: Arc<ReadView>,
    /// The last applied log index whose effects the read view shows.
    visible: AtomicU64,
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
}

/// A snapshot as persisted on disk: its metadata and the table's canonical encoding.
#[derive(Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    table: Vec<u8>,
}

/// The state machine openraft drives. Clone-cheap handles share one [`SharedState`].
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<SharedState>,
    snapshot_path: PathBuf,
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
        let snapshot_path = dir.join("snapshot.bin");
        let shown = snapshot_path.display().to_string();
        let stored = match std::fs::read(&snapshot_path) {
            Ok(bytes) => Some(codec::decode::<StoredSnapshot>(&bytes).map_err(|e| {
                RestoreError::Corrupt {
                    path: shown.clone(),
                    reason: e.to_string(),
                }
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(RestoreError::Read {
                    path: shown,
                    source,
                });
            }
        };
        let (table, applied) = match &stored {
            Some(s) => {
                let table =
                    StickTable::decode_snapshot(&s.table).map_err(|e| RestoreError::Corrupt {
                        path: shown.clone(),
                        reason: e.to_string(),
                    })?;
                (table, (s.meta.last_log_id, s.meta.last_membership.clone()))
            }
            None => (StickTable::new(), (None, StoredMembership::default())),
        };
        let shared = Arc::new(SharedState {
            table: Mutex::new(table),
            applied: Mutex::new(applied),
            snapshot: Mutex::new(stored),
            view,
            visible: AtomicU64::new(0),
        });
        shared.rebuild_view();
        Ok(StateMachineStore {
            shared,
            snapshot_path,
        })
    }

    /// The state shared with the node.
    pub fn shared(&self) -> &Arc<SharedState> {
        &self.shared
    }

    /// Writes `stored` durably (temporary file, fsync, rename, fsync of the directory).
    /// An error names the snapshot file, for the fail-stop message.
    fn persist(&self, stored: &StoredSnapshot) -> Result<(), std::io::Error> {
        self.write_snapshot_file(stored).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("snapshot {}: {e}", self.snapshot_path.display()),
            )
        })
    }

    fn write_snapshot_file(&self, stored: &StoredSnapshot) -> Result<(), std::io::Error> {
        let bytes = codec::encode(stored).map_err(std::io::Error::other)?;
        let tmp = self.snapshot_path.with_extension("tmp");
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &self.snapshot_path)?;
        if let Some(dir) = self.snapshot_path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

impl SharedState {
    /// Pushes the table's pending changes and server list to the read view.
    fn publish(&self, table: &mut StickTable) {
        self.view.apply(table.take_changes());
        self.view.publish_states(ServerStates {
            servers: table.servers(),
            now: table.now(),
        });
        if let Some(applied) = self.applied.lock().0 {
            self.visible.fetch_max(applied.index, Ordering::Release);
        }
    }

    /// Rebuilds the read view from scratch (after restore or snapshot install).
    fn rebuild_view(&self) {
        let mut table = self.table.lock();
        table.take_changes();
        self.view.clear();
        let mut changes = Vec::new();
        table.for_each_binding(|backend, key, server, expires_at| {
            changes.push(crate::state::Change::Upsert {
                backend: backend.into(),
                key: key.to_vec(),
                server: server.into(),
                expires_at,
            });
        });
        self.view.apply(changes);
        self.publish(&mut table);
    }
}

/// The members whose watermarks the release rule waits for: the voters. A learner is
/// not ready and serves no clients (`/readyz`), so it never holds a release; it starts
/// counting when it is promoted.
fn members_of(membership: &StoredMembership) -> std::collections::BTreeSet<NodeId> {
    membership.membership().voter_ids().collect()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (table, (last_log_id, last_membership)) = {
            // Hold the table lock while reading applied, so the two agree.
            let table = self.shared.table.lock();
            let applied = self.shared.applied.lock().clone();
            (table.encode_snapshot(), applied)
        };
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, table.len()),
            None => format!("empty-{}", table.len()),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            table: table.clone(),
        };
        self.persist(&stored)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        *self.shared.snapshot.lock() = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(table)),
        })
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
        for entry in entries {
            table.note_index(entry.log_id.index);
            let response = match &entry.payload {
                EntryPayload::Blank => Response::Empty,
                EntryPayload::Normal(proposal) => table.apply(proposal),
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
        self.shared.publish(&mut table);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let table = StickTable::decode_snapshot(&bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            table: bytes,
        };
        self.persist(&stored)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        {
            let mut current = self.shared.table.lock();
            *current = table;
            *self.shared.applied.lock() = (meta.last_log_id, meta.last_membership.clone());
        }
        *self.shared.snapshot.lock() = Some(stored);
        self.shared.rebuild_view();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self.shared.snapshot.lock().as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.table.clone())),
        }))
    }
}
