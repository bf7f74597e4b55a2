//! `holdfast ctl`: the operator's client for any node's admin API.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::render;

/// `holdfast ctl` arguments.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Admin API of any node.
    #[arg(long, env = "HOLDFAST_ADMIN", default_value = "http://127.0.0.1:8410")]
    pub admin: String,
    /// Admin bearer token.
    #[arg(long, env = "HOLDFAST_TOKEN")]
    pub token: Option<String>,
    /// Print the raw JSON answer.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to ask.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// `holdfast ctl` subcommands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Backends, servers, states and binding counts.
    Status,
    /// Cluster members, roles, watermarks and leader.
    Cluster,
    /// Exits 0 when the node is ready (`/readyz`), 1 with the reason when not: a probe for
    /// supervisors and images without curl.
    Readyz,
    /// Put a server into drain: bound clients stay, new clients go elsewhere.
    Drain {
        /// BACKEND/SERVER
        target: String,
        /// Wait until the cluster releases the server, showing progress.
        #[arg(long)]
        wait: bool,
        /// Force release after this long (e.g. 30m).
        #[arg(long)]
        deadline: Option<String>,
    },
    /// Put a server back to ready.
    Ready {
        /// BACKEND/SERVER
        target: String,
    },
    /// Put a server into maintenance at once.
    Maint {
        /// BACKEND/SERVER
        target: String,
    },
    /// Bindings of a backend.
    Table {
        /// Backend name.
        backend: String,
        /// At most this many bindings.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Membership changes.
    Members {
        /// add or remove.
        #[command(subcommand)]
        op: MembersOp,
    },
}

/// `holdfast ctl members` operations.
#[derive(Debug, Subcommand)]
pub enum MembersOp {
    /// Add a node (it catches up as a learner, then votes).
    Add {
        /// Node id.
        id: u64,
        /// Peer address.
        addr: String,
    },
    /// Remove a node.
    Remove {
        /// Node id.
        id: u64,
    },
}

