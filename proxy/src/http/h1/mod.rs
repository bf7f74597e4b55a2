//! The HTTP/1.1 fast path: a client connection's requests parsed, routed and forwarded by
//! the connection's own task over pooled server connections, each head rewritten in one
//! pass and sent with the body bytes already read in one write, bodies passed through by
//! length or chunk framing. A chunked request body is read whole first and its framing
//! checked strictly (RFC 9112 §7.1) before anything is sent. HTTP/1.0, upgrades, `Expect`,
//! request bodies larger than the fast path sends whole, and HTTP/2's preface hand the
//! connection (bytes read included) to the hyper path.
//! A body stalled longer than `timeouts.server` by the server, or `timeouts.client` by
//! the client (sending or reading), is cut.

mod buf;
mod chunked;
pub(super) mod head;
pub(super) mod leg;
mod relay;
mod rewrite;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::cookie::VerifiedCookie;
use super::exchange::{Added, Exchange, RequestLine, Route};
use super::fields::{Fields, Kind};
use super::framing::{self, Framing};
use super::idle::Mark;
use super::metrics::ErrorKind;
use super::persist::Active;
use super::refusal::Refusal;
use super::{DataPlane, Frontend};
use buf::ReadBuf;
use chunked::Chunked;
use head::{Head, HeadError};
pub(super) use relay::answer_and_close;
use relay::{Broke, Stalls, pass_body, pass_length};
use relay::{shutdown_within, write_within};
use rewrite::{RequestHop, write_request, write_response};
use upstream::{NoResponse, Upstream};

pub use head::MAX_FIELDS;

/// Request bodies up to this size are forwarded here, sent whole before the response is
/// read; larger ones go to the hyper path, which moves both directions at once.
const MAX_BODY: u64 = 64 * 1024;

/// How a connection left the fast path.
pub enum Served<I> {
    /// It is over.
    Done,
    /// The hyper path takes it from here, starting with these bytes already read.
    Fallback(I, Vec<u8>),
}

/// What reading a request head came to.
enum Read {
    Head,
    Closed,
    Fallback,
    Refused(Refusal),
}

/// Whether the client connection goes on after an exchange.
#[derive(PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
}

/// One client connection on the fast path.
struct Conn<'a, I> {
    io: I,
    buf: ReadBuf,
    head: Head,
    resp: Head,
    out: Vec<u8>,
    peer: SocketAddr,
    peer_text: String,
    tls: bool,
    /// The insert cookie this connection's requests showed valid.
    cookies: Arc<VerifiedCookie>,
    dp: &'a Arc<DataPlane>,
    fe: &'a Frontend,
    /// Idle between requests, the connection may be reclaimed for a newcomer.
    mark: &'a Mark,
}

