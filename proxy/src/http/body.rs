//! Body types of the streamed engine: one boxed streaming body for both directions, a
//! request body watched for a client that breaks or stalls it, and a wrapper that keeps
//! per-request guards alive until the response body is fully sent.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Sleep;

use super::refusal::Refusal;

/// Why a streamed body ended before its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The connection or the framing failed (hyper's reading).
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    /// The client sent nothing of its request body for this long (`timeouts.client`).
    #[error("the client sent nothing of its request body for {0:?}")]
    Stalled(Duration),
    /// The client reset its HTTP/2 stream before the body's end.
    #[error("the client reset the stream")]
    Reset,
    /// The server broke its response body (the fast path's server leg).
    #[error("the server {0}")]
    Server(&'static str),
}

/// The streaming body used for requests to servers and responses to clients.
pub type Body = BoxBody<Bytes, BodyError>;

/// A hyper body (what a client or server sent) as a [`Body`].
pub fn incoming(body: hyper::body::Incoming) -> Body {
    body.map_err(BodyError::from).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A body holding `text`.
pub fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

/// How a client's request body went, shared by the body and its exchange.
#[derive(Debug, Default)]
pub struct BodyFault(AtomicU8);

impl BodyFault {
    const MALFORMED: u8 = 1;
    const STALLED: u8 = 2;

    /// The client's fault as the proxy answers it, if the client broke or stalled the
    /// body: a client error (400, 408), never the server's 502.
    pub fn refusal(&self) -> Option<Refusal> {
        match self.0.load(Ordering::Relaxed) {
            Self::MALFORMED => Some(Refusal::BadRequest("malformed request body")),
            Self::STALLED => Some(Refusal::BodyTimeout),
            _ => None,
        }
    }
}

/// Counts a body stall that came after the server's answer had started (the answer is
/// then cut); one before it is the exchange's refusal, counted there.
pub struct StallAfterAnswer {
    /// The request body's fault.
    pub fault: Arc<BodyFault>,
    /// Where it is counted.
    pub metrics: Arc<super::HttpMetrics>,
}

impl Drop for StallAfterAnswer {
    fn drop(&mut self) {
        if self.fault.0.load(Ordering::Relaxed) == BodyFault::STALLED {
            self.metrics.error(super::metrics::ErrorKind::ClientTimeout);
        }
    }
}

/// The clock of a body that may stall: it runs while the body waits for bytes and
/// starts over when they come.
pub struct StallClock {
    limit: Duration,
    waiting: Option<Pin<Box<Sleep>>>,
}

impl StallClock {
    /// A clock that expires after `limit` of waiting in a row.
    pub fn new(limit: Duration) -> StallClock {
        StallClock {
            limit,
            waiting: None,
        }
    }

    /// Bytes came: the wait is over.
    pub fn moved(&mut self) {
        self.waiting = None;
    }

    /// The body waits (its read was pending): true once it waited `limit` in a row;
    /// otherwise `cx` is woken when it has.
    pub fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.limit;
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        let expired = waiting.as_mut().poll(cx).is_ready();
        if expired {
            self.waiting = None;
        }
        expired
    }

    /// How long it waits.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

/// A client's request body that remembers whether the client broke it (a malformed
/// chunk, a reset) or sent nothing of it for `stall` (a slow-body attack on the
/// connection slots): the body then fails and [`BodyFault`] says why.
pub struct Watched {
    inner: Body,
    fault: Arc<BodyFault>,
    clock: StallClock,
}

impl Watched {
    /// Wraps `inner`, failing it when the client sends nothing of it for `stall`.
    pub fn wrap(inner: Body, stall: Duration) -> (Body, Arc<BodyFault>) {
        let fault = Arc::new(BodyFault::default());
        let body = Watched {
            inner,
            fault: fault.clone(),
            clock: StallClock::new(stall),
        };
        (body.boxed(), fault)
    }
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if polled.is_ready() {
            this.clock.moved();
            if let Poll::Ready(Some(Err(_))) = &polled {
                this.fault.0.store(BodyFault::MALFORMED, Ordering::Relaxed);
            }
            return polled;
        }
        // The clock runs only while the body waits on the client, never while the
        // server is slow to take what was sent.
        if this.clock.expired(cx) {
            this.fault.0.store(BodyFault::STALLED, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyError::Stalled(this.clock.limit()))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body whose first frame was read ahead and is given back first.
struct Primed {
    first: Option<Frame<Bytes>>,
    rest: Body,
}

impl HttpBody for Primed {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match this.first.take() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None => Pin::new(&mut this.rest).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }
}

/// Reads `body`'s first frame now, waiting at most `wait`: a body broken from its first
/// bytes (a malformed chunk size) is refused before anything is forwarded. `Err` when it
/// is broken; otherwise the same body, its first frame given back first.
pub async fn read_ahead(mut body: Body, wait: std::time::Duration) -> Result<Body, ()> {
    use http_body_util::BodyExt as _;
    match tokio::time::timeout(wait, body.frame()).await {
        Ok(Some(Err(_))) => Err(()),
        Ok(Some(Ok(first))) => Ok(Primed {
            first: Some(first),
            rest: body,
        }
        .boxed()),
        // Ended, or slow to start: nothing to check yet.
        Ok(None) | Err(_) => Ok(body),
    }
}

/// A body that holds `guard` until it is finished or dropped (in-flight counts).
pub struct Guarded<B, G> {
    inner: B,
    guard: Option<G>,
}

impl<B, G> Guarded<B, G>
where
    B: HttpBody<Data = Bytes, Error = BodyError> + Send + Sync + Unpin + 'static,
    G: Send + Sync + Unpin + 'static,
{
    /// Wraps `inner`, boxed as a [`Body`].
    pub fn wrap(inner: B, guard: G) -> Body {
        Guarded {
            inner,
            guard: Some(guard),
        }
        .boxed()
    }
}

impl<B, G> HttpBody for Guarded<B, G>
where
    B: HttpBody<Data = Bytes, Error = BodyError> + Unpin,
    G: Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) | Poll::Ready(Some(Err(_))) = &polled {
            this.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
