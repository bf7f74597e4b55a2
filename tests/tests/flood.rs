//! A flood of one-shot clients against a bounded table (issue 12; DESIGN.md, Promises and
//! a bounded table): 200,000 cookieless requests hit one node of three while s1 drains.
//! Insert-mode first contacts store nothing, learn-mode ones fill the table to
//! `max_bindings` and no further; 100 returning cookie clients keep their servers through
//! every node; s1 is released no earlier than a ttl after its last request. Figures are
//! printed (`--nocapture`), never asserted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use holdfast::api::AdminState;
use holdfast_tests::{
    ClusterOptions, Lab, Tally, Traffic, TrafficOptions, assert_no_moves, last_request,
    three_modes_config,
};

const ALL: [usize; 3] = [0, 1, 2];
const MAX_BINDINGS: u64 = 400;
const FLOOD: usize = 200_000;
/// Requests written before their answers are read, per connection.
const PIPELINE: usize = 32;

/// Sends `n` cookieless GETs for `host` to `addr` over one keep-alive connection,
/// pipelined; returns how many were answered 200.
fn flood(addr: &str, host: &str, n: usize) -> usize {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let request = format!("GET /flood HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let mut ok = 0;
    let mut sent = 0;
    while sent < n {
        let batch = PIPELINE.min(n - sent);
        writer
            .write_all(request.repeat(batch).as_bytes())
            .expect("write");
        sent += batch;
        for _ in 0..batch {
            ok += usize::from(read_answer(&mut reader) == 200);
        }
    }
    ok
}

/// Reads one response (status line, fields, a Content-Length body); returns its status.
fn read_answer(reader: &mut BufReader<TcpStream>) -> u16 {
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("field");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    status
}

/// Live bindings in node `i`'s table, all backends.
fn table_size(lab: &Lab, i: usize) -> u64 {
    lab.table_counts(i)
        .map(|counts| counts.values().sum())
        .unwrap_or(0)
}

#[test]
fn a_flood_of_cookieless_clients_stays_within_the_bound_and_breaks_no_session_during_a_drain() {
    let ttl = Duration::from_secs(3);
    let options = ClusterOptions {
        cluster_extra: format!("max_bindings = {MAX_BINDINGS}\n"),
        ..ClusterOptions::default()
    };
    let lab = Lab::start_with(3, options, |s| three_modes_config(s, "3s"));
    let mut returning = TrafficOptions::new(&["insert.local"], 100, 10_000);
    returning.max_time = Duration::from_secs(150);
    let traffic = Traffic::start(&lab, &ALL, returning);
    traffic.wait_rounds(3);
    lab.set_state(0, "ins", "s1", AdminState::Drain);

    // The flood: insert and learn first contacts through node 2 only, on four connections.
    let started = Instant::now();
    let target = lab.http(1);
    let floods: Vec<_> = [
        "insert.local",
        "insert.local",
        "insert.local",
        "learn.local",
    ]
    .into_iter()
    .map(|host| {
        let target = target.clone();
        std::thread::spawn(move || flood(&target, host, FLOOD / 4))
    })
    .collect();
    let mut largest = 0;
    while floods.iter().any(|f| !f.is_finished()) {
        largest = ALL
            .iter()
            .map(|&i| table_size(&lab, i))
            .fold(largest, u64::max);
        std::thread::sleep(Duration::from_millis(200));
    }
    let answered: usize = floods.into_iter().map(|f| f.join().expect("flood")).sum();
    let took = started.elapsed();
    println!(
        "flood: {answered} of {FLOOD} answered 200 in {took:?} ({:.0} req/s); largest table seen {largest}",
        answered as f64 / took.as_secs_f64()
    );
    assert_eq!(answered, FLOOD, "every flood request answered");
    assert!(
        largest <= MAX_BINDINGS,
        "table held {largest} > {MAX_BINDINGS}"
    );
    let evicted = lab.metric(0, "holdfast_table_evicted_total").unwrap_or(0.0);
    println!("evicted (replicated counter): {evicted}");
    assert!(evicted > 0.0, "the learn flood filled the table");

    // The returning clients kept their servers through every node, the flood and the drain.
    traffic.wait_rounds(2);
    let clients = traffic.stop();
    let tally = Tally::of(&clients);
    println!(
        "returning: {} clients, {} requests, failures {:?}, by server {:?}",
        clients.len(),
        tally.requests,
        tally.failures,
        tally.by_server
    );
    assert!(tally.failures.is_empty(), "{tally:?}");
    assert_no_moves(&clients);
    assert_eq!(lab.session_breaks("ins"), 0.0, "insert sessions broken");

    // Released on every node, no earlier than a ttl after s1's last request.
    let last = last_request(&clients, "ins", "s1").expect("s1 kept its clients");
    let release = lab.watch_release(&[("ins", "s1")])[0];
    println!(
        "ins/s1 released between {:?} and {:?} after its last request (ttl {ttl:?})",
        release.held_until.saturating_duration_since(last),
        release.seen.saturating_duration_since(last)
    );
    assert!(release.held_until >= last + ttl, "released early");
    lab.assert_released("ins", "s1", "after the flood");
}
