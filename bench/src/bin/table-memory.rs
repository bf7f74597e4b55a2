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

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let servers = ["s1", "s2", "s3"];
    let before = live();
    let mut table = StickTable::new();
    let view = ReadView::new();
    let mut view_bytes = 0isize;
    let mut i = 0usize;
    while i < n {
        let binds: Vec<Bind> = (i..(i + 1000).min(n))
            .map(|k| Bind {
                backend: "app".into(),
                // A 20-byte session id, like a PHPSESSID or holdfast's own cookie id.
                key: format!("sess-{k:015}").into_bytes(),
                server: servers[k % 3].into(),
                ttl: 3_600_000,
            })
            .collect();
        i += binds.len();
        let proposal = Proposal {
            now: 1_000 + i as u64,
            command: Command::Batch(NodeBatch {
                node: 1,
                binds,
                touches: vec![],
                watermark: 0,
            }),
        };
        table.apply(&proposal);
        drop(proposal);
        let changes = table.take_changes();
        let v0 = live();
        view.apply(changes);
        view_bytes += live() - v0;
    }
    let total = live() - before;
    let table_bytes = total - view_bytes;
    assert_eq!(table.len(), n);
    println!("bindings: {n}");
    println!(
        "state machine: {} bytes total, {:.1} bytes per binding",
        table_bytes,
        table_bytes as f64 / n as f64
    );
    println!(
        "read view:     {} bytes total, {:.1} bytes per binding",
        view_bytes,
        view_bytes as f64 / n as f64
    );
    let snapshot = table.encode_snapshot();
    println!(
        "snapshot:      {} bytes, {:.1} bytes per binding",
        snapshot.len(),
        snapshot.len() as f64 / n as f64
    );
}