/// Serves `io`'s requests until the connection ends or needs the hyper path.
pub async fn serve<I>(
    io: I,
    peer: SocketAddr,
    mark: &Mark,
    tls: bool,
    dp: &Arc<DataPlane>,
    fe: &Frontend,
) -> Served<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut c = Conn {
        io,
        buf: ReadBuf::new(dp.limits.max_header_size.max(8192)),
        head: Head::default(),
        resp: Head::default(),
        out: Vec::with_capacity(4096),
        peer,
        peer_text: peer.ip().to_string(),
        tls,
        cookies: Arc::default(),
        dp,
        fe,
        mark,
    };
    loop {
        match c.read_head().await {
            Read::Head => {}
            Read::Closed => return Served::Done,
            Read::Fallback => return Served::Fallback(c.io, c.buf.take()),
            Read::Refused(refusal) => {
                refusal.count(&dp.lasting.metrics);
                c.refuse(refusal).await;
                return Served::Done;
            }
        }
        let length = match framing::request(&c.head.fields(c.buf.filled()), false) {
            Err(refusal) => {
                refusal.count(&dp.lasting.metrics);
                c.refuse(refusal).await;
                return Served::Done;
            }
            Ok(Framing::Length(n)) if n <= MAX_BODY && !c.needs_hyper() => n,
            Ok(Framing::Chunked) if !c.needs_hyper() => match c.read_chunked_body().await {
                Ok(Some(n)) => n,
                Ok(None) => return Served::Fallback(c.io, c.buf.take()),
                Err(refusal) => {
                    refusal.count(&dp.lasting.metrics);
                    c.refuse(refusal).await;
                    return Served::Done;
                }
            },
            Ok(_) => return Served::Fallback(c.io, c.buf.take()),
        };
        if c.exchange(length).await == Next::Close {
            c.close().await;
            return Served::Done;
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> Conn<'_, I> {
    /// Reads the next request head into `buf` and parses it into `head`: within
    /// `keep_alive` of the last response for its first byte, `client_header` for the rest.
    async fn read_head(&mut self) -> Read {
        let (t, limits) = (&self.dp.timeouts, &self.dp.limits);
        let mut started = (!self.buf.is_empty()).then(Instant::now);
        loop {
            if !self.buf.is_empty() {
                match self
                    .head
                    .parse_request(self.buf.filled(), limits.max_headers)
                {
                    Ok(true) => return Read::Head,
                    Ok(false) if self.buf.is_full() => return Read::Refused(Refusal::HeadTooLarge),
                    Ok(false) => {}
                    Err(HeadError::TooManyFields) => return Read::Refused(Refusal::TooManyFields),
                    Err(HeadError::Version) => return Read::Fallback,
                    Err(HeadError::Malformed) => {
                        return Read::Refused(Refusal::BadRequest("malformed request head"));
                    }
                }
            }
            let deadline = match started {
                Some(s) => s + t.client_header,
                None => Instant::now() + t.keep_alive,
            };
            let read = tokio::time::timeout_at(deadline.into(), self.buf.fill(&mut self.io));
            let read = match started {
                Some(_) => read.await,
                None => {
                    self.mark.idle();
                    tokio::select! {
                        biased;
                        read = read => read,
                        () = self.mark.reclaimed() => return Read::Closed,
                    }
                }
            };
            match read {
                Ok(Ok(1..)) => {
                    self.mark.busy();
                    started.get_or_insert_with(Instant::now);
                }
                Ok(_) => return Read::Closed,
                Err(_) if started.is_none() => {
                    self.dp.lasting.metrics.error(ErrorKind::IdleTimeout);
                    return Read::Closed;
                }
                Err(_) => return Read::Refused(Refusal::HeadTimeout),
            }
        }
    }

    /// Reads the chunked body behind the head into the buffer, checking its framing:
    /// `Some(n)` once all `n` bytes of it are there (they go out as they came),
    /// `None` when it does not fit in the buffer (the hyper path streams it).
    async fn read_chunked_body(&mut self) -> Result<Option<u64>, Refusal> {
        let mut scan = Chunked::default();
        let mut scanned = self.head.len;
        loop {
            scanned += scan
                .feed(&self.buf.filled()[scanned..])
                .map_err(|_| Refusal::BadRequest("malformed chunked request body"))?;
            if scan.is_done() {
                return Ok(Some((scanned - self.head.len) as u64));
            }
            if self.buf.is_full() {
                return Ok(None);
            }
            let wait = self.dp.timeouts.client;
            match tokio::time::timeout(wait, self.buf.fill(&mut self.io)).await {
                Ok(Ok(1..)) => {}
                Ok(_) => return Err(Refusal::BadRequest("request body cut short")),
                Err(_) => return Err(Refusal::BodyTimeout),
            }
        }
    }

    /// True when the parsed request needs what only the hyper path does.
    fn needs_hyper(&self) -> bool {
        let (h, b) = (&self.head, self.buf.filled());
        let fields = h.fields(b);
        h.minor != 1
            || fields.has(Kind::Upgrade)
            || fields.has(Kind::Expect)
            || !b[h.target.clone()].starts_with(b"/")
    }

    /// Answers with the proxy's own error and `Connection: close`.
    async fn refuse(&mut self, refusal: Refusal) {
        self.out.clear();
        refusal.write_h1(&mut self.out);
        if write_within(&mut self.io, &self.out, self.dp.timeouts.client)
            .await
            .is_ok()
        {
            self.linger().await;
        }
    }

    /// Closes the sending side, within `timeouts.client`.
    async fn close(&mut self) {
        shutdown_within(&mut self.io, self.dp.timeouts.client).await;
    }

    /// Closes the sending side and reads what the client still sends, for a moment, so
    /// that closing with unread bytes (a reset) does not destroy the answer before the
    /// client reads it (nginx's lingering close).
    async fn linger(&mut self) {
        const LINGER: Duration = Duration::from_secs(2);
        const MAX_DRAINED: usize = 1 << 20;
        self.close().await;
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut drained = 0;
        while drained < MAX_DRAINED {
            let held = self.buf.filled().len();
            self.buf.consume(held);
            match tokio::time::timeout_at(deadline, self.buf.fill(&mut self.io)).await {
                Ok(Ok(n @ 1..)) => drained += n,
                _ => return,
            }
        }
    }

    /// Proxies the parsed request, whose body is `length` bytes, and its response.
    async fn exchange(&mut self, length: u64) -> Next {
        let (dp, fe) = (self.dp, self.fe);
        let bytes = self.buf.filled();
        let fields = self.head.fields(bytes);
        let line = RequestLine {
            method: &bytes[self.head.method.clone()],
            target: std::str::from_utf8(&bytes[self.head.target.clone()]).unwrap_or("/"),
            authority: None,
            version: http::Version::HTTP_11,
            bodiless: length == 0,
        };
        let is_head = line.method == b"HEAD";
        let close_client = fields.connection_has("close");
        let (peer, cookies) = ((self.peer, self.tls), self.cookies.clone());
        let mut ex = Exchange::new(dp, fe, peer, &cookies, &line, &fields);
        match ex.route(&fields, &line).await {
            Ok(Route::Server) => {}
            Ok(Route::Redirect(location)) => {
                ex.finish(308);
                self.redirect(&location).await;
                return Next::Close;
            }
            Err(refusal) => {
                self.refuse(refusal).await;
                return Next::Close;
            }
        }
        let rest = self.write_request_head(&ex, length);
        ex.add_bytes(self.head.len as u64 + length, 0);
        let Some((up, active)) = self.send(&mut ex, rest).await else {
            return Next::Close;
        };
        self.respond(ex, up, active, is_head, close_client).await
    }

    /// Writes the request head for the server into `out`, with the body bytes already
    /// read; returns how many body bytes are still to come.
    fn write_request_head(&mut self, ex: &Exchange<'_>, length: u64) -> u64 {
        self.out.clear();
        let hop = RequestHop {
            peer: &self.peer_text,
            trusted: ex.peer_trusted(),
            tls: self.tls,
            own_cookie: ex.own_cookie(),
            host: None,
            fallback_host: None,
        };
        let buf = self.buf.filled();
        let (method, target) = (
            &buf[self.head.method.clone()],
            &buf[self.head.target.clone()],
        );
        write_request(&mut self.out, method, target, &self.head.fields(buf), &hop);
        self.buf.consume(self.head.len);
        let inline = (self.buf.filled().len() as u64).min(length) as usize;
        self.out.extend_from_slice(&self.buf.filled()[..inline]);
        self.buf.consume(inline);
        length - inline as u64
    }

    /// Sends the request (head and body) and reads the response head: on a pooled
    /// connection or a new one, again on a fresh one when a pooled one turns out closed,
    /// on another server after a connect failure if the exchange allows. `None` when the
    /// exchange is over (answered with a refusal, or the client gone).
    async fn send(&mut self, ex: &mut Exchange<'_>, rest: u64) -> Option<(Upstream, Active)> {
        let dp = self.dp;
        let t = &dp.timeouts;
        let mut stale = 0;
        loop {
            let server = ex.server().clone();
            let checkout = upstream::checkout(&server, ex.replayable(), stale > 0, t);
            let mut up = match checkout.await {
                Ok(up) => up,
                Err(e) => match ex.connect_failed(&e) {
                    Ok(()) => continue,
                    Err(refusal) => {
                        self.refuse(refusal).await;
                        return None;
                    }
                },
            };
            let active = ex.activate();
            let sent = match up.stream.write_all(&self.out).await {
                Ok(()) => {
                    // The client sends its body within `timeouts.client` per stall.
                    let stalls = Stalls {
                        read: t.client,
                        write: t.server,
                    };
                    pass_length(&mut self.io, &mut self.buf, &mut up.stream, rest, stalls).await
                }
                Err(_) => Err(Broke::Destination),
            };
            let refusal = match sent {
                Ok(()) => match self.read_response_head(&mut up, t.server).await {
                    Ok(()) => return Some((up, active)),
                    Err(NoResponse::Closed) if up.reused && ex.replayable() && stale < 3 => None,
                    Err(NoResponse::Timeout) => Some(Refusal::ServerTimeout),
                    Err(_) => Some(Refusal::BadGateway),
                },
                Err(Broke::Destination) if up.reused && rest == 0 && stale < 3 => None,
                Err(Broke::Destination) => Some(Refusal::BadGateway),
                // The client went away while sending its body.
                Err(Broke::Source) => return None,
                Err(Broke::SourceStalled) => {
                    let refusal = ex.fail(Refusal::BodyTimeout);
                    self.refuse(refusal).await;
                    return None;
                }
            };
            match refusal {
                None => stale += 1,
                Some(r) => {
                    let r = ex.server_failed(r, &"no response");
                    self.refuse(r).await;
                    return None;
                }
            }
        }
    }

    /// Passes the response whose head is in `resp` to the client, with the insert
    /// cookie; keeps the server connection for the next request when it can be.
    async fn respond(
        &mut self,
        mut ex: Exchange<'_>,
        mut up: Upstream,
        active: Active,
        is_head: bool,
        close_client: bool,
    ) -> Next {
        let fields = self.resp.fields(up.buf.filled());
        let status = self.resp.status;
        let framing = match framing::response(&fields, status, is_head) {
            Ok(framing) => framing,
            Err(why) => {
                let refusal = ex.server_failed(Refusal::BadGateway, &why);
                self.refuse(refusal).await;
                return Next::Close;
            }
        };
        let added = ex.answered(&fields, status, &active);
        let close = close_client || framing == Framing::Close;
        let reusable =
            self.resp.minor == 1 && !fields.connection_has("close") && framing != Framing::Close;
        self.out.clear();
        write_response(&mut self.out, &self.resp, up.buf.filled(), &added, close);
        up.buf.consume(self.resp.len);
        let mut chunked = Chunked::default();
        let Some(left) = self.take_inline(&mut up, framing, &mut chunked) else {
            let refusal = ex.server_failed(Refusal::BadGateway, &"bad chunk framing");
            self.refuse(refusal).await;
            return Next::Close;
        };
        // The client reads the response within `timeouts.client` per stall.
        let stalls = Stalls {
            read: self.dp.timeouts.server,
            write: self.dp.timeouts.client,
        };
        let passed = match write_within(&mut self.io, &self.out, stalls.write).await {
            Ok(()) => pass_body(&mut up, &mut self.io, framing, &mut chunked, left, stalls).await,
            Err(()) => Err(()),
        };
        ex.add_bytes(0, self.out.len() as u64 + passed.unwrap_or(0));
        ex.finish(status);
        drop(active);
        if passed.is_err() {
            return Next::Close;
        }
        if reusable && up.buf.is_empty() {
            ex.server().idle.put(up);
        }
        if close { Next::Close } else { Next::KeepAlive }
    }

    /// Moves the response body bytes already read from `up` behind the head in `out`;
    /// returns how many are still to come by length, `None` if the chunk framing is bad.
    fn take_inline(
        &mut self,
        up: &mut Upstream,
        framing: Framing,
        chunked: &mut Chunked,
    ) -> Option<u64> {
        let filled = up.buf.filled();
        let (inline, left) = match framing {
            Framing::Length(n) => {
                let inline = (filled.len() as u64).min(n);
                (inline as usize, n - inline)
            }
            Framing::Chunked => (chunked.feed(filled).ok()?, 0),
            Framing::Close => (filled.len(), 0),
        };
        self.out.extend_from_slice(&filled[..inline]);
        up.buf.consume(inline);
        Some(left)
    }

    /// Answers a frontend that redirects every request: 308 to `location`.
    async fn redirect(&mut self, location: &str) {
        self.out.clear();
        self.out
            .extend_from_slice(b"HTTP/1.1 308 Permanent Redirect\r\nlocation: ");
        self.out.extend_from_slice(location.as_bytes());
        self.out
            .extend_from_slice(b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        answer_and_close(&mut self.io, &self.out, self.dp.timeouts.client).await;
    }

    /// Reads a response head from `up` into `resp`, passing interim (1xx) responses on
    /// to the client.
    async fn read_response_head(
        &mut self,
        up: &mut Upstream,
        wait: Duration,
    ) -> Result<(), NoResponse> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            up.read_head(&mut self.resp, deadline).await?;
            match self.resp.status {
                101 => return Err(NoResponse::Malformed),
                100..=199 => {
                    self.out.clear();
                    let none = Added::default();
                    write_response(&mut self.out, &self.resp, up.buf.filled(), &none, false);
                    up.buf.consume(self.resp.len);
                    if self.io.write_all(&self.out).await.is_err() {
                        return Err(NoResponse::Closed);
                    }
                }
                _ => return Ok(()),
            }
        }
    }
}
