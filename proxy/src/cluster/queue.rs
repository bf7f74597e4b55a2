//! The data plane's side of replication: a bounded, never-blocking queue of binds and
//! touches. A full queue drops the record and counts it; a request never waits here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use holdfast_table::model::{Bind, SessionEnd, Touch};
use tokio::sync::mpsc;

/// One thing the data plane learned from a request.
#[derive(Clone, Debug)]
pub enum Record {
    /// A new client was bound to a server.
    Bind(Bind),
    /// A request matched a binding.
    Touch(Touch),
    /// The application ended a session.
    End(SessionEnd),
}

/// Counters of the queue, shared with metrics.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Records accepted.
    pub queued: AtomicU64,
    /// Records dropped because the queue was full.
    pub overflow: AtomicU64,
}

/// Cheap-to-clone handle the data plane pushes records into.
#[derive(Clone)]
pub struct BindQueue {
    tx: mpsc::Sender<Record>,
    stats: Arc<QueueStats>,
}

impl BindQueue {
    /// A queue holding at most `limit` records, and the receiving end for the flusher.
    pub fn new(limit: usize) -> (BindQueue, mpsc::Receiver<Record>) {
        let (tx, rx) = mpsc::channel(limit.max(1));
        let queue = BindQueue {
            tx,
            stats: Arc::new(QueueStats::default()),
        };
        (queue, rx)
    }

    /// Queues a new binding; never waits.
    pub fn bind(&self, bind: Bind) {
        self.push(Record::Bind(bind));
    }

    /// Queues a touch of an existing binding; never waits.
    pub fn touch(&self, touch: Touch) {
        self.push(Record::Touch(touch));
    }

    /// Queues the end of a session (the binding goes at once).
    pub fn end(&self, end: SessionEnd) {
        self.push(Record::End(end));
    }

    /// The queue's counters.
    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    fn push(&self, record: Record) {
        match self.tx.try_send(record) {
            Ok(()) => self.stats.queued.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.stats.overflow.fetch_add(1, Ordering::Relaxed),
        };
    }
}
