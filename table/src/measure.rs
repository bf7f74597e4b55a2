//! Aids for measuring the table's memory, shared by the memory test
//! (`tests/state_memory.rs`) and the `table-memory` benchmark: a counting global
//! allocator and the session binds both feed the table. Not part of the table's API.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use crate::model::{Bind, Command, NodeBatch, Proposal};

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// A global allocator that forwards to the system allocator and counts the bytes live.
/// Install it with `#[global_allocator] static ALLOC: Counting = Counting;`, then read
/// [`live_bytes`] before and after building what is measured.
pub struct Counting;

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` through this allocator, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as for `dealloc`; `new` is checked by the caller's contract.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

/// Heap bytes live through [`Counting`] (0 unless it is the global allocator).
pub fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// `n` binds of 20-byte session ids (like a PHPSESSID or holdfast's own cookie id) over
/// three servers with a one-hour ttl, in proposals of 1000 arriving over time.
pub fn session_proposals(n: usize) -> impl Iterator<Item = Proposal> {
    const SERVERS: [&str; 3] = ["s1", "s2", "s3"];
    (0..n).step_by(1000).map(move |start| {
        let binds: Vec<Bind> = (start..(start + 1000).min(n))
            .map(|k| Bind {
                backend: "app".into(),
                key: format!("sess-{k:015}").into_bytes(),
                server: SERVERS[k % 3].into(),
                ttl: 3_600_000,
                replaces: None,
                maxlife: None,
            })
            .collect();
        Proposal {
            now: 1_000 + (start / 1000) as u64,
            command: Command::from(NodeBatch {
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
