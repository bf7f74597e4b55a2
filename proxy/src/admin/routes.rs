//! The admin API's routes: cluster and backend status, server state changes, the stick
//! table, membership. JSON in and out, as the types of [`crate::api`]; every call but
//! `/metrics`, `/healthz`, `/readyz` and the stats page needs the bearer token.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use holdfast_table::model::{Bind, Command, NodeBatch, Response as TableResponse};

use super::Admin;
use super::http::{Body, authorized, error, json, read_json};
use crate::api::{Ack, Alive, MemberAdd, PinRequest, StateChange, paths};
use crate::cluster::{ClusterOp, Committed, Node, WriteError};

/// Bindings `GET /v1/table/{backend}` lists when the query names no `limit`.
const DEFAULT_TABLE_LIMIT: usize = 100;

/// Answers one admin request.
pub async fn handle(admin: Admin, req: Request<Incoming>) -> Response<Body> {
    if req.method() == Method::GET
        && let Some(page) = public_page(&admin, req.uri().path()).await
    {
        return page;
    }
    if !authorized(req.headers(), admin.node.config().admin.token.as_deref()) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let node = &admin.node;
    match (req.method().clone(), segments.as_slice()) {
        (Method::GET, ["v1", "cluster"]) => json(StatusCode::OK, &node.cluster_status().await),
        (Method::GET, ["v1", "backends"]) => {
            let status = node.backends_status(|b, s| admin.health(b, s));
            json(StatusCode::OK, &status)
        }
        (Method::POST, ["v1", "backends", b, "servers", s, "state"]) => {
            let (b, s) = (b.to_string(), s.to_string());
            match read_json::<StateChange>(req.into_body()).await {
                Ok(body) => set_state(node, &b, &s, body).await,
                Err(resp) => resp,
            }
        }
        (Method::GET, ["v1", "table", b]) => {
            let limit = table_limit(req.uri().query().unwrap_or(""));
            json(StatusCode::OK, &node.table_status(b, limit))
        }
        (Method::POST, ["v1", "table", b]) => {
            let b = b.to_string();
            match read_json::<PinRequest>(req.into_body()).await {
                Ok(body) => pin(node, b, body).await,
                Err(resp) => resp,
            }
        }
        (Method::POST, ["v1", "members"]) => match read_json::<MemberAdd>(req.into_body()).await {
            Ok(m) => add_member(node, m).await,
            Err(resp) => resp,
        },
        (Method::DELETE, ["v1", "members", id]) => match id.parse() {
            Ok(id) => cluster_op(node, ClusterOp::RemoveMember { id }).await,
            Err(_) => error(StatusCode::BAD_REQUEST, "member id must be a number"),
        },
        _ => error(StatusCode::NOT_FOUND, &format!("no route {path}")),
    }
}

/// The read-only pages that need no token, like HAProxy's stats page and `/metrics`.
async fn public_page(admin: &Admin, path: &str) -> Option<Response<Body>> {
    Some(match path {
        paths::METRICS => super::metrics::render(&admin.node, admin.http.as_deref()),
        "/" => super::stats::page(),
        paths::STATS => super::stats::stats_json(admin).await,
        // Liveness: the process answers. Readiness: it may take client traffic.
        paths::HEALTHZ => json(StatusCode::OK, &Alive { alive: true }),
        paths::READYZ => {
            let r = admin.node.readiness();
            let status = if r.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(status, &r)
        }
        _ => return None,
    })
}

/// The `limit=` of a table query, or [`DEFAULT_TABLE_LIMIT`].
fn table_limit(query: &str) -> usize {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("limit="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_TABLE_LIMIT)
}

fn write_error(e: WriteError) -> Response<Body> {
    match e {
        WriteError::NoQuorum(m) => {
            error(StatusCode::SERVICE_UNAVAILABLE, &format!("no quorum: {m}"))
        }
        WriteError::Rejected(m) => error(StatusCode::CONFLICT, &m),
    }
}

async fn set_state(node: &Node, backend: &str, server: &str, body: StateChange) -> Response<Body> {
    if let Err(m) = node.check_server(backend, server) {
        return error(StatusCode::NOT_FOUND, &m);
    }
    let state = match body.requested() {
        Ok(state) => state,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let command = Command::SetServerState {
        backend: backend.to_string(),
        server: server.to_string(),
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
            json(StatusCode::OK, &Ack::state(s.into()))
        }
        Ok(_) => json(StatusCode::OK, &Ack::ok()),
        Err(e) => write_error(e),
    }
}

async fn pin(node: &Node, backend: String, body: PinRequest) -> Response<Body> {
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
    match node.writer().write(Command::from(batch)).await {
        Ok(_) => json(StatusCode::OK, &Ack::ok()),
        Err(e) => write_error(e),
    }
}

async fn add_member(node: &Node, m: MemberAdd) -> Response<Body> {
    if let Err(why) = crate::cluster::validate_addr(&m.addr) {
        return error(StatusCode::BAD_REQUEST, &why);
    }
    let op = ClusterOp::AddMember {
        id: m.id,
        addr: m.addr,
    };
    cluster_op(node, op).await
}

async fn cluster_op(node: &Node, op: ClusterOp) -> Response<Body> {
    match node.cluster_op(op).await {
        Ok(()) => json(StatusCode::OK, &Ack::ok()),
        Err(e) => write_error(e),
    }
}
