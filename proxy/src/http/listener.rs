//! A frontend's accept loop and connections: a connection slot per client (max
//! connections; when all are taken, idle ones are closed first for a newcomer), the TLS
//! handshake under a timeout, then the HTTP/1.1 fast path, or hyper
//! for HTTP/2 (by ALPN or preface), redirects and what the fast path hands over, with
//! header size limits, the idle and header timeouts, and upgrades.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::idle::{Mark, RECLAIM_BATCH};

use super::conn::{ConnState, Cut, TimedIo};
use super::h1::{self, Served};
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

/// The first bytes of every HTTP/2 connection (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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
struct Conn<'a> {
    peer: SocketAddr,
    mark: &'a Arc<Mark>,
}

/// Serves a client connection: on the fast path unless it speaks HTTP/2 (by ALPN) or
/// is redirected, then on hyper with whatever the fast path handed over.
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
    let (io, read) = if protocols == Protocols::Http2 || frontend.redirect_https {
        (io, Vec::new())
    } else {
        match h1::serve(io, conn.peer, conn.mark, tls, plane, &frontend).await {
            Served::Done => return,
            Served::Fallback(mut io, read) => {
                if protocols == Protocols::Http1 && read.starts_with(H2_PREFACE) {
                    // ALPN chose HTTP/1.1: the preface is a malformed HTTP/1.1 request.
                    let refusal = Refusal::BadRequest("HTTP/2 preface after ALPN http/1.1");
                    refusal.count(&plane.lasting.metrics);
                    let mut out = Vec::new();
                    refusal.write_h1(&mut out);
                    let _ = io.write_all(&out).await;
                    let _ = io.shutdown().await;
                    return;
                }
                (io, read)
            }
        }
    };
    serve_hyper(io, read, conn, (tls, protocols), plane, frontend).await
}

/// hyper's server for `protocols`, with the limits and timeouts of `plane`.
fn builder(plane: &DataPlane, protocols: Protocols) -> Builder<TokioExecutor> {
    let (limits, t) = (&plane.limits, &plane.timeouts);
    let mut builder = Builder::new(TokioExecutor::new());
    builder = match protocols {
        Protocols::Any => builder,
        Protocols::Http1 => builder.http1_only(),
        Protocols::Http2 => builder.http2_only(),
    };
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        // A client may shut its sending side after the request and wait for the answer
        // (`nc -N`, HTTP/1.0 clients); HAProxy and nginx answer it.
        .half_close(true)
        .max_buf_size(limits.max_header_size.max(8192))
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(t.keep_alive))
        .keep_alive_timeout(t.client_header);
    builder
}

/// Serves a client connection on hyper, starting with the bytes already `read` from it.
async fn serve_hyper<I>(
    io: I,
    read: Vec<u8>,
    Conn { peer, mark }: Conn<'_>,
    (tls, protocols): (bool, Protocols),
    plane: &Arc<DataPlane>,
    frontend: Arc<Frontend>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = ConnState::new();
    let t = &plane.timeouts;
    let io = TimedIo::new(io, read, state.clone(), t, mark.clone());
    let client = Arc::new(Client {
        peer,
        peer_text: peer.ip().to_string(),
        tls,
        conn: state.clone(),
        cookies: Default::default(),
    });
    let service = {
        let plane = plane.clone();
        service_fn(move |req| {
            let (plane, frontend, client) = (plane.clone(), frontend.clone(), client.clone());
            // Boxed once where it is made: hyper moves the stream's future into a task
            // and tokio moves the task's stage again; 2.6 KB each time, a pointer boxed.
            Box::pin(async move {
                Ok::<_, std::convert::Infallible>(
                    streamed::handle(plane, frontend, client, req).await,
                )
            })
        })
    };
    let builder = builder(plane, protocols);
    // The version restriction holds only without upgrades (hyper-util), and HTTP/2 has
    // none to give.
    let result = match protocols {
        Protocols::Http2 => builder.serve_connection(TokioIo::new(io), service).await,
        _ => {
            builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .await
        }
    };
    match state.cut() {
        Cut::Header => plane.lasting.metrics.error(ErrorKind::HeaderTimeout),
        Cut::Idle => plane.lasting.metrics.error(ErrorKind::IdleTimeout),
        Cut::SlowRead => plane.lasting.metrics.error(ErrorKind::ClientTimeout),
        // Counted when it was told to close.
        Cut::Reclaimed | Cut::No => {}
    }
    if let Err(e) = result {
        let too_large = e
            .downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_parse_too_large());
        let parse = e
            .downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_parse());
        if too_large {
            plane.lasting.metrics.error(ErrorKind::HeaderTooLarge);
        } else if parse {
            plane.lasting.metrics.error(ErrorKind::BadRequest);
        }
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
}
