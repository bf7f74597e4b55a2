//! The life of one request, whichever engine carries it: the redirect or the route, the
//! persistence plan, the one redispatch after a connect failure, what the table learns
//! from the answer, the error answer, and the accounting (metrics and access log). The
//! engines (`h1/`, `streamed`) parse and move bytes and ask this module what to do.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use super::cookie::{VerifiedCookie, cache_guard};
use super::fields::Fields;
use super::headers::{client_ip, host_name, request_host, trusted};
use super::metrics::ErrorKind;
use super::persist::{self, Active, Plan};
use super::pool::{Pool, Server};
use super::refusal::Refusal;
use super::target::{self, Target};
use super::{DataPlane, Frontend, session};
use crate::config::Persistence;

/// The backend and server name logged and counted when there is none.
static NONE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("-"));

/// What the policy needs to know of a request besides its fields.
pub struct RequestLine<'a> {
    /// The method.
    pub method: &'a [u8],
    /// The target's path and query (origin form).
    pub target: &'a str,
    /// The target's authority (absolute form, or HTTP/2's `:authority`).
    pub authority: Option<&'a str>,
    /// The protocol version.
    pub version: http::Version,
    /// The request has no body, so it can be sent again to another server.
    pub bodiless: bool,
}

impl RequestLine<'_> {
    /// The target's path, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }
}

/// Where a routed request goes.
pub enum Route {
    /// To the plan's server.
    Server,
    /// Nowhere: the client is sent to this `https://` location (308).
    Redirect(String),
}

/// The fields the proxy adds to a server's response: its insert cookie, and a
/// `Cache-Control` directive that keeps shared caches from storing that cookie.
#[derive(Debug, Default)]
pub struct Added {
    /// The `Set-Cookie` value.
    pub set_cookie: Option<String>,
    /// A `Cache-Control` value.
    pub cache_control: Option<&'static str>,
}

impl Added {
    /// Each added field as (name, value).
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let cookie = self.set_cookie.as_deref().map(|v| ("set-cookie", v));
        let cache = self.cache_control.map(|v| ("cache-control", v));
        cookie.into_iter().chain(cache)
    }
}

/// What the access log needs from a request, copied only when the log is on.
struct Access {
    method: String,
    host: String,
    path: String,
}

/// One request from its head to its last response byte.
pub struct Exchange<'p> {
    dp: &'p DataPlane,
    fe: &'p Frontend,
    peer: SocketAddr,
    tls: bool,
    cookies: &'p VerifiedCookie,
    start: Instant,
    access: Option<Access>,
    pool: Option<Arc<Pool>>,
    plan: Option<Plan>,
    replayable: bool,
    delete: bool,
    redispatched: bool,
    accounted: bool,
    bytes: (u64, u64),
}

impl<'p> Exchange<'p> {
    /// A request head arrived from `peer` on frontend `fe`; `cookies` is the client
    /// connection's memory of the insert cookie it showed valid.
    pub fn new(
        dp: &'p DataPlane,
        fe: &'p Frontend,
        (peer, tls): (SocketAddr, bool),
        cookies: &'p VerifiedCookie,
        line: &RequestLine,
        fields: &impl Fields,
    ) -> Self {
        let logging = tracing::enabled!(target: "holdfast::access", tracing::Level::DEBUG);
        let access = logging.then(|| Access {
            method: String::from_utf8_lossy(line.method).into_owned(),
            host: request_host(fields, line.authority)
                .unwrap_or("")
                .to_string(),
            path: line.path().to_string(),
        });
        Exchange {
            dp,
            fe,
            peer,
            tls,
            cookies,
            start: Instant::now(),
            access,
            pool: None,
            plan: None,
            replayable: line.bodiless && is_idempotent(line.method),
            delete: line.method == b"DELETE",
            redispatched: false,
            accounted: false,
            bytes: (0, 0),
        }
    }

    /// Routes the request and plans its server; a refusal is accounted already.
    pub async fn route(
        &mut self,
        fields: &impl Fields,
        line: &RequestLine<'_>,
    ) -> Result<Route, Refusal> {
        let target = Target {
            method: line.method,
            path: line.target,
            authority: line.authority,
            version: line.version,
        };
        if let Err(refusal) = target::check(&target, fields) {
            return Err(self.fail(refusal));
        }
        let host = request_host(fields, line.authority);
        if self.fe.redirect_https {
            return Ok(Route::Redirect(redirect_location(host, line)));
        }
        let Some(pool) = self.fe.router.route(host, line.path()).cloned() else {
            return Err(self.fail(Refusal::NoRoute));
        };
        let client = client_ip(self.peer.ip(), fields, &pool.config.trusted_proxies);
        let key = match pool.config.persistence {
            Persistence::Insert | Persistence::Learn => session::in_request(&pool.config, fields),
            _ => None,
        };
        let planned = persist::plan(self.dp, &pool, key, client, self.cookies).await;
        self.pool = Some(pool);
        self.plan = Some(planned.map_err(|r| self.fail(r))?);
        Ok(Route::Server)
    }

