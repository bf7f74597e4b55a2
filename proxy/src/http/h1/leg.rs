//! The server leg of a bodiless request that hyper carries from the client (an HTTP/2
//! stream, HTTP/1.0): sent over the fast path's pooled connections, its head written in
//! one pass, the response head parsed by httparse and its body relayed as a hyper body
//! that gives the connection back to the pool at its end. No task, channel or pool of
//! hyper's client between the stream and the server.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::AsyncWriteExt;

use super::chunked::Chunked;
use super::head::Head;
use super::rewrite::{RequestHop, write_request};
use super::upstream::{self, NoResponse, Upstream};
use crate::http::body::{BodyError, StallClock};
use crate::http::exchange::Exchange;
use crate::http::fields::{Fields, HeadFields, Kind};
use crate::http::framing::{self, Framing};
use crate::http::headers::Hop;
use crate::http::persist::Active;
use crate::http::pool::Server;
use crate::http::refusal::Refusal;

/// The client side of the hop, as the server's request head tells it.
#[derive(Clone, Copy)]
pub struct ClientSide<'a> {
    /// The client peer's address as text.
    pub peer: &'a str,
    /// The client connection is TLS.
    pub tls: bool,
    /// An absolute-form target's or HTTP/2's authority, which the server gets as `Host`.
    pub authority: Option<&'a str>,
}

/// Sends the bodiless request `parts` (as the client sent it; its head is rewritten for
/// the server as it is written) with target `path`, on a pooled connection or a new
/// one, again on a fresh one when a pooled one turns out closed, on another server
/// after a connect failure if the exchange allows; returns the response with its body
/// streaming from the server.
pub async fn send(
    ex: &mut Exchange<'_>,
    parts: &http::request::Parts,
    path: &str,
    client: ClientSide<'_>,
) -> Result<(Response<ServerBody>, Active), Refusal> {
    let timeouts = &ex.plane().timeouts;
    let is_head = parts.method == Method::HEAD;
    let mut out = Vec::with_capacity(512);
    let mut head = Head::default();
    let mut stale = 0;
    loop {
        let server = ex.server().clone();
        let checkout = upstream::checkout(&server, ex.replayable(), stale > 0, timeouts);
        let mut up = match checkout.await {
            Ok(up) => up,
            Err(e) => {
                ex.connect_failed(&e)?;
                continue;
            }
        };
        out.clear();
        let hop = RequestHop {
            peer: client.peer,
            trusted: ex.peer_trusted(),
            tls: client.tls,
            own_cookie: ex.own_cookie(),
            host: client.authority.map(str::as_bytes),
            fallback_host: Some(server.addr.as_bytes()),
        };
        let method = parts.method.as_str().as_bytes();
        write_request(&mut out, method, path.as_bytes(), &parts.headers, &hop);
        let active = ex.activate();
        let deadline = tokio::time::Instant::now() + timeouts.server;
        let answer = match up.stream.write_all(&out).await {
            Ok(()) => final_head(&mut up, &mut head, deadline).await,
            Err(_) => Err(NoResponse::Closed),
        };
        let refusal = match answer {
            Ok(()) => match response(up, &head, server, is_head, timeouts.server) {
                Ok(resp) => return Ok((resp, active)),
                Err(why) => return Err(ex.server_failed(Refusal::BadGateway, &why)),
            },
            Err(NoResponse::Closed) if up.reused && ex.replayable() && stale < 3 => {
                stale += 1;
                continue;
            }
            Err(NoResponse::Timeout) => Refusal::ServerTimeout,
            Err(_) => Refusal::BadGateway,
        };
        return Err(ex.server_failed(refusal, &"no response"));
    }
}

/// Reads response heads until the final one: interim (1xx) answers have no place in
/// the client's stream and are dropped, as hyper's client does; a 101 nobody asked for
/// is not an answer.
async fn final_head(
    up: &mut Upstream,
    head: &mut Head,
    deadline: tokio::time::Instant,
) -> Result<(), NoResponse> {
    loop {
        up.read_head(head, deadline).await?;
        match head.status {
            101 => return Err(NoResponse::Malformed),
            100..=199 => up.buf.consume(head.len),
            _ => return Ok(()),
        }
    }
}

