//! The HTTP/1.1 fast path: a client connection's requests parsed, routed and forwarded by
//! the connection's own task over pooled server connections, each head rewritten in one
//! pass and sent with the body bytes already read in one write, bodies passed through by
//! length or chunk framing. HTTP/1.0, upgrades, `Expect`, chunked or large request bodies
//! and HTTP/2's preface hand the connection (bytes read included) to the hyper path.
//! A body stalled longer than `timeouts.server`, in either direction, is cut.

mod buf;
mod chunked;
pub(super) mod head;
mod rewrite;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::body::error_text;
use super::forward::{Access, NONE, account, is_idempotent};
use super::headers::{client_ip_from, trusted};
use super::metrics::ErrorKind;
use super::{DataPlane, Frontend};
use super::{persist, session};
use crate::config::Persistence;
use buf::ReadBuf;
use chunked::Chunked;
use head::{Framing, Head, HeadError, Kind, request_framing, response_framing};
use rewrite::{RequestHop, write_request, write_response};
use upstream::Upstream;

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
    Refused(StatusCode, ErrorKind, &'static str),
}

/// Whether the client connection goes on after an exchange.
#[derive(PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
}

/// Why no response head came from a server.
enum NoResponse {
    Closed,
    Timeout,
    Malformed,
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
    dp: &'a Arc<DataPlane>,
    fe: &'a Frontend,
}

/// Serves `io`'s requests until the connection ends or needs the hyper path.
pub async fn serve<I>(
    io: I,
    peer: SocketAddr,
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
        dp,
        fe,
    };
    loop {
        match c.read_head().await {
            Read::Head => {}
            Read::Closed => return Served::Done,
            Read::Fallback => return Served::Fallback(c.io, c.buf.take()),
            Read::Refused(status, kind, why) => {
                dp.metrics.error(kind);
                c.refuse(status, why).await;
                return Served::Done;
            }
        }
        let length = match request_framing(&c.head, c.buf.filled()) {
            Err(why) => {
                dp.metrics.error(ErrorKind::BadRequest);
                c.refuse(StatusCode::BAD_REQUEST, why).await;
                return Served::Done;
            }
            Ok(Framing::Length(n)) if n <= MAX_BODY && !c.needs_hyper() => n,
            Ok(_) => return Served::Fallback(c.io, c.buf.take()),
        };
        if c.exchange(length).await == Next::Close {
            let _ = c.io.shutdown().await;
            return Served::Done;
        }
    }
}

/// Copies `left` bytes from `src` (after what `buf` holds) to `dst`. `Err(true)`: the
/// source failed or stalled; `Err(false)`: the destination failed.
async fn pass_length<R, W>(
    src: &mut R,
    buf: &mut ReadBuf,
    dst: &mut W,
    mut left: u64,
    stall: Duration,
) -> Result<(), bool>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while left > 0 {
        if buf.is_empty()
            && !matches!(
                tokio::time::timeout(stall, buf.fill(src)).await,
                Ok(Ok(1..))
            )
        {
            return Err(true);
        }
        let take = (buf.filled().len() as u64).min(left) as usize;
        dst.write_all(&buf.filled()[..take])
            .await
            .map_err(|_| false)?;
        buf.consume(take);
        left -= take as u64;
    }
    Ok(())
}

