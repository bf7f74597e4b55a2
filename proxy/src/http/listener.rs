//! A frontend's accept loop and connections: a connection slot per client (max
//! connections; when all are taken, idle ones are closed first for a newcomer), the TLS
//! handshake under a timeout, then the HTTP/1.1 fast path, holdfast's HTTP/2 engine (by
//! ALPN or preface), or hyper for redirects and what the fast path hands over, with
//! header size limits, the idle and header timeouts, and upgrades.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1::Builder;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::idle::{Mark, RECLAIM_BATCH};

use super::body::incoming;
use super::conn::{ConnState, Cut, TimedIo};
use super::h1::{self, Served};
use super::h2;
use super::metrics::ErrorKind;
use super::refusal::Refusal;
use super::streamed::{self, Client};
use arc_swap::ArcSwap;

use super::{DataPlane, Frontend, Live};

/// Accepts clients on `listener` forever. Each connection is served by the generation
/// current when it was accepted, in a connection slot: when every slot is taken, the
/// newcomer waits for one after idle connections were told to close.
pub async fn accept_loop(
    listener: TcpListener,
    current: Arc<ArcSwap<Live>>,
    slots: Arc<Semaphore>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(frontend = %current.load().frontend.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let live = current.load_full();
        let (plane, frontend) = (live.plane.clone(), live.frontend.clone());
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => match slot_for_newcomer(&slots, &plane).await {
                Some(permit) => permit,
                None => return,
            },
        };
        let limit = plane.limits.max_connections_per_client;
        let Some(client_slot) = plane.lasting.per_client.admit(peer.ip(), limit) else {
            // Over its own limit: closed at once, its slot back for everyone else.
            plane.lasting.metrics.error(ErrorKind::ClientLimit);
            drop(stream);
            continue;
        };
        let registered = plane.lasting.idle.register();
        tokio::spawn(async move {
            plane.lasting.metrics.connection(1);
            serve(stream, peer, &plane, frontend, &registered.mark, permit).await;
            plane.lasting.metrics.connection(-1);
            drop(client_slot);
        });
    }
}

/// A slot for a client accepted while every slot is taken: idle connections are told to
/// close, then the first slot that frees is its. `None` once the frontend stops.
async fn slot_for_newcomer(
    slots: &Arc<Semaphore>,
    plane: &DataPlane,
) -> Option<OwnedSemaphorePermit> {
    let closed = plane.lasting.idle.reclaim(RECLAIM_BATCH);
    for _ in 0..closed {
        plane.lasting.metrics.error(ErrorKind::IdleReclaimed);
    }
    slots.clone().acquire_owned().await.ok()
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    plane: &Arc<DataPlane>,
    frontend: Arc<Frontend>,
    mark: &Arc<Mark>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let conn = Conn { peer, mark };
    let plain = match frontend.h2_only {
        true => Protocols::Http2,
        // A redirecting frontend skips the fast path, so nothing reads a preface for it.
        false
            if frontend.redirect_https && opens_h2(&stream, plane.timeouts.client_header).await =>
        {
            Protocols::Http2
        }
        false => Protocols::Any,
    };
    match frontend.tls.clone() {
        None => serve_io(stream, conn, false, plain, plane, frontend).await,
        Some(acceptor) => {
            let shake = tokio::time::timeout(plane.timeouts.tls_handshake, acceptor.accept(stream));
            match shake.await {
                Ok(Ok(tls)) => {
                    let protocols = match tls.get_ref().1.alpn_protocol() {
                        _ if frontend.h2_only => Protocols::Http2,
                        Some(b"h2") => Protocols::Http2,
                        _ => Protocols::Http1,
                    };
                    serve_io(tls, conn, true, protocols, plane, frontend).await
                }
                Ok(Err(e)) => {
                    plane.lasting.metrics.error(ErrorKind::TlsHandshake);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    plane.lasting.metrics.error(ErrorKind::TlsHandshake);
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        }
    }
}

/// The protocols a connection may speak: what ALPN chose on TLS (RFC 9113 §3.2; no
/// ALPN means HTTP/1.1), either on plain HTTP (HTTP/2 by its preface, RFC 9113 §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocols {
    /// Plain HTTP: HTTP/1.x, or HTTP/2 with prior knowledge.
    Any,
    /// TLS with ALPN `http/1.1`, or none.
    Http1,
    /// TLS with ALPN `h2`: a bad preface is a connection error, never an HTTP/1 answer.
    Http2,
}

/// Who a client connection is: its address, and its idle mark.
#[derive(Clone, Copy)]
pub(super) struct Conn<'a> {
    /// The client's address.
    pub peer: SocketAddr,
    /// The connection's idle mark.
    pub mark: &'a Arc<Mark>,
}

/// A client connection accepted (and its TLS handshake done), about to be served.
pub(super) struct Opened<'a> {
    /// Who it is.
    pub conn: Conn<'a>,
    /// True on a TLS listener.
    pub tls: bool,
    /// The data plane serving it.
    pub plane: &'a Arc<DataPlane>,
    /// Its frontend.
    pub frontend: Arc<Frontend>,
}

/// A connection under its timeouts, with what its requests know of their client.
pub(super) struct Timed<'a, I> {
    /// The connection, its first octets read again first.
    pub io: TimedIo<I>,
    /// What its timeouts and its requests share.
    pub state: Arc<ConnState>,
    /// The client, as its requests see it.
    pub client: Arc<Client>,
    /// The data plane serving it.
    pub plane: &'a Arc<DataPlane>,
    /// Its frontend.
    pub frontend: Arc<Frontend>,
}

