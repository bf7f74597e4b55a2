//! Turns the queue into Raft proposals: binds go out at once with group commit (one
//! proposal in flight, whatever arrived meanwhile rides in the next), touches are coalesced
//! per key and flushed per interval, and every batch carries this node's watermark.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use holdfast_table::model::{
    AdminState, Bind, Command, NodeBatch, NodeId, Promise, SessionEnd, Touch,
};
use holdfast_table::raft::SharedState;
use tokio::sync::mpsc;

use super::clock::now_ms;
use super::open::{Activity, OpenSet};
use super::queue::Record;
use super::writer::Writer;

/// An idle node still reports its watermark this often, and at every flush while any
/// server is draining (the release rule waits on it).
const IDLE_WATERMARK_EVERY: Duration = Duration::from_secs(5);

/// Counters of the flusher, shared with metrics.
#[derive(Debug, Default)]
pub struct FlushStats {
    /// Batches committed.
    pub batches: AtomicU64,
    /// Binds committed.
    pub binds: AtomicU64,
    /// Touches committed.
    pub touches: AtomicU64,
    /// Batches that failed to commit (and were kept for the next try).
    pub failures: AtomicU64,
    /// Records dropped because the pending set was over its limit while writes failed.
    pub dropped: AtomicU64,
}

/// Pending records of the next batch.
#[derive(Default)]
struct Pending {
    binds: Vec<Bind>,
    touches: HashMap<(String, Vec<u8>), Touch>,
    ends: Vec<SessionEnd>,
}

impl Pending {
    fn add(&mut self, record: Record) {
        match record {
            Record::Bind(b) => self.binds.push(b),
            Record::Touch(t) => {
                self.touches.insert((t.backend.clone(), t.key.clone()), t);
            }
            Record::End(e) => self.ends.push(e),
        }
    }

    fn len(&self) -> usize {
        self.binds.len() + self.touches.len() + self.ends.len()
    }

    /// Open and recently closed exchanges: touches of their bindings join the pending
    /// ones; the node's promises (one per server) are returned, sorted.
    fn add_activity(&mut self, activity: Activity) -> Vec<Promise> {
        for o in activity.touches {
            let Some(key) = o.key else { continue };
            self.add(Record::Touch(Touch {
                backend: o.backend.to_string(),
                key,
                server: o.server.to_string(),
                ttl: o.ttl,
                maxlife: None,
            }));
        }
        let mut promises: Vec<Promise> = activity
            .promises
            .into_iter()
            .map(|((backend, server), until)| Promise {
                backend: backend.to_string(),
                server: server.to_string(),
                until,
            })
            .collect();
        promises.sort_by(|a, b| (&a.backend, &a.server).cmp(&(&b.backend, &b.server)));
        promises
    }

    fn take(
        &mut self,
        node: NodeId,
        watermark: u64,
        applied: u64,
        promises: Vec<Promise>,
    ) -> NodeBatch {
        let mut touches: Vec<Touch> = self.touches.drain().map(|(_, t)| t).collect();
        touches.sort_by(|a, b| (&a.backend, &a.key).cmp(&(&b.backend, &b.key)));
        NodeBatch {
            node,
            binds: std::mem::take(&mut self.binds),
            touches,
            watermark,
            applied,
            ends: std::mem::take(&mut self.ends),
            promises: Some(promises),
        }
    }

    fn restore(&mut self, batch: NodeBatch, limit: usize, stats: &FlushStats) {
        // Promises are not kept: the next batch reports the node's current ones.
        for b in batch.binds {
            self.keep(Record::Bind(b), limit, stats);
        }
        for t in batch.touches {
            self.keep(Record::Touch(t), limit, stats);
        }
        for e in batch.ends {
            self.keep(Record::End(e), limit, stats);
        }
    }

    fn keep(&mut self, record: Record, limit: usize, stats: &FlushStats) {
        if self.len() < limit {
            self.add(record);
        } else {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the flusher works with.
pub struct Flusher {
    /// This node.
    pub node: NodeId,
    /// Commits batches.
    pub writer: Arc<Writer>,
    /// The applied state (visible index, server states).
    pub shared: Arc<SharedState>,
    /// Exchanges open from this node.
    pub open: Arc<OpenSet>,
    /// Touches are flushed this often.
    pub interval: Duration,
    /// Pending records kept at most while writes fail.
    pub limit: usize,
    /// Counters.
    pub stats: Arc<FlushStats>,
}

impl Flusher {
    /// Runs the flusher until the queue's senders are all gone.
    pub async fn run(self, mut rx: mpsc::Receiver<Record>) {
        let Flusher {
            node,
            writer,
            shared,
            open,
            interval,
            limit,
            stats,
        } = self;
        let mut pending = Pending::default();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sent = Instant::now();
        loop {
            let due = tokio::select! {
                record = rx.recv() => match record {
                    Some(r) => { pending.add(r); false }
                    None => return,
                },
                _ = ticker.tick() => true,
            };
            // The index first, then the time: every request after `applied` was visible
            // saw the table as of that entry, and everything served before `watermark` is
            // already in the channel (drained just below) or in the open set.
            let applied = shared.visible_index();
            let watermark = now_ms();
            while let Ok(r) = rx.try_recv() {
                pending.keep(r, limit, &stats);
            }
            let draining = shared
                .view()
                .states()
                .servers
                .iter()
                .any(|s| matches!(s.admin_state, AdminState::Drain { .. }));
            let send = !pending.binds.is_empty()
                || (due
                    && (pending.len() > 0
                        || draining
                        || !open.is_quiet()
                        || last_sent.elapsed() >= IDLE_WATERMARK_EVERY));
            if !send {
                continue;
            }
            // Every batch carries what is open now, what closed since the last one, and
            // all of this node's promises.
            let promises = pending.add_activity(open.activity());
            let batch = Arc::new(pending.take(node, watermark, applied, promises));
            let (binds, touches) = (batch.binds.len() as u64, batch.touches.len() as u64);
            match writer.write(Command::Batch(batch.clone())).await {
                Ok(_) => {
                    last_sent = Instant::now();
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    stats.binds.fetch_add(binds, Ordering::Relaxed);
                    stats.touches.fetch_add(touches, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, binds, touches, "batch not committed, keeping it");
                    pending.restore(Arc::unwrap_or_clone(batch), limit, &stats);
                    // Back off a little so a cluster without quorum is not hammered.
                    tokio::time::sleep(interval).await;
                }
            }
        }
    }
}
