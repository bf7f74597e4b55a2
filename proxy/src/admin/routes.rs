//! The admin API's routes: cluster and backend status, server state changes, the stick
//! table, membership. JSON in and out; every call but `/metrics`, `/healthz`,
//! `/readyz` and the stats page needs the bearer token.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use holdfast_table::model::{Bind, Command, NodeBatch, RequestedState, Response as TableResponse};

use super::Admin;
use super::http::{Body, authorized, error, json, read_json};
use crate::cluster::{ClusterOp, Committed, Node, WriteError};
use crate::config::parse_duration;

/// Body of `POST /v1/backends/{b}/servers/{s}/state`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    state: String,
    #[serde(default)]
    deadline: Option<String>,
}

/// Body of `POST /v1/table/{backend}`: pin a key to a server (like HAProxy's `set table`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BindBody {
    key: String,
    server: String,
}

/// Body of `POST /v1/members`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    id: u64,
    addr: String,
}

#[derive(Serialize)]
struct Accepted {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_state: Option<&'static str>,
}

/// Answers one admin request.
pub async fn handle(admin: Admin, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if req.method() == Method::GET {
        // Read-only pages need no token, like HAProxy's stats page and /metrics.
        match path.as_str() {
            "/metrics" => return super::metrics::render(&admin.node, admin.http.as_deref()),
            "/" => return super::stats::page(),
            "/stats.json" => return super::stats::stats_json(&admin).await,
            // Liveness: the process answers. Readiness: it may take client traffic.
            "/healthz" => return json(StatusCode::OK, &serde_json::json!({ "alive": true })),
            "/readyz" => {
                let r = admin.node.readiness();
                let status = if r.ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                return json(status, &r);
            }
            _ => {}
        }
    }
    let node = admin.node.clone();
    if !authorized(req.headers(), node.config().admin.token.as_deref()) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_string();
    match (method, segments.as_slice()) {
        (Method::GET, ["v1", "cluster"]) => json(StatusCode::OK, &node.cluster_status().await),
        (Method::GET, ["v1", "backends"]) => {
            let status = node.backends_status(|b, s| admin.health(b, s));
            json(StatusCode::OK, &status)
        }
        (Method::POST, ["v1", "backends", b, "servers", s, "state"]) => {
            let (b, s) = (b.to_string(), s.to_string());
            match read_json::<StateBody>(req.into_body()).await {
                Ok(body) => set_state(&node, b, s, body).await,
                Err(resp) => resp,
            }
        }
        (Method::GET, ["v1", "table", b]) => {
            let limit = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("limit="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(100);
            json(StatusCode::OK, &node.table_status(b, limit))
        }
        (Method::POST, ["v1", "table", b]) => {
            let b = b.to_string();
            match read_json::<BindBody>(req.into_body()).await {
                Ok(body) => pin(&node, b, body).await,
                Err(resp) => resp,
            }
        }
        (Method::POST, ["v1", "members"]) => match read_json::<MemberBody>(req.into_body()).await {
            Ok(m) => match crate::cluster::validate_addr(&m.addr) {
                Err(why) => error(StatusCode::BAD_REQUEST, &why),
                Ok(()) => {
                    let op = ClusterOp::AddMember {
                        id: m.id,
                        addr: m.addr,
                    };
                    cluster_op(&node, op).await
                }
            },
            Err(resp) => resp,
        },
        (Method::DELETE, ["v1", "members", id]) => match id.parse() {
            Ok(id) => cluster_op(&node, ClusterOp::RemoveMember { id }).await,
            Err(_) => error(StatusCode::BAD_REQUEST, "member id must be a number"),
        },
        _ => error(StatusCode::NOT_FOUND, &format!("no route {path}")),
    }
}

fn write_error(e: WriteError) -> Response<Body> {
    match e {
        WriteError::NoQuorum(m) => {
            error(StatusCode::SERVICE_UNAVAILABLE, &format!("no quorum: {m}"))
        }
        WriteError::Rejected(m) => error(StatusCode::CONFLICT, &m),
    }
}

async fn set_state(
    node: &Node,
    backend: String,
    server: String,
    body: StateBody,
) -> Response<Body> {
    if let Err(m) = node.check_server(&backend, &server) {
        return error(StatusCode::NOT_FOUND, &m);
    }
    let deadline_after = match body.deadline.as_deref().map(parse_duration).transpose() {
        Ok(d) => d.map(|d| d.as_millis() as u64),
        Err(m) => return error(StatusCode::BAD_REQUEST, &format!("deadline: {m}")),
    };
    let state = match body.state.as_str() {
        "ready" => RequestedState::Ready,
        "drain" => RequestedState::Drain { deadline_after },
        "maint" => RequestedState::Maint,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("state must be ready, drain or maint, not {other:?}"),
            );
        }
    };
    let command = Command::SetServerState {
        backend: backend.clone(),
        server: server.clone(),
        state,
    };
    match node.writer().write(command).await {
        Ok(Committed {
            index,
            response: TableResponse::ServerState(s),
        }) => {
            // Read your writes: answer once this node has applied it too, so an operator's
            // next read here (e.g. `drain --wait`) sees the new state.
            node.wait_applied(index).await;
            json(
                StatusCode::OK,
                &Accepted {
                    ok: true,
                    admin_state: Some(s.name()),
                },
            )
        }
        Ok(_) => json(
            StatusCode::OK,
            &Accepted {
                ok: true,
                admin_state: None,
            },
        ),
        Err(e) => write_error(e),
    }
}

async fn pin(node: &Node, backend: String, body: BindBody) -> Response<Body> {
    if let Err(m) = node.check_server(&backend, &body.server) {
        return error(StatusCode::NOT_FOUND, &m);
    }
    let ttl = node.ttl_of(&backend);
    let bind = Bind {
        backend,
        key: body.key.into_bytes(),
        server: body.server,
        ttl,
        replaces: None,
        maxlife: None,
    };
    // Watermark 0: an operator's pin says nothing about requests this node served.
    let batch = NodeBatch {
        node: node.id(),
        binds: vec![bind],
        touches: vec![],
        watermark: 0,
        applied: 0,
        ends: Vec::new(),
        promises: None,
    };
    match node.writer().write(Command::Batch(batch)).await {
        Ok(_) => json(
            StatusCode::OK,
            &Accepted {
                ok: true,
                admin_state: None,
            },
        ),
        Err(e) => write_error(e),
    }
}

async fn cluster_op(node: &Node, op: ClusterOp) -> Response<Body> {
    match node.cluster_op(op).await {
        Ok(()) => json(
            StatusCode::OK,
            &Accepted {
                ok: true,
                admin_state: None,
            },
        ),
        Err(e) => write_error(e),
    }
}
