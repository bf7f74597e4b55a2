//! Persistence: which server a request goes to (a valid insert cookie, a learned session
//! cookie or the client address bound in the read view, else the balancer), and what the
//! table learns from the exchange (binds and touches, queued, never waited for).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use holdfast_table::model::{Bind, SessionEnd, Touch};

use super::DataPlane;
use super::cookie::{CookieSigner, Signed, VerifiedCookie, set_cookie};
use super::pool::{InFlight, Pool, Server, Usable};
use super::refusal::Refusal;
use crate::cluster::{Open, OpenGuard, now_ms};
use crate::config::{OnLost, Persistence};

/// Where a request goes and what to record once the server answered.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The server chosen.
    pub server: Arc<Server>,
    /// Table key of the binding the request matched (touched on answer).
    pub matched: Option<Vec<u8>>,
    /// Insert mode: a new session id, set as cookie on answer. Nothing is stored for it:
    /// its server is promised, and the binding is made when the client comes back.
    pub new_session: Option<String>,
    /// Persistence key of a new client to bind on answer (source mode).
    pub bind_key: Option<Vec<u8>>,
    /// Learn mode: the session cookie the client sent.
    pub sent_key: Option<Vec<u8>>,
    /// The request was routed by a local re-dispatch of a binding (not touched).
    pub redispatched: bool,
    /// With `bind_key`: the unusable server the key was bound to; the bind moves it.
    pub replaces: Option<Arc<str>>,
    /// Insert mode: the client's cookie is due for a refresh of its signed time.
    pub reissue: bool,
}

impl Plan {
    fn new(server: Arc<Server>) -> Plan {
        Plan {
            server,
            matched: None,
            new_session: None,
            bind_key: None,
            sent_key: None,
            redispatched: false,
            replaces: None,
            reissue: false,
        }
    }
}

/// A request to `plan.server` from dispatch until its response is finished or its tunnel
/// closed: in flight for least-connections, open for the release (DESIGN.md: open means
/// active; its binding is touched, or its server promised, with every flush).
pub struct Active {
    _inflight: InFlight,
    open: OpenGuard,
}

impl Active {
    /// The response named the session (learn mode): the exchange belongs to its binding.
    pub fn learned(&self, key: Option<&str>) {
        if let Some(key) = key {
            self.open.set_key(key.as_bytes());
        }
    }
}

/// Starts counting an exchange with `plan.server` as in flight and open.
pub fn open(dp: &DataPlane, pool: &Pool, plan: &Plan) -> Active {
    let key = plan
        .matched
        .clone()
        .or_else(|| plan.bind_key.clone())
        .or_else(|| plan.sent_key.clone());
    // Without persistence nothing comes back to the server after the exchange: it holds
    // the server only while open. A new insert session holds it for as long as its cookie
    // is honoured without a binding (DESIGN.md, Promises).
    let hold = match pool.config.persistence {
        Persistence::None => 0,
        Persistence::Insert if plan.new_session.is_some() => cookie_window_ms(pool),
        _ => pool.ttl,
    };
    let open = Open {
        backend: pool.name.clone(),
        server: plan.server.name.clone(),
        key,
        ttl: pool.ttl,
        hold,
    };
    Active {
        _inflight: plan.server.start(),
        open: dp.lasting.table.open.open(open),
    }
}

/// How long a learn-mode session cookie found nowhere is not waited for again: a client
/// holding a stale cookie would otherwise wait `learn_wait` on every request.
const MISS_MEMORY: Duration = Duration::from_secs(2);

/// A bound client whose server is gone: counted as a session break, then balanced
/// elsewhere or rejected, as the backend says (`on_lost`).
fn lost(dp: &DataPlane, pool: &Pool) -> Result<(), Refusal> {
    dp.lasting.metrics.session_break(&pool.name);
    match pool.config.on_lost {
        OnLost::Rebalance => Ok(()),
        OnLost::Reject => Err(Refusal::SessionLost(
            http::StatusCode::from_u16(pool.config.lost_status)
                .unwrap_or(http::StatusCode::NOT_FOUND),
        )),
    }
}

