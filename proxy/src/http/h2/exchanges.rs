//! The streams' exchanges, polled in the connection's own task: a slab of futures, each
//! slot's box reused from stream to stream (an exchange's future is a few KB, and no
//! allocation of it is made per request), each slot woken through a bit of its own so
//! a poll touches only the exchanges that can move.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Which slots were woken, and the connection's task to wake with them.
struct Ready {
    bits: Vec<AtomicU64>,
    task: AtomicWaker,
}

impl Ready {
    fn mark(&self, index: usize) {
        self.bits[index / 64].fetch_or(1 << (index % 64), Ordering::AcqRel);
    }
}

/// The waker of one slot.
struct SlotWaker {
    index: usize,
    ready: Arc<Ready>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.mark(self.index);
        self.ready.task.wake();
    }
}

struct Slot<F> {
    stream: u32,
    future: Pin<Box<Option<F>>>,
    waker: Waker,
}

/// Up to `capacity` exchanges running at once, by slot.
pub struct Exchanges<F: Future> {
    slots: Vec<Slot<F>>,
    free: Vec<usize>,
    ready: Arc<Ready>,
    done: Vec<(u32, F::Output)>,
}

impl<F: Future> Exchanges<F> {
    /// Room for `capacity` exchanges at once.
    pub fn new(capacity: usize) -> Exchanges<F> {
        let words = capacity.div_ceil(64).max(1);
        let ready = Ready {
            bits: (0..words).map(|_| AtomicU64::new(0)).collect(),
            task: AtomicWaker::new(),
        };
        Exchanges {
            slots: Vec::new(),
            free: Vec::new(),
            ready: Arc::new(ready),
            done: Vec::new(),
        }
    }

    /// Starts the future `make` makes, the exchange of `stream`, in place; `None` when
    /// every slot is taken. It is first polled by the next [`Exchanges::poll`].
    pub fn start(&mut self, stream: u32, make: impl FnOnce() -> F) -> Option<usize> {
        let index = match self.free.pop() {
            Some(index) => index,
            None if self.slots.len() < self.ready.bits.len() * 64 => {
                let index = self.slots.len();
                let waker = Waker::from(Arc::new(SlotWaker {
                    index,
                    ready: self.ready.clone(),
                }));
                self.slots.push(Slot {
                    stream,
                    future: Box::pin(None),
                    waker,
                });
                index
            }
            None => return None,
        };
        let slot = &mut self.slots[index];
        slot.stream = stream;
        slot.future.set(Some(make()));
        self.ready.mark(index);
        Some(index)
    }

    /// Drops the exchange in `slot` (its client reset the stream).
    pub fn cancel(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot)
            && s.future.is_some()
        {
            s.future.set(None);
            self.free.push(slot);
        }
    }

    /// Drops every exchange.
    pub fn clear(&mut self) {
        for index in 0..self.slots.len() {
            self.cancel(index);
        }
    }

    /// Frees the slots past the first `keep`, when no exchange runs.
    pub fn trim(&mut self, keep: usize) {
        if self.is_empty() && self.slots.len() > keep {
            self.slots.truncate(keep);
            self.free.retain(|&i| i < keep);
        }
    }

    /// True when no exchange runs.
    pub fn is_empty(&self) -> bool {
        self.free.len() == self.slots.len()
    }

    /// Polls the exchanges woken since the last call; true when any finished (their
    /// answers are then taken with [`Exchanges::next_done`]).
    pub fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        self.ready.task.register(cx.waker());
        for word in 0..self.ready.bits.len() {
            let mut bits = self.ready.bits[word].swap(0, Ordering::AcqRel);
            while bits != 0 {
                let index = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                self.poll_slot(index);
            }
        }
        !self.done.is_empty()
    }

    fn poll_slot(&mut self, index: usize) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let Some(future) = slot.future.as_mut().as_pin_mut() else {
            return;
        };
        let mut cx = Context::from_waker(&slot.waker);
        if let Poll::Ready(out) = future.poll(&mut cx) {
            slot.future.set(None);
            self.free.push(index);
            self.done.push((slot.stream, out));
        }
    }

    /// A finished exchange's stream and answer.
    pub fn next_done(&mut self) -> Option<(u32, F::Output)> {
        self.done.pop()
    }
}
