//! Persistence through real node processes and real `holdfast backend` servers over
//! loopback: every mode keeps a client on one server (across the nodes of a 3-node
//! cluster), drain keeps bound clients and takes no new ones, maint and health failures
//! re-dispatch with counted session breaks, forged insert cookies route nowhere special.

use std::collections::BTreeSet;

use holdfast::api::AdminState;
use holdfast_tests::{Client, Lab, MODES, PATIENCE, get, three_modes_config, wait_for};

/// The lab's config: [`three_modes_config`] with a 60 s ttl, its servers health-checked
/// every 100 ms when `check` is set.
fn config(servers: &str, check: bool) -> String {
    let check = if check {
        "check = { type = \"http\", path = \"/\", interval = \"100ms\", timeout = \"500ms\", rise = 1, fall = 1 }\n"
    } else {
        ""
    };
    three_modes_config(&format!("{check}{servers}"), "60s")
}

/// Client `n` of `host`, forwarded as from 10.9.x.y.
fn visitor(host: &str, n: usize) -> Client {
    Client {
        xff: format!("10.9.{}.{}", n / 250, n % 250 + 1),
        ..Client::new(host, n)
    }
}

#[test]
fn every_mode_keeps_a_client_on_one_server_across_requests_and_nodes() {
    let lab = Lab::start(3, |s| config(s, false));
    for (backend, host) in MODES {
        let mut visitors: Vec<Client> = (0..6).map(|n| visitor(host, n)).collect();
        // First visits, all through node 1: spread over the servers by round-robin.
        let first: Vec<String> = visitors
            .iter_mut()
            .map(|v| v.served(0, &lab.http(0)))
            .collect();
        let used: BTreeSet<&String> = first.iter().collect();
        assert_eq!(
            used.len(),
            3,
            "{backend}: new clients spread over s1..s3: {first:?}"
        );
        // Learn and source bindings live in the replicated table: let them reach every node.
        if backend != "ins" {
            lab.wait_bindings(backend, visitors.len());
        }
        for round in 0..10 {
            for (v, server) in visitors.iter_mut().zip(&first) {
                let node = round % 3;
                assert_eq!(
                    &v.served(node, &lab.http(node)),
                    server,
                    "{backend}: a bound client moved (round {round}, node {})",
                    node + 1
                );
            }
        }
    }
    // Insert mode bound every session id in the table too (drain accounting counts them).
    lab.wait_bindings("ins", 6);
}

#[test]
fn drain_keeps_bound_clients_and_takes_no_new_ones_in_every_mode() {
    let lab = Lab::start(1, |s| config(s, false));
    let http = lab.http(0);
    for (backend, host) in MODES {
        let mut visitors: Vec<Client> = (0..6).map(|n| visitor(host, 100 + n)).collect();
        let first: Vec<String> = visitors.iter_mut().map(|v| v.served(0, &http)).collect();
        if backend != "ins" {
            lab.wait_bindings(backend, visitors.len());
        }
        assert!(
            first.iter().any(|s| s == "s1"),
            "{backend}: someone on s1: {first:?}"
        );
        lab.set_state(0, backend, "s1", AdminState::Drain);
        for _ in 0..5 {
            for (v, server) in visitors.iter_mut().zip(&first) {
                assert_eq!(&v.served(0, &http), server, "{backend}: bound client moved");
            }
        }
        for n in 0..12 {
            let mut newcomer = visitor(host, 200 + n);
            assert_ne!(
                newcomer.served(0, &http),
                "s1",
                "{backend}: new client on a draining server"
            );
        }
        lab.set_state(0, backend, "s1", AdminState::Ready);
    }
}