/// Copies the rest of a response body framed by `framing` from `up` to `dst`.
async fn pass_body<W: AsyncWrite + Unpin>(
    up: &mut Upstream,
    dst: &mut W,
    framing: Framing,
    chunked: &mut Chunked,
    left: u64,
    stall: Duration,
) -> Result<(), ()> {
    match framing {
        Framing::Length(_) => pass_length(&mut up.stream, &mut up.buf, dst, left, stall)
            .await
            .map_err(|_| ()),
        Framing::Chunked | Framing::Close => loop {
            if framing == Framing::Chunked && chunked.is_done() {
                return Ok(());
            }
            match tokio::time::timeout(stall, up.buf.fill(&mut up.stream)).await {
                Ok(Ok(0)) if framing == Framing::Close => return Ok(()),
                Ok(Ok(1..)) => {}
                _ => return Err(()),
            }
            let take = match framing {
                Framing::Chunked => chunked.feed(up.buf.filled()).map_err(|_| ())?,
                _ => up.buf.filled().len(),
            };
            dst.write_all(&up.buf.filled()[..take])
                .await
                .map_err(|_| ())?;
            up.buf.consume(take);
        },
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
                    Ok(false) if self.buf.is_full() => {
                        return Read::Refused(
                            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                            ErrorKind::HeaderTooLarge,
                            "request head too large",
                        );
                    }
                    Ok(false) => {}
                    Err(HeadError::TooManyFields) => {
                        return Read::Refused(
                            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                            ErrorKind::HeaderTooLarge,
                            "too many header fields",
                        );
                    }
                    Err(HeadError::Version) => return Read::Fallback,
                    Err(HeadError::Malformed) => {
                        return Read::Refused(
                            StatusCode::BAD_REQUEST,
                            ErrorKind::BadRequest,
                            "malformed request head",
                        );
                    }
                }
            }
            let deadline = match started {
                Some(s) => s + t.client_header,
                None => Instant::now() + t.keep_alive,
            };
            let read = tokio::time::timeout_at(deadline.into(), self.buf.fill(&mut self.io));
            match read.await {
                Ok(Ok(1..)) => {
                    started.get_or_insert_with(Instant::now);
                }
                Ok(_) => return Read::Closed,
                Err(_) if started.is_none() => {
                    self.dp.metrics.error(ErrorKind::IdleTimeout);
                    return Read::Closed;
                }
                Err(_) => {
                    return Read::Refused(
                        StatusCode::REQUEST_TIMEOUT,
                        ErrorKind::HeaderTimeout,
                        "request head timeout",
                    );
                }
            }
        }
    }

    /// True when the parsed request needs what only the hyper path does.
    fn needs_hyper(&self) -> bool {
        let (h, b) = (&self.head, self.buf.filled());
        h.minor != 1
            || h.has(Kind::Upgrade)
            || h.has(Kind::Expect)
            || !b[h.target.clone()].starts_with(b"/")
    }

    /// Answers with a plain error and `Connection: close`.
    async fn refuse(&mut self, status: StatusCode, why: &str) {
        let text = error_text(status, why);
        self.out.clear();
        self.out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
                text.len()
            )
            .as_bytes(),
        );
        self.out.extend_from_slice(text.as_bytes());
        if self.io.write_all(&self.out).await.is_ok() {
            self.linger().await;
        }
    }

    /// Closes the sending side and reads what the client still sends, for a moment, so
    /// that closing with unread bytes (a reset) does not destroy the answer before the
    /// client reads it (nginx's lingering close).
    async fn linger(&mut self) {
        const LINGER: Duration = Duration::from_secs(2);
        const MAX_DRAINED: usize = 1 << 20;
        let _ = self.io.shutdown().await;
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
        let start = Instant::now();
        let dp = self.dp;
        let bytes = self.buf.filled();
        let head = &self.head;
        let method = &bytes[head.method.clone()];
        let target = std::str::from_utf8(&bytes[head.target.clone()]).unwrap_or("/");
        let path = target.split_once('?').map_or(target, |(p, _)| p);
        let host = head
            .values(bytes, Kind::Host)
            .next()
            .and_then(|v| std::str::from_utf8(v).ok());
        let access =
            tracing::enabled!(target: "holdfast::access", tracing::Level::DEBUG).then(|| Access {
                method: String::from_utf8_lossy(method).into_owned(),
                host: host.unwrap_or("").to_string(),
                path: path.to_string(),
            });
        let close_client = head.connection_has(bytes, "close");
        let (is_head, replayable) = (method == b"HEAD", is_idempotent(method) && length == 0);
        let is_delete = method == b"DELETE";
        let (fe, peer) = (self.fe, self.peer);
        let done = |status: StatusCode, backend, server| {
            account(
                dp,
                fe,
                peer,
                access.as_ref(),
                status.as_u16(),
                backend,
                server,
                start.elapsed(),
            );
        };
        let Some(pool) = self.fe.router.route(host, path).cloned() else {
            dp.metrics.error(ErrorKind::NoRoute);
            done(StatusCode::SERVICE_UNAVAILABLE, &NONE, &NONE);
            self.refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "no backend for this request",
            )
            .await;
            return Next::Close;
        };
        let proxies = &pool.config.trusted_proxies;
        let peer_trusted = trusted(self.peer.ip(), proxies);
        let client = match peer_trusted {
            true => {
                let xff = head
                    .values(bytes, Kind::ForwardedFor)
                    .filter_map(|v| std::str::from_utf8(v).ok());
                client_ip_from(self.peer.ip(), xff, proxies)
            }
            false => self.peer.ip(),
        };
        let persistence = pool.config.persistence;
        let name = pool.config.cookie_name();
        let cookie = match persistence {
            Persistence::Insert | Persistence::Learn => {
                session::in_request_head(&pool.config, head, bytes)
            }
            _ => None,
        };
        let mut plan = match persist::plan(dp, &pool, cookie, client).await {
            Ok(plan) => plan,
            Err(no) => {
                let (status, kind, text) = no.answer();
                dp.metrics.error(kind);
                done(status, &pool.name, &NONE);
                self.refuse(status, text).await;
                return Next::Close;
            }
        };
        self.out.clear();
        let hop = RequestHop {
            peer: &self.peer_text,
            trusted: peer_trusted,
            tls: self.tls,
            own_cookie: (persistence == Persistence::Insert).then_some(name),
        };
        write_request(&mut self.out, head, bytes, &hop);
        // The body bytes already read go out with the head.
        self.buf.consume(self.head.len);
        let inline = (self.buf.filled().len() as u64).min(length) as usize;
        self.out.extend_from_slice(&self.buf.filled()[..inline]);
        self.buf.consume(inline);
        let rest = length - inline as u64;

        // Send, with one redispatch after a connect failure and fresh connections when a
        // pooled one turns out closed.
        let (t, stall) = (&dp.timeouts, dp.timeouts.server);
        let mut redispatched = false;
        let mut stale = 0;
        let (mut up, inflight) = loop {
            let server = plan.server.clone();
            let pooled = server
                .idle
                .take(t.pool_idle)
                .filter(|u| replayable || u.looks_alive());
            let mut up = match pooled {
                Some(up) => up,
                None => match upstream::connect(&server.addr, t.connect).await {
                    Ok(up) => up,
                    Err(e) => {
                        dp.metrics.error(ErrorKind::Connect);
                        tracing::warn!(backend = %pool.name, server = %server.name, error = %e, "connect to server failed");
                        if replayable
                            && !redispatched
                            && let Some(next) = persist::retry(dp, &pool, plan.clone())
                        {
                            dp.metrics.error(ErrorKind::Redispatch);
                            plan = next;
                            redispatched = true;
                            continue;
                        }
                        done(StatusCode::SERVICE_UNAVAILABLE, &pool.name, &server.name);
                        self.refuse(StatusCode::SERVICE_UNAVAILABLE, "server unreachable")
                            .await;
                        return Next::Close;
                    }
                },
            };
            let inflight = persist::open(dp, &pool, &plan);
            let sent = match up.stream.write_all(&self.out).await {
                Ok(()) => {
                    pass_length(&mut self.io, &mut self.buf, &mut up.stream, rest, stall).await
                }
                Err(_) => Err(false),
            };
            match sent {
                Ok(()) => {}
                Err(false) if up.reused && rest == 0 && stale < 3 => {
                    stale += 1;
                    continue;
                }
                Err(client_side) => {
                    if client_side {
                        return Next::Close;
                    }
                    dp.metrics.error(ErrorKind::Backend);
                    done(StatusCode::BAD_GATEWAY, &pool.name, &server.name);
                    self.refuse(StatusCode::BAD_GATEWAY, "bad gateway").await;
                    return Next::Close;
                }
            }
            match self.read_response_head(&mut up, stall).await {
                Ok(()) => break (up, inflight),
                Err(NoResponse::Closed) if up.reused && replayable && stale < 3 => {
                    stale += 1;
                    continue;
                }
                Err(why) => {
                    let (status, kind, text) = match why {
                        NoResponse::Timeout => (
                            StatusCode::GATEWAY_TIMEOUT,
                            ErrorKind::ServerTimeout,
                            "server timeout",
                        ),
                        _ => (StatusCode::BAD_GATEWAY, ErrorKind::Backend, "bad gateway"),
                    };
                    dp.metrics.error(kind);
                    tracing::debug!(backend = %pool.name, server = %server.name, text, "no response from server");
                    done(status, &pool.name, &server.name);
                    self.refuse(status, text).await;
                    return Next::Close;
                }
            }
        };

        // The response.
        let server = plan.server.clone();
        let bytes = up.buf.filled();
        let resp = &self.resp;
        let framing = match response_framing(resp, bytes, if is_head { b"HEAD" } else { b"GET" }) {
            Ok(f) => f,
            Err(why) => {
                dp.metrics.error(ErrorKind::Backend);
                tracing::debug!(backend = %pool.name, server = %server.name, why, "bad response framing");
                done(StatusCode::BAD_GATEWAY, &pool.name, &server.name);
                self.refuse(StatusCode::BAD_GATEWAY, "bad gateway").await;
                return Next::Close;
            }
        };
        let learned = match persistence {
            Persistence::Learn => session::in_response_head(&pool.config, resp, bytes),
            _ => None,
        };
        let set_cookies = resp
            .values(bytes, Kind::SetCookie)
            .filter_map(|v| std::str::from_utf8(v).ok());
        let ended = session::ended(&pool.config, is_delete, resp.status, set_cookies);
        let set_cookie = persist::record(dp, &pool, &plan, learned, ended, self.tls);
        inflight.learned(learned);
        let close = close_client || framing == Framing::Close;
        let reusable =
            resp.minor == 1 && !resp.connection_has(bytes, "close") && framing != Framing::Close;
        let status = resp.status;
        self.out.clear();
        write_response(&mut self.out, resp, bytes, set_cookie.as_deref(), close);
        up.buf.consume(self.resp.len);
        let mut chunked = Chunked::default();
        let filled = up.buf.filled();
        let (inline, left) = match framing {
            Framing::Length(n) => {
                let inline = (filled.len() as u64).min(n);
                (inline as usize, n - inline)
            }
            Framing::Chunked => match chunked.feed(filled) {
                Ok(n) => (n, 0),
                Err(_) => (filled.len() + 1, 0),
            },
            Framing::Close => (filled.len(), 0),
        };
        let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        if inline > filled.len() {
            dp.metrics.error(ErrorKind::Backend);
            done(StatusCode::BAD_GATEWAY, &pool.name, &server.name);
            self.refuse(StatusCode::BAD_GATEWAY, "bad gateway").await;
            return Next::Close;
        }
        self.out.extend_from_slice(&filled[..inline]);
        up.buf.consume(inline);
        let passed = match self.io.write_all(&self.out).await {
            Ok(()) => pass_body(&mut up, &mut self.io, framing, &mut chunked, left, stall).await,
            Err(_) => Err(()),
        };
        done(status_code, &pool.name, &server.name);
        drop(inflight);
        if passed.is_err() {
            return Next::Close;
        }
        if reusable && up.buf.is_empty() {
            server.idle.put(up);
        }
        if close { Next::Close } else { Next::KeepAlive }
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
            if !up.buf.is_empty() {
                match self.resp.parse_response(up.buf.filled()) {
                    Ok(true) if self.resp.status == 101 => return Err(NoResponse::Malformed),
                    Ok(true) if self.resp.status < 200 => {
                        self.out.clear();
                        write_response(&mut self.out, &self.resp, up.buf.filled(), None, false);
                        up.buf.consume(self.resp.len);
                        if self.io.write_all(&self.out).await.is_err() {
                            return Err(NoResponse::Closed);
                        }
                        continue;
                    }
                    Ok(true) => return Ok(()),
                    Ok(false) if up.buf.is_full() => return Err(NoResponse::Malformed),
                    Ok(false) => {}
                    Err(_) => return Err(NoResponse::Malformed),
                }
            }
            match tokio::time::timeout_at(deadline, up.buf.fill(&mut up.stream)).await {
                Ok(Ok(1..)) => {}
                Ok(_) if up.buf.is_empty() => return Err(NoResponse::Closed),
                Ok(_) => return Err(NoResponse::Malformed),
                Err(_) => return Err(NoResponse::Timeout),
            }
        }
    }
}
