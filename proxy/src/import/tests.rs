//! Translations checked against holdfast's own config parser: what each HAProxy
//! construct becomes, and that every line not translated is named.

use super::translate;
use crate::config::{self, Persistence};

/// The configuration this project was started from, placeholders filled in.
fn started_from(certs: &str) -> String {
    include_str!("../../../deploy/examples/haproxy-started-from.cfg")
        .replace("xxx.xxx.xxx.xxx", "10.0.0.5")
        .replace("SRV1_IP:PORT", "10.0.1.1:8080")
        .replace("SRV2_IP:PORT", "10.0.1.2:8080")
        .replace("/etc/haproxy", certs)
}

/// A certificate for `name` with its key in one PEM file, as HAProxy's `crt` wants.
fn write_pem(path: &std::path::Path, name: &str) {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
    let pem = format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem());
    std::fs::write(path, pem).expect("write pem");
}

fn parsed(text: &str) -> (config::Config, Vec<usize>) {
    let report = translate(text);
    let toml = report
        .config
        .to_toml("test.cfg", "a-secret-of-at-least-16-chars");
    let config = config::parse(&toml).unwrap_or_else(|p| panic!("{p:?}\n{toml}"));
    (config, report.notes.iter().map(|n| n.line).collect())
}

#[test]
fn the_config_this_project_started_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("ssl")).expect("ssl dir");
    write_pem(&dir.path().join("ssl/_default.pem"), "default.local");
    write_pem(&dir.path().join("ssl/app1.pem"), "app1.atac.local");
    let base = dir.path().display().to_string();
    let (c, notes) = parsed(&started_from(&base));
    let fe = &c.frontends[0];
    assert_eq!(fe.listen.to_string(), "10.0.0.5:443");
    let tls = fe.tls.as_ref().expect("TLS");
    assert_eq!(tls.certs.len(), 1);
    assert_eq!(
        tls.dir.as_ref().map(|d| d.display().to_string()).as_deref(),
        Some(format!("{base}/ssl").as_str())
    );
    assert_eq!(fe.routes.len(), 1);
    assert_eq!(fe.routes[0].host.as_deref(), Some("app1.atac.local"));
    assert!(!fe.redirect_https, "a TLS frontend never redirects");
    let b = &c.backends[0];
    assert_eq!(
        (b.name.as_str(), b.persistence),
        ("APP1", Persistence::Insert)
    );
    assert_eq!(b.cookie_name(), "HAPROXY_SESSION");
    assert_eq!(b.servers[0].cookie.as_deref(), Some("SRV1"));
    let check = b.check.as_ref().expect("a health check");
    assert_eq!(
        (check.method.as_str(), check.path.as_str()),
        ("HEAD", "/haproxy_test_page.php")
    );
    // Only `default_backend _default` (line 9: no such backend) is not translated.
    assert_eq!(notes, [9]);
}

#[test]
fn stick_tables_become_learn_and_source() {
    let (c, _) = parsed(
        "backend app\n  stick-table type string len 64 size 1m expire 45m peers mypeers\n\
         stick on req.cook(JSESSIONID)\n  server a 10.0.0.1:80\n\
         backend ip\n  balance source\n  server a 10.0.0.1:80\n\
         backend lc\n  balance leastconn\n  stick-table type ip size 1m expire 10m\n  stick on src\n  server a 10.0.0.1:80\n",
    );
    let learn = &c.backends[0];
    assert_eq!(
        (learn.persistence, learn.cookie_name()),
        (Persistence::Learn, "JSESSIONID")
    );
    assert_eq!(learn.ttl.as_secs(), 45 * 60);
    assert_eq!(c.backends[1].persistence, Persistence::Source);
    assert_eq!(c.backends[2].persistence, Persistence::Source);
    assert_eq!(c.backends[2].ttl.as_secs(), 600);
}

#[test]
fn routes_listen_sections_timeouts_and_redirects() {
    let (c, notes) = parsed(
        "global\n  maxconn 4000\n  daemon\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 50000\n\
         frontend www\n  bind :80\n  redirect scheme https code 301 if !{ ssl_fc }\n\
         acl api path_beg /api\n  acl h hdr_end(host) -i .example.com\n\
         use_backend api if h api\n  default_backend web\n\
         listen web\n  bind :8080\n  server w1 10.0.0.1:80 weight 3 check inter 2s rise 2 fall 4\n\
         backend api\n  server a1 10.0.0.2:80\n",
    );
    assert_eq!(c.limits.max_connections, 4000);
    assert_eq!(c.timeouts.server.as_millis(), 50_000);
    assert_eq!(c.timeouts.keep_alive.as_secs(), 30);
    let www = &c.frontends[0];
    assert!(www.redirect_https);
    assert_eq!(www.routes[0].host.as_deref(), Some("*.example.com"));
    assert_eq!(www.routes[0].path_prefix.as_deref(), Some("/api"));
    let web = c
        .backends
        .iter()
        .find(|b| b.name == "web")
        .expect("listen backend");
    assert_eq!(web.servers[0].weight, 3);
    let check = web.check.as_ref().expect("tcp check");
    assert_eq!(
        (check.rise, check.fall, check.interval.as_secs()),
        (2, 4, 2)
    );
    assert_eq!(c.frontends[1].default_backend.as_deref(), Some("web"));
    assert_eq!(notes, [3], "`daemon` is the one line not translated");
}

#[test]
fn every_line_that_does_not_translate_is_named() {
    let text = "stray line\n\
        userlist admins\n  user a password x\n\
        frontend f\n  mode tcp\n  bind :80-90\n  bind :81\n  acl w hdr_beg(host) -i www.\n\
        use_backend b if !w\n  default_backend b\n\
        backend b\n  balance uri\n  stick on req.payload(0,10)\n  server u unix@/run/app.sock\n\
        server p SRV1_IP:PORT\n  server ok 10.0.0.1:80\n";
    let (c, notes) = parsed(text);
    assert_eq!(notes, [1, 2, 5, 6, 8, 9, 12, 13, 14, 15]);
    assert_eq!(c.backends[0].servers.len(), 1);
    assert_eq!(c.frontends.len(), 1);
}