/// Chooses the server for a request to `pool`, from the session key in the request
/// (insert and learn modes) and the client's address (source mode).
pub async fn plan(
    dp: &DataPlane,
    pool: &Pool,
    cookie: Option<&str>,
    client: IpAddr,
    cookies: &VerifiedCookie,
) -> Result<Plan, Refusal> {
    let states = dp.lasting.table.view.states();
    let fresh = || {
        pool.pick(&states, None)
            .map(Plan::new)
            .ok_or(Refusal::NoServer)
    };
    match (pool.config.persistence, cookie) {
        (Persistence::None, _) | (Persistence::Learn, None) => fresh(),
        (Persistence::Insert, _) => {
            let signed = cookie.and_then(|v| cookies.verify(&dp.signer, &pool.name, v));
            if let Some(s) = &signed
                && let Some(plan) = honour_cookie(dp, pool, s, &states)?
            {
                return Ok(plan);
            }
            let legacy = cookie.filter(|_| signed.is_none());
            let mut plan = match legacy.and_then(|v| legacy_server(pool, v, &states)) {
                Some(server) => Plan::new(server),
                None => fresh()?,
            };
            plan.new_session = Some(CookieSigner::new_id());
            Ok(plan)
        }
        (Persistence::Learn, Some(key)) => {
            let key = key.as_bytes().to_vec();
            let mut plan = match bound_server(dp, pool, &key, true).await {
                None => fresh()?,
                Some(name) => plan_bound(dp, pool, &key, &name, &states)?,
            };
            plan.sent_key = Some(key);
            Ok(plan)
        }
        (Persistence::Source, _) => {
            let key = client.to_string().into_bytes();
            match bound_server(dp, pool, &key, false).await {
                Some(name) => plan_bound(dp, pool, &key, &name, &states),
                None => {
                    // The same choice on every node, so a new client's next request finds
                    // its server even before its bind is visible there.
                    let server = pool.pick_by_key(&states, &key).ok_or(Refusal::NoServer)?;
                    let mut plan = Plan::new(server);
                    plan.bind_key = Some(key);
                    Ok(plan)
                }
            }
        }
    }
}

/// The usable server whose HAProxy cookie value (`server … cookie SRV1`) a client
/// still carries after a switch from HAProxy: its session keeps its server, and the
/// answer gives it holdfast's signed cookie in place of HAProxy's.
fn legacy_server(
    pool: &Pool,
    value: &str,
    states: &holdfast_table::view::ServerStates,
) -> Option<Arc<Server>> {
    pool.servers
        .iter()
        .find(|s| s.legacy_cookie.as_deref() == Some(value))
        .filter(|s| pool.usable(states, s) != Usable::No)
        .cloned()
}

/// Where `key` is bound: in the read view, else among this node's own binds not applied
/// yet (in flight, or no quorum), else — a learned session cookie only — on the leader,
/// where another node may have bound it a moment ago (waited for at most `learn_wait`,
/// and not again for a key looked for in vain just now).
async fn bound_server(dp: &DataPlane, pool: &Pool, key: &[u8], ask: bool) -> Option<Arc<str>> {
    let node = &dp.lasting;
    if let Some(b) = node.table.view.lookup(&pool.name, key) {
        return Some(b.server);
    }
    if let Some(name) = node.overrides.get(&pool.name, key) {
        return Some(name);
    }
    if !ask || node.misses.get(&pool.name, key).is_some() {
        return None;
    }
    let wait = pool.config.learn_wait;
    let found = node.table.leader.lookup(&pool.name, key, wait).await;
    if found.is_none() {
        node.misses.set(&pool.name, key, (), MISS_MEMORY);
    }
    found.map(|s| Arc::from(s.as_str()))
}

/// A client bound to server `name`: there while it is usable, else moved.
fn plan_bound(
    dp: &DataPlane,
    pool: &Pool,
    key: &[u8],
    name: &Arc<str>,
    states: &holdfast_table::view::ServerStates,
) -> Result<Plan, Refusal> {
    match pool
        .server(name)
        .filter(|s| pool.usable(states, s) != Usable::No)
    {
        Some(server) => {
            let mut plan = Plan::new(server.clone());
            plan.matched = Some(key.to_vec());
            Ok(plan)
        }
        None => redispatch(dp, pool, key, name, None, states),
    }
}