struct Api {
    base: String,
    token: Option<String>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Api {
    /// `GET path` without failing on an error status: (2xx, JSON body).
    async fn probe(&self, path: &str) -> anyhow::Result<(bool, Value)> {
        let uri = format!("{}{}", self.base.trim_end_matches('/'), path);
        let req = http::Request::get(&uri).body(Full::new(Bytes::new()))?;
        let resp = self
            .client
            .request(req)
            .await
            .with_context(|| format!("cannot reach {uri}"))?;
        let ok = resp.status().is_success();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((ok, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let uri = format!("{}{}", self.base.trim_end_matches('/'), path);
        let mut req = http::Request::builder().method(method).uri(&uri);
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = req
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let resp = self
            .client
            .request(req)
            .await
            .with_context(|| format!("cannot reach {uri}"))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = value.get("error").and_then(Value::as_str).unwrap_or("");
            bail!("{status}: {msg}");
        }
        Ok(value)
    }
}

fn split_target(target: &str) -> anyhow::Result<(&str, &str)> {
    target
        .split_once('/')
        .filter(|(b, s)| !b.is_empty() && !s.is_empty())
        .ok_or_else(|| anyhow::anyhow!("expected BACKEND/SERVER, got {target:?}"))
}

/// Runs `holdfast ctl`; returns the exit code.
pub fn ctl(args: CtlArgs) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: CtlArgs) -> anyhow::Result<i32> {
    let api = Api {
        base: args.admin.clone(),
        token: args.token.clone(),
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    use http::Method;
    let render: fn(&Value) -> String = match &args.command {
        CtlCommand::Status => render::backends,
        CtlCommand::Cluster => render::cluster,
        CtlCommand::Readyz => render::readiness,
        CtlCommand::Table { .. } => render::table,
        _ => render::ack,
    };
    let value = match &args.command {
        CtlCommand::Status => api.call(Method::GET, "/v1/backends", None).await?,
        CtlCommand::Cluster => api.call(Method::GET, "/v1/cluster", None).await?,
        CtlCommand::Readyz => {
            let (ready, v) = api.probe("/readyz").await?;
            if !ready {
                let why = v["reason"].as_str().unwrap_or("unknown");
                eprintln!("not ready: {why}");
                return Ok(1);
            }
            v
        }
        CtlCommand::Table { backend, limit } => {
            api.call(
                Method::GET,
                &format!("/v1/table/{backend}?limit={limit}"),
                None,
            )
            .await?
        }
        CtlCommand::Ready { target } | CtlCommand::Maint { target } => {
            let (b, s) = split_target(target)?;
            let state = if matches!(args.command, CtlCommand::Ready { .. }) {
                "ready"
            } else {
                "maint"
            };
            let body = serde_json::json!({ "state": state });
            api.call(
                Method::POST,
                &format!("/v1/backends/{b}/servers/{s}/state"),
                Some(body),
            )
            .await?
        }
        CtlCommand::Drain {
            target,
            wait,
            deadline,
        } => {
            let (b, s) = split_target(target)?;
            let body = serde_json::json!({ "state": "drain", "deadline": deadline });
            let v = api
                .call(
                    Method::POST,
                    &format!("/v1/backends/{b}/servers/{s}/state"),
                    Some(body),
                )
                .await?;
            if *wait {
                return wait_released(&api, b, s, deadline.is_some()).await;
            }
            v
        }
        CtlCommand::Members { op } => match op {
            MembersOp::Add { id, addr } => {
                let body = serde_json::json!({ "id": id, "addr": addr });
                api.call(Method::POST, "/v1/members", Some(body)).await?
            }
            MembersOp::Remove { id } => {
                api.call(Method::DELETE, &format!("/v1/members/{id}"), None)
                    .await?
            }
        },
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render(&value));
    }
    Ok(0)
}

/// Polls until `backend/server` is `maint`, printing bindings left and blocking members.
/// Exits 0 on release by the rule; 3 when a deadline forced it while bindings or
/// watermarks still held it (sessions may break); 2 when the drain was cancelled.
async fn wait_released(
    api: &Api,
    backend: &str,
    server: &str,
    has_deadline: bool,
) -> anyhow::Result<i32> {
    let mut last = String::new();
    let mut held = false;
    loop {
        let backends = api.call(http::Method::GET, "/v1/backends", None).await?;
        let found = backends
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["name"] == backend)
            .flat_map(|b| b["servers"].as_array().cloned().unwrap_or_default())
            .find(|s| s["name"] == server);
        let Some(s) = found else {
            bail!("no server {backend}/{server}");
        };
        let state = s["admin_state"].as_str().unwrap_or("?");
        if state == "maint" {
            if has_deadline && held {
                eprintln!(
                    "{backend}/{server}: released by its deadline while still held ({last}): \
                     sessions bound to it may break"
                );
                return Ok(3);
            }
            println!("{backend}/{server}: released (maint): safe to shut down");
            return Ok(0);
        }
        if state == "ready" {
            eprintln!("{backend}/{server}: back to ready: drain cancelled");
            return Ok(2);
        }
        let bindings = s["bindings"].as_u64().unwrap_or(0);
        let blockers = s["release_blockers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        held = bindings > 0 || !blockers.is_empty();
        let line = if bindings > 0 {
            format!("{backend}/{server}: {state}, {bindings} bindings left")
        } else if blockers.is_empty() {
            format!("{backend}/{server}: {state}, 0 bindings left, releasing")
        } else {
            let nodes: Vec<String> = blockers.iter().map(Value::to_string).collect();
            let promised = s["promised_until"].as_u64().unwrap_or(0);
            let open = if promised > 0 {
                ", open streams or requests"
            } else {
                ""
            };
            format!(
                "{backend}/{server}: {state}, 0 bindings left, waiting for the watermarks{open} of nodes {}",
                nodes.join(", ")
            )
        };
        if line != last {
            println!("{line}");
            last = line;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
