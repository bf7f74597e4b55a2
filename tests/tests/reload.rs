//! Graceful reload and shutdown through real processes: on SIGHUP new connections follow
//! the new servers and weights while a request in flight finishes on the old setup, and a
//! broken config file is refused; on SIGTERM the node stops accepting and exits once the
//! request in flight is answered.

use std::collections::BTreeSet;
use std::time::Duration;

use std::thread::JoinHandle;

use holdfast_tests::{Answer, Lab, PATIENCE, get, plain_config, wait_for};

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
