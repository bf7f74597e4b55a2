//! One proxied request: framing checks, routing, persistence, the hop to the server over
//! the pooled client (bodies streamed both ways), one redispatch on connect failure for
//! idempotent requests, WebSocket/Upgrade tunnelling, metrics and the access log.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use http::header::{HOST, HeaderValue, LOCATION, SET_COOKIE};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::TokioIo;

use super::body::{Body, Guarded, empty, error_response};
use super::conn::{Busy, ConnState};
use super::cookie::strip_request_cookie;
use super::headers::{
    check_framing, client_ip, host_name, is_upgrade, remove_hop_by_hop, request_host, set_forwarded,
};
use super::metrics::ErrorKind;
use super::pool::Server;
use super::{DataPlane, Frontend};
use super::{persist, session};
use crate::config::Persistence;

/// What the handler knows about the client connection.
pub struct Client {
    /// Peer address.
    pub peer: SocketAddr,
    /// True on a TLS listener.
    pub tls: bool,
    /// Shared with the connection's timeouts.
    pub conn: Arc<ConnState>,
}

/// Handles one client request; never fails (errors become HTTP responses).
pub async fn handle(
    dp: Arc<DataPlane>,
    fe: Arc<Frontend>,
    client: Arc<Client>,
    req: Request<Incoming>,
) -> Response<Body> {
    let start = Instant::now();
    let busy = client.conn.begin();
    let access =
        tracing::enabled!(target: "holdfast::access", tracing::Level::DEBUG).then(|| Access {
            method: req.method().as_str().to_string(),
            host: request_host(&req).unwrap_or("").to_string(),
            path: req.uri().path().to_string(),
        });
    let (resp, backend, server) = route(&dp, &fe, &client, req, busy).await;
    let status = resp.status().as_u16();
    account(
        &dp,
        &fe,
        client.peer,
        access.as_ref(),
        status,
        &backend,
        &server,
        start.elapsed(),
    );
    resp
}

/// What the access log needs from a request, copied only when the log is on.
pub struct Access {
    /// The method.
    pub method: String,
    /// The host as sent.
    pub host: String,
    /// The path.
    pub path: String,
}

/// Counts an answered request and writes its access-log line (both paths).
#[allow(clippy::too_many_arguments)]
pub fn account(
    dp: &DataPlane,
    fe: &Frontend,
    peer: SocketAddr,
    access: Option<&Access>,
    status: u16,
    backend: &Arc<str>,
    server: &Arc<str>,
    elapsed: std::time::Duration,
) {
    dp.metrics
        .request(backend, server, status, elapsed.as_secs_f64());
    if let Some(a) = access {
        tracing::debug!(
            target: "holdfast::access",
            frontend = %fe.name,
            client = %peer,
            method = %a.method,
            host = %a.host,
            path = %a.path,
            status,
            backend = %backend,
            server = %server,
            duration_us = elapsed.as_micros() as u64,
            "request"
        );
    }
}

/// The backend and server name logged and counted when there is none.
pub static NONE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("-"));

fn fail(dp: &DataPlane, kind: ErrorKind, status: StatusCode, why: &str) -> Response<Body> {
    dp.metrics.error(kind);
    error_response(status, why)
}

