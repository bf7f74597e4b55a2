//! Header rules of a proxy hop, held to the RFCs on both engines that carry requests:
//! the HTTP/1.1 fast path, and the streamed engine (hyper) that takes chunked request
//! bodies, HTTP/1.0 and HTTP/2. Every case is sent once on each engine through a real
//! node process, to a raw server that records the exact bytes it receives.

use holdfast_tests::{Answer, Lab, Received, Recorder, raw};

/// The engine a request is made to take.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Engine {
    /// HTTP/1.1 with no body: the fast path.
    Fast,
    /// The same request with an empty chunked body: handed to the streamed engine.
    Streamed,
}

const ENGINES: [Engine; 2] = [Engine::Fast, Engine::Streamed];

/// One node whose frontend sends `req.local` to a recorder (insert persistence) and
/// `resp.local` to a second recorder answering with a hop-by-hop-laden response.
struct Setup {
    lab: Lab,
    requests: Recorder,
    responses: Recorder,
}

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Internal\r\n\
    X-Internal: 1\r\nKeep-Alive: timeout=5\r\nX-App: 1\r\n\r\nok";

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
persistence = "none"
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
        let body = match engine {
            Engine::Fast => "",
            Engine::Streamed => "Transfer-Encoding: chunked\r\n\r\n0\r\n",
        };
        let text =
            format!("GET / HTTP/1.1\r\nHost: {host}\r\n{fields}Connection: close\r\n{body}\r\n");
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
    let fast = end_to_end(&s.forwarded(Engine::Fast, fields));
    let streamed = end_to_end(&s.forwarded(Engine::Streamed, fields));
    let sorted = |mut v: Vec<(String, String)>| {
        v.sort();
        v
    };
    assert_eq!(sorted(fast), sorted(streamed));
}
