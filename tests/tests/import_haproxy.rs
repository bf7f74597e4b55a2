//! `holdfast import-haproxy` through the real binary: the HAProxy configuration this
//! project was started from becomes a config that `holdfast check` accepts, and a
//! three-node cluster started from it keeps a client's session across nodes over TLS,
//! including a client that still carries HAProxy's own cookie from before the switch.
//! Broken input: every bad line named by number, never a crash.

use std::path::Path;
use std::process::Command;

use holdfast_tests::tls::tls_get;
use holdfast_tests::{Lab, holdfast_binary};

/// The configuration this project was started from (`deploy/examples`).
const STARTED_FROM: &str = include_str!("../../deploy/examples/haproxy-started-from.cfg");

/// Runs `holdfast ARGS`: (exit code, stdout, stderr).
fn holdfast(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(holdfast_binary())
        .args(args)
        .output()
        .expect("run holdfast");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Translates `cfg` (written to `dir`) and checks the result; returns the TOML and the
/// importer's report.
fn import(dir: &Path, name: &str, cfg: &str) -> (String, String) {
    let (input, output) = (
        dir.join(format!("{name}.cfg")),
        dir.join(format!("{name}.toml")),
    );
    std::fs::write(&input, cfg).expect("write haproxy.cfg");
    let (code, _, report) = holdfast(&[
        "import-haproxy",
        &input.display().to_string(),
        "--output",
        &output.display().to_string(),
    ]);
    assert!(code == 0 || code == 2, "import exited {code}: {report}");
    let (code, out, err) = holdfast(&["check", "--config", &output.display().to_string()]);
    assert_eq!(
        code, 0,
        "holdfast check refused the translation: {out}{err}"
    );
    (
        std::fs::read_to_string(&output).expect("translated"),
        report,
    )
}

/// The address of server `name` in the lab's `server = [...]` list.
fn addr_of(servers: &str, name: &str) -> String {
    let at = servers.find(&format!("name = \"{name}\"")).expect("server");
    let rest = &servers[at..];
    let start = rest.find("addr = \"").expect("addr") + 8;
    rest[start..start + rest[start..].find('"').expect("end")].to_string()
}

#[test]
fn the_config_this_project_started_from_runs_as_a_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("ssl");
    std::fs::create_dir(&certs).expect("cert dir");
    for (file, name) in [("_default", "default.local"), ("app1", "app1.atac.local")] {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
        let pem = format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem());
        std::fs::write(certs.join(format!("{file}.pem")), pem).expect("pem");
    }
    let work = dir.path().to_path_buf();
    let lab = Lab::start(3, move |servers| {
        let cfg = STARTED_FROM
            .replace("xxx.xxx.xxx.xxx:443", "127.0.0.1:1")
            .replace("/etc/haproxy/ssl", &certs.display().to_string())
            .replace("SRV1_IP:PORT", &addr_of(servers, "s1"))
            .replace("SRV2_IP:PORT", &addr_of(servers, "s2"));
        let (toml, report) = import(&work, "started-from", &cfg);
        // The one line not translated: `default_backend _default` names no backend.
        assert!(
            report.contains(":9: not translated: no backend `_default`"),
            "{report}"
        );
        assert_eq!(report.matches("not translated").count(), 1, "{report}");
        // The harness writes [node], [cluster] and [admin]; the rest is the translation's.
        let body = &toml[toml.find("[[frontend]]").expect("a frontend")..];
        body.replace("listen = \"127.0.0.1:1\"", "listen = \"{http}\"")
    });
    let host = "app1.atac.local";
    let first = tls_get(&lab.http(0), host, "/", &[]).expect("first request");
    assert_eq!(first.status, 200, "{first:?}");
    let ours = |a: &holdfast_tests::Answer| {
        a.all("set-cookie")
            .into_iter()
            .find(|c| c.starts_with("HAPROXY_SESSION="))
            .map(|c| c.split(';').next().unwrap_or("").to_string())
    };
    let cookie = ours(&first).expect("holdfast's cookie under HAProxy's name");
    for node in [1, 2, 0, 1, 2] {
        let again = tls_get(&lab.http(node), host, "/", &[("Cookie", &cookie)]).expect("request");
        assert_eq!(
            (again.status, &again.body),
            (200, &first.body),
            "node {node} moved the session"
        );
    }
    // A client still holding HAProxy's cookie from before the switch keeps its server,
    // and gets holdfast's signed cookie in its place.
    for (value, server) in [("SRV1", "s1"), ("SRV2", "s2")] {
        let legacy = format!("HAPROXY_SESSION={value}");
        let answer = tls_get(&lab.http(2), host, "/", &[("Cookie", &legacy)]).expect("request");
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, server),
            "{answer:?}"
        );
        let replaced = ours(&answer).expect("a signed cookie in place of HAProxy's");
        assert_ne!(replaced, legacy);
    }
}

#[test]
fn broken_input_is_named_line_by_line_and_never_crashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "stray line\n\
        frontend f\n  mode tcp\n  bind :80-90\n  bind 127.0.0.1:8080\n  acl w hdr_beg(host) -i www.\n\
        use_backend b if !w\n  use_backend nowhere if w\n  default_backend b\n\
        backend b\n  balance uri\n  stick on req.payload(0,10)\n  server u unix@/run/app.sock\n\
        server p SRV1_IP:PORT\n  server ok 127.0.0.1:9\n  cookie\n  server\n  timeout server banana\n\
        \"unterminated\n  \\\n";
    let (_, report) = import(dir.path(), "broken", text);
    for line in [1, 3, 4, 6, 7, 8, 11, 12, 13, 14, 18] {
        assert!(
            report.contains(&format!("broken.cfg:{line}: ")),
            "line {line} not named:\n{report}"
        );
    }
    let (code, _, err) = holdfast(&["import-haproxy", "/nonexistent/haproxy.cfg"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/haproxy.cfg"), "{err}");
}
