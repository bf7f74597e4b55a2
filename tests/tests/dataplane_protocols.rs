//! The data plane's protocols and limits through a real node process and real backends
//! over loopback: TLS with SNI choosing among two certificates, HTTP/2 over ALPN, a
//! WebSocket-style upgrade echo, 431 for oversized heads, smuggling-prone framing
//! refused, and a slowloris client cut off while other clients are served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use holdfast_tests::tls::{AnyCert, write_cert};
use holdfast_tests::{Lab, get, plain_config, raw, raw_within};
use rustls::pki_types::ServerName;

/// An HTTP/2 GET over TLS to `addr` with SNI `name`: (certificate seen, ALPN, status,
/// version, body).
async fn h2_get(addr: &str, name: &str) -> (Vec<u8>, Option<Vec<u8>>, u16, http::Version, String) {
    use http_body_util::BodyExt;
    let recorder = Arc::new(AnyCert::default());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let server_name = ServerName::try_from(name.to_string()).expect("name");
    let tls = connector
        .connect(server_name, tcp)
        .await
        .expect("TLS handshake");
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let seen = recorder
        .seen
        .lock()
        .expect("lock")
        .clone()
        .expect("a certificate");
    let io = hyper_util::rt::TokioIo::new(tls);
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = http::Request::get(format!("https://{name}/"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("h2 response");
    let (status, version) = (resp.status().as_u16(), resp.version());
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (
        seen,
        alpn,
        status,
        version,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[test]
fn tls_sni_picks_the_right_certificate_and_http2_works_over_alpn() {
    let certs = tempfile::tempdir().expect("tempdir");
    let a = write_cert(certs.path(), "a.test");
    let b = write_cert(certs.path(), "b.test");
    let dir = certs.path().display().to_string();
    let lab = Lab::start(1, |servers| {
        format!(
            r#"
[[frontend]]
name = "tls"
listen = "{{http}}"
default_backend = "app"
tls = {{ certs = [{{ cert = "{dir}/a.test.crt", key = "{dir}/a.test.key" }}, {{ cert = "{dir}/b.test.crt", key = "{dir}/b.test.key" }}] }}

[[backend]]
name = "app"
persistence = "none"
{servers}
"#
        )
    });
    let http = lab.http(0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for (name, want) in [("a.test", &a), ("b.test", &b), ("other.test", &a)] {
            let (seen, alpn, status, version, body) =
                tokio::time::timeout(Duration::from_secs(30), h2_get(&http, name))
                    .await
                    .expect("bounded");
            assert_eq!(&seen, want, "SNI {name} got the wrong certificate");
            assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
            assert_eq!((status, version), (200, http::Version::HTTP_2));
            assert!(["s1", "s2", "s3"].contains(&body.as_str()), "{body}");
        }
    });
}

/// One node in front of s1..s3 without persistence, `extra` appended to its config.
fn plain_lab(extra: &str) -> Lab {
    let extra = extra.to_string();
    Lab::start(1, move |servers| {
        format!("{}\n{extra}", plain_config(servers))
    })
}

#[test]
fn websocket_upgrade_echoes_through_the_proxy() {
    let lab = plain_lab("");
    let mut s = TcpStream::connect(lab.http(0)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: ws.local\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        assert_eq!(
            s.read(&mut byte).expect("read head"),
            1,
            "closed early: {head:?}"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for message in ["hello", "through holdfast", "bye"] {
        s.write_all(message.as_bytes()).expect("write frame");
        let mut back = vec![0u8; message.len()];
        s.read_exact(&mut back).expect("echo");
        assert_eq!(back, message.as_bytes());
    }
}

#[test]
fn oversized_heads_get_431_and_ambiguous_framing_never_smuggles() {
    let lab = plain_lab("");
    let http = lab.http(0);
    let big = "x".repeat(40 * 1024);
    let answer = get(&http, "big.local", "/", &[("X-Big", &big)]).expect("answer");
    assert_eq!(answer.status, 431);
    // Content-Length with Transfer-Encoding is refused (400) and the connection closed,
    // so a request hidden in the body is never served.
    let smuggle = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let mut s = TcpStream::connect(&http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(smuggle).expect("write");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read until closed");
    let all = String::from_utf8_lossy(&all);
    assert_eq!(all.matches("HTTP/1.1 ").count(), 1, "{all}");
    assert!(all.starts_with("HTTP/1.1 400"), "{all}");
    let two = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde";
    assert_eq!(raw(&http, two).expect("answer").status, 400);
    // The proxy is still fine afterwards, and counted the errors.
    assert_eq!(
        get(&http, "ok.local", "/", &[]).expect("answer").status,
        200
    );
    let counted = |kind: &str| {
        lab.metric(0, &format!("holdfast_http_errors_total{{kind=\"{kind}\"}}"))
            .unwrap_or(0.0)
    };
    assert!(counted("header_too_large") >= 1.0);
}

#[test]
fn a_slowloris_client_is_cut_off_while_others_are_served() {
    let lab = plain_lab("[timeouts]\nclient_header = \"1s\"\n");
    let http = lab.http(0);
    let mut slow = TcpStream::connect(&http).expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: slow.local\r\n")
        .expect("first bytes");
    slow.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut cut = false;
    let mut served = 0;
    // One header byte at a time, at most 300 drips (~30 s); others are served meanwhile.
    for _ in 0..300 {
        if slow.write_all(b"X").is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Ok(_) => {
                // Closed (0 bytes) or answered with an error before closing.
                cut = true;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                cut = true;
                break;
            }
            Err(_) => {}
        }
        assert_eq!(
            get(&http, "ok.local", "/", &[]).expect("others").status,
            200
        );
        served += 1;
    }
    assert!(cut, "the slow client was never cut off");
    assert!(served > 0);
    assert!(
        lab.metric(0, "holdfast_http_errors_total{kind=\"header_timeout\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
}

#[test]
fn bodies_pipelines_and_old_clients_pass_through() {
    let lab = plain_lab("");
    let http = lab.http(0);
    // A body small enough for the fast path and one large enough for the hyper path are
    // both streamed to the server and back intact.
    for size in [10_000usize, 300_000] {
        let body: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let request = format!(
            "POST /echo HTTP/1.1\r\nHost: echo.local\r\nContent-Length: {size}\r\n\
             Connection: close\r\n\r\n{body}"
        );
        let answer = raw(&http, request.as_bytes()).expect("echo");
        assert_eq!(answer.status, 200, "{size}");
        assert!(
            answer.body == body,
            "{size}: {} bytes back",
            answer.body.len()
        );
    }
    // A chunked response passes through chunked.
    let answer = get(&http, "c.local", "/chunked", &[]).expect("chunked");
    assert_eq!(answer.all("transfer-encoding"), ["chunked"]);
    assert!(
        answer.body.starts_with('<') && answer.body.ends_with('>'),
        "{}",
        answer.body
    );
    // Two pipelined requests get two answers, in order; the second closes.
    let two = b"GET /chunked HTTP/1.1\r\nHost: p.local\r\n\r\n\
        GET / HTTP/1.1\r\nHost: p.local\r\nConnection: close\r\n\r\n";
    let mut s = TcpStream::connect(&http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(two).expect("write");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read until closed");
    let all = String::from_utf8_lossy(&all);
    assert_eq!(all.matches("HTTP/1.1 200").count(), 2, "{all}");
    // HTTP/1.0 (served by the hyper path) and a HEAD on the fast path.
    let old = raw(&http, b"GET / HTTP/1.0\r\nHost: old.local\r\n\r\n").expect("1.0");
    assert_eq!(old.status, 200);
    assert!(old.body.starts_with('s'), "{}", old.body);
    let head = raw(
        &http,
        b"HEAD / HTTP/1.1\r\nHost: h.local\r\nConnection: close\r\n\r\n",
    )
    .expect("HEAD");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
}

/// A client that uploads to `/echo` and never reads the echo: the proxy's writes to it
/// stall, and `timeouts.client` cuts the connection instead of holding its slot and a
/// server connection for as long as the client likes (a slow-read attack).
#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let lab = plain_lab("[timeouts]\nclient = \"1s\"\n");
    let mut s = TcpStream::connect(lab.http(0)).expect("connect");
    let size = 64 << 20;
    let head = format!("POST /echo HTTP/1.1\r\nHost: app.local\r\nContent-Length: {size}\r\n\r\n");
    s.write_all(head.as_bytes()).expect("head");
    s.set_write_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    // Write until the proxy gives up on us; never read a byte. Bounded: 64 MiB at most.
    let chunk = vec![b'x'; 64 << 10];
    let started = std::time::Instant::now();
    let mut sent = 0usize;
    let cut = loop {
        match s.write(&chunk) {
            Ok(n) if sent + n < size => sent += n,
            Ok(_) => break false,
            Err(_) => break true,
        }
    };
    assert!(
        cut,
        "the non-reading client was never cut off ({sent} bytes sent)"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let cuts = lab
        .metric(0, "holdfast_http_errors_total{kind=\"client_timeout\"}")
        .unwrap_or(0.0);
    assert!(cuts >= 1.0, "client_timeout not counted");
}

/// A client that shuts its sending side after the request and waits for the answer
/// (`nc -N`, many HTTP/1.0 clients) is answered on both engines, as HAProxy and nginx do.
#[test]
fn a_client_that_half_closes_after_its_request_is_answered() {
    let lab = plain_lab("");
    for request in [
        "GET / HTTP/1.0\r\nHost: app.local\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: app.local\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: app.local\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(lab.http(0)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(request.as_bytes()).expect("request");
        s.shutdown(std::net::Shutdown::Write).expect("half-close");
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        let text = String::from_utf8_lossy(&got);
        // HTTP/1.0 is answered in HTTP/1.0.
        let status = text.split(' ').nth(1);
        assert_eq!(status, Some("200"), "{request:?}: {text:?}");
    }
}

/// A client that sends part of its request body and then nothing is answered 408 after
/// `timeouts.client` (counted as `client_timeout`) instead of holding its slot and a server
/// connection: on the fast path (a length-framed body) and on the streamed engine
/// (`Expect: 100-continue` takes it there).
#[test]
fn a_client_that_stops_sending_its_body_is_answered_408() {
    let lab = plain_lab("[timeouts]\nclient = \"1s\"\n");
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut s = TcpStream::connect(lab.http(0)).expect("connect");
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: app.local\r\nContent-Length: 1000\r\n{expect}\r\nabc"
        );
        s.write_all(head.as_bytes()).expect("head");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        // Bounded by the read timeout: read until the 408 arrives or the proxy closes.
        while !String::from_utf8_lossy(&got).contains("408") {
            match s.read(&mut chunk) {
                Ok(n @ 1..) => got.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.contains("HTTP/1.1 408 Request Timeout"),
            "{expect:?}: {text}"
        );
    }
    let cuts = lab
        .metric(0, "holdfast_http_errors_total{kind=\"client_timeout\"}")
        .unwrap_or(0.0);
    assert!(cuts >= 2.0, "client_timeout counted {cuts} times");
}

/// Every connection slot taken, mostly by idle connections (kept alive after a response,
/// or opened and silent): a new client is served at once, the idle ones having been
/// closed for it (nginx's behaviour), while a request in flight is never cut.
#[test]
fn idle_connections_give_their_slots_to_a_new_client() {
    let lab = plain_lab("[limits]\nmax_connections = 20\n[timeouts]\nkeep_alive = \"120s\"\n");
    let http = lab.http(0);
    let request = b"GET / HTTP/1.1\r\nHost: app.local\r\n\r\n";
    let mut kept: Vec<TcpStream> = Vec::new();
    for _ in 0..10 {
        let mut s = TcpStream::connect(&http).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(request).expect("request");
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).expect("response");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        kept.push(s);
    }
    let silent: Vec<TcpStream> = (0..9)
        .map(|_| TcpStream::connect(&http).expect("connect"))
        .collect();
    // A request in flight on a connection that stays open after it (so that its end
    // frees no slot).
    let slow = {
        let mut s = TcpStream::connect(&http).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        s.write_all(b"GET /sleep/3000 HTTP/1.1\r\nHost: app.local\r\n\r\n")
            .expect("slow request");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            (String::from_utf8_lossy(&buf[..n]).to_string(), s)
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    // Without reclaiming, the newcomer would wait for `keep_alive` (120 s).
    let answer = raw_within(
        &http,
        b"GET / HTTP/1.1\r\nHost: app.local\r\nConnection: close\r\n\r\n",
        Duration::from_secs(20),
    )
    .expect("the new client is answered");
    assert_eq!(answer.status, 200, "{answer:?}");
    let (slow, slow_conn) = slow.join().expect("slow thread");
    assert!(
        slow.starts_with("HTTP/1.1 200"),
        "a request in flight was cut: {slow:?}"
    );
    let reclaimed = lab
        .metric(0, "holdfast_http_errors_total{kind=\"idle_reclaimed\"}")
        .unwrap_or(0.0);
    assert!(reclaimed >= 1.0, "idle_reclaimed counted {reclaimed}");
    drop((kept, silent, slow_conn));
}

/// One client address holding its limit of idle keep-alive connections gets no more,
/// and the node's other connection slots stay free for everyone else.
#[test]
fn one_client_cannot_take_every_connection_slot() {
    let lab = plain_lab("[limits]\nmax_connections_per_client = 3\n");
    let http = lab.http(0);
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(&http).expect("connect"))
        .collect();
    // The fourth is accepted and closed at once (read: end of stream or reset).
    let mut fourth = TcpStream::connect(&http).expect("connect");
    fourth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = fourth.write_all(b"GET / HTTP/1.1\r\nHost: app.local\r\n\r\n");
    let mut buf = [0u8; 64];
    let refused = matches!(fourth.read(&mut buf), Ok(0) | Err(_));
    assert!(refused, "a fourth connection was served");
    let counted = lab
        .metric(0, "holdfast_http_errors_total{kind=\"client_limit\"}")
        .unwrap_or(0.0);
    assert!(counted >= 1.0, "client_limit not counted");
    // A slot given back is usable again.
    drop(held);
    let again = holdfast_tests::wait_for("a slot freed", Duration::from_secs(10), || {
        get(&http, "app.local", "/", &[])
            .ok()
            .filter(|a| a.status == 200)
    });
    assert_eq!(again.status, 200);
}
