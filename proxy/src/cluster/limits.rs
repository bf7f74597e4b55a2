//! The table's bound follows the leader's configuration: while this node leads, it
//! proposes its `max_bindings` whenever the replicated one differs (at formation, after a
//! reload, after a leader change), so every replica evicts at the same size.

use std::sync::Weak;
use std::time::Duration;

use holdfast_table::model::{Command, TableLimits};

use super::Node;
use super::writer::{Leader, leader_of};

/// How often the replicated bound is compared with this node's configuration.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Runs until the node is dropped.
pub async fn keep(node: Weak<Node>) {
    let mut ticker = tokio::time::interval(CHECK_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(node) = node.upgrade() else {
            return;
        };
        if !matches!(leader_of(node.raft(), node.id()), Leader::Me) {
            continue;
        }
        let wanted = TableLimits {
            max_bindings: node.config().cluster.max_bindings,
        };
        if node.shared().with_table(|t| t.limits()) == wanted {
            continue;
        }
        match node.writer().write(Command::SetLimits(wanted)).await {
            Ok(_) => tracing::info!(max_bindings = wanted.max_bindings, "table bound set"),
            Err(e) => tracing::debug!(error = %e, "table bound not set"),
        }
    }
}
