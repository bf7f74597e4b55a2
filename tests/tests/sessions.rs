//! Open means active (issue 11): an upgraded tunnel (WebSocket) holds its server for as
//! long as it is open, on every node, and the release comes a ttl after it closes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use holdfast::api::AdminState;
use holdfast_tests::{ClusterOptions, Lab, PATIENCE, three_modes_config, wait_for};

const TTL: Duration = Duration::from_secs(2);

/// A WebSocket-style tunnel through a node to the demo backend's `/ws` echo.
struct Tunnel {
    stream: TcpStream,
    server: String,
}

impl Tunnel {
    /// Opens a tunnel of a new insert-mode client through `addr`; the server is read from
    /// the cookie holdfast sets on the 101.
    fn open(addr: &str) -> Tunnel {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream
            .write_all(
                b"GET /ws HTTP/1.1\r\nHost: insert.local\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\n\r\n",
            )
            .expect("send");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).expect("101 head");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        let server = head
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: hfsid="))
            .and_then(|v| v.split('.').next())
            .expect("the insert cookie names the server")
            .to_string();
        Tunnel { stream, server }
    }

    /// Sends `text` and reads the echo back.
    fn echo(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).expect("send");
        let mut back = vec![0u8; text.len()];
        self.stream.read_exact(&mut back).expect("echo");
        assert_eq!(back, text.as_bytes());
    }
}

