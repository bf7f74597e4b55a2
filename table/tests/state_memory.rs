//! Heap bytes per binding held by the state machine, measured with a counting global
//! allocator (the target is at most 120 bytes per binding at 1,000,000 bindings with
//! 16–24 byte keys). Run with `--nocapture` to see the figure.

use holdfast_table::StickTable;
use holdfast_table::measure::{Counting, live_bytes, session_proposals};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Builds a table of `n` bindings (20-byte keys, three servers, one-hour ttl, binds
/// arriving over time in batches of 1000) and returns heap bytes per binding.
fn bytes_per_binding(n: usize) -> f64 {
    let before = live_bytes();
    let mut table = StickTable::new();
    table.set_change_tracking(false);
    for p in session_proposals(n) {
        table.apply(&p);
    }
    assert_eq!(table.len(), n);
    let bytes = live_bytes() - before;
    let per = bytes as f64 / n as f64;
    println!("{n} bindings: {bytes} bytes, {per:.1} bytes per binding");
    drop(table);
    per
}

/// One test only: the counter is process-wide, so concurrent tests would disturb it.
#[test]
fn memory_per_binding_at_one_million() {
    let per = bytes_per_binding(1_000_000);
    assert!(per <= 120.0, "{per:.1} bytes per binding");
}
