//! Idle client connections, closed first when every connection slot is taken: a
//! connection waiting for the first byte of its next request (new, or kept alive after a
//! response) gives its slot to a client that has a request to make, as nginx reuses its
//! idle keep-alive connections when it runs out of connections.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// How many idle connections one newcomer short of a slot closes at most: a few spare
/// slots for the clients right behind it, as nginx frees up to 32 at a time.
pub const RECLAIM_BATCH: usize = 32;

const BUSY: u8 = 0;
const IDLE: u8 = 1;
const RECLAIMED: u8 = 2;

/// The open client connections, oldest first.
#[derive(Default)]
pub struct IdleSet {
    conns: Mutex<BTreeMap<u64, Arc<Mark>>>,
    next: AtomicU64,
}

/// Whether one connection is idle, and the way to tell it to close.
#[derive(Default)]
pub struct Mark {
    state: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

/// A connection's place in the set; it leaves the set on drop.
pub struct Registered {
    set: Arc<IdleSet>,
    id: u64,
    /// The connection's mark.
    pub mark: Arc<Mark>,
}

impl IdleSet {
    /// Adds a connection opened now.
    pub fn register(self: &Arc<Self>) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mark = Arc::new(Mark::default());
        self.conns.lock().insert(id, mark.clone());
        Registered {
            set: self.clone(),
            id,
            mark,
        }
    }

    /// Tells up to `n` idle connections, oldest first, to close; returns how many.
    pub fn reclaim(&self, n: usize) -> usize {
        let marks: Vec<Arc<Mark>> = {
            let conns = self.conns.lock();
            conns
                .values()
                .filter(|m| m.state.load(Ordering::Relaxed) == IDLE)
                .take(n)
                .cloned()
                .collect()
        };
        marks.iter().filter(|m| m.reclaim()).count()
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.set.conns.lock().remove(&self.id);
    }
}

impl Mark {
    /// The connection waits for a request: it may be reclaimed from now on.
    pub fn idle(&self) {
        let _ = self
            .state
            .compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Request bytes arrived: the connection is busy again (a reclaim that raced with
    /// them is void: the request is served).
    pub fn busy(&self) {
        self.state.store(BUSY, Ordering::Release);
    }

    /// Ready once the connection was reclaimed: it should close.
    pub fn poll_reclaimed(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.load(Ordering::Acquire) == RECLAIMED {
            return Poll::Ready(());
        }
        *self.waker.lock() = Some(cx.waker().clone());
        match self.state.load(Ordering::Acquire) {
            RECLAIMED => Poll::Ready(()),
            _ => Poll::Pending,
        }
    }

    /// Resolves once the connection was reclaimed.
    pub async fn reclaimed(&self) {
        std::future::poll_fn(|cx| self.poll_reclaimed(cx)).await
    }

    fn reclaim(&self) -> bool {
        let won = self
            .state
            .compare_exchange(IDLE, RECLAIMED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if won && let Some(waker) = self.waker.lock().take() {
            waker.wake();
        }
        won
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_idle_connections_are_reclaimed_oldest_first() {
        let set = Arc::new(IdleSet::default());
        let conns: Vec<Registered> = (0..4).map(|_| set.register()).collect();
        conns[1].mark.idle();
        conns[2].mark.idle();
        conns[3].mark.idle();
        assert_eq!(set.reclaim(2), 2);
        let waited =
            tokio::time::timeout(std::time::Duration::from_secs(1), conns[1].mark.reclaimed());
        assert!(waited.await.is_ok(), "the oldest idle one is told");
        assert!(
            std::future::poll_fn(|cx| Poll::Ready(conns[3].mark.poll_reclaimed(cx)))
                .await
                .is_pending(),
            "the newest idle one is kept"
        );
        // A busy connection is never reclaimed; one that left is forgotten.
        conns[3].mark.busy();
        assert_eq!(set.reclaim(10), 0);
        drop(conns);
        assert!(set.conns.lock().is_empty());
    }
}
