//! HTTP/2 streams relayed to HTTP/1.1 servers over the fast path's server leg, through a
//! real node process: every way a server frames a response body (length, chunked, until
//! it closes, larger than a buffer, stalled), interim answers, and server connections
//! kept for the next stream (RFC 9113 §8.1, RFC 9112 §6.3, §9.3); the request head the
//! server gets (RFC 9113 §8.2.3, §8.3.1).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_tests::Lab;
use http_body_util::BodyExt;

/// Bytes of the large answer: several times the leg's 16 KiB buffer.
const BIG: usize = 200_000;

/// A raw HTTP/1.1 server answering by path; counts the connections it accepted and can
/// close them all (as a restarted server would have).
struct Server {
    addr: String,
    accepted: Arc<AtomicUsize>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Server {
    fn start() -> Server {
        // A port found free can be taken before it is bound again: try a few.
        let listener = (0..8)
            .find_map(|_| TcpListener::bind(("127.0.0.1", holdfast_tests::free_port())).ok())
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (count, kept) = (accepted.clone(), open.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::Relaxed);
                if let Ok(copy) = stream.try_clone() {
                    kept.lock().expect("lock").push(copy);
                }
                std::thread::spawn(move || serve(stream));
            }
        });
        Server {
            addr,
            accepted,
            open,
        }
    }

    /// Closes every connection accepted so far.
    fn close_all(&self) {
        for stream in self.open.lock().expect("lock").drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Reads from `stream` into `buf` until it holds `end`; the text up to and with it,
/// taken from `buf`.
fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, end: &[u8]) -> Option<String> {
    loop {
        if let Some(at) = buf.windows(end.len()).position(|w| w == end) {
            let text = String::from_utf8_lossy(&buf[..at + end.len()]).into_owned();
            buf.drain(..at + end.len());
            return Some(text);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Answers each request on `stream` by its path; a close-delimited answer ends it.
fn serve(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let mut head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            // The chunked body, shown after the head as it came.
            let Some(body) = read_until(&mut stream, &mut buf, b"0\r\n\r\n") else {
                return;
            };
            head = format!("{head}\r\n\r\n{body}");
        }
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        let answer: Vec<u8> = match path.as_str() {
            "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                5;x=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"
                .to_vec(),
            "/close" => b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end".to_vec(),
            "/slow" => {
                std::thread::sleep(Duration::from_millis(300));
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow".to_vec()
            }
            "/stall" => {
                // Part of the body, then nothing for longer than `timeouts.server`.
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart");
                std::thread::sleep(Duration::from_secs(10));
                return;
            }
            "/early" => b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
                HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter"
                .to_vec(),
            "/big" => {
                let mut a =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").into_bytes();
                a.extend((0..BIG).map(|i| b'a' + (i % 26) as u8));
                a
            }
            "/head" => {
                let mut a = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", head.len())
                    .into_bytes();
                a.extend_from_slice(head.as_bytes());
                a
            }
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nlength".to_vec(),
        };
        if stream.write_all(&answer).is_err() || path == "/close" {
            // Closed here: the server's copy of the stream would keep it open.
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

/// A request body of one chunk whose length is not told (no `content-length`).
struct Unsized(Option<bytes::Bytes>);

impl hyper::body::Body for Unsized {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// A new HTTP/2 (prior knowledge) connection to `addr`, driven by its own task.
async fn h2_connect<B>(addr: &str) -> hyper::client::conn::http2::SendRequest<B>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let io = hyper_util::rt::TokioIo::new(tcp);
    let (sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

/// Sends `req` on a new HTTP/2 (prior knowledge) connection to `addr`; the answer's body.
async fn h2_send<B>(addr: &str, req: http::Request<B>) -> String
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut sender = h2_connect(addr).await;
    let resp = sender.send_request(req).await.expect("h2 response");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// Sends `req` through a new node (an h2 frontend to a new raw server); the answer's
/// body.
fn through_new_node<B>(req: http::Request<B>) -> String
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let server = Server::start();
    let lab = h2_node(&server);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), h2_send(&lab.http(0), req))
            .await
            .expect("answer within 30 s")
    })
}

/// GETs each of `paths` in turn on one HTTP/2 (prior knowledge) connection to `addr`:
/// (status, body) per path; a body that fails is `None`.
async fn h2_gets(addr: &str, paths: &[&str]) -> Vec<(u16, Option<Vec<u8>>)> {
    let mut sender = h2_connect(addr).await;
    let mut answers = Vec::new();
    for path in paths {
        let req = http::Request::get(format!("http://app.local{path}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request");
        let resp = sender.send_request(req).await.expect("h2 response");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.ok();
        answers.push((status, body.map(|b| b.to_bytes().to_vec())));
    }
    answers
}

/// One node with an h2 (prior knowledge) frontend to `server`, `timeouts.server` 1 s.
fn h2_node(server: &Server) -> Lab {
    let addr = server.addr.clone();
    Lab::start(1, move |_| {
        format!(
            r#"
[timeouts]
server = "1s"

[[frontend]]
name = "h2"
listen = "{{http}}"
proto = "h2"
default_backend = "app"

[[backend]]
name = "app"
server = [{{ name = "a1", addr = "{addr}" }}]
"#
        )
    })
}

#[test]
fn rfc9113_8_1_every_response_framing_reaches_the_stream() {
    let server = Server::start();
    let lab = h2_node(&server);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let paths = [
        "/length", "/chunked", "/early", "/big", "/close", "/length", "/stall",
    ];
    let answers = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), h2_gets(&lab.http(0), &paths))
            .await
            .expect("answers within 30 s")
    });
    let big: Vec<u8> = (0..BIG).map(|i| b'a' + (i % 26) as u8).collect();
    let expected: [Option<&[u8]>; 7] = [
        Some(b"length"),
        Some(b"hello, world"),
        Some(b"after"),
        Some(&big),
        Some(b"until the end"),
        Some(b"length"),
        // A server that stalls inside its body for `timeouts.server` fails the stream
        // (RFC 9113 §8.1: reset, never a shorter body passed off as whole).
        None,
    ];
    for ((path, (status, body)), want) in paths.iter().zip(&answers).zip(expected) {
        assert_eq!(*status, 200, "{path}");
        let shown = body
            .as_ref()
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(64)]));
        assert!(body.as_deref() == want, "{path}: {shown:?}");
    }
    // One connection serves every stream that leaves it reusable; the close-delimited
    // answer ends its own, so the next stream needs a second (the stalled one is given
    // up, not kept).
    assert_eq!(server.accepted.load(Ordering::Relaxed), 2);
}

