//! Graceful reload and shutdown through real processes: on SIGHUP new connections follow
//! the new servers and weights while a request in flight finishes on the old setup, a
//! broken config file is refused, and binds this node made that the cluster has not
//! applied yet (no quorum) keep their clients where they are; on SIGTERM the node stops
//! accepting and exits once the request in flight is answered.

use std::collections::BTreeSet;
use std::thread::JoinHandle;
use std::time::Duration;

use holdfast_tests::{Answer, Jar, Lab, PATIENCE, get, plain_config, wait_for};

/// A slow request (answered after 1.5 s) sent now through `http`.
fn slow_request(http: &str) -> JoinHandle<std::io::Result<Answer>> {
    let http = http.to_string();
    let slow = std::thread::spawn(move || get(&http, "app.local", "/sleep/1500", &[]));
    std::thread::sleep(Duration::from_millis(300));
    slow
}

/// Panics unless the slow request was answered 200; `what` says what it went through.
fn assert_answered(slow: JoinHandle<std::io::Result<Answer>>, what: &str) {
    let slow = slow
        .join()
        .expect("slow request thread")
        .expect("slow request");
    assert_eq!(slow.status, 200, "request in flight {what}: {slow:?}");
}

/// Servers answering `rounds` fresh requests on node 0's frontend.
fn answering(lab: &Lab, rounds: usize) -> BTreeSet<String> {
    (0..rounds)
        .map(|_| {
            let answer = get(&lab.http(0), "app.local", "/", &[]).expect("request");
            assert_eq!(answer.status, 200, "{answer:?}");
            answer.body
        })
        .collect()
}

#[test]
fn sighup_moves_new_connections_and_spares_requests_in_flight() {
    let lab = Lab::start(1, plain_config);
    let node = lab.cluster.node(0);
    assert_eq!(
        answering(&lab, 12).len(),
        3,
        "round robin over s1..s3 before reload"
    );

    // A slow request is in flight while the config changes under it.
    let slow = slow_request(&lab.http(0));

    let text = std::fs::read_to_string(&node.config).expect("config");
    let only_s3 = text
        .replace("name = \"s1\", addr", "name = \"s1\", weight = 0, addr")
        .replace("name = \"s2\", addr", "name = \"s2\", weight = 0, addr");
    assert_ne!(text, only_s3, "weights were not added to the config");
    std::fs::write(&node.config, &only_s3).expect("rewrite config");
    node.reload();
    wait_for("new connections to reach only s3", PATIENCE, || {
        (answering(&lab, 6) == BTreeSet::from(["s3".to_string()])).then_some(())
    });
    assert_answered(slow, "harmed by the reload");

    // A broken file is refused: the node keeps serving with what it had.
    std::fs::write(
        &node.config,
        only_s3.replace("persistence = \"none\"", "persistence = \"glue\""),
    )
    .expect("break config");
    node.reload();
    wait_for("the refusal in the log", PATIENCE, || {
        node.log_text().contains("reload refused").then_some(())
    });
    assert_eq!(answering(&lab, 6), BTreeSet::from(["s3".to_string()]));
    assert!(node.log_text().contains("config reloaded"));

    // A change that only a restart applies is refused by name, not "reloaded".
    let reloads = node.log_text().matches("config reloaded").count();
    std::fs::write(
        &node.config,
        format!("{only_s3}\n[limits]\nmax_connections = 5\n"),
    )
    .expect("rewrite config");
    node.reload();
    wait_for("the refusal of max_connections", PATIENCE, || {
        node.log_text()
            .contains("limits.max_connections changed: restart the node")
            .then_some(())
    });
    assert_eq!(node.log_text().matches("config reloaded").count(), reloads);
    assert_eq!(answering(&lab, 6), BTreeSet::from(["s3".to_string()]));
}

#[test]
fn sigterm_answers_the_request_in_flight_then_exits() {
    let mut lab = Lab::start(1, plain_config);
    let http = lab.http(0);
    let slow = slow_request(&http);
    let exited = lab.cluster.nodes[0].terminate(Duration::from_secs(30));
    assert_answered(slow, "cut by SIGTERM");
    assert!(exited, "node did not exit after SIGTERM");
    assert!(
        get(&http, "app.local", "/", &[]).is_err(),
        "still accepting after exit"
    );
}

/// [`plain_config`] with learn persistence of `PHPSESSID`.
fn learn_config(servers: &str) -> String {
    plain_config(servers).replace(
        "persistence = \"none\"",
        "persistence = \"learn\"\ncookie = \"PHPSESSID\"\nlearn_wait = \"200ms\"",
    )
}

/// DESIGN.md: "bindings keep working locally" while there is no quorum. The binds of the
/// sessions begun then live only in this node's memory of its own binds; a SIGHUP reload
/// must not forget them, or most of those clients are balanced elsewhere (round robin
/// over three servers).
#[test]
fn binds_made_without_quorum_survive_a_sighup() {
    let mut lab = Lab::start(3, learn_config);
    lab.cluster.kill(1);
    lab.cluster.kill(2);
    let http = lab.http(0);
    let mut clients: Vec<(Jar, String)> = (0..9)
        .map(|i| {
            let mut jar = Jar::default();
            let first = jar.get(&http, "app.local").expect("first request");
            assert_eq!(first.status, 200, "client {i}: {first:?}");
            assert!(jar.header().is_some(), "client {i} got no session cookie");
            (jar, first.body)
        })
        .collect();
    let visit = |clients: &mut Vec<(Jar, String)>, when: &str| {
        for (i, (jar, server)) in clients.iter_mut().enumerate() {
            let again = jar.get(&http, "app.local").expect("request");
            assert_eq!(
                (again.status, &again.body),
                (200, &*server),
                "client {i} moved {when}"
            );
        }
    };
    visit(&mut clients, "before the reload");
    let node = lab.cluster.node(0);
    node.reload();
    wait_for("the reload", PATIENCE, || {
        node.log_text().contains("config reloaded").then_some(())
    });
    // A new client first, so that a balancer restarted by the reload could not hand the
    // sessions back to their servers by coincidence (round robin in the same order).
    let newcomer = get(&http, "app.local", "/", &[]).expect("new client");
    assert_eq!(newcomer.status, 200, "{newcomer:?}");
    visit(
        &mut clients,
        "after the reload (its unapplied binds were forgotten)",
    );
}
