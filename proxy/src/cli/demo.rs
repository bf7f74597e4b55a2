//! `holdfast demo`: a three-node cluster on loopback in one process, with nothing to
//! configure: admin on 127.0.0.1:8411-8413, peers on 127.0.0.1:8421-8423, token
//! `demo-token`, data in a temporary directory removed on exit.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::cluster::Node;
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

[[backend]]
name = "app"
ttl = "10s"
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
        let mut admins = Vec::new();
        for id in 1..=3u64 {
            let config = config::parse(&node_config(id, dir.path()))
                .map_err(|p| anyhow::anyhow!("demo config: {p:?}"))?;
            let admin = TcpListener::bind(config.admin.listen)
                .await
                .with_context(|| format!("cannot listen on {} (is a demo already running?)", config.admin.listen))?;
            let node = Node::start(config).await?;
            admins.push(tokio::spawn(crate::admin::serve(
                admin,
                Arc::clone(&node),
                std::future::pending(),
            )));
            nodes.push(node);
        }
        println!(
            r#"
holdfast demo: three nodes on loopback (admin 127.0.0.1:8411-8413, token {TOKEN}).

Try, from another terminal:
  export HOLDFAST_TOKEN={TOKEN}
  holdfast ctl --admin http://127.0.0.1:8412 cluster
  curl -s -H 'Authorization: Bearer {TOKEN}' -d '{{"key":"alice","server":"s1"}}' http://127.0.0.1:8413/v1/table/app
  holdfast ctl --admin http://127.0.0.1:8411 table app
  holdfast ctl --admin http://127.0.0.1:8412 drain app/s1 --wait     # released ~10 s after alice's last touch
  curl -s http://127.0.0.1:8411/metrics

Ctrl-C stops everything."#
        );
        tokio::signal::ctrl_c().await?;
        for a in admins {
            a.abort();
        }
        for n in &nodes {
            n.shutdown().await;
        }
        anyhow::Ok(())
    })?;
    Ok(0)
}