impl<'a> Opened<'a> {
    /// The connection `io` under its timeouts, its first octets `read` already.
    pub(super) fn timed<I>(self, io: I, read: Vec<u8>) -> Timed<'a, I> {
        let Opened {
            conn,
            tls,
            plane,
            frontend,
        } = self;
        let state = ConnState::new();
        let io = TimedIo::new(io, read, state.clone(), &plane.timeouts, conn.mark.clone());
        let client = Client::new(conn.peer, tls, state.clone());
        Timed {
            io,
            state,
            client,
            plane,
            frontend,
        }
    }
}

/// Counts why a connection was cut, if it was.
pub(super) fn count_cut(plane: &DataPlane, state: &ConnState) {
    match state.cut() {
        Cut::Header => plane.lasting.metrics.error(ErrorKind::HeaderTimeout),
        Cut::Idle => plane.lasting.metrics.error(ErrorKind::IdleTimeout),
        Cut::SlowRead => plane.lasting.metrics.error(ErrorKind::ClientTimeout),
        // Counted when it was told to close.
        Cut::Reclaimed | Cut::No => {}
    }
}

/// Serves a client connection: HTTP/2 (by ALPN or preface) on holdfast's engine,
/// redirects on hyper, everything else on the fast path, and what the fast path hands
/// over on hyper.
async fn serve_io<I>(
    io: I,
    conn: Conn<'_>,
    tls: bool,
    protocols: Protocols,
    plane: &Arc<DataPlane>,
    frontend: Arc<Frontend>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let opened = Opened {
        conn,
        tls,
        plane,
        frontend,
    };
    if protocols == Protocols::Http2 {
        return opened.serve_h2(io, Vec::new()).await;
    }
    if opened.frontend.redirect_https {
        return serve_hyper(io, Vec::new(), opened).await;
    }
    let h1 = h1::serve(io, conn.peer, conn.mark, tls, plane, &opened.frontend).await;
    let Served::Fallback(mut io, read) = h1 else {
        return;
    };
    if !starts_like_h2(&read) {
        return serve_hyper(io, read, opened).await;
    }
    if protocols == Protocols::Http1 {
        // ALPN chose HTTP/1.1: the preface is a malformed HTTP/1.1 request.
        let refusal = Refusal::BadRequest("HTTP/2 preface after ALPN http/1.1");
        refusal.count(&plane.lasting.metrics);
        let mut out = Vec::new();
        refusal.write_h1(&mut out);
        h1::answer_and_close(&mut io, &out, plane.timeouts.client).await;
        return;
    }
    opened.serve_h2(io, read).await
}

/// True when the client's first octets, peeked at (within `limit`), begin as the
/// HTTP/2 preface does.
async fn opens_h2(stream: &TcpStream, limit: Duration) -> bool {
    let peek = async {
        let mut first = [0u8; 24];
        loop {
            match stream.peek(&mut first).await {
                Ok(0) | Err(_) => return false,
                Ok(n) if n >= 14 || first[..n] != h2::PREFACE[..n] => {
                    return starts_like_h2(&first[..n]);
                }
                // Too few octets to tell: wait for more.
                Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    };
    tokio::time::timeout(limit, peek).await.unwrap_or(false)
}

/// True when `read` begins as the HTTP/2 preface does (RFC 9113 §3.4), as far as its
/// version at least.
fn starts_like_h2(read: &[u8]) -> bool {
    let n = read.len().min(h2::PREFACE.len());
    // The fast path hands a connection over as soon as it reads a version other than
    // HTTP/1.x: a preface in pieces may come with no more than that.
    n >= b"PRI * HTTP/2".len() && read[..n] == h2::PREFACE[..n]
}

/// hyper's HTTP/1 server, with the limits and timeouts of `plane`: HTTP/1 alone, so
/// that no HTTP/2 reaches a server other than holdfast's own engine.
fn builder(plane: &DataPlane) -> Builder {
    let limits = &plane.limits;
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        // A client may shut its sending side after the request and wait for the answer
        // (`nc -N`, HTTP/1.0 clients); HAProxy and nginx answer it.
        .half_close(true)
        .max_buf_size(limits.max_header_size.max(8192))
        .max_headers(limits.max_headers);
    builder
}

/// Serves an HTTP/1 client connection on hyper, starting with the bytes already `read`
/// from it.
async fn serve_hyper<I>(io: I, read: Vec<u8>, opened: Opened<'_>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = opened.conn.peer;
    let Timed {
        io,
        state,
        client,
        plane,
        frontend,
    } = opened.timed(io, read);
    let service = {
        let plane = plane.clone();
        service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let (plane, frontend, client) = (plane.clone(), frontend.clone(), client.clone());
            // Boxed once where it is made: hyper moves the stream's future into a task
            // and tokio moves the task's stage again; 2.6 KB each time, a pointer boxed.
            Box::pin(async move {
                let req = req.map(incoming);
                Ok::<_, std::convert::Infallible>(
                    streamed::handle(plane, frontend, client, req).await,
                )
            })
        })
    };
    let builder = builder(plane);
    let result = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
    count_cut(plane, &state);
    if let Err(e) = result {
        if e.is_parse_too_large() {
            plane.lasting.metrics.error(ErrorKind::HeaderTooLarge);
        } else if e.is_parse() {
            plane.lasting.metrics.error(ErrorKind::BadRequest);
        }
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
}
