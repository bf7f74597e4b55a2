//! openraft's own storage conformance suite run against the durable redb log store and the
//! stick-table state machine, each test on a fresh data directory.

use std::sync::Arc;

use holdfast_table::raft::{LogStore, StateMachineStore, TypeConfig};
use holdfast_table::view::ReadView;
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
        let log = LogStore::open(&dir.path().join("log.redb"))
            .map_err(|e| openraft::StorageIOError::write(&e))?;
        let sm = StateMachineStore::open(dir.path(), Arc::new(ReadView::new()))
            .map_err(|e| openraft::StorageIOError::write(&e))?;
        Ok((dir, log, sm))
    }
}

/// `Suite::test_all` starts its own runtime, so this test is a plain one.
#[test]
fn redb_store_passes_openraft_suite() {
    Suite::test_all(Builder).expect("openraft storage suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vote_and_purge_point_survive_reopen() {
    use openraft::storage::RaftLogStorage;
    use openraft::{CommittedLeaderId, LogId, Vote};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    let purged = LogId::new(CommittedLeaderId::new(2, 1), 5);
    {
        let mut log = LogStore::open(&path).unwrap();
        log.save_vote(&Vote::new(3, 1)).await.unwrap();
        log.purge(purged).await.unwrap();
    }
    let mut log = LogStore::open(&path).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(purged));
    assert_eq!(state.last_log_id, Some(purged));
}

#[test]
fn corrupt_snapshot_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("snapshot.bin"), b"\x01garbage").unwrap();
    let err = StateMachineStore::open(dir.path(), Arc::new(ReadView::new()))
        .err()
        .expect("a corrupt snapshot must not load");
    assert!(err.to_string().contains("snapshot.bin"), "{err}");
    assert!(err.to_string().contains("corrupt"), "{err}");
}
