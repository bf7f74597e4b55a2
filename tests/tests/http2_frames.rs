//! holdfast's HTTP/2 engine frame by frame, through a real node process and a raw client
//! that writes exactly the frames each test names (RFC 9113): frames split across
//! reads, flow control both ways, stream and connection errors, GOAWAY, and the
//! "rapid reset" flood (CVE-2023-44487). The server behind is a raw HTTP/1.1 recorder.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use holdfast_tests::h2raw::{self, ACK, Client, END_HEADERS, END_STREAM, kind};
use holdfast_tests::{Lab, Recorder};

const WAIT: Duration = Duration::from_secs(5);
/// RFC 9113 §7 error codes.
const PROTOCOL_ERROR: u32 = 0x1;
const FRAME_SIZE_ERROR: u32 = 0x6;
const COMPRESSION_ERROR: u32 = 0x9;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One node with an h2 (prior knowledge) frontend to `server`.
fn h2_node(server: &Recorder) -> Lab {
    let addr = server.addr.clone();
    Lab::start(1, move |_| {
        format!(
            "[[frontend]]\nname = \"h2\"\nlisten = \"{{http}}\"\nproto = \"h2\"\n\
             default_backend = \"app\"\n\n[[backend]]\nname = \"app\"\n\
             server = [{{ name = \"a1\", addr = \"{addr}\" }}]\n"
        )
    })
}

fn get(path: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "GET".into()),
        (":scheme", "http".into()),
        (":authority", "a.test".into()),
        (":path", path.into()),
    ]
}

fn fields<'a>(f: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    f.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

/// The body of the DATA frames on `stream` until END_STREAM.
fn body(client: &mut Client, stream: u32) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let f = client.until(kind::DATA, Some(stream), WAIT).expect("DATA");
        out.extend_from_slice(&f.payload);
        if f.flags & END_STREAM != 0 {
            return out;
        }
    }
}

