//! Heap bytes per binding held by the state machine, measured with a counting global
//! allocator (the target is at most 120 bytes per binding at 1,000,000 bindings with
//! 16–24 byte keys). Run with `--nocapture` to see the figure.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use holdfast_table::StickTable;
use holdfast_table::model::{Bind, Command, NodeBatch, Proposal};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
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

/// Builds a table of `n` bindings (20-byte keys, three servers, one-hour ttl, binds
/// arriving over time in batches of 1000) and returns heap bytes per binding.
fn bytes_per_binding(n: usize) -> f64 {
    let before = LIVE.load(Ordering::Relaxed);
    let mut table = StickTable::new();
    table.set_change_tracking(false);
    let servers = ["s1", "s2", "s3"];
    let mut i = 0usize;
    while i < n {
        let binds: Vec<Bind> = (i..(i + 1000).min(n))
            .map(|k| Bind {
                backend: "app".into(),
                key: format!("sess-{k:015}").into_bytes(),
                server: servers[k % 3].into(),
                ttl: 3_600_000,
                replaces: None,
                maxlife: None,
            })
            .collect();
        i += binds.len();
        table.apply(&Proposal {
            now: 1_000 + i as u64,
            command: Command::Batch(NodeBatch {
                node: 1,
                binds,
                touches: vec![],
                watermark: 0,
                applied: 0,
                ends: Vec::new(),
                promises: None,
            }),
        });
    }
    assert_eq!(table.len(), n);
    let bytes = LIVE.load(Ordering::Relaxed) - before;
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
