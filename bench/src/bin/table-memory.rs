//! Memory per binding of the stick table at 1,000,000 bindings (or as many as asked): bytes
//! requested from the allocator (counted) and the process's resident growth (RSS), plus a
//! snapshot's encoded size. The table is the node's only copy: the data plane's read view
//! reads it in place.
//!
//! Run: `cargo run --release -p holdfast-bench --bin table-memory [-- BINDINGS]`

use holdfast::admin::resident_bytes;
use holdfast_table::StickTable;
use holdfast_table::measure::{Counting, live_bytes, session_proposals};
use holdfast_table::view::ReadView;

#[global_allocator]
static ALLOC: Counting = Counting;

fn per_binding(label: &str, bytes: i64, n: usize) {
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

    let (requested, resident) = (live_bytes(), resident_bytes());
    let view = ReadView::new();
    let mut table = StickTable::new();
    table.set_change_tracking(false);
    for p in session_proposals(n) {
        table.apply(&p);
    }
    view.attach(table.reader());
    assert_eq!(table.len(), n);
    let probe = format!("sess-{:015}", n / 2);
    assert!(
        view.lookup("app", probe.as_bytes()).is_some(),
        "the view reads the table"
    );
    per_binding(
        "table + read view, requested",
        (live_bytes() - requested) as i64,
        n,
    );
    per_binding(
        "table + read view, resident",
        resident_bytes() as i64 - resident as i64,
        n,
    );
    let mut encoded = CountingWriter(0);
    table
        .encode_snapshot_into(&mut encoded)
        .expect("counting cannot fail");
    per_binding("snapshot encoding", encoded.0 as i64, n);
}

/// Counts the bytes written to it.
struct CountingWriter(u64);

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
