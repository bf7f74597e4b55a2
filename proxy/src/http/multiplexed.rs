//! An HTTP/2 client connection on holdfast's engine (`h2/`): each stream's request goes
//! to the streamed engine's exchange; the requests the engine refuses itself are
//! answered and counted here, as every other refusal is.

use std::future::Future;
use std::sync::Arc;

use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};

use super::body::Body;
use super::h2::{self, FieldLimits, Limit, Settings};
use super::listener::{Opened, Timed, count_cut};
use super::metrics::{ErrorKind, HttpMetrics};
use super::refusal::Refusal;
use super::streamed;

/// Streams one client may have open at once (HAProxy's `tune.h2.max-concurrent-streams`).
const MAX_STREAMS: u32 = 100;

/// The proxy as the engine sees it.
struct Proxy<C> {
    exchange: C,
    metrics: Arc<HttpMetrics>,
}

impl<C, F> h2::Handler for Proxy<C>
where
    C: Fn(Request<Body>) -> F,
    F: Future<Output = Response<Body>>,
{
    type Future = F;

    fn call(&self, req: Request<Body>) -> F {
        (self.exchange)(req)
    }

    fn rejected(&self, limit: Limit) -> Response<Body> {
        let refusal = match limit {
            Limit::Count => Refusal::TooManyFields,
            Limit::Size => Refusal::HeadTooLarge,
        };
        refusal.count(&self.metrics);
        refusal.response()
    }

    fn starved(&self) {
        tracing::debug!("HTTP/2 client gave no flow-control credit: connection cut");
        self.metrics.error(ErrorKind::ClientTimeout);
    }

    fn malformed(&self, why: &'static str) {
        tracing::debug!(why, "malformed HTTP/2 request: stream reset");
        self.metrics.error(ErrorKind::BadRequest);
    }
}

impl Opened<'_> {
    /// Serves the connection as HTTP/2, `read` its first octets (read already).
    pub(super) async fn serve_h2<I>(self, io: I, read: Vec<u8>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Timed {
            io,
            state,
            client,
            plane,
            frontend,
        } = self.timed(io, read);
        let proxy = Proxy {
            exchange: {
                let plane = plane.clone();
                move |req| streamed::handle(plane.clone(), frontend.clone(), client.clone(), req)
            },
            metrics: plane.lasting.metrics.clone(),
        };
        let settings = Settings {
            max_streams: MAX_STREAMS,
            fields: FieldLimits {
                max_size: plane.limits.max_header_size,
                max_fields: plane.limits.max_headers,
            },
            send_timeout: plane.timeouts.client,
        };
        h2::serve(io, proxy, settings).await;
        count_cut(plane, &state);
    }
}
