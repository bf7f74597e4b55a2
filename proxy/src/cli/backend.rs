//! `holdfast backend`: a tiny demo and test server. It answers 200 with its name as body,
//! sets `PHPSESSID=<random>` when the request carries none, and echoes raw bytes after
//! accepting any `Upgrade` request on `/ws` (enough to test WebSocket pass-through).
//! `/echo` streams the request body back; `/chunked` answers its name in three chunks;
//! `/mcp` hands out an `Mcp-Session-Id` header to a request that has none; `/sse/MS`
//! streams server-sent events for MS milliseconds; `/logout` deletes `PHPSESSID`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue, SET_COOKIE, UPGRADE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::http::cookie::request_cookie;

/// Runs one backend on `listen` until Ctrl-C or SIGTERM.
pub fn backend(listen: SocketAddr, name: String) -> anyhow::Result<i32> {
    super::run::init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        tracing::info!(%listen, %name, "backend listening");
        tokio::select! {
            _ = serve(listener, Arc::from(name.as_str())) => {}
            _ = super::run::shutdown_signal() => {}
        }
        anyhow::Ok(())
    })?;
    Ok(0)
}

/// Serves the demo backend on `listener` forever.
pub async fn serve(listener: TcpListener, name: Arc<str>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let name = name.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let name = name.clone();
                async move {
                    // `/sleep/MS` answers after MS milliseconds (at most 10 s): a slow
                    // request for tests of timeouts and graceful reloads.
                    if let Some(ms) = req.uri().path().strip_prefix("/sleep/") {
                        let ms = ms.parse::<u64>().unwrap_or(0).min(10_000);
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    }
                    let path = req.uri().path();
                    // `/upload`: reads the whole request body, then says how long it was
                    // (an application's form handler).
                    if path == "/upload" {
                        let read = req.into_body().collect().await;
                        let text = match read {
                            Ok(body) => format!("{name} read {} bytes", body.to_bytes().len()),
                            Err(e) => format!("{name}: {e}"),
                        };
                        let body = Full::new(Bytes::from(text)).map_err(|never| match never {});
                        return Ok(Response::new(body.boxed()));
                    }
                    if let Some(ms) = path.strip_prefix("/sse/").and_then(|m| m.parse().ok()) {
                        return Ok(Events::response(&name, ms));
                    }
                    let resp = match path {
                        "/echo" => Response::new(req.into_body().boxed()),
                        "/chunked" => Response::new(Chunks::of(&name).boxed()),
                        _ => answer(&name, req).map(|b| b.map_err(|never| match never {}).boxed()),
                    };
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `/sse/MS`: a server-sent event stream, one event every 200 ms for MS milliseconds (at
/// most a minute) with the server's name, then the end.
struct Events {
    event: Bytes,
    left: u32,
    next: std::pin::Pin<Box<tokio::time::Sleep>>,
}

/// Time between two events.
const EVENT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

impl Events {
    fn response(
        name: &str,
        ms: u64,
    ) -> Response<http_body_util::combinators::BoxBody<Bytes, hyper::Error>> {
        let events = Events {
            event: Bytes::from(format!("event: tick\ndata: {name}\n\n")),
            left: (ms.min(60_000) / EVENT_EVERY.as_millis() as u64) as u32,
            next: Box::pin(tokio::time::sleep(EVENT_EVERY)),
        };
        let mut resp = Response::new(events.boxed());
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        resp
    }
}

impl hyper::body::Body for Events {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return std::task::Poll::Ready(None);
        }
        std::task::ready!(this.next.as_mut().poll(cx));
        this.left -= 1;
        let at = tokio::time::Instant::now() + EVENT_EVERY;
        this.next.as_mut().reset(at);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(this.event.clone()))))
    }
}

/// A body of a few frames and no length: sent chunked.
struct Chunks(std::collections::VecDeque<Bytes>);

impl Chunks {
    fn of(name: &str) -> Chunks {
        Chunks(
            ["<", name, ">"]
                .iter()
                .map(|s| Bytes::from(s.to_string()))
                .collect(),
        )
    }
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        std::task::Poll::Ready(
            self.get_mut()
                .0
                .pop_front()
                .map(|b| Ok(hyper::body::Frame::data(b))),
        )
    }
}

fn answer(name: &str, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() == "/ws" && req.headers().contains_key(UPGRADE) {
        let protocol = req
            .headers()
            .get(UPGRADE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("websocket"));
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = upgrade.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut().insert(UPGRADE, protocol);
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        return resp;
    }
    let mut resp = Response::new(Full::new(Bytes::from(name.to_string())));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    // `/mcp`: an MCP server's session over Streamable HTTP, in miniature: a request
    // without `Mcp-Session-Id` (an `initialize`) is given one in the response header.
    if req.uri().path() == "/mcp" {
        if !req.headers().contains_key(MCP_SESSION)
            && let Ok(v) = HeaderValue::from_str(&random_id())
        {
            resp.headers_mut().insert(MCP_SESSION, v);
        }
        return resp;
    }
    // `/logout`: the application ends the session by deleting its cookie.
    if req.uri().path() == "/logout" {
        let gone = HeaderValue::from_static("PHPSESSID=deleted; Max-Age=0; Path=/");
        resp.headers_mut().insert(SET_COOKIE, gone);
        return resp;
    }
    if request_cookie(req.headers(), "PHPSESSID").is_none()
        && let Ok(v) = HeaderValue::from_str(&format!("PHPSESSID={}; Path=/", random_id()))
    {
        resp.headers_mut().insert(SET_COOKIE, v);
    }
    resp
}

/// The session header of MCP's Streamable HTTP transport.
const MCP_SESSION: &str = "mcp-session-id";

fn random_id() -> String {
    let id: [u8; 12] = rand::random();
    id.iter().map(|b| format!("{b:02x}")).collect()
}