#[test]
fn rfc9113_8_2_3_cookies_reach_an_http1_server_in_one_field() {
    let req = http::Request::post("http://app.local/head")
        .header("cookie", "a=1")
        .header("cookie", "b=2; c=3")
        .header("te", "trailers")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let head = through_new_node(req);
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[0], "POST /head HTTP/1.1", "{head}");
    let named = |name: &str| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l.split_once(": "))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    };
    // The crumbs joined by "; " into one field (RFC 9113 §8.2.3).
    assert_eq!(named("cookie"), ["a=1; b=2; c=3"], "{head}");
    // `:authority` as `Host` (RFC 9113 §8.3.1), hop-by-hop `TE` dropped, and a POST
    // with no body says so (RFC 9110 §8.6).
    assert_eq!(named("host"), ["app.local"], "{head}");
    assert_eq!(named("x-forwarded-host"), ["app.local"], "{head}");
    assert!(named("te").is_empty(), "{head}");
    assert_eq!(named("content-length"), ["0"], "{head}");
}

/// A server that closed every idle connection the proxy keeps (it restarted) costs the
/// next request nothing: the first dead one found sends it on a new connection, never
/// through the other dead ones to a 502.
#[test]
fn a_server_that_dropped_its_idle_connections_costs_no_502() {
    let server = Server::start();
    let lab = h2_node(&server);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let addr = lab.http(0);
    rt.block_on(async {
        // Six streams at once: six server connections, pooled when they end.
        let slow: Vec<_> = (0..6)
            .map(|_| {
                let addr = addr.clone();
                tokio::spawn(async move { h2_gets(&addr, &["/slow"]).await })
            })
            .collect();
        for answer in slow {
            assert_eq!(answer.await.expect("task")[0].0, 200);
        }
    });
    assert!(server.accepted.load(Ordering::Relaxed) >= 4);
    server.close_all();
    std::thread::sleep(Duration::from_millis(200));
    let answers = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            h2_gets(&addr, &["/length", "/length"]),
        )
        .await
        .expect("answers within 30 s")
    });
    for (status, body) in answers {
        assert_eq!(status, 200);
        assert_eq!(body.as_deref(), Some(&b"length"[..]));
    }
}

/// A `GET` with a body and no `content-length` (an HTTP/2 stream may send one, as
/// search APIs do): the server gets the body, chunked (RFC 9112 §6.1), not a bodiless
/// `GET`.
#[test]
fn rfc9113_8_1_a_get_body_of_untold_length_reaches_the_server() {
    let req = http::Request::get("http://app.local/head")
        .body(Unsized(Some(bytes::Bytes::from_static(b"hello"))))
        .expect("request");
    let echoed = through_new_node(req);
    assert!(echoed.starts_with("GET /head HTTP/1.1\r\n"), "{echoed}");
    let lower = echoed.to_ascii_lowercase();
    assert!(lower.contains("transfer-encoding: chunked\r\n"), "{echoed}");
    assert!(
        echoed.ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        "{echoed:?}"
    );
}
