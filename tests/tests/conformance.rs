//! Header rules of a proxy hop, held to the RFCs on both engines that carry requests:
//! the HTTP/1.1 fast path, and the streamed engine (hyper) that takes request bodies
//! larger than the fast path sends whole, HTTP/1.0 and HTTP/2 (a bodiless request over
//! the fast path's server leg). Every case is sent once on each engine through a real
//! node process, to a raw server that records the exact bytes it receives.

use std::time::Duration;

use holdfast_tests::tls::{tls_raw, write_cert};
use holdfast_tests::{Answer, Lab, Received, Recorder, raw};

/// The engine a request is made to take.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Engine {
    /// HTTP/1.1 with no body: the fast path.
    Fast,
    /// The same request with a body over 64 KiB: handed to the streamed engine.
    Streamed,
    /// The same request in HTTP/1.0 with no body: the streamed engine, which sends a
    /// bodiless request over the fast path's server leg (as it does HTTP/2 streams).
    Leg,
}

const ENGINES: [Engine; 3] = [Engine::Fast, Engine::Streamed, Engine::Leg];

/// One node whose frontend sends `req.local` to a recorder and `resp.local` to a second
/// recorder answering with a hop-by-hop-laden, publicly cacheable response (both with
/// insert persistence).
struct Setup {
    lab: Lab,
    requests: Recorder,
    responses: Recorder,
}

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Internal\r\n\
    X-Internal: 1\r\nKeep-Alive: timeout=5\r\nX-App: 1\r\nCache-Control: public, max-age=60\r\n\r\nok";

fn setup() -> Setup {
    let requests = Recorder::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let responses = Recorder::start(RESPONSE);
    let (a, b) = (requests.addr.clone(), responses.addr.clone());
    let lab = Lab::start(1, move |_| {
        format!(
            r#"
[[frontend]]
name = "web"
listen = "{{http}}"
default_backend = "req"
routes = [{{ host = "resp.local", backend = "resp" }}]

[[backend]]
name = "req"
persistence = "insert"
server = [{{ name = "r1", addr = "{a}" }}]

[[backend]]
name = "resp"
persistence = "insert"
server = [{{ name = "p1", addr = "{b}" }}]
"#
        )
    });
    Setup {
        lab,
        requests,
        responses,
    }
}

impl Setup {
    /// Sends `GET /` with `fields` (each line ending in CRLF) on `engine`; returns the
    /// answer and what the recorder received.
    fn send(&self, engine: Engine, host: &str, fields: &str) -> (Answer, Vec<Received>) {
        let (framing, body) = match engine {
            Engine::Fast | Engine::Leg => ("", String::new()),
            Engine::Streamed => ("Content-Length: 65537\r\n", "x".repeat(65537)),
        };
        let version = match engine {
            Engine::Leg => "1.0",
            _ => "1.1",
        };
        let text = format!(
            "GET / HTTP/{version}\r\nHost: {host}\r\n{fields}Connection: close\r\n{framing}\r\n{body}"
        );
        let answer = raw(&self.lab.http(0), text.as_bytes()).expect("answer");
        let recorder = match host {
            "resp.local" => &self.responses,
            _ => &self.requests,
        };
        (answer, recorder.take())
    }

    /// The one request the recorder received for `fields` on `engine`.
    fn forwarded(&self, engine: Engine, fields: &str) -> Received {
        let (answer, mut got) = self.send(engine, "req.local", fields);
        assert_eq!(answer.status, 200, "{engine:?}: {answer:?}");
        assert_eq!(got.len(), 1, "{engine:?}: {got:?}");
        got.remove(0)
    }
}

/// The forwarded fields without the framing ones (each engine frames the body itself).
fn end_to_end(r: &Received) -> Vec<(String, String)> {
    r.fields()
        .into_iter()
        .filter(|(n, _)| n != "content-length" && n != "transfer-encoding")
        .collect()
}

#[test]
fn header_rules_hold_on_both_engines() {
    let s = setup();
    rfc9110_7_6_1_hop_by_hop_fields_are_not_forwarded(&s);
    rfc9110_7_6_1_connection_cannot_remove_what_the_proxy_relies_on(&s);
    forwarded_fields_are_replaced_for_an_untrusted_peer(&s);
    the_insert_cookie_never_reaches_the_server(&s);
    rfc9110_7_6_1_hop_by_hop_response_fields_stay_behind(&s);
    both_engines_forward_the_same_head(&s);
}

