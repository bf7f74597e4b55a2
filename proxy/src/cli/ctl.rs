//! `holdfast ctl`: the operator's client for any node's admin API.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::render;
use crate::api::{
    Ack, AdminState, ApiError, Backends, ClusterStatus, MemberAdd, Readiness, StateChange,
    TableStatus, paths,
};

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

/// A client of one node's admin API: typed answers, [`ApiError`]s as errors.
struct Api {
    base: String,
    token: Option<String>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Api {
    /// `GET path` without failing on an error status: (2xx, the answer if it parses).
    async fn probe<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<(bool, Option<T>)> {
        let req = http::Request::get(self.uri(path)).body(Full::new(Bytes::new()))?;
        let (status, bytes) = self.send(req).await?;
        Ok((status.is_success(), serde_json::from_slice(&bytes).ok()))
    }

    /// `GET path` with the token.
    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(http::Method::GET, path, None::<&()>).await
    }

    /// `method path` with the token and a JSON `body`; an error status fails with the
    /// answer's [`ApiError`].
    async fn call<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let mut req = http::Request::builder().method(method).uri(self.uri(path));
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = body
            .map(serde_json::to_vec)
            .transpose()?
            .unwrap_or_default();
        let req = req
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let (status, bytes) = self.send(req).await?;
        if !status.is_success() {
            let why = serde_json::from_slice::<ApiError>(&bytes).unwrap_or_default();
            bail!("{status}: {why}");
        }
        serde_json::from_slice(&bytes).with_context(|| format!("unexpected answer ({status})"))
    }

    fn uri(&self, path: &str) -> String {
        format!("{}{}", self.base.trim_end_matches('/'), path)
    }

    async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> anyhow::Result<(http::StatusCode, Bytes)> {
        let uri = req.uri().to_string();
        let resp = self
            .client
            .request(req)
            .await
            .with_context(|| format!("cannot reach {uri}"))?;
        let status = resp.status();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
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

/// Prints `value`: as JSON with `--json`, else laid out by `render`.
fn show<T: Serialize>(json: bool, value: &T, render: fn(&T) -> String) -> anyhow::Result<i32> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", render(value));
    }
    Ok(0)
}

async fn run(args: CtlArgs) -> anyhow::Result<i32> {
    let api = Api {
        base: args.admin.clone(),
        token: args.token.clone(),
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    let json = args.json;
    match &args.command {
        CtlCommand::Status => show(
            json,
            &api.get::<Backends>(paths::BACKENDS).await?,
            render::backends,
        ),
        CtlCommand::Cluster => show(
            json,
            &api.get::<ClusterStatus>(paths::CLUSTER).await?,
            render::cluster,
        ),
        CtlCommand::Readyz => readyz(&api, json).await,
        CtlCommand::Table { backend, limit } => {
            let table: TableStatus = api.get(&paths::table(backend, *limit)).await?;
            show(json, &table, render::table)
        }
        CtlCommand::Ready { target } => {
            let ack = set_state(&api, target, StateChange::to(AdminState::Ready)).await?;
            show(json, &ack, render::ack)
        }
        CtlCommand::Maint { target } => {
            let ack = set_state(&api, target, StateChange::to(AdminState::Maint)).await?;
            show(json, &ack, render::ack)
        }
        CtlCommand::Drain {
            target,
            wait,
            deadline,
        } => {
            let change = StateChange {
                state: AdminState::Drain,
                deadline: deadline.clone(),
            };
            let ack = set_state(&api, target, change).await?;
            if *wait {
                let (b, s) = split_target(target)?;
                return wait_released(&api, b, s, deadline.is_some()).await;
            }
            show(json, &ack, render::ack)
        }
        CtlCommand::Members { op } => {
            let ack: Ack = match op {
                MembersOp::Add { id, addr } => {
                    let body = MemberAdd {
                        id: *id,
                        addr: addr.clone(),
                    };
                    api.call(Method::POST, paths::MEMBERS, Some(&body)).await?
                }
                MembersOp::Remove { id } => {
                    api.call(Method::DELETE, &paths::member(*id), None::<&()>)
                        .await?
                }
            };
            show(json, &ack, render::ack)
        }
    }
}

/// `ctl readyz`: 0 when ready, 1 with the reason on standard error when not.
async fn readyz(api: &Api, json: bool) -> anyhow::Result<i32> {
    let (ready, readiness) = api.probe::<Readiness>(paths::READYZ).await?;
    match readiness {
        Some(r) if ready => show(json, &r, render::readiness),
        Some(r) => {
            eprintln!("not ready: {}", r.reason.as_deref().unwrap_or("unknown"));
            Ok(1)
        }
        None => {
            eprintln!("not ready: unknown");
            Ok(1)
        }
    }
}

/// Asks for `change` of `target` (`BACKEND/SERVER`).
async fn set_state(api: &Api, target: &str, change: StateChange) -> anyhow::Result<Ack> {
    let (b, s) = split_target(target)?;
    api.call(Method::POST, &paths::server_state(b, s), Some(&change))
        .await
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
    let terminal = std::io::stdout().is_terminal();
    let end_line = |terminal: bool| {
        if terminal {
            println!();
        }
    };
    loop {
        let backends: Backends = api.get(paths::BACKENDS).await?;
        let Some(s) = backends.server(backend, server) else {
            bail!("no server {backend}/{server}");
        };
        match s.admin_state {
            AdminState::Maint if has_deadline && held => {
                end_line(terminal);
                eprintln!(
                    "{backend}/{server}: released by its deadline while still held ({last}): \
                     sessions bound to it may break"
                );
                return Ok(3);
            }
            AdminState::Maint => {
                end_line(terminal);
                println!("{backend}/{server}: released (maint): safe to shut down");
                return Ok(0);
            }
            AdminState::Ready => {
                end_line(terminal);
                eprintln!("{backend}/{server}: back to ready: drain cancelled");
                return Ok(2);
            }
            AdminState::Drain => {}
        }
        held = s.bindings > 0 || !s.release_blockers.is_empty();
        let line = format!("{backend}/{server}: {}", render::drain_progress(s, None));
        if terminal {
            // One line, rewritten in place, with the time left.
            let now = crate::cluster::now_ms();
            let live = format!(
                "{backend}/{server}: {}",
                render::drain_progress(s, Some(now))
            );
            print!("\r\x1b[2K{live}");
            let _ = std::io::stdout().flush();
        } else if line != last {
            println!("{line}");
        }
        last = line;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