/// An insert cookie is honoured while its binding lives, or, with no binding (not
/// applied here yet, or lost), while its signed time is within ttl plus the refresh slack
/// (ttl/4). Past both it is a new client (not a break: its session ended), so an old
/// cookie never keeps a drain open. The cookie is re-issued at most every ttl/4
/// (HAProxy's `maxidle`). A live session whose server is unusable is a counted break.
fn honour_cookie(
    dp: &DataPlane,
    pool: &Pool,
    signed: &Signed,
    states: &holdfast_table::view::ServerStates,
) -> Result<Option<Plan>, Refusal> {
    let view = &dp.lasting.table.view;
    let id = signed.id.as_bytes();
    let bound =
        view.lookup(&pool.name, id).is_some() || dp.lasting.overrides.get(&pool.name, id).is_some();
    let ttl = pool.ttl / 1000;
    let age = (now_ms() / 1000).saturating_sub(signed.at);
    let live = bound || age <= cookie_window_ms(pool) / 1000;
    let server = pool.server(signed.server);
    let usable = server.map_or(Usable::No, |s| pool.usable(states, s));
    let Some(server) = server.filter(|_| live && usable != Usable::No) else {
        if live {
            lost(dp, pool)?;
        }
        return Ok(None);
    };
    let mut plan = Plan::new(server.clone());
    plan.matched = Some(id.to_vec());
    // A live session's cookie is refreshed even when its binding is not in the view (its
    // first return, or evicted from a full table): its request touches the binding back,
    // so the drain waits for it, and the client keeps its server (DESIGN.md, a bounded
    // table). A cookie past its window is never honoured, so never refreshed.
    plan.reissue = pool.maxlife.is_none() && age >= (ttl / 4).max(1);
    Ok(Some(plan))
}

/// How long an insert cookie is honoured without a binding: ttl plus the refresh slack
/// (ttl/4). With `maxlife` the cookie keeps its first time (no refresh), so within the
/// session's first ttl and its maxlife. A new session's server is promised this long.
fn cookie_window_ms(pool: &Pool) -> u64 {
    let window = pool.ttl + pool.ttl / 4;
    pool.maxlife.map_or(window, |m| window.min(m))
}

/// Routes a bound client whose server (`from`) is unusable: to the server this node
/// already moved it to, else to a newly balanced one (a counted session break) with a bind
/// that moves the binding in the table, so every node follows the move.
fn redispatch(
    dp: &DataPlane,
    pool: &Pool,
    key: &[u8],
    from: &Arc<str>,
    exclude: Option<&str>,
    states: &holdfast_table::view::ServerStates,
) -> Result<Plan, Refusal> {
    let moved = dp
        .lasting
        .overrides
        .get(&pool.name, key)
        .and_then(|n| pool.server(&n).cloned())
        .filter(|s| pool.usable(states, s) != Usable::No && exclude.is_none_or(|e| e != &*s.name));
    let mut rebind = None;
    let server = match moved {
        Some(s) => s,
        None => {
            lost(dp, pool)?;
            let s = pool.pick(states, exclude).ok_or(Refusal::NoServer)?;
            dp.lasting.overrides.set(
                &pool.name,
                key,
                s.name.clone(),
                Duration::from_millis(pool.ttl),
            );
            rebind = Some(from.clone());
            s
        }
    };
    let mut plan = Plan::new(server);
    plan.redispatched = true;
    if rebind.is_some() {
        plan.bind_key = Some(key.to_vec());
        plan.replaces = rebind;
    }
    Ok(plan)
}

