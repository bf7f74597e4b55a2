//! Heap bytes per binding of the stick table's state machine (and of the node-local read
//! view) at 1,000,000 bindings, measured with a counting global allocator.
//!
//! Run: `cargo run --release -p holdfast-bench --bin table-memory [-- BINDINGS]`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use holdfast_table::StickTable;
use holdfast_table::model::{Bind, Command, NodeBatch, Proposal};
use holdfast_table::view::ReadView;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// `n` binds of 20-byte session ids over three servers, in proposals of 1000.
fn proposals(n: usize) -> impl Iterator<Item = Proposal> {
    let servers = ["s1", "s2", "s3"];
    (0..n).step_by(1000).map(move |start| {
        let binds: Vec<Bind> = (start..(start + 1000).min(n))
            .map(|k| Bind {
                backend: "app".into(),
                // A 20-byte session id, like a PHPSESSID or holdfast's own cookie id.
                key: format!("sess-{k:015}").into_bytes(),
                server: servers[k % 3].into(),
                ttl: 3_600_000,
                replaces: None,
                maxlife: None,
            })
            .collect();
        Proposal {
            now: 1_000 + start as u64,
            command: Command::Batch(NodeBatch {
                node: 1,
                binds,
                touches: vec![],
                watermark: 0,
                applied: 0,
                ends: Vec::new(),
                promises: None,
            }),
        }
    })
}

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
    let baseline = live();
    let mut table = StickTable::new();
    table.set_change_tracking(false);
    for p in proposals(n) {
        table.apply(&p);
    }
    assert_eq!(table.len(), n);
    per_binding("state machine", live() - baseline, n);
    let snapshot = table.encode_snapshot();
    println!(
        "snapshot:      {} bytes, {:.1} bytes per binding",
        snapshot.len(),
        snapshot.len() as f64 / n as f64
    );
    drop(snapshot);
    drop(table);

    // The node-local read view the data plane reads, fed by the change stream.
    let baseline = live();
    let view = ReadView::new();
    let mut table = StickTable::new();
    for p in proposals(n) {
        table.apply(&p);
        view.apply(table.take_changes());
    }
    drop(table);
    assert_eq!(view.len(), n);
    per_binding("read view", live() - baseline, n);
}
