//! Minimal in-memory openraft storage (v2 API) for tests: a BTreeMap log store and a
//! key/value state machine with snapshots encoded through the crate's codec.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

use holdfast_peer_proto::codec;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership, Vote,
};

use crate::common::{Put, PutResp, TC, TestNode};

type Nid = u64;

#[derive(Default)]
struct LogInner {
    last_purged: Option<LogId<Nid>>,
    log: BTreeMap<u64, Entry<TC>>,
    committed: Option<LogId<Nid>>,
    vote: Option<Vote<Nid>>,
}

/// In-memory Raft log.
#[derive(Clone, Default)]
pub struct LogStore(Arc<Mutex<LogInner>>);

impl LogStore {
    fn with<R>(&self, f: impl FnOnce(&mut LogInner) -> R) -> R {
        f(&mut self.0.lock().expect("log lock"))
    }
}

impl RaftLogReader<TC> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TC>>, StorageError<Nid>> {
        Ok(self.with(|l| l.log.range(range).map(|(_, e)| e.clone()).collect()))
    }
}

impl RaftLogStorage<TC> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TC>, StorageError<Nid>> {
        Ok(self.with(|l| {
            let last = l
                .log
                .values()
                .next_back()
                .map(|e| e.log_id)
                .or(l.last_purged);
            LogState {
                last_purged_log_id: l.last_purged,
                last_log_id: last,
            }
        }))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<Nid>) -> Result<(), StorageError<Nid>> {
        self.with(|l| l.vote = Some(*vote));
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<Nid>>, StorageError<Nid>> {
        Ok(self.with(|l| l.vote))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<Nid>>,
    ) -> Result<(), StorageError<Nid>> {
        self.with(|l| l.committed = committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<Nid>>, StorageError<Nid>> {
        Ok(self.with(|l| l.committed))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TC>,
    ) -> Result<(), StorageError<Nid>>
    where
        I: IntoIterator<Item = Entry<TC>> + Send,
        I::IntoIter: Send,
    {
        self.with(|l| {
            for e in entries {
                l.log.insert(e.log_id.index, e);
            }
        });
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<Nid>) -> Result<(), StorageError<Nid>> {
        self.with(|l| l.log.retain(|i, _| *i < log_id.index));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<Nid>) -> Result<(), StorageError<Nid>> {
        self.with(|l| {
            l.log.retain(|i, _| *i > log_id.index);
            l.last_purged = Some(log_id);
        });
        Ok(())
    }
}

#[derive(Default)]
struct SmInner {
    last_applied: Option<LogId<Nid>>,
    membership: StoredMembership<Nid, TestNode>,
    data: BTreeMap<String, String>,
    snapshot: Option<(SnapshotMeta<Nid, TestNode>, Vec<u8>)>,
    snapshots_built: u64,
}

/// In-memory key/value state machine; cloning shares the state (tests read `data`).
#[derive(Clone, Default)]
pub struct StateMachine(Arc<Mutex<SmInner>>);

impl StateMachine {
    /// Current contents.
    pub fn data(&self) -> BTreeMap<String, String> {
        self.0.lock().expect("sm lock").data.clone()
    }
}

impl RaftSnapshotBuilder<TC> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TC>, StorageError<Nid>> {
        let mut sm = self.0.lock().expect("sm lock");
        let bytes = codec::encode(&sm.data).map_err(|e| StorageIOError::read_state_machine(&e))?;
        sm.snapshots_built += 1;
        let meta = SnapshotMeta {
            last_log_id: sm.last_applied,
            last_membership: sm.membership.clone(),
            snapshot_id: format!("{:?}-{}", sm.last_applied, sm.snapshots_built),
        };
        sm.snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TC> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<Nid>>, StoredMembership<Nid, TestNode>), StorageError<Nid>> {
        let sm = self.0.lock().expect("sm lock");
        Ok((sm.last_applied, sm.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<PutResp>, StorageError<Nid>>
    where
        I: IntoIterator<Item = Entry<TC>> + Send,
        I::IntoIter: Send,
    {
        let mut sm = self.0.lock().expect("sm lock");
        let mut out = Vec::new();
        for e in entries {
            sm.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => out.push(PutResp::default()),
                EntryPayload::Normal(Put { key, value }) => {
                    let previous = sm.data.insert(key, value);
                    out.push(PutResp {
                        previous,
                        index: e.log_id.index,
                    });
                }
                EntryPayload::Membership(m) => {
                    sm.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(PutResp::default());
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<Nid>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<Nid, TestNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<Nid>> {
        let bytes = snapshot.into_inner();
        let data = codec::decode(&bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let mut sm = self.0.lock().expect("sm lock");
        sm.data = data;
        sm.last_applied = meta.last_log_id;
        sm.membership = meta.last_membership.clone();
        sm.snapshot = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TC>>, StorageError<Nid>> {
        let sm = self.0.lock().expect("sm lock");
        Ok(sm.snapshot.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(bytes.clone())),
        }))
    }
}
