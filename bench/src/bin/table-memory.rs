//! Heap bytes per binding of the stick table's state machine (and of the node-local read
//! view) at 1,000,000 bindings, measured with a counting global allocator.
//!
//! Run: `cargo run --release -p holdfast-bench --bin table-memory [-- BINDINGS]`

use holdfast_table::StickTable;
use holdfast_table::measure::{Counting, live_bytes, session_proposals};
use holdfast_table::view::ReadView;

#[global_allocator]
static ALLOC: Counting = Counting;

fn per_binding(label: &str, bytes: isize, n: usize) {
    println!(
        "{label}: {bytes} bytes, {:.1} bytes per binding",
        bytes as f64 / n as f64
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    println!("bindings: {n}");

    // The replicated state machine alone (no change feed).
    let baseline = live_bytes();
    let mut table = StickTable::new();
    table.set_change_tracking(false);
    for p in session_proposals(n) {
        table.apply(&p);
    }
    assert_eq!(table.len(), n);
    per_binding("state machine", live_bytes() - baseline, n);
    let snapshot = table.encode_snapshot();
    println!(
        "snapshot:      {} bytes, {:.1} bytes per binding",
        snapshot.len(),
        snapshot.len() as f64 / n as f64
    );
    drop(snapshot);
    drop(table);

    // The node-local read view the data plane reads, fed by the change stream.
    let baseline = live_bytes();
    let view = ReadView::new();
    let mut table = StickTable::new();
    for p in session_proposals(n) {
        table.apply(&p);
        view.apply(table.take_changes());
    }
    drop(table);
    assert_eq!(view.len(), n);
    per_binding("read view", live_bytes() - baseline, n);
}
