//! `holdfast demo`: a three-node cluster on loopback in one process, with nothing to
//! configure: HTTP frontends on 127.0.0.1:8401-8403, admin on 127.0.0.1:8411-8413, peers
//! on 127.0.0.1:8421-8423, demo backends s1..s3 on 127.0.0.1:8431-8433, token
//! `demo-token`, data in a temporary directory removed on exit.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use super::process::Process;
use crate::config;

const TOKEN: &str = "demo-token";

fn node_config(id: u64, dir: &std::path::Path) -> String {
    let members = (1..=3)
        .map(|i| format!("{{ id = {i}, addr = \"127.0.0.1:842{i}\" }}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"[node]
id = {id}
data_dir = "{data}"

[cluster]
secret = "holdfast-demo-secret-not-for-production"
peer_listen = "127.0.0.1:842{id}"
members = [{members}]

[admin]
listen = "127.0.0.1:841{id}"
token = "{TOKEN}"

[[frontend]]
name = "http"
listen = "127.0.0.1:840{id}"
default_backend = "app"
routes = [
  {{ host = "app.local", backend = "app" }},
  {{ host = "web.local", backend = "web" }},
]

[[backend]]
name = "app"
ttl = "10s"
persistence = "learn"
cookie = "PHPSESSID"
check = {{ type = "http", path = "/", interval = "1s", timeout = "500ms" }}
server = [
  {{ name = "s1", addr = "127.0.0.1:8431" }},
  {{ name = "s2", addr = "127.0.0.1:8432" }},
  {{ name = "s3", addr = "127.0.0.1:8433" }},
]

[[backend]]
name = "web"
ttl = "10s"
persistence = "insert"
check = {{ type = "http", path = "/", interval = "1s", timeout = "500ms" }}
server = [
  {{ name = "s1", addr = "127.0.0.1:8431" }},
  {{ name = "s2", addr = "127.0.0.1:8432" }},
  {{ name = "s3", addr = "127.0.0.1:8433" }},
]
"#,
        data = dir.join(format!("node{id}")).display(),
    )
}

/// Runs the demo cluster until Ctrl-C.
pub fn demo() -> anyhow::Result<i32> {
    super::run::init_logging();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().context("creating the demo's data directory")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut nodes = Vec::new();
        let mut backends = Vec::new();
        for i in 1..=3 {
            let addr = format!("127.0.0.1:843{i}");
            let listener = TcpListener::bind(&addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (is a demo already running?)"))?;
            backends.push(tokio::spawn(super::backend::serve(
                listener,
                Arc::from(format!("s{i}").as_str()),
            )));
        }
        for id in 1..=3u64 {
            let config = config::parse(&node_config(id, dir.path()))
                .map_err(|p| anyhow::anyhow!("demo config: {p:?}"))?;
            let mut process = Process::start(config).await?;
            // The demo's nodes start one after the other (the first cannot be ready before
            // the others exist): their frontends open at once, and /readyz reports the
            // cluster's readiness.
            process.serve().await?;
            nodes.push(process);
        }
        println!(
            r#"
holdfast demo: three nodes on loopback: HTTP on 127.0.0.1:8401-8403, admin on
127.0.0.1:8411-8413 (token {TOKEN}), backends s1..s3 on 127.0.0.1:8431-8433.
Backend "app" (Host app.local, the default) learns PHPSESSID; "web" (Host web.local)
inserts holdfast's signed HFSID cookie. Bindings live 10 s after the last request.

Try, from another terminal:
  export HOLDFAST_TOKEN={TOKEN}
  # stickiness across nodes: a cookie jar, then requests to each node
  curl -s -c /tmp/jar -b /tmp/jar -H 'Host: web.local' http://127.0.0.1:8401/; echo
  for p in 8401 8402 8403 8401 8402 8403; do curl -s -b /tmp/jar -H 'Host: web.local' http://127.0.0.1:$p/; echo; done
  curl -s -c /tmp/app -b /tmp/app http://127.0.0.1:8402/; echo    # learn mode (PHPSESSID)
  for p in 8401 8402 8403; do curl -s -b /tmp/app http://127.0.0.1:$p/; echo; done
  holdfast ctl --admin http://127.0.0.1:8411 table web
  # drain the server the jar is bound to (say s1): the jar stays, new clients go elsewhere
  holdfast ctl --admin http://127.0.0.1:8412 drain web/s1
  curl -s -b /tmp/jar -H 'Host: web.local' http://127.0.0.1:8403/; echo   # still s1
  curl -s -H 'Host: web.local' http://127.0.0.1:8403/; echo               # never s1
  holdfast ctl --admin http://127.0.0.1:8412 drain web/s1 --wait   # released ~10 s after the jar's last request
  curl -s http://127.0.0.1:8411/metrics | grep -E 'holdfast_(requests|session_breaks|server_health)'

Ctrl-C stops everything."#
        );
        tokio::signal::ctrl_c().await?;
        for a in backends {
            a.abort();
        }
        for n in nodes {
            n.stop(std::time::Duration::ZERO).await;
        }
        anyhow::Ok(())
    })?;
    Ok(0)
}
