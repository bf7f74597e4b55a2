//! holdfast's own HTTP/2 server engine (RFC 9113, HPACK by RFC 7541): one task per
//! connection holds every stream's state, HPACK context and flow control, and polls the
//! streams' exchanges in place, as HAProxy's `mux_h2` does; no task, channel or lock
//! per stream. What a request means is the handler's; this module only moves it.

mod connection;
mod encode;
mod exchanges;
mod frame;
mod hpack;
mod huffman;
mod receive;
mod request;
mod send;
mod stream;
mod streams;

use std::future::Future;

use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};

pub use request::{FieldLimits, Limit};

use crate::http::body::Body;
use connection::Connection;

/// The first octets of every HTTP/2 connection (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the engine asks of the proxy: each request's answer, and the answers and counts
/// of requests it refuses itself.
pub trait Handler {
    /// A request's exchange.
    type Future: Future<Output = Response<Body>>;
    /// Starts the exchange of `req`.
    fn call(&self, req: Request<Body>) -> Self::Future;
    /// The answer to a request whose fields break a limit (431).
    fn rejected(&self, limit: Limit) -> Response<Body>;
    /// A malformed request was reset (RFC 9113 §8.1.1): `why`.
    fn malformed(&self, why: &'static str);
    /// The connection was cut: the client gave no credit for answers waiting.
    fn starved(&self);
}

/// What a connection advertises and enforces.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_streams: u32,
    /// The limits of a request's fields (SETTINGS_MAX_HEADER_LIST_SIZE among them).
    pub fields: FieldLimits,
    /// How long answers may wait for the client's credit before the connection is cut.
    pub send_timeout: std::time::Duration,
}

/// Serves an HTTP/2 connection over `io` until the client leaves or breaks the protocol.
pub async fn serve<I, H>(io: I, handler: H, settings: Settings)
where
    I: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    Connection::new(io, handler, settings).run().await
}
