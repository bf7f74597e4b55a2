//! Graceful reload and shutdown through real processes: on SIGHUP new connections follow
//! the new servers and weights while a request in flight finishes on the old setup, and a
//! broken config file is refused; on SIGTERM the node stops accepting and exits once the
//! request in flight is answered.

use std::collections::BTreeSet;
use std::time::Duration;

use holdfast_tests::{Lab, PATIENCE, get, wait_for};

fn config(servers: &str) -> String {
    format!(
        r#"
[[frontend]]
name = "web"
listen = "{{http}}"
default_backend = "app"

[[backend]]
name = "app"
ttl = "60s"
persistence = "none"
{servers}
"#
    )
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
    let lab = Lab::start(1, config);
    let node = lab.cluster.node(0);
    assert_eq!(
        answering(&lab, 12).len(),
        3,
        "round robin over s1..s3 before reload"
    );

    // A slow request is in flight while the config changes under it.
    let http = lab.http(0);
    let slow = std::thread::spawn(move || get(&http, "app.local", "/sleep/1500", &[]));
    std::thread::sleep(Duration::from_millis(300));

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
    let slow = slow
        .join()
        .expect("slow request thread")
        .expect("slow request");
    assert_eq!(
        slow.status, 200,
        "in-flight request harmed by the reload: {slow:?}"
    );

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
    let mut lab = Lab::start(1, config);
    let http = lab.http(0);
    let slow = {
        let http = http.clone();
        std::thread::spawn(move || get(&http, "app.local", "/sleep/1500", &[]))
    };
    std::thread::sleep(Duration::from_millis(300));
    let exited = lab.cluster.nodes[0].terminate(Duration::from_secs(30));
    let slow = slow
        .join()
        .expect("slow request thread")
        .expect("slow request");
    assert_eq!(
        slow.status, 200,
        "request in flight cut by SIGTERM: {slow:?}"
    );
    assert!(exited, "node did not exit after SIGTERM");
    assert!(
        get(&http, "app.local", "/", &[]).is_err(),
        "still accepting after exit"
    );
}