/// The response whose head is in `head`, its body relayed from `up`. The head, and the
/// body when all of it is read already (the usual small answer), are copied once into
/// one buffer that the fields and the body share.
fn response(
    up: Upstream,
    head: &Head,
    server: Arc<Server>,
    is_head: bool,
    stall: Duration,
) -> Result<Response<ServerBody>, &'static str> {
    let bytes = up.buf.filled();
    let fields = HeadFields { head, buf: bytes };
    let framing = framing::response(&fields, head.status, is_head)?;
    let reusable = head.minor == 1 && !fields.connection_has("close");
    let status = StatusCode::from_u16(head.status).map_err(|_| "bad status")?;
    let whole = match framing {
        Framing::Length(n) if (bytes.len() - head.len) as u64 >= n => Some(head.len + n as usize),
        _ => None,
    };
    let shared = Bytes::copy_from_slice(&bytes[..whole.unwrap_or(head.len)]);
    let headers = client_fields(&fields, &shared, framing == Framing::Chunked)?;
    let mut body = ServerBody {
        up: Some(up),
        server,
        framing,
        left: match framing {
            Framing::Length(n) => n,
            _ => 0,
        },
        chunks: Chunked::default(),
        reusable: reusable && framing != Framing::Close,
        clock: StallClock::new(stall),
        ready: None,
    };
    match whole {
        Some(end) => {
            body.left = 0;
            body.finish_after(end);
            body.ready = (end > head.len).then(|| shared.slice(head.len..end));
        }
        None => body.consume(head.len),
    }
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// The response's fields as the client gets them, their values sharing `shared` (the
/// head's bytes): what the hop rule keeps, without the framing that hyper writes itself
/// (a length beside `chunked` is not the decoded data's length).
fn client_fields(
    fields: &HeadFields<'_>,
    shared: &Bytes,
    chunked: bool,
) -> Result<HeaderMap, &'static str> {
    let rule = Hop::of(fields, false);
    let mut headers = HeaderMap::with_capacity(fields.head.fields.len());
    for f in &fields.head.fields {
        let name = &fields.buf[f.name.clone()];
        let dropped = match f.kind {
            Kind::TransferEncoding => true,
            Kind::ContentLength => chunked,
            kind => rule.drops(kind, name),
        };
        if dropped {
            continue;
        }
        let name = HeaderName::from_bytes(name).map_err(|_| "bad field name")?;
        let value = HeaderValue::from_maybe_shared(shared.slice(f.value.clone()))
            .map_err(|_| "bad field")?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// A response body read from the server's connection by its framing (or read whole with
/// the head).
pub struct ServerBody {
    /// The connection, until the body ends.
    up: Option<Upstream>,
    /// Whose idle list the connection goes back to.
    server: Arc<Server>,
    framing: Framing,
    /// By length: the bytes still to come.
    left: u64,
    /// Chunked: where the decoding is.
    chunks: Chunked,
    /// The connection can serve another request after this body.
    reusable: bool,
    /// Runs while the server sends nothing, up to `timeouts.server`.
    clock: StallClock,
    /// Data read already, passed on first: the whole body when it came with the head.
    ready: Option<Bytes>,
}

impl ServerBody {
    /// Consumes `n` bytes read from the connection.
    fn consume(&mut self, n: usize) {
        if let Some(up) = self.up.as_mut() {
            up.buf.consume(n);
        }
    }

    /// The body ends with the first `n` bytes read, which are taken elsewhere.
    fn finish_after(&mut self, n: usize) {
        self.consume(n);
        self.finish();
    }

    /// The body ended: the connection goes back to the pool if it can serve again.
    fn finish(&mut self) {
        if let Some(up) = self.up.take()
            && self.reusable
            && up.buf.is_empty()
        {
            self.server.idle.put(up);
        }
    }

    /// The next data already read, if any; `Ok(None)` also when the body just ended.
    fn buffered(&mut self) -> Result<Option<Bytes>, BodyError> {
        let Some(up) = self.up.as_mut() else {
            return Ok(None);
        };
        let filled = up.buf.filled();
        let (used, data) = match self.framing {
            Framing::Length(_) => {
                let take = (filled.len() as u64).min(self.left) as usize;
                self.left -= take as u64;
                (take, 0..take)
            }
            Framing::Chunked => self
                .chunks
                .decode(filled)
                .map_err(|_| BodyError::Server("sent a malformed chunked body"))?,
            Framing::Close => (filled.len(), 0..filled.len()),
        };
        let bytes = Bytes::copy_from_slice(&filled[data]);
        up.buf.consume(used);
        let ended = match self.framing {
            Framing::Length(_) => self.left == 0,
            Framing::Chunked => self.chunks.is_done(),
            Framing::Close => false,
        };
        if ended {
            self.finish();
        }
        Ok((!bytes.is_empty()).then_some(bytes))
    }
}

impl HttpBody for ServerBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(data) = this.ready.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        loop {
            match this.buffered() {
                Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            let Some(up) = this.up.as_mut() else {
                return Poll::Ready(None);
            };
            if !up.buf.is_empty() {
                continue;
            }
            match up.buf.poll_fill(cx, &mut up.stream) {
                Poll::Ready(Ok(1..)) => this.clock.moved(),
                Poll::Ready(Ok(0)) if this.framing == Framing::Close => {
                    this.up = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(_) => {
                    this.up = None;
                    return Poll::Ready(Some(Err(BodyError::Server("closed inside its body"))));
                }
                Poll::Pending => {
                    if !this.clock.expired(cx) {
                        return Poll::Pending;
                    }
                    this.up = None;
                    return Poll::Ready(Some(Err(BodyError::Server("stalled inside its body"))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.up.is_none() && self.ready.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let ready = self.ready.as_ref().map_or(0, |b| b.len() as u64);
        match self.framing {
            Framing::Length(_) => SizeHint::with_exact(self.left + ready),
            _ => SizeHint::default(),
        }
    }
}