/// After a connect failure to `plan.server`: the same request re-planned on another
/// server (a bound client counts a session break). `None` if there is no other server.
pub fn retry(dp: &DataPlane, pool: &Pool, plan: Plan) -> Option<Plan> {
    let states = dp.lasting.table.view.states();
    let failed = plan.server.name.clone();
    let sent_key = plan.sent_key.clone();
    let mut next = match (pool.config.persistence, &plan.matched) {
        (Persistence::Insert, Some(_)) | (Persistence::Insert, None) => {
            if plan.matched.is_some() {
                dp.lasting.metrics.session_break(&pool.name);
            }
            let mut p = Plan::new(pool.pick(&states, Some(&failed))?);
            p.new_session = Some(CookieSigner::new_id());
            p
        }
        (Persistence::Learn | Persistence::Source, Some(key)) => {
            redispatch(dp, pool, key, &failed, Some(&failed), &states).ok()?
        }
        _ => {
            let mut p = Plan::new(pool.pick(&states, Some(&failed))?);
            p.bind_key = plan.bind_key;
            p
        }
    };
    next.sent_key = sent_key;
    Some(next)
}

/// Records what the answered exchange taught: touches of the matched binding, binds of
/// new clients and, in learn mode, the session key the server set (`learned`) or the end
/// of the session (`ended`). Returns the insert cookie to set, if any.
pub fn record(
    dp: &DataPlane,
    pool: &Pool,
    plan: &Plan,
    learned: Option<&str>,
    ended: bool,
    tls: bool,
) -> Option<String> {
    let queue = &dp.lasting.table.queue;
    if let Some(key) = &plan.matched {
        queue.touch(Touch {
            backend: pool.name.to_string(),
            key: key.clone(),
            server: plan.server.name.to_string(),
            ttl: pool.ttl,
            maxlife: pool.maxlife,
        });
    }
    if let Some(key) = &plan.bind_key {
        bind(dp, pool, key, plan, plan.replaces.as_deref());
    }
    match pool.config.persistence {
        Persistence::Insert => record_insert(dp, pool, plan, tls),
        Persistence::Learn if ended => {
            let key = plan.sent_key.as_ref().or(plan.matched.as_ref())?;
            queue.end(SessionEnd {
                backend: pool.name.to_string(),
                key: key.clone(),
            });
            None
        }
        Persistence::Learn => {
            let key: &[u8] = match learned {
                Some(l) => l.as_bytes(),
                // The backend set no cookie, but the client sent one the table does not
                // know (its binding expired, or it never was bound): store it on the
                // request, like HAProxy's `stick on req.cook()`.
                None if plan.matched.is_none() && plan.bind_key.is_none() => {
                    plan.sent_key.as_deref()?
                }
                None => return None,
            };
            if plan.matched.as_deref() != Some(key) {
                bind(dp, pool, key, plan, None);
            }
            None
        }
        _ => None,
    }
}

/// Insert mode: signs a new session's cookie (first contact stores nothing: the open
/// exchange promises its server, and the client's return with the cookie makes the
/// binding, as a touch), or signs the matched session's cookie again when it is due for
/// a refresh.
fn record_insert(dp: &DataPlane, pool: &Pool, plan: &Plan, tls: bool) -> Option<String> {
    let id = match (&plan.new_session, &plan.matched) {
        (Some(id), _) => id.clone(),
        (None, Some(id)) if plan.reissue => String::from_utf8(id.clone()).ok()?,
        _ => return None,
    };
    let value = dp
        .signer
        .sign(&pool.name, &plan.server.name, &id, now_ms() / 1000);
    Some(set_cookie(
        pool.config.cookie_name(),
        &value,
        tls,
        pool.config.same_site,
    ))
}

/// Binds `key` to the plan's server (moving it from `replaces`), remembered here until
/// the bind is applied.
fn bind(dp: &DataPlane, pool: &Pool, key: &[u8], plan: &Plan, replaces: Option<&str>) {
    remember(dp, pool, key, plan);
    dp.lasting.table.queue.bind(Bind {
        backend: pool.name.to_string(),
        key: key.to_vec(),
        server: plan.server.name.to_string(),
        ttl: pool.ttl,
        replaces: replaces.map(str::to_string),
        maxlife: pool.maxlife,
    });
}

/// Keeps this node's new binding of `key` to the plan's server until it is applied here.
fn remember(dp: &DataPlane, pool: &Pool, key: &[u8], plan: &Plan) {
    dp.lasting.overrides.set(
        &pool.name,
        key,
        plan.server.name.clone(),
        Duration::from_millis(pool.ttl),
    );
}

#[cfg(test)]
#[path = "persist_tests.rs"]
mod tests;