#[test]
fn rfc9113_4_1_a_frame_split_across_reads_is_read_whole() {
    let server = Recorder::start(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let lab = h2_node(&server);
    let mut client = Client::connect(&lab.http(0), &[]);
    let ping = h2raw::frame(kind::PING, 0, 0, b"12345678");
    for cut in [3, 9, 12] {
        client.send(&ping[..cut]);
        std::thread::sleep(Duration::from_millis(50));
        client.send(&ping[cut..]);
        let ack = client
            .until(kind::PING, None, WAIT)
            .expect("PING ACK after a split PING");
        assert_eq!(
            (ack.flags, &ack.payload[..]),
            (ACK, &b"12345678"[..]),
            "cut at {cut}"
        );
    }
    // A request split inside its header block is answered too.
    let req = h2raw::frame(
        kind::HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &h2raw::block(&fields(&get("/split"))),
    );
    client.send(&req[..11]);
    std::thread::sleep(Duration::from_millis(50));
    client.send(&req[11..]);
    let head = client.until(kind::HEADERS, Some(1), WAIT).expect("answer");
    assert_eq!(client.status(&head), Some(200));
    assert_eq!(body(&mut client, 1), b"ok");
}

#[test]
fn rfc9113_6_9_a_response_body_goes_out_as_the_client_gives_credit() {
    let server = Recorder::start(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789");
    let lab = h2_node(&server);
    // SETTINGS_INITIAL_WINDOW_SIZE = 3.
    let mut client = Client::connect(&lab.http(0), &[(0x4, 3)]);
    client.request(1, &fields(&get("/window")), true);
    let head = client.until(kind::HEADERS, Some(1), WAIT).expect("answer");
    assert_eq!(client.status(&head), Some(200));
    let first = client
        .until(kind::DATA, Some(1), WAIT)
        .expect("DATA within the window");
    assert_eq!(first.payload, b"012");
    assert!(
        client.read(Duration::from_millis(300)).is_none(),
        "nothing beyond the window"
    );
    client.send(&h2raw::frame(
        kind::WINDOW_UPDATE,
        0,
        1,
        &7u32.to_be_bytes(),
    ));
    assert_eq!(body(&mut client, 1), b"3456789");
}

#[test]
fn rfc9113_6_9_a_request_body_larger_than_the_window_reaches_the_server() {
    let server = Recorder::start(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let lab = h2_node(&server);
    let mut client = Client::connect(&lab.http(0), &[]);
    let size = 200_000;
    let mut post = get("/upload");
    post[0].1 = "POST".into();
    post.push(("content-length", size.to_string()));
    client.request(1, &fields(&post), false);
    // Only as much as the windows allow is sent; the rest when credit comes back.
    let (mut sent, mut window) = (0usize, 65_535usize);
    while sent < size {
        let n = (size - sent).min(window).min(16_384);
        if n > 0 {
            let end = if sent + n == size { END_STREAM } else { 0 };
            client.send(&h2raw::frame(kind::DATA, end, 1, &vec![b'x'; n]));
            sent += n;
            window -= n;
            continue;
        }
        let f = client
            .until(kind::WINDOW_UPDATE, Some(1), WAIT)
            .expect("credit for the body");
        window +=
            u32::from_be_bytes([f.payload[0], f.payload[1], f.payload[2], f.payload[3]]) as usize;
    }
    let head = client.until(kind::HEADERS, Some(1), WAIT).expect("answer");
    assert_eq!(client.status(&head), Some(200));
    let got = server.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body.len(), size, "the whole body reached the server");
}

/// A POST on stream 1 with `field`, its body `data` sent at once (before the client can
/// see a reset), is reset with PROTOCOL_ERROR: a stream error, after which the
/// connection serves the next stream.
fn reset_and_the_connection_goes_on(field: (&'static str, &str), data: &[u8]) {
    let server = Recorder::start(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let lab = h2_node(&server);
    let mut client = Client::connect(&lab.http(0), &[]);
    let mut post = get("/post");
    post[0].1 = "POST".into();
    post.push((field.0, field.1.into()));
    client.request(1, &fields(&post), false);
    client.send(&h2raw::frame(kind::DATA, END_STREAM, 1, data));
    let rst = client
        .until(kind::RST_STREAM, Some(1), WAIT)
        .expect("RST_STREAM");
    assert_eq!(rst.error_code(), Some(PROTOCOL_ERROR));
    client.request(3, &fields(&get("/next")), true);
    let head = client
        .until(kind::HEADERS, Some(3), WAIT)
        .expect("the next stream's answer");
    assert_eq!(client.status(&head), Some(200));
}

#[test]
fn rfc9113_8_1_1_data_beyond_content_length_resets_the_stream_only() {
    reset_and_the_connection_goes_on(("content-length", "3"), b"hello");
}

#[test]
fn rfc9113_8_2_a_malformed_request_is_reset_and_never_forwarded() {
    let server = Recorder::start(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let lab = h2_node(&server);
    let mut client = Client::connect(&lab.http(0), &[]);
    let bad: [Vec<(&'static str, String)>; 6] = [
        [get("/a"), vec![("X-Upper", "1".into())]].concat(),
        [get("/b"), vec![("connection", "keep-alive".into())]].concat(),
        [get("/c"), vec![("te", "gzip".into())]].concat(),
        get("/d")
            .into_iter()
            .filter(|(n, _)| *n != ":scheme")
            .collect(),
        // RFC 9113 §8.3.1: `:path` in origin form, or `*` for OPTIONS alone.
        [&get("/e")[..3], &[(":path", "*".to_string())]].concat(),
        [&get("/f")[..3], &[(":path", "?q=1".to_string())]].concat(),
    ];
    for (i, request) in bad.iter().enumerate() {
        let id = 1 + 2 * i as u32;
        client.request(id, &fields(request), true);
        let rst = client
            .until(kind::RST_STREAM, Some(id), WAIT)
            .expect("RST_STREAM");
        assert_eq!(rst.error_code(), Some(PROTOCOL_ERROR), "request {i}");
    }
    client.request(13, &fields(&get("/fine")), true);
    let head = client.until(kind::HEADERS, Some(13), WAIT).expect("answer");
    assert_eq!(client.status(&head), Some(200));
    let got = server.take();
    assert_eq!(
        got.len(),
        1,
        "only the well-formed request reached the server"
    );
    assert!(got[0].head_text().starts_with("GET /fine HTTP/1.1"));
}

#[test]
fn rfc7541_a_header_block_that_cannot_be_decoded_is_a_compression_error() {
    let server = Recorder::start(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let lab = h2_node(&server);
    let mut client = Client::connect(&lab.http(0), &[]);
    // Index 0 is no entry (RFC 7541 §6.1).
    client.send(&h2raw::frame(
        kind::HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &[0x80],
    ));
    let goaway = client.until(kind::GOAWAY, None, WAIT).expect("GOAWAY");
    assert_eq!(goaway.error_code(), Some(COMPRESSION_ERROR));
    assert!(
        client.until(kind::PING, None, WAIT).is_none(),
        "the connection closes"
    );
}

#[test]
fn rfc9113_6_8_streams_open_at_goaway_are_answered() {
    let server = Recorder::start(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let lab = h2_node(&server);
    let mut client = Client::connect(&lab.http(0), &[]);
    client.request(1, &fields(&get("/last")), true);
    let mut goaway = 1u32.to_be_bytes().to_vec();
    goaway.extend_from_slice(&0u32.to_be_bytes());
    client.send(&h2raw::frame(kind::GOAWAY, 0, 0, &goaway));
    let head = client
        .until(kind::HEADERS, Some(1), WAIT)
        .expect("the open stream's answer");
    assert_eq!(client.status(&head), Some(200));
    assert_eq!(body(&mut client, 1), b"ok");
}

#[test]
fn rfc9113_6_8_a_goaway_shorter_than_its_fields_is_a_frame_size_error() {
    let server = Recorder::start(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let lab = h2_node(&server);
    let mut client = Client::connect(&lab.http(0), &[]);
    // A last stream id and no error code.
    client.send(&h2raw::frame(kind::GOAWAY, 0, 0, &0u32.to_be_bytes()));
    let goaway = client.until(kind::GOAWAY, None, WAIT).expect("GOAWAY");
    assert_eq!(goaway.error_code(), Some(FRAME_SIZE_ERROR));
}

/// 1,000 requests, each followed at once by `cancel` (its stream id given): the
/// connection must end with ENHANCE_YOUR_CALM before all reach the server.
fn cancel_flood_ends_the_connection(cancel: impl Fn(u32) -> Vec<u8>) {
    let server = Recorder::start(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let lab = h2_node(&server);
    let mut client = Client::connect(&lab.http(0), &[]);
    let request = h2raw::block(&fields(&get("/flood")));
    let mut burst = Vec::new();
    for i in 0..1000u32 {
        let id = 1 + 2 * i;
        let flags = END_HEADERS | END_STREAM;
        burst.extend(h2raw::frame(kind::HEADERS, flags, id, &request));
        burst.extend(cancel(id));
    }
    client.send(&burst);
    let goaway = client.until(kind::GOAWAY, None, WAIT).expect("GOAWAY");
    assert_eq!(goaway.error_code(), Some(ENHANCE_YOUR_CALM));
    assert!(
        server.take().len() < 1000,
        "the flood did not all reach the server"
    );
}

#[test]
fn cve_2023_44487_a_rapid_reset_flood_ends_the_connection() {
    cancel_flood_ends_the_connection(|id| {
        h2raw::frame(kind::RST_STREAM, 0, id, &8u32.to_be_bytes())
    });
}

#[test]
fn cve_2025_8671_resets_the_client_provokes_count_as_its_own() {
    // A WINDOW_UPDATE of 0 is a stream error (RFC 9113 §6.9): the server resets the
    // stream itself, cancelling its exchange ("MadeYouReset").
    cancel_flood_ends_the_connection(|id| {
        h2raw::frame(kind::WINDOW_UPDATE, 0, id, &0u32.to_be_bytes())
    });
}

/// A server that answers each request as soon as its head is in, then closes.
fn answers_before_the_body() -> String {
    let listener = (0..8)
        .find_map(|_| TcpListener::bind(("127.0.0.1", holdfast_tests::free_port())).ok())
        .expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                let _ = stream.write_all(answer);
                std::thread::sleep(Duration::from_millis(200));
            });
        }
    });
    addr
}

#[test]
fn rfc9113_8_1_trailers_after_a_complete_answer_close_the_stream() {
    let addr = answers_before_the_body();
    let lab = Lab::start(1, move |_| {
        format!(
            "[[frontend]]\nname = \"h2\"\nlisten = \"{{http}}\"\nproto = \"h2\"\n\
             default_backend = \"app\"\n\n[[backend]]\nname = \"app\"\n\
             server = [{{ name = \"a1\", addr = \"{addr}\" }}]\n"
        )
    });
    let mut client = Client::connect(&lab.http(0), &[]);
    let mut post = get("/upload");
    post[0].1 = "POST".into();
    let trailers = h2raw::block(&[("x-checksum", "1")]);
    // More streams than SETTINGS_MAX_CONCURRENT_STREAMS (100): each must be gone once
    // both sides ended it.
    for i in 0..120u32 {
        let id = 1 + 2 * i;
        client.request(id, &fields(&post), false);
        let head = client.until(kind::HEADERS, Some(id), WAIT).expect("answer");
        assert_eq!(client.status(&head), Some(200), "stream {id}");
        assert_eq!(body(&mut client, id), b"ok");
        let flags = END_HEADERS | END_STREAM;
        client.send(&h2raw::frame(kind::HEADERS, flags, id, &trailers));
    }
}

#[test]
fn rfc9113_5_1_frames_in_flight_on_a_refused_request_are_ignored() {
    // Refused as it opens (a connection-specific field): its DATA, already sent, is
    // ignored, not a connection error.
    reset_and_the_connection_goes_on(("connection", "close"), b"x");
}

#[test]
fn rfc9113_3_4_a_preface_in_pieces_reaches_the_same_engine() {
    let server = Recorder::start(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let addr = server.addr.clone();
    // An auto-detecting listener: the fast path reads the first piece as HTTP/1.
    let lab = Lab::start(1, move |_| {
        format!(
            "[[frontend]]\nname = \"web\"\nlisten = \"{{http}}\"\ndefault_backend = \"app\"\n\n\
             [[backend]]\nname = \"app\"\nserver = [{{ name = \"a1\", addr = \"{addr}\" }}]\n"
        )
    });
    for first in [1, 5, 12, 13, 16] {
        let mut client = Client::connect_split(&lab.http(0), first);
        let settings = client.until(kind::SETTINGS, None, WAIT).expect("SETTINGS");
        // holdfast's engine allows 100 concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS).
        let max_streams = settings
            .payload
            .chunks_exact(6)
            .find(|s| s[..2] == [0, 3])
            .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
        assert_eq!(max_streams, Some(100), "first piece of {first} octets");
        client.request(1, &fields(&get("/pieces")), true);
        let head = client.until(kind::HEADERS, Some(1), WAIT).expect("answer");
        assert_eq!(client.status(&head), Some(200));
    }
}

#[test]
fn rfc9113_3_3_a_redirecting_frontend_answers_both_versions() {
    let lab = Lab::start(1, |_| {
        "[[frontend]]\nname = \"web\"\nlisten = \"{http}\"\nredirect_https = true\n".to_string()
    });
    let h1 = holdfast_tests::raw(&lab.http(0), b"GET /x?y HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .expect("HTTP/1.1");
    assert_eq!(h1.status, 308);
    assert_eq!(h1.all("location"), ["https://a.test/x?y"]);
    // HTTP/2 with prior knowledge (RFC 9113 §3.3) gets the same answer.
    let mut client = Client::connect(&lab.http(0), &[]);
    client.request(1, &fields(&get("/x?y")), true);
    let head = client.until(kind::HEADERS, Some(1), WAIT).expect("answer");
    let answer = client.fields(&head);
    assert!(
        answer.contains(&(":status".into(), "308".into())),
        "{answer:?}"
    );
    assert!(
        answer.contains(&("location".into(), "https://a.test/x?y".into())),
        "{answer:?}"
    );
}

#[test]
fn rfc9113_6_9_a_client_that_gives_no_credit_is_cut_after_the_client_timeout() {
    let server = Recorder::start(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789");
    let addr = server.addr.clone();
    let lab = Lab::start(1, move |_| {
        format!(
            "[timeouts]\nclient = \"1s\"\n\n[[frontend]]\nname = \"h2\"\nlisten = \"{{http}}\"\n\
             proto = \"h2\"\ndefault_backend = \"app\"\n\n[[backend]]\nname = \"app\"\n\
             server = [{{ name = \"a1\", addr = \"{addr}\" }}]\n"
        )
    });
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: the answer's body can never go out.
    let mut client = Client::connect(&lab.http(0), &[(0x4, 0)]);
    client.request(1, &fields(&get("/starved")), true);
    let head = client
        .until(kind::HEADERS, Some(1), WAIT)
        .expect("the answer's head");
    assert_eq!(client.status(&head), Some(200));
    let goaway = client
        .until(kind::GOAWAY, None, WAIT)
        .expect("GOAWAY after the client timeout");
    assert_eq!(goaway.error_code(), Some(0));
    assert!(client.read(WAIT).is_none(), "the connection closes");
}

/// Sends `block` for stream `id` as a HEADERS frame and CONTINUATION frames of `size`.
fn in_continuations(client: &mut Client, id: u32, block: &[u8], size: usize) {
    let chunks: Vec<&[u8]> = block.chunks(size).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = if i + 1 == chunks.len() {
            END_HEADERS
        } else {
            0
        };
        let (kind, flags) = match i {
            0 => (kind::HEADERS, END_STREAM | last),
            _ => (kind::CONTINUATION, last),
        };
        client.send(&h2raw::frame(kind, flags, id, chunk));
    }
}

#[test]
fn rfc9113_6_10_a_block_in_continuations_is_one_request_and_held_to_the_limits() {
    let server = Recorder::start(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let lab = h2_node(&server);
    let mut client = Client::connect(&lab.http(0), &[]);
    let mut request = get("/pieces");
    request.push(("x-note", "n".repeat(300)));
    in_continuations(&mut client, 1, &h2raw::block(&fields(&request)), 7);
    let head = client.until(kind::HEADERS, Some(1), WAIT).expect("answer");
    assert_eq!(client.status(&head), Some(200));
    let got = server.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].all("x-note"), ["n".repeat(300)]);
    // Fields larger than limits.max_header_size (16 KiB by default): 431, and the
    // connection goes on.
    let mut large = get("/large");
    large.push(("x-large", "l".repeat(20_000)));
    in_continuations(&mut client, 3, &h2raw::block(&fields(&large)), 16_384);
    let head = client.until(kind::HEADERS, Some(3), WAIT).expect("answer");
    assert_eq!(client.status(&head), Some(431));
    client.request(5, &fields(&get("/after")), true);
    let head = client
        .until(kind::HEADERS, Some(5), WAIT)
        .expect("the next stream's answer");
    assert_eq!(client.status(&head), Some(200));
    assert_eq!(
        server.take().len(),
        1,
        "only the request within the limits was forwarded"
    );
    // A block past twice the limit is a flood of CONTINUATION frames: GOAWAY.
    let mut flood = get("/flood");
    flood.push(("x-flood", "f".repeat(100_000)));
    in_continuations(&mut client, 7, &h2raw::block(&fields(&flood)), 16_384);
    let goaway = client.until(kind::GOAWAY, None, WAIT).expect("GOAWAY");
    assert_eq!(goaway.error_code(), Some(ENHANCE_YOUR_CALM));
}