    /// The data plane the exchange runs in.
    pub fn plane(&self) -> &'p DataPlane {
        self.dp
    }

    /// The server the request goes to now.
    ///
    /// # Panics
    /// Only if called before a successful [`Exchange::route`] to a server, which no
    /// engine does: they send only after `Route::Server`.
    pub fn server(&self) -> &Arc<Server> {
        &self.routed().1.server
    }

    fn routed(&self) -> (&Arc<Pool>, &Plan) {
        match (&self.pool, &self.plan) {
            (Some(pool), Some(plan)) => (pool, plan),
            _ => panic!("an exchange is sent only after it is routed to a server"),
        }
    }

    /// True when the request can be sent again (idempotent, no body).
    pub fn replayable(&self) -> bool {
        self.replayable
    }

    /// Insert mode: holdfast's cookie name, never shown to the server.
    pub fn own_cookie(&self) -> Option<&str> {
        let pool = &self.routed().0;
        (pool.config.persistence == Persistence::Insert).then(|| pool.config.cookie_name())
    }

    /// True when the peer is one of the backend's trusted proxies.
    pub fn peer_trusted(&self) -> bool {
        trusted(self.peer.ip(), &self.routed().0.config.trusted_proxies)
    }

    /// The request is being sent to the server: in flight and open until dropped.
    pub fn activate(&self) -> Active {
        let (pool, plan) = self.routed();
        persist::open(self.dp, pool, plan)
    }

    /// Connecting to the server failed: `Ok` when the request moved to another server
    /// (once, and only a replayable one), the refusal otherwise.
    pub fn connect_failed(&mut self, error: &dyn std::fmt::Display) -> Result<(), Refusal> {
        let metrics = &self.dp.lasting.metrics;
        metrics.error(ErrorKind::Connect);
        let (pool, plan) = self.routed();
        tracing::warn!(backend = %pool.name, server = %plan.server.name, %error, "connect to server failed");
        if self.replayable
            && !self.redispatched
            && let Some(next) = persist::retry(self.dp, pool, plan.clone())
        {
            metrics.error(ErrorKind::Redispatch);
            self.plan = Some(next);
            self.redispatched = true;
            return Ok(());
        }
        Err(self.fail(Refusal::Unreachable))
    }

    /// The server failed the exchange (`why` for the log): the refusal, accounted.
    pub fn server_failed(&mut self, refusal: Refusal, why: &dyn std::fmt::Display) -> Refusal {
        if let (Some(pool), Some(plan)) = (&self.pool, &self.plan) {
            tracing::debug!(backend = %pool.name, server = %plan.server.name, %why, "server exchange failed");
        }
        self.fail(refusal)
    }

    /// The server answered with `status` and `fields`: what the table learns (binds,
    /// touches, session ends). Returns the fields the proxy adds to the response.
    pub fn answered(&mut self, fields: &impl Fields, status: u16, active: &Active) -> Added {
        let (pool, plan) = self.routed();
        let learned = session::in_response(&pool.config, fields);
        let ended = session::ended(&pool.config, self.delete, status, fields);
        let set_cookie = persist::record(self.dp, pool, plan, learned, ended, self.tls);
        active.learned(learned);
        Added {
            cache_control: set_cookie.as_ref().and_then(|_| cache_guard(fields)),
            set_cookie,
        }
    }

    /// Adds bytes received from the client (`from`) and sent to it (`to`).
    pub fn add_bytes(&mut self, from: u64, to: u64) {
        self.bytes.0 += from;
        self.bytes.1 += to;
    }

    /// Counts `refusal` and accounts the request with its status; returns it to render.
    pub fn fail(&mut self, refusal: Refusal) -> Refusal {
        refusal.count(&self.dp.lasting.metrics);
        self.finish(refusal.status().as_u16());
        refusal
    }

    /// The response went out with `status` (its body sent, or handed to hyper): counts
    /// the request and writes its access-log line, once.
    pub fn finish(&mut self, status: u16) {
        if std::mem::replace(&mut self.accounted, true) {
            return;
        }
        let backend = self.pool.as_ref().map_or(&*NONE, |p| &p.name);
        let server = self.plan.as_ref().map_or(&*NONE, |p| &p.server.name);
        let elapsed = self.start.elapsed();
        let metrics = &self.dp.lasting.metrics;
        match &self.plan {
            Some(p) => {
                let meters = p
                    .server
                    .meters
                    .get_or_init(|| metrics.meters(backend, server));
                metrics.request_to(meters, status, elapsed.as_secs_f64(), self.bytes);
            }
            None => metrics.request(backend, server, status, elapsed.as_secs_f64(), self.bytes),
        }
        if let Some(a) = &self.access {
            tracing::debug!(
                target: "holdfast::access",
                frontend = %self.fe.name,
                client = %self.peer,
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
}

/// `https://<host><path and query>` for a frontend that redirects every request.
fn redirect_location(host: Option<&str>, line: &RequestLine) -> String {
    format!(
        "https://{}{}",
        host.map(host_name).unwrap_or_default(),
        line.target
    )
}

/// True for the methods a request may be replayed with (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
    )
}