async fn route(
    dp: &DataPlane,
    fe: &Frontend,
    client: &Client,
    mut req: Request<Incoming>,
    busy: Busy,
) -> (Response<Body>, Arc<str>, Arc<str>) {
    let none = || (NONE.clone(), NONE.clone());
    if let Err(why) = check_framing(&req) {
        let (b, s) = none();
        return (
            fail(dp, ErrorKind::BadRequest, StatusCode::BAD_REQUEST, why),
            b,
            s,
        );
    }
    let host = request_host(&req).map(str::to_string);
    if fe.redirect_https {
        let (b, s) = none();
        return (redirect(host.as_deref(), req.uri()), b, s);
    }
    let Some(pool) = fe.router.route(host.as_deref(), req.uri().path()).cloned() else {
        let (b, s) = none();
        let resp = fail(
            dp,
            ErrorKind::NoRoute,
            StatusCode::SERVICE_UNAVAILABLE,
            "no backend for this request",
        );
        return (resp, b, s);
    };
    let backend = pool.name.clone();
    let peer_ip = client.peer.ip();
    let proxies = &pool.config.trusted_proxies;
    let client_addr = client_ip(peer_ip, req.headers(), proxies);
    let cookie = session::in_request(&pool.config, req.headers());
    let plan = match persist::plan(dp, &pool, cookie, client_addr).await {
        Ok(plan) => plan,
        Err(no) => {
            let (status, kind, text) = no.answer();
            return (fail(dp, kind, status, text), backend, NONE.clone());
        }
    };

    // Rewrite the request for the server.
    let upgrade = is_upgrade(&req) && req.version() == Version::HTTP_11;
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    remove_hop_by_hop(&mut parts.headers, upgrade);
    set_forwarded(
        &mut parts.headers,
        peer_ip,
        client.tls,
        host.as_deref(),
        proxies,
    );
    if pool.config.persistence == Persistence::Insert {
        strip_request_cookie(&mut parts.headers, pool.config.cookie_name());
    }
    if let Some(h) = host.as_deref()
        && !single_value_is(&parts.headers, HOST, h)
        && let Ok(h) = HeaderValue::from_str(h)
    {
        parts.headers.insert(HOST, h);
    }
    parts.version = Version::HTTP_11;
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    // Without a body the request can be replayed on another server after a connect failure.
    let replayable = idempotent(&parts.method) && body.is_end_stream();
    let method = parts.method.clone();
    let mut body = Some(body.boxed());
    let mut stored = Some(parts);
    let mut plan = plan;
    let mut attempt = 0;
    let response = loop {
        attempt += 1;
        let Ok(uri) = server_uri(&plan.server, &path) else {
            let resp = fail(
                dp,
                ErrorKind::Connect,
                StatusCode::BAD_GATEWAY,
                "bad server address",
            );
            return (resp, backend, plan.server.name.clone());
        };
        let this = match (replayable && attempt == 1, &stored) {
            (true, Some(p)) => Some(p.clone()),
            _ => stored.take(),
        };
        let Some(this) = this else {
            let resp = fail(
                dp,
                ErrorKind::Backend,
                StatusCode::BAD_GATEWAY,
                "bad gateway",
            );
            return (resp, backend, plan.server.name.clone());
        };
        let mut out = Request::from_parts(this, body.take().unwrap_or_else(empty));
        *out.uri_mut() = uri;
        let inflight = persist::open(dp, &pool, &plan);
        let sent = tokio::time::timeout(dp.timeouts.server, dp.client.request(out)).await;
        match sent {
            Ok(Ok(resp)) => break (resp, inflight),
            Ok(Err(e)) if e.is_connect() => {
                dp.metrics.error(ErrorKind::Connect);
                tracing::warn!(backend = %backend, server = %plan.server.name, error = %e, "connect to server failed");
                if replayable
                    && attempt == 1
                    && let Some(next) = persist::retry(dp, &pool, plan.clone())
                {
                    dp.metrics.error(ErrorKind::Redispatch);
                    plan = next;
                    continue;
                }
                let resp = error_response(StatusCode::SERVICE_UNAVAILABLE, "server unreachable");
                return (resp, backend, plan.server.name.clone());
            }
            Ok(Err(e)) => {
                tracing::warn!(backend = %backend, server = %plan.server.name, error = %e, "server exchange failed");
                let resp = fail(
                    dp,
                    ErrorKind::Backend,
                    StatusCode::BAD_GATEWAY,
                    "bad gateway",
                );
                return (resp, backend, plan.server.name.clone());
            }
            Err(_) => {
                let resp = fail(
                    dp,
                    ErrorKind::ServerTimeout,
                    StatusCode::GATEWAY_TIMEOUT,
                    "server timeout",
                );
                return (resp, backend, plan.server.name.clone());
            }
        }
    };
    let (mut resp, inflight) = response;
    let server = plan.server.name.clone();
    let learned = match pool.config.persistence {
        Persistence::Learn => session::in_response(&pool.config, resp.headers()),
        _ => None,
    };
    let set_cookies = resp.headers().get_all(SET_COOKIE);
    let ended = session::ended(
        &pool.config,
        method == Method::DELETE,
        resp.status().as_u16(),
        set_cookies.iter().filter_map(|v| v.to_str().ok()),
    );
    let cookie = persist::record(dp, &pool, &plan, learned.as_deref(), ended, client.tls);
    inflight.learned(learned.as_deref());
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let server_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let _hold = (busy, inflight);
            if let (Ok(a), Ok(b)) = (client_upgrade.await, server_upgrade.await) {
                let (mut a, mut b) = (TokioIo::new(a), TokioIo::new(b));
                let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
            }
        });
        let (parts, _) = resp.into_parts();
        return (
            with_cookie(Response::from_parts(parts, empty()), cookie),
            backend,
            server,
        );
    }
    let (mut parts, body) = resp.into_parts();
    remove_hop_by_hop(&mut parts.headers, false);
    let body = Guarded::wrap(body.boxed(), (inflight, busy));
    (
        with_cookie(Response::from_parts(parts, body), cookie),
        backend,
        server,
    )
}

/// True when `name` occurs once in `headers`, with value `value`.
fn single_value_is(headers: &http::HeaderMap, name: http::HeaderName, value: &str) -> bool {
    let mut all = headers.get_all(name).iter();
    matches!((all.next(), all.next()), (Some(v), None) if v.as_bytes() == value.as_bytes())
}

/// `http://<server address><path>`, from the parsed parts (nothing formatted or parsed).
fn server_uri(server: &Server, path: &PathAndQuery) -> Result<Uri, ()> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(server.authority.clone().ok_or(())?);
    parts.path_and_query = Some(path.clone());
    Uri::from_parts(parts).map_err(|_| ())
}

fn with_cookie(mut resp: Response<Body>, cookie: Option<String>) -> Response<Body> {
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    resp
}

fn idempotent(method: &Method) -> bool {
    is_idempotent(method.as_str().as_bytes())
}

/// True for the methods a request may be replayed with (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
    )
}

fn redirect(host: Option<&str>, uri: &Uri) -> Response<Body> {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let target = format!("https://{}{path}", host.map(host_name).unwrap_or_default());
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&target) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}