fn rfc9110_7_6_1_hop_by_hop_fields_are_not_forwarded(s: &Setup) {
    let fields = "Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\n\
        Proxy-Connection: keep-alive\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\n\
        X-Kept: 1\r\n";
    for engine in ENGINES {
        let got = s.forwarded(engine, fields);
        for name in [
            "x-secret",
            "keep-alive",
            "proxy-connection",
            "te",
            "proxy-authorization",
        ] {
            assert!(
                got.all(name).is_empty(),
                "{engine:?} forwarded {name}: {}",
                got.head_text()
            );
        }
        assert_eq!(got.all("x-kept"), ["1"], "{engine:?}");
    }
}

fn rfc9110_7_6_1_connection_cannot_remove_what_the_proxy_relies_on(s: &Setup) {
    let fields = "Connection: Host, Cookie, X-Forwarded-For\r\nCookie: a=1\r\n";
    for engine in ENGINES {
        let got = s.forwarded(engine, fields);
        assert_eq!(
            got.all("host"),
            ["req.local"],
            "{engine:?}: {}",
            got.head_text()
        );
        assert_eq!(got.all("cookie"), ["a=1"], "{engine:?}");
        assert_eq!(got.all("x-forwarded-for"), ["127.0.0.1"], "{engine:?}");
    }
}

fn forwarded_fields_are_replaced_for_an_untrusted_peer(s: &Setup) {
    let fields =
        "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n";
    for engine in ENGINES {
        let got = s.forwarded(engine, fields);
        assert_eq!(got.all("x-forwarded-for"), ["127.0.0.1"], "{engine:?}");
        assert_eq!(got.all("x-forwarded-proto"), ["http"], "{engine:?}");
        assert_eq!(got.all("x-forwarded-host"), ["req.local"], "{engine:?}");
    }
}

fn the_insert_cookie_never_reaches_the_server(s: &Setup) {
    for engine in ENGINES {
        let got = s.forwarded(engine, "Cookie: a=1; HFSID=forged; b=2\r\n");
        assert_eq!(
            got.all("cookie"),
            ["a=1; b=2"],
            "{engine:?}: {}",
            got.head_text()
        );
        let only = s.forwarded(engine, "Cookie: HFSID=forged\r\n");
        assert!(
            only.all("cookie").is_empty(),
            "{engine:?}: {}",
            only.head_text()
        );
    }
}

fn rfc9110_7_6_1_hop_by_hop_response_fields_stay_behind(s: &Setup) {
    for engine in ENGINES {
        let (answer, got) = s.send(engine, "resp.local", "");
        assert_eq!(
            (answer.status, got.len()),
            (200, 1),
            "{engine:?}: {answer:?}"
        );
        assert!(
            answer.all("x-internal").is_empty(),
            "{engine:?}: {answer:?}"
        );
        assert!(
            answer.all("keep-alive").is_empty(),
            "{engine:?}: {answer:?}"
        );
        assert_eq!(answer.all("x-app"), ["1"], "{engine:?}");
        assert_eq!(answer.body, "ok", "{engine:?}");
    }
}

fn both_engines_forward_the_same_head(s: &Setup) {
    let fields = "Accept: */*\r\nConnection: X-Gone\r\nX-Gone: 1\r\nCookie: a=1; HFSID=x\r\n\
        X-Forwarded-For: 6.6.6.6\r\nUser-Agent: conformance\r\n";
    let sorted = |mut v: Vec<(String, String)>| {
        v.sort();
        v
    };
    let fast = sorted(end_to_end(&s.forwarded(Engine::Fast, fields)));
    for engine in [Engine::Streamed, Engine::Leg] {
        let other = sorted(end_to_end(&s.forwarded(engine, fields)));
        assert_eq!(fast, other, "{engine:?}");
    }
}

impl Setup {
    /// Sends `bytes` as they are, but for a `Connection: close` after the request line
    /// (the answer is read until the proxy closes); returns the answer and what the
    /// request recorder got.
    fn exchange(&self, bytes: &str) -> (Answer, Vec<Received>) {
        let bytes = bytes.replacen("\r\n", "\r\nConnection: close\r\n", 1);
        let answer = raw(&self.lab.http(0), bytes.as_bytes())
            .unwrap_or_else(|e| panic!("{bytes:?}: no answer: {e}"));
        (answer, self.requests.take())
    }

    /// `bytes` must be refused with `status` and nothing forwarded.
    fn refused(&self, bytes: &str, status: u16) {
        let (answer, got) = self.exchange(bytes);
        assert_eq!(answer.status, status, "{bytes:?}: {answer:?}");
        assert!(got.is_empty(), "{bytes:?} was forwarded: {got:?}");
    }

    fn errors(&self, kind: &str) -> f64 {
        let series = format!("holdfast_http_errors_total{{kind=\"{kind}\"}}");
        self.lab.metric(0, &series).unwrap_or(0.0)
    }
}