#[test]
fn maint_and_health_failures_redispatch_and_count_session_breaks() {
    let mut lab = Lab::start(1, |s| config(s, true));
    let http = lab.http(0);
    let mut bound = Vec::new();
    for (backend, host) in MODES {
        // Two dozen clients: source mode places new clients by a hash of their address,
        // so a handful might all miss s1; these put at least two on each server.
        let mut visitors: Vec<Client> = (0..24).map(|n| visitor(host, 300 + n)).collect();
        let first: Vec<String> = visitors.iter_mut().map(|v| v.served(0, &http)).collect();
        for s in ["s1", "s2"] {
            assert!(
                first.iter().filter(|f| *f == s).count() >= 2,
                "{backend}: fewer than two clients on {s}: {first:?}"
            );
        }
        if backend != "ins" {
            lab.wait_bindings(backend, visitors.len());
        }
        bound.push((backend, visitors, first));
    }
    // Maint on s1: its clients go elsewhere, and stay on their new server.
    for (backend, visitors, first) in &mut bound {
        lab.set_state(0, backend, "s1", AdminState::Maint);
        let series = format!("holdfast_session_breaks_total{{backend=\"{backend}\"}}");
        for (v, server) in visitors.iter_mut().zip(first.iter_mut()) {
            let now = v.served(0, &http);
            assert_ne!(now, "s1", "{backend}: request reached a server in maint");
            if server == "s1" {
                *server = now;
            }
            for _ in 0..3 {
                assert_eq!(
                    &v.served(0, &http),
                    server,
                    "{backend}: re-dispatched client moved again"
                );
            }
        }
        let breaks = lab.metric(0, &series).unwrap_or(0.0);
        assert!(breaks >= 2.0, "{backend}: session breaks counted: {breaks}");
    }
    // A health failure of s2 (its process killed): its clients go elsewhere, counted.
    let before: Vec<f64> = MODES
        .iter()
        .map(|(b, _)| {
            lab.metric(
                0,
                &format!("holdfast_session_breaks_total{{backend=\"{b}\"}}"),
            )
            .unwrap_or(0.0)
        })
        .collect();
    lab.backends[1].kill();
    wait_for("s2 to be seen down", PATIENCE, || {
        MODES
            .iter()
            .all(|(b, _)| {
                lab.metric(
                    0,
                    &format!("holdfast_server_health{{backend=\"{b}\",server=\"s2\"}}"),
                ) == Some(0.0)
            })
            .then_some(())
    });
    for ((backend, visitors, first), before) in bound.iter_mut().zip(before) {
        let mut moved = 0;
        for (v, server) in visitors.iter_mut().zip(first.iter()) {
            let now = v.served(0, &http);
            assert!(now != "s1" && now != "s2", "{backend}: reached {now}");
            moved += usize::from(server == "s2");
        }
        assert!(moved > 0, "{backend}: nobody was on s2");
        let series = format!("holdfast_session_breaks_total{{backend=\"{backend}\"}}");
        let after = lab.metric(0, &series).unwrap_or(0.0);
        assert!(
            after > before,
            "{backend}: health re-dispatch counted ({before} -> {after})"
        );
    }
}

#[test]
fn a_forged_or_altered_insert_cookie_never_reaches_the_server_it_names() {
    let lab = Lab::start(1, |s| config(s, false));
    let http = lab.http(0);
    // Collect one genuine cookie per server.
    let mut genuine = std::collections::BTreeMap::new();
    for n in 0..3 {
        let mut v = visitor("insert.local", n);
        let server = v.served(0, &http);
        genuine.insert(server, v.jar.cookies["HFSID"].clone());
    }
    let s1 = genuine["s1"].clone();
    let s2 = genuine["s2"].clone();
    // s2 drains: a genuine s2 cookie still reaches it; forged ones must not.
    lab.set_state(0, "ins", "s2", AdminState::Drain);
    let with = |cookie: &str| {
        let answer = get(
            &http,
            "insert.local",
            "/",
            &[("Cookie", &format!("HFSID={cookie}"))],
        )
        .expect("request");
        assert_eq!(answer.status, 200);
        answer
    };
    assert_eq!(
        with(&s2).body,
        "s2",
        "a genuine cookie of a draining server is honoured"
    );
    let parts: Vec<&str> = s1.split('.').collect();
    let [s1_server, id, at, mac] = parts[..] else {
        panic!("server.id.time.mac: {s1}");
    };
    assert_eq!(s1_server, "s1");
    let mut flipped_mac = mac.to_string();
    let last = if flipped_mac.ends_with('0') { "1" } else { "0" };
    flipped_mac.pop();
    flipped_mac.push_str(last);
    let later: u64 = at.parse::<u64>().expect("time") + 1;
    let forged = [
        format!("s2.{id}.{at}.{mac}"),
        format!("s2.{id}.{at}.{flipped_mac}"),
        format!("s2.{}.{at}.{mac}", id.replacen(&id[..2], "ff", 1)),
        format!("s2.{id}.{later}.{mac}"),
        format!("s2.{id}.{at}"),
        format!("s2.{id}"),
        "s2".to_string(),
        format!("s2.{id}.{at}.{}", "0".repeat(32)),
        format!("s2.{id}.{at}.{mac}{mac}"),
    ];
    for cookie in &forged {
        for _ in 0..4 {
            let answer = with(cookie);
            assert_ne!(answer.body, "s2", "forged cookie {cookie:?} reached s2");
            assert!(
                answer
                    .all("set-cookie")
                    .iter()
                    .any(|c| c.starts_with("HFSID=")),
                "a forged cookie is no cookie: a new one is issued"
            );
        }
    }
}

/// Issue 9: a learn-mode client idle past the ttl comes back with its session cookie; the
/// application keeps the id and sets no new cookie. The request's cookie is bound to the
/// server that answers, so the client sticks again from its next request on.
#[test]
fn learn_mode_rebinds_a_session_cookie_whose_binding_expired() {
    let lab = Lab::start(1, |s| {
        config(s, false).replace("ttl = \"60s\"", "ttl = \"1s\"")
    });
    let http = lab.http(0);
    let mut v = visitor("learn.local", 7);
    v.served(0, &http);
    assert!(
        v.jar.cookies.contains_key("PHPSESSID"),
        "the backend set its cookie"
    );
    wait_for("the binding to expire", PATIENCE, || {
        let t = lab.cluster.node(0).table("lrn")?;
        t.bindings.is_empty().then_some(())
    });
    let first = v.served(0, &http);
    for _ in 0..8 {
        assert_eq!(v.served(0, &http), first, "the returning session moved");
    }
    lab.wait_bindings("lrn", 1);
}
