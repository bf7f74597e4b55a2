//! The stats page in headless Chromium during a real three-node drain: the chart's last
//! value is the bindings the admin API reports, the page's projected release time is
//! within a second of the actual release, and the release is marked when it happens.
//! Screenshots go to `target/ci-artifacts/`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use holdfast::api::{AdminState, Stats, paths};
use holdfast_tests::browser::{Browser, attribute};
use holdfast_tests::{Jar, Lab, PATIENCE, plain_config, wait_for};

/// [`plain_config`] with insert persistence and a short ttl.
fn config(servers: &str) -> String {
    plain_config(servers).replace(
        "persistence = \"none\"",
        "persistence = \"insert\"\nttl = \"8s\"",
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[test]
fn the_page_shows_a_drain_counting_down_to_its_release() {
    let Some(browser) = Browser::new() else {
        return;
    };
    let lab = Lab::start(3, config);
    // Nine clients, through every node: each comes back with its cookie, which binds it
    // to its server (first contact stores nothing).
    for i in 0..9 {
        let mut jar = Jar::default();
        for visit in 0..2 {
            let answer = jar
                .get(&lab.http((i + visit) % 3), "app.local")
                .expect("request");
            assert_eq!(answer.status, 200, "{answer:?}");
        }
    }
    lab.wait_bindings("app", 9);
    let watcher = lab.cluster.node(2);
    let backends = watcher.backends().expect("backends");
    let (_, busiest) = backends
        .servers()
        .max_by_key(|(_, s)| s.bindings)
        .expect("a server");
    let server = busiest.name.clone();
    let target = format!("app/{server}");
    let (code, _, err) = lab.cluster.node(1).ctl(&["drain", &target]);
    assert_eq!(code, 0, "{err}");

    // The watching node samples the drain once a second.
    wait_for("two samples of the drain", PATIENCE, || {
        let stats: Stats = watcher.get(paths::STATS)?;
        let d = stats.drains.iter().find(|d| d.server == server)?;
        (d.points.len() >= 2).then_some(())
    });
    let url = format!("http://{}/", watcher.admin);
    let marker = format!("data-server=\"{target}\"");
    let dom = browser.dom(&url, 2500);
    let charted: u64 = attribute(&dom, &marker, "data-last-bindings")
        .unwrap_or_else(|| panic!("no chart of {target} on the page:\n{dom}"))
        .parse()
        .expect("a number");
    let reported = watcher.server("app", &server).expect("server").bindings;
    assert_eq!(charted, reported, "chart vs API");
    assert!(charted > 0, "the drained server has bindings");
    let projected: u64 = attribute(&dom, &format!("class=\"projected\" {marker}"), "data-at")
        .unwrap_or_else(|| panic!("no projected release on the page:\n{dom}"))
        .parse()
        .expect("a time");
    browser.screenshot(&url, 2500, "stats-drain.png");

    // Nobody comes back: the release comes when projected.
    let released = wait_for("the release", Duration::from_secs(60), || {
        (watcher.admin_state("app", &server)? == AdminState::Maint).then(now_ms)
    });
    let error = released.abs_diff(projected);
    println!("projected {projected}, released {released}: {error} ms apart");
    assert!(error <= 1000, "projected {projected}, released {released}");

    // The release is on the chart and in the events, on every node's page.
    wait_for("the release in the history", PATIENCE, || {
        let stats: Stats = watcher.get(paths::STATS)?;
        let d = stats.drains.iter().find(|d| d.server == server)?;
        d.ended.map(|_| ())
    });
    let dom = browser.dom(&url, 2500);
    assert!(dom.contains("release-mark"), "no release mark:\n{dom}");
    assert!(dom.contains("safe to shut down"), "no release text:\n{dom}");
    assert!(dom.contains("drain began"), "no drain event:\n{dom}");
    browser.screenshot(&url, 2500, "stats-released.png");
}
