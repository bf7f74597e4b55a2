//! Body types of the streamed engine: one boxed streaming body for both directions, and a
//! wrapper that keeps per-request guards alive until the response body is fully sent.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

/// The streaming body used for requests to servers and responses to clients.
pub type Body = BoxBody<Bytes, hyper::Error>;

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

/// A client's request body that remembers whether the client broke it (a malformed
/// chunk, a reset): the exchange then answers 400, a client error, never 502.
pub struct Watched {
    inner: Body,
    broken: Arc<AtomicBool>,
}

impl Watched {
    /// Wraps `inner`; the flag turns true when it fails.
    pub fn wrap(inner: Body) -> (Body, Arc<AtomicBool>) {
        let broken = Arc::new(AtomicBool::new(false));
        let body = Watched {
            inner,
            broken: broken.clone(),
        };
        (body.boxed(), broken)
    }
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            this.broken.store(true, Ordering::Relaxed);
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

/// A body whose first frame was read ahead and is given back first.
struct Primed {
    first: Option<Frame<Bytes>>,
    rest: Body,
}

impl HttpBody for Primed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
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
pub struct Guarded<G> {
    inner: Body,
    guard: Option<G>,
}

impl<G: Send + Sync + Unpin + 'static> Guarded<G> {
    /// Wraps `inner`, boxed again as a [`Body`].
    pub fn wrap(inner: Body, guard: G) -> Body {
        Guarded {
            inner,
            guard: Some(guard),
        }
        .boxed()
    }
}

impl<G: Unpin> HttpBody for Guarded<G> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
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
