//! The node's wall clock in table units. The only place the node reads the time for the
//! table: the state machine itself never does (DESIGN.md, "Time, expiry and release").

use std::time::{SystemTime, UNIX_EPOCH};

use holdfast_table::model::Millis;

/// Milliseconds since the Unix epoch on this node's clock.
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}