#[test]
fn an_open_websocket_holds_its_server_until_a_ttl_after_it_closes() {
    let options = ClusterOptions {
        expiry_grace: "1s".into(),
        ..ClusterOptions::default()
    };
    let mut lab = Lab::start_with(3, options, |s| three_modes_config(s, "2s"));
    println!("open means active: a WebSocket tunnel through node 1 to s1, drained via node 2");
    let mut tunnel = wait_for("a tunnel to s1", PATIENCE, || {
        let t = Tunnel::open(&lab.http(0));
        (t.server == "s1").then_some(t)
    });
    tunnel.echo("hello");
    lab.set_state(1, "ins", "s1", AdminState::Drain);
    // Three ttls with the tunnel open and talking: never released, on any node; node 3 is
    // killed and restarted meanwhile.
    let until = Instant::now() + TTL * 3;
    let mut messages = 0;
    let mut restarted = false;
    while Instant::now() < until {
        tunnel.echo(&format!("message {messages}"));
        messages += 1;
        if messages == 3 {
            lab.cluster.kill(2);
            lab.cluster.restart(2);
            restarted = true;
        }
        let live = if restarted && !lab.cluster.node(2).ready() {
            2
        } else {
            3
        };
        for i in 0..live {
            assert_eq!(
                lab.cluster.node(i).admin_state("ins", "s1"),
                Some(AdminState::Drain),
                "released on node {} while a tunnel to s1 was open",
                i + 1
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_for("node 3 back", PATIENCE, || {
        lab.cluster.node(2).ready().then_some(())
    });
    let open: Vec<u64> = (0..3)
        .filter_map(|i| lab.cluster.node(i).server("ins", "s1").map(|s| s.open_here))
        .collect();
    assert_eq!(
        open,
        vec![1, 0, 0],
        "the tunnel is counted open on node 1 only"
    );
    let closed = Instant::now();
    drop(tunnel);
    let release = &lab.watch_release(&[("ins", "s1")])[0];
    assert!(
        release.held_until >= closed + TTL,
        "released {:?} after the tunnel closed, before the ttl",
        release.seen - closed
    );
    println!(
        "  {messages} messages over {:?} with s1 draining and node 3 restarted; released {:?} after the tunnel closed",
        TTL * 3,
        release.seen - closed
    );
}

/// Without persistence nothing comes back to a server after an exchange, but a request
/// still in flight (here a slow upload to the demo backend's `/echo`) holds its server:
/// the drain is released only once it is answered.
#[test]
fn a_request_in_flight_holds_a_server_of_a_backend_without_persistence() {
    let lab = Lab::start(3, |servers| {
        format!(
            "[[frontend]]\nname = \"web\"\nlisten = \"{{http}}\"\ndefault_backend = \"nop\"\n\n\
             [[backend]]\nname = \"nop\"\npersistence = \"none\"\n{servers}\n"
        )
    });
    println!("open means active: a slow upload in flight, persistence none");
    let body = b"0123456789";
    let open_on_s1 = || {
        lab.cluster
            .node(0)
            .server("nop", "s1")
            .map(|s| s.open_here)
            .unwrap_or(0)
    };
    // Round robin: new uploads until one is open to s1 (the node counts it open there).
    let mut stream = wait_for("a slow upload open to s1", PATIENCE, || {
        let mut s = TcpStream::connect(lab.http(0)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            s,
            "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n0",
            body.len()
        )
        .expect("send");
        std::thread::sleep(Duration::from_millis(300));
        (open_on_s1() == 1).then_some(s)
    });
    lab.set_state(1, "nop", "s1", AdminState::Drain);
    for &b in &body[1..] {
        std::thread::sleep(Duration::from_millis(400));
        stream.write_all(&[b]).expect("upload");
        for i in 0..3 {
            assert_eq!(
                lab.cluster.node(i).admin_state("nop", "s1"),
                Some(AdminState::Drain),
                "released on node {} with a request in flight",
                i + 1
            );
        }
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(body) {
        let n = stream.read(&mut buf).expect("answer");
        assert!(n > 0, "closed before the echo");
        answer.extend_from_slice(&buf[..n]);
    }
    let answered = Instant::now();
    let release = &lab.watch_release(&[("nop", "s1")])[0];
    println!(
        "  upload of {} bytes over {:?}; released {:?} after the answer",
        body.len(),
        Duration::from_millis(400) * 9,
        release.seen - answered
    );
}

/// Header sessions (issue 11): a backend in learn mode on `Mcp-Session-Id` (MCP over
/// Streamable HTTP). Sessions begun on any node stay on their server through every node;
/// with s1 draining, its sessions keep reaching it and new sessions never do.
#[test]
fn mcp_sessions_named_by_a_header_stick_across_nodes_and_through_a_drain() {
    let lab = Lab::start(3, |servers| {
        format!(
            "[[frontend]]\nname = \"web\"\nlisten = \"{{http}}\"\ndefault_backend = \"mcp\"\n\n\
             [[backend]]\nname = \"mcp\"\npersistence = \"learn\"\nheader = \"Mcp-Session-Id\"\n\
             ttl = \"30s\"\non_lost = \"reject\"\n{servers}\n"
        )
    });
    println!("header sessions: Mcp-Session-Id");
    let send = |node: usize, session: Option<&str>| {
        let mut extra = vec![("Content-Type", "application/json")];
        if let Some(s) = session {
            extra.push(("Mcp-Session-Id", s));
        }
        holdfast_tests::get(&lab.http(node), "mcp.local", "/mcp", &extra).expect("request")
    };
    let call = |node: usize, session: Option<&str>| {
        let a = send(node, session);
        assert_eq!(a.status, 200, "{a:?}");
        a
    };
    let begin = |node: usize| {
        let a = call(node, None);
        let id = a
            .all("mcp-session-id")
            .first()
            .map(|s| s.to_string())
            .expect("a session id");
        (id, a.body.clone())
    };
    let sessions: Vec<(String, String)> = (0..30).map(|n| begin(n % 3)).collect();
    for (id, server) in &sessions {
        for node in 0..3 {
            assert_eq!(&call(node, Some(id)).body, server, "session {id} moved");
        }
    }
    lab.set_state(0, "mcp", "s1", AdminState::Drain);
    let on_s1 = sessions.iter().filter(|(_, s)| s == "s1").count();
    for (id, server) in &sessions {
        for node in 0..3 {
            assert_eq!(
                &call(node, Some(id)).body,
                server,
                "session {id} moved while s1 drains"
            );
        }
    }
    let fresh: Vec<String> = (0..12).map(|n| begin(n % 3).1).collect();
    assert!(
        fresh.iter().all(|s| s != "s1"),
        "a new session went to a draining server: {fresh:?}"
    );
    println!(
        "  30 sessions ({on_s1} on s1) stayed put through 3 nodes and a drain; 12 new ones avoided s1"
    );
    // s1 gone (maint): with on_lost = "reject" its sessions get 404 (an MCP client then
    // starts a new session) and are counted; the others carry on.
    lab.set_state(0, "mcp", "s1", AdminState::Maint);
    for (id, server) in &sessions {
        for node in 0..3 {
            let a = send(node, Some(id));
            if server == "s1" {
                assert_eq!(a.status, 404, "a lost session is rejected: {a:?}");
            } else {
                assert_eq!((a.status, &a.body), (200, server), "session {id}");
            }
        }
    }
    let lost: f64 = (0..3)
        .filter_map(|i| lab.metric(i, "holdfast_http_errors_total{kind=\"session_lost\"}"))
        .sum();
    assert_eq!(lost as usize, on_s1 * 3, "every rejected request counted");
    println!("  s1 in maint: {on_s1} sessions rejected with 404 on every node, counted");
}

/// A server-sent event stream holds its server like a tunnel: a client bound to s1 reads
/// a 7 s stream through another node while s1 drains (ttl 2 s); no release before the
/// stream ends, and the release comes a ttl after.
#[test]
fn an_open_event_stream_holds_its_server_until_a_ttl_after_it_ends() {
    let options = ClusterOptions {
        expiry_grace: "1s".into(),
        ..ClusterOptions::default()
    };
    let lab = Lab::start_with(3, options, |s| three_modes_config(s, "2s"));
    println!("open means active: an SSE stream through node 2 to s1, drained via node 3");
    let cookie = wait_for("a client bound to s1", PATIENCE, || {
        let mut jar = holdfast_tests::Jar::default();
        let a = jar.get(&lab.http(0), "insert.local").ok()?;
        (a.body == "s1").then(|| jar.header()).flatten()
    });
    let mut stream = TcpStream::connect(lab.http(1)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET /sse/7000 HTTP/1.1\r\nHost: insert.local\r\nCookie: {cookie}\r\n\r\n"
    )
    .expect("send");
    lab.set_state(2, "ins", "s1", AdminState::Drain);
    let started = Instant::now();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let mut events = 0;
    while !seen.ends_with("0\r\n\r\n") {
        let n = stream.read(&mut buf).expect("events");
        assert!(n > 0, "stream closed early");
        let chunk = String::from_utf8_lossy(&buf[..n]);
        events += chunk.matches("data: s1").count();
        seen.push_str(&chunk);
        for i in 0..3 {
            if seen.ends_with("0\r\n\r\n") {
                break;
            }
            assert_eq!(
                lab.cluster.node(i).admin_state("ins", "s1"),
                Some(AdminState::Drain),
                "released on node {} while an event stream from s1 was open",
                i + 1
            );
        }
    }
    let ended = Instant::now();
    assert!(seen.contains("text/event-stream"), "{seen}");
    let release = &lab.watch_release(&[("ins", "s1")])[0];
    assert!(
        release.held_until >= ended + TTL,
        "released {:?} after the stream ended, before the ttl",
        release.seen - ended
    );
    println!(
        "  {events} events over {:?} with s1 draining; released {:?} after the stream ended",
        ended - started,
        release.seen - ended
    );
}

/// Sessions that end (issue 11): the application deletes its session cookie (logout) or
/// an MCP client `DELETE`s its session. The binding goes at once, so a drain is released
/// as soon as the watermarks pass, not a ttl (30 s here) later.
#[test]
fn sessions_the_application_ends_free_a_draining_server_at_once() {
    let lab = Lab::start(3, |servers| {
        let modes = three_modes_config(servers, "30s").replace(
            "  { host = \"source.local\", backend = \"src\" },",
            "  { host = \"source.local\", backend = \"src\" },\n  { host = \"mcp.local\", backend = \"mcp\" },",
        );
        format!(
            "{modes}\n[[backend]]\nname = \"mcp\"\npersistence = \"learn\"\n\
             header = \"Mcp-Session-Id\"\nttl = \"30s\"\n{servers}\n"
        )
    });
    println!("sessions that end: logout and MCP DELETE, ttl 30 s");
    // A learn-mode client and an MCP session, both on s1.
    let mut jar = wait_for("a learn client on s1", PATIENCE, || {
        let mut jar = holdfast_tests::Jar::default();
        (jar.get(&lab.http(0), "learn.local").ok()?.body == "s1").then_some(jar)
    });
    let session = wait_for("an MCP session on s1", PATIENCE, || {
        let a = holdfast_tests::get(&lab.http(1), "mcp.local", "/mcp", &[]).ok()?;
        let id = a.all("mcp-session-id").first()?.to_string();
        (a.body == "s1").then_some(id)
    });
    lab.wait_bindings("mcp", 1);
    lab.set_state(2, "lrn", "s1", AdminState::Drain);
    lab.set_state(2, "mcp", "s1", AdminState::Drain);
    // Both still reach s1 while draining, then end their sessions.
    assert_eq!(
        jar.get(&lab.http(1), "learn.local").expect("request").body,
        "s1"
    );
    let logout = format!(
        "GET /logout HTTP/1.1\r\nHost: learn.local\r\nCookie: {}\r\nConnection: close\r\n\r\n",
        jar.header().expect("cookie")
    );
    let out = holdfast_tests::raw(&lab.http(2), logout.as_bytes()).expect("logout");
    assert_eq!(out.body, "s1");
    let delete = format!(
        "DELETE /mcp HTTP/1.1\r\nHost: mcp.local\r\nMcp-Session-Id: {session}\r\nConnection: close\r\n\r\n"
    );
    let out = holdfast_tests::raw(&lab.http(0), delete.as_bytes()).expect("delete");
    assert_eq!((out.status, out.body.as_str()), (200, "s1"));
    let ended = Instant::now();
    let releases = lab.watch_release(&[("lrn", "s1"), ("mcp", "s1")]);
    for r in &releases {
        assert!(
            r.seen - ended < Duration::from_secs(15),
            "released a ttl later, not at the end"
        );
    }
    let counted: f64 = (0..3)
        .filter_map(|i| lab.metric(i, "holdfast_table_ended_total"))
        .sum();
    assert_eq!(
        counted, 6.0,
        "two ended sessions, counted on each of the three nodes"
    );
    println!(
        "  released {:?} and {:?} after the sessions ended (ttl 30 s)",
        releases[0].seen - ended,
        releases[1].seen - ended
    );
}

/// `maxlife` (issue 11): a learn-mode session with a 30 s ttl and a 2 s maxlife keeps
/// requesting; its binding's expiry stays at its first request plus 2 s however often it
/// is touched.
#[test]
fn maxlife_caps_an_active_session() {
    let lab = Lab::start(1, |servers| {
        three_modes_config(servers, "30s").replace(
            "learn_wait = \"1s\"",
            "learn_wait = \"1s\"\nmaxlife = \"2s\"",
        )
    });
    println!("maxlife: 2 s on a 30 s ttl");
    let mut jar = holdfast_tests::Jar::default();
    jar.get(&lab.http(0), "learn.local").expect("first request");
    let session = jar.cookies["PHPSESSID"].clone();
    let entry = || {
        let t = lab.cluster.node(0).table("lrn")?;
        let b = t.binding(&session)?;
        Some((b.expires_at, b.expires_in_ms))
    };
    let (cap, left) = wait_for("the session's binding", PATIENCE, entry);
    assert!(
        left <= 2_100,
        "expires in {left} ms, not within its maxlife"
    );
    let start = Instant::now();
    let mut touches = 0;
    while start.elapsed() < Duration::from_millis(1_200) {
        jar.get(&lab.http(0), "learn.local").expect("request");
        touches += 1;
        std::thread::sleep(Duration::from_millis(200));
        if let Some((e, _)) = entry() {
            assert_eq!(e, cap, "a touch moved a capped binding past its maxlife");
        }
    }
    println!("  {touches} requests over 1.2 s; the binding's expiry stayed at its cap");
}