#[test]
fn request_rules_hold_before_anything_is_forwarded() {
    let s = setup();
    rfc9110_7_8_only_websocket_is_upgraded(&s);
    rfc9112_3_2_host_and_target_are_checked(&s);
    rfc9112_6_1_transfer_codings(&s);
    rfc9112_7_1_a_malformed_chunk_is_the_clients_error(&s);
    the_insert_cookie_is_kept_out_of_shared_caches(&s);
}

/// The head the server got for `request`, lower-cased (the request must be answered 200).
fn forwarded_head(s: &Setup, request: &str) -> String {
    let (answer, got) = s.exchange(request);
    assert_eq!(answer.status, 200, "{answer:?}");
    got.first()
        .expect("forwarded")
        .head_text()
        .to_ascii_lowercase()
}

fn rfc9110_7_8_only_websocket_is_upgraded(s: &Setup) {
    let head = forwarded_head(
        s,
        "GET / HTTP/1.1\r\nHost: req.local\r\nConnection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    );
    for gone in ["upgrade", "http2-settings", "connection:"] {
        assert!(!head.contains(gone), "{gone} forwarded:\n{head}");
    }
    // HTTP2-Settings is dropped even when `Connection` does not name it.
    let head = forwarded_head(
        s,
        "GET / HTTP/1.1\r\nHost: req.local\r\nConnection: Upgrade\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    );
    assert!(
        !head.contains("http2-settings"),
        "HTTP2-Settings forwarded:\n{head}"
    );
}

fn rfc9112_3_2_host_and_target_are_checked(s: &Setup) {
    s.refused(
        "GET / HTTP/1.1\r\nHost: req.local\r\nHost: resp.local\r\n\r\n",
        400,
    );
    s.refused("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 400);
    s.refused("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    s.refused("GET ! HTTP/1.1\r\nHost: req.local\r\n\r\n", 400);
    s.refused("GET evil.com HTTP/1.1\r\nHost: req.local\r\n\r\n", 400);
    s.refused(
        "CONNECT req.local:443 HTTP/1.1\r\nHost: req.local:443\r\n\r\n",
        501,
    );
    // RFC 9112 §3.2.2: the absolute form's authority wins over Host, for the route and
    // for what the server is told.
    let answer = raw(
        &s.lab.http(0),
        b"GET http://resp.local/x HTTP/1.1\r\nHost: req.local\r\nConnection: close\r\n\r\n",
    )
    .expect("answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(s.requests.take().is_empty(), "routed by Host");
    let got = s.responses.take();
    assert_eq!(got.len(), 1, "routed by the authority");
    assert_eq!(got[0].all("host"), ["resp.local"]);
}

fn rfc9112_6_1_transfer_codings(s: &Setup) {
    s.refused(
        "POST / HTTP/1.1\r\nHost: req.local\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    );
    s.refused(
        "POST / HTTP/1.1\r\nHost: req.local\r\nTransfer-Encoding: chunked\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
    let (answer, got) = s.exchange(
        "POST / HTTP/1.1\r\nHost: req.local\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\nhello",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let got = got.first().expect("forwarded");
    assert_eq!(got.all("content-length"), ["5"], "{}", got.head_text());
    assert_eq!(got.body, b"hello");
}

fn rfc9112_7_1_a_malformed_chunk_is_the_clients_error(s: &Setup) {
    let backend_errors = s.errors("backend");
    let bad_requests = s.errors("bad_request");
    let cases = [
        ("POST", "ZZZ\r\nab\r\n"),
        ("POST", "-0x0\r\nab\r\n"),
        // A lenient parser reads `0` as the last chunk and the rest as the next request.
        ("POST", "0_2e\r\nab\r\n"),
        ("GET", "ZZZ\r\nab\r\n"),
        ("POST", "1 2\r\nab\r\n"),
        // The first chunk is well formed, the second is not: nothing goes out either.
        ("POST", "2\r\nab\r\nZZ\r\nab\r\n"),
        ("POST", "2\r\nabc\r\n"),
        ("POST", "2\nab\r\n"),
    ];
    for (method, chunks) in cases {
        let text = format!(
            "{method} / HTTP/1.1\r\nHost: req.local\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}0\r\n\r\n"
        );
        s.refused(&text, 400);
    }
    // A first chunk larger than the fast path's buffer takes the body to the streamed
    // engine, which forwards as it reads: a bad size after it is still the client's
    // error, and the server never gets a complete request.
    let big = format!("11170\r\n{}\r\n", "a".repeat(0x11170));
    let streamed = ["ZZZ", "-0x0", "0_2e", "1 2", "+0"];
    for size in streamed {
        let text = format!(
            "POST / HTTP/1.1\r\nHost: req.local\r\nTransfer-Encoding: chunked\r\n\r\n{big}{size}\r\nab\r\n0\r\n\r\n"
        );
        let (answer, got) = s.exchange(&text);
        assert_eq!(answer.status, 400, "{size:?}: {answer:?}");
        assert!(got.is_empty(), "{size:?}: a complete request went out");
    }
    assert_eq!(
        s.errors("backend"),
        backend_errors,
        "client errors counted as backend"
    );
    let refused = cases.len() + streamed.len();
    assert!(s.errors("bad_request") >= bad_requests + refused as f64);
    // A well-formed chunked body, with an extension and a trailer, goes out as it came.
    let body = "5;x=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n";
    let (answer, got) = s.exchange(&format!(
        "POST / HTTP/1.1\r\nHost: req.local\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
    ));
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(got.first().expect("forwarded").body, body.as_bytes());
}

fn the_insert_cookie_is_kept_out_of_shared_caches(s: &Setup) {
    let (answer, _) = s.send(Engine::Fast, "resp.local", "");
    let cache = answer.all("cache-control").join(", ");
    assert!(
        answer
            .all("set-cookie")
            .iter()
            .any(|c| c.starts_with("HFSID=")),
        "{answer:?}"
    );
    assert!(
        cache.contains("public") && cache.contains("no-cache=\"set-cookie\""),
        "{cache}"
    );
    let (answer, _) = s.send(Engine::Streamed, "resp.local", "");
    let cache = answer.all("cache-control").join(", ");
    assert!(cache.contains("no-cache=\"set-cookie\""), "{cache}");
}

#[test]
fn rfc9113_3_2_tls_speaks_the_protocol_alpn_chose() {
    let certs = tempfile::tempdir().expect("tempdir");
    write_cert(certs.path(), "a.test");
    let dir = certs.path().display().to_string();
    let lab = Lab::start(1, move |servers| {
        format!(
            "[[frontend]]\nname = \"tls\"\nlisten = \"{{http}}\"\ndefault_backend = \"app\"\n\
             tls = {{ certs = [{{ cert = \"{dir}/a.test.crt\", key = \"{dir}/a.test.key\" }}] }}\n\n\
             [[backend]]\nname = \"app\"\npersistence = \"none\"\n{servers}\n"
        )
    });
    let limit = Duration::from_secs(5);
    let h1 = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    let (alpn, got) = tls_raw(&lab.http(0), "a.test", &[b"h2"], h1, limit).expect("h2 conn");
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert!(
        !got.starts_with(b"HTTP/1"),
        "HTTP/1.1 answered after ALPN h2: {got:?}"
    );
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let (alpn, got) =
        tls_raw(&lab.http(0), "a.test", &[b"http/1.1"], preface, limit).expect("h1 conn");
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let settings = got.len() >= 9 && got[3] == 0x4;
    assert!(!settings, "HTTP/2 spoken after ALPN http/1.1: {got:?}");
    let (_, got) = tls_raw(&lab.http(0), "a.test", &[b"http/1.1"], h1, limit).expect("h1 conn");
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

/// What a plain listener with `proto = "h2"` (HTTP/2 with prior knowledge only) answers
/// to `bytes`: everything it sends until it closes.
fn h2_only_answer(http: &str, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(bytes).expect("send");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

#[test]
fn rfc9113_3_4_an_h2_only_listener_treats_a_bad_preface_as_a_connection_error() {
    let lab = Lab::start(1, |servers| {
        format!(
            "[[frontend]]\nname = \"h2c\"\nlisten = \"{{http}}\"\nproto = \"h2\"\n\
             default_backend = \"app\"\n\n[[backend]]\nname = \"app\"\npersistence = \"none\"\n{servers}\n"
        )
    });
    let got = h2_only_answer(&lab.http(0), b"INVALID CONNECTION PREFACE\r\n\r\n");
    assert!(
        !got.starts_with(b"HTTP/1"),
        "an HTTP/1 answer: {:?}",
        String::from_utf8_lossy(&got)
    );
    // Closed, or a GOAWAY first (RFC 9113 §3.4, §6.8) after the server's SETTINGS.
    let frame_types: Vec<u8> = frames(&got).collect();
    assert!(
        frame_types.iter().all(|t| [0x4, 0x7].contains(t)),
        "{frame_types:?}: {got:?}"
    );
    let got = h2_only_answer(
        &lab.http(0),
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(
        !got.starts_with(b"HTTP/1"),
        "HTTP/1.1 spoken on an h2-only listener"
    );
    let got = h2_only_answer(
        &lab.http(0),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
    );
    assert_eq!(
        frames(&got).next(),
        Some(0x4),
        "no SETTINGS for a valid preface"
    );
}

/// The types of the HTTP/2 frames in `bytes`.
fn frames(bytes: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let head = bytes.get(at..at + 9)?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        at += 9 + len;
        Some(head[3])
    })
}
