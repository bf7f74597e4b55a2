//! Per-connection timeouts HAProxy-style: an I/O wrapper that closes a client connection
//! idle between requests longer than `keep_alive` (or sooner, when its slot is reclaimed
//! for a newcomer), or sending a request head for longer than `client_header`
//! (slowloris); requests in flight are never cut by it. It first reads again the bytes
//! the fast path had read before handing the connection over.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::body::StallClock;
use super::deadline::Deadline;
use super::idle::Mark;

/// Why the connection was cut, if it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Not cut.
    No,
    /// Idle between requests too long.
    Idle,
    /// Request head took too long.
    Header,
    /// The client stopped reading a response for longer than `timeouts.client`.
    SlowRead,
    /// Idle while every connection slot was taken: closed for a newcomer.
    Reclaimed,
}

/// What the request handler and the I/O wrapper of one connection share.
#[derive(Debug)]
pub struct ConnState {
    start: Instant,
    inflight: AtomicUsize,
    /// ms since `start` at which the last request finished (or the connection opened).
    last_done: AtomicU64,
    /// ms since `start` + 1 at which the current head began arriving (0: none).
    head_started: AtomicU64,
    cut: AtomicU8,
}

impl ConnState {
    /// State of a connection opened now.
    pub fn new() -> Arc<ConnState> {
        Arc::new(ConnState {
            start: Instant::now(),
            inflight: AtomicUsize::new(0),
            last_done: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            cut: AtomicU8::new(0),
        })
    }

    fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// A request head was received: the connection is busy until the guard drops.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Why the connection was cut.
    pub fn cut(&self) -> Cut {
        match self.cut.load(Ordering::Relaxed) {
            1 => Cut::Idle,
            2 => Cut::Header,
            3 => Cut::SlowRead,
            4 => Cut::Reclaimed,
            _ => Cut::No,
        }
    }
}

/// A request (or tunnel) in progress on the connection; ends on drop.
#[derive(Debug)]
pub struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.last_done.store(self.0.ms(), Ordering::Relaxed);
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Client I/O with the idle and header timeouts.
pub struct TimedIo<T> {
    inner: T,
    /// Bytes read before the wrapper, read again first.
    prefix: Vec<u8>,
    pos: usize,
    state: Arc<ConnState>,
    keep_alive: Duration,
    header: Duration,
    timer: Deadline,
    /// Runs while a write waits for the client to read, up to `timeouts.client`.
    write_clock: StallClock,
    /// Idle between requests, the connection may be reclaimed for a newcomer.
    mark: Arc<Mark>,
}

impl<T> TimedIo<T> {
    /// Wraps `inner`, whose reads start with `prefix`; `timeouts` gives the idle
    /// (`keep_alive`), head (`client_header`) and write stall (`client`) limits; `mark`
    /// tells when its slot is reclaimed.
    pub fn new(
        inner: T,
        prefix: Vec<u8>,
        state: Arc<ConnState>,
        timeouts: &crate::config::TimeoutsSection,
        mark: Arc<Mark>,
    ) -> Self {
        TimedIo {
            inner,
            prefix,
            pos: 0,
            state,
            keep_alive: timeouts.keep_alive,
            header: timeouts.client_header,
            timer: Deadline::default(),
            write_clock: StallClock::new(timeouts.client),
            mark,
        }
    }

    /// A write that got `polled`: while it waits for the client to read, the stall
    /// clock runs; past `timeouts.client` the write fails (slow-read attack).
    fn stalled<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.write_clock.moved();
            return polled;
        }
        if self.write_clock.expired(cx) {
            self.state.cut.store(3, Ordering::Relaxed);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading",
            )));
        }
        Poll::Pending
    }

    /// The deadline while idle or reading a head, and what it cuts.
    fn deadline(&self) -> Option<(Instant, Cut)> {
        let s = &self.state;
        if s.inflight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let started = s.head_started.load(Ordering::Relaxed);
        Some(if started > 0 {
            (
                s.start + Duration::from_millis(started - 1) + self.header,
                Cut::Header,
            )
        } else {
            let done = s.last_done.load(Ordering::Relaxed);
            (
                s.start + Duration::from_millis(done) + self.keep_alive,
                Cut::Idle,
            )
        })
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            Poll::Ready(Ok(()))
        } else {
            Pin::new(&mut this.inner).poll_read(cx, buf)
        };
        match polled {
            Poll::Ready(Ok(())) => {
                let s = &this.state;
                if buf.filled().len() > before
                    && s.inflight.load(Ordering::Relaxed) == 0
                    && s.head_started.load(Ordering::Relaxed) == 0
                {
                    s.head_started.store(s.ms() + 1, Ordering::Relaxed);
                    this.mark.busy();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let Some((deadline, cut)) = this.deadline() else {
                    return Poll::Pending;
                };
                if cut == Cut::Idle {
                    this.mark.idle();
                    if this.mark.poll_reclaimed(cx).is_ready() {
                        this.state.cut.store(4, Ordering::Relaxed);
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "idle connection closed for a new client",
                        )));
                    }
                }
                if this.timer.poll_passed(deadline, cx).is_ready() {
                    this.state
                        .cut
                        .store(if cut == Cut::Idle { 1 } else { 2 }, Ordering::Relaxed);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client timeout",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.stalled(cx, polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.stalled(cx, polled)
    }

    // A TLS close flushes what the session still holds: a client that stops reading
    // must not hold the connection at its end either.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.stalled(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.stalled(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
