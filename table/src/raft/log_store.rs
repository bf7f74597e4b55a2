//! The durable Raft log, vote and committed index, in one redb file. Each `append` is one
//! write transaction whose commit fsyncs before openraft is told the entries are durable.
//! redb calls block, so writes run on tokio's blocking pool. The newest entries are also
//! kept in memory ([`LogTail`]), where replication and apply read them.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::codec;
use crate::raft::log_tail::LogTail;
use crate::raft::types::{Entry, LogId, StorageError, TypeConfig};

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";
/// Encoded bytes of the newest entries kept in memory: seconds of a loaded node's binds,
/// a bounded few MiB however large its batches.
const TAIL_BUDGET: usize = 8 << 20;

/// Why the log store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// redb could not open or create the file.
    #[error("cannot open raft log {path}: {source}")]
    Database {
        /// The file.
        path: String,
        /// What redb said.
        source: redb::DatabaseError,
    },
    /// The tables could not be created.
    #[error("cannot initialise raft log {path}: {source}")]
    Init {
        /// The file.
        path: String,
        /// What redb said.
        source: redb::Error,
    },
}

/// A read or write of the log that failed, with the file it failed on (a fail-stop
/// message must say which file and what the OS said).
#[derive(Debug, thiserror::Error)]
#[error("raft log {path}: {source}")]
pub struct LogIoError {
    path: Arc<str>,
    #[source]
    source: redb::Error,
}

/// The Raft log store: cheap to clone, every clone shares one database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    path: Arc<str>,
    tail: Arc<parking_lot::Mutex<LogTail>>,
}

impl LogStore {
    /// Opens (or creates) the log at `path`.
    pub fn open(path: &Path) -> Result<LogStore, OpenError> {
        let shown = path.display().to_string();
        let db = Database::create(path).map_err(|source| OpenError::Database {
            path: shown.clone(),
            source,
        })?;
        let init = || -> Result<(), redb::Error> {
            let tx = db.begin_write()?;
            tx.open_table(LOGS)?;
            tx.open_table(META)?;
            tx.commit()?;
            Ok(())
        };
        init().map_err(|source| OpenError::Init {
            path: shown.clone(),
            source,
        })?;
        Ok(LogStore {
            db: Arc::new(db),
            path: shown.into(),
            tail: Arc::new(parking_lot::Mutex::new(LogTail::new(TAIL_BUDGET))),
        })
    }

    fn at(&self, source: redb::Error) -> LogIoError {
        LogIoError {
            path: self.path.clone(),
            source,
        }
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, redb::Error> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(META)?;
        let Some(raw) = table.get(key)? else {
            return Ok(None);
        };
        codec::decode(raw.value())
            .map(Some)
            .map_err(|e| redb::Error::Corrupted(format!("meta {key}: {e}")))
    }

    async fn write_meta<T: serde::Serialize>(
        &self,
        key: &'static str,
        value: &T,
    ) -> Result<(), redb::Error> {
        let bytes =
            codec::encode(value).map_err(|e| redb::Error::Corrupted(format!("meta {key}: {e}")))?;
        self.blocking_write(move |tx| {
            tx.open_table(META)?.insert(key, bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    /// Runs `f` in one write transaction on the blocking pool and commits (fsync).
    async fn blocking_write<F>(&self, f: F) -> Result<(), redb::Error>
    where
        F: FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_write()?;
            f(&tx)?;
            tx.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| redb::Error::Corrupted(format!("log writer task failed: {e}")))?
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, redb::Error> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(LOGS)?;
        let Some((_, raw)) = table.last()? else {
            return Ok(None);
        };
        let entry: Entry = codec::decode(raw.value())
            .map_err(|e| redb::Error::Corrupted(format!("log entry: {e}")))?;
        Ok(Some(entry.log_id))
    }
}

fn bounds_of<RB: RangeBounds<u64>>(range: &RB) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => Some(e.saturating_add(1)),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = bounds_of(&range);
        if let Some(entries) = self.tail.lock().get(start, end) {
            return Ok(entries);
        }
        let read = || -> Result<Vec<Entry>, redb::Error> {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(LOGS)?;
            let iter = match end {
                Some(end) if end <= start => return Ok(Vec::new()),
                Some(end) => table.range(start..end)?,
                None => table.range(start..)?,
            };
            let mut out = Vec::new();
            for item in iter {
                let (_, raw) = item?;
                let entry = codec::decode(raw.value())
                    .map_err(|e| redb::Error::Corrupted(format!("log entry: {e}")))?;
                out.push(entry);
            }
            Ok(out)
        };
        read().map_err(|e| StorageIOError::read_logs(&self.at(e)).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let purged: Option<LogId> = self
            .read_meta(KEY_PURGED)
            .map_err(|e| StorageIOError::read_logs(&self.at(e)))?;
        let last = self
            .last_entry_id()
            .map_err(|e| StorageIOError::read_logs(&self.at(e)))?;
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        self.write_meta(KEY_VOTE, vote)
            .await
            .map_err(|e| StorageIOError::write_vote(&self.at(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.read_meta(KEY_VOTE)
            .map_err(|e| StorageIOError::read_vote(&self.at(e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write_meta(KEY_COMMITTED, &committed)
            .await
            .map_err(|e| StorageIOError::write(&self.at(e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed: Option<Option<LogId>> = self
            .read_meta(KEY_COMMITTED)
            .map_err(|e| StorageIOError::read(&self.at(e)))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        let mut kept = Vec::new();
        for entry in entries {
            let bytes = codec::encode(&entry)
                .map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            let index = entry.log_id.index;
            kept.push((entry, bytes.len()));
            encoded.push((index, bytes));
        }
        // Durable before returning: the commit fsyncs, so the callback can say so at once.
        let result = self
            .blocking_write(move |tx| {
                let mut table = tx.open_table(LOGS)?;
                for (index, bytes) in &encoded {
                    table.insert(*index, bytes.as_slice())?;
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                self.tail.lock().push(kept);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let e = self.at(e);
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let since = log_id.index;
        self.tail.lock().truncate(since);
        self.blocking_write(move |tx| {
            tx.open_table(LOGS)?.retain_in(since.., |_, _| false)?;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&self.at(e)).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = codec::encode(&log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        let upto = log_id.index;
        self.tail.lock().purge(upto);
        self.blocking_write(move |tx| {
            tx.open_table(META)?.insert(KEY_PURGED, bytes.as_slice())?;
            tx.open_table(LOGS)?.retain_in(..=upto, |_, _| false)?;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&self.at(e)).into())
    }
}
