//! The data plane's side of replication: a bounded, never-blocking queue of binds and
//! touches. A request never waits here: a bind or touch that does not fit is counted and
//! becomes a promise for its server instead (DESIGN.md, Promises), so it is not lost to a
//! drain: the server's release waits a ttl past it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use holdfast_table::model::{Bind, SessionEnd, Touch};
use tokio::sync::mpsc;

use super::OpenSet;
use super::clock::now_ms;

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
    /// Where a record that does not fit becomes a promise.
    open: Arc<OpenSet>,
}

impl BindQueue {
    /// A queue holding at most `limit` records, and the receiving end for the flusher;
    /// overflow is promised in `open`.
    pub fn new(limit: usize, open: Arc<OpenSet>) -> (BindQueue, mpsc::Receiver<Record>) {
        let (tx, rx) = mpsc::channel(limit.max(1));
        let queue = BindQueue {
            tx,
            stats: Arc::new(QueueStats::default()),
            open,
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
        let Err(e) = self.tx.try_send(record) else {
            self.stats.queued.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.stats.overflow.fetch_add(1, Ordering::Relaxed);
        let (backend, server, ttl) = match e.into_inner() {
            Record::Bind(b) => (b.backend, b.server, b.ttl),
            Record::Touch(t) => (t.backend, t.server, t.ttl),
            // The binding lives to its expiry: later than the end, never earlier.
            Record::End(_) => return,
        };
        let until = now_ms().saturating_add(ttl);
        self.open.promise(backend.into(), server.into(), until);
    }
}
