//! When this node takes a snapshot: once the operations applied since the last one
//! outweigh the bindings it held (and number at least `snapshot_every`), so building one (a
//! pass over the table, off the async runtime) costs the same per applied operation at
//! any table size, and the log a restart replays stays about the size of the snapshot.

use std::sync::Arc;
use std::time::Duration;

use holdfast_table::raft::{Raft, SharedState};

/// How often the policy is checked.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Triggers a snapshot whenever one is due; runs until the node stops.
pub async fn run_policy(raft: Raft, shared: Arc<SharedState>, at_least: u64) {
    let mut ticker = tokio::time::interval(CHECK_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if shared.snapshot_due(at_least) {
            // openraft builds one at a time and ignores a trigger while one is building.
            if let Err(e) = raft.trigger().snapshot().await {
                tracing::debug!(error = %e, "snapshot not triggered");
            }
        }
    }
}
