//! The streamed engine: one request as hyper hands it over (HTTP/2, HTTP/1.0, upgrades,
//! `Expect`, chunked or large bodies), sent over hyper's pooled client with bodies
//! streamed both ways, WebSocket/Upgrade tunnels spliced. Every decision is the
//! exchange's (`exchange.rs`); this module moves the request and the response.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, HeaderValue, LOCATION, TRANSFER_ENCODING};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body as HttpBody, Incoming};
use hyper_util::rt::TokioIo;

use super::body::{
    Body, BodyError, BodyFault, Guarded, StallAfterAnswer, Watched, empty, incoming, read_ahead,
};
use super::conn::{Busy, ConnState};
use super::cookie::{VerifiedCookie, one_cookie_field};
use super::exchange::{Added, Exchange, RequestLine, Route};
use super::framing;
use super::h1::leg::ClientSide;
use super::headers::{Forwarded, is_upgrade, remove_hop_by_hop, request_host};
use super::pool::Server;
use super::refusal::Refusal;
use super::tunnel;
use super::{DataPlane, Frontend, h1};

/// What the handler knows about the client connection.
pub struct Client {
    /// Peer address.
    pub peer: SocketAddr,
    /// The peer's address as text (the `X-Forwarded-For` value added).
    pub peer_text: String,
    /// True on a TLS listener.
    pub tls: bool,
    /// Shared with the connection's timeouts.
    pub conn: Arc<ConnState>,
    /// The insert cookie the connection's requests showed valid.
    pub cookies: VerifiedCookie,
}

impl Client {
    /// The client at `peer`, on a TLS listener or not, its connection's `state`.
    pub fn new(peer: SocketAddr, tls: bool, state: Arc<ConnState>) -> Arc<Client> {
        Arc::new(Client {
            peer,
            peer_text: peer.ip().to_string(),
            tls,
            conn: state,
            cookies: Default::default(),
        })
    }
}

/// Handles one client request; never fails (refusals become responses).
pub async fn handle(
    dp: Arc<DataPlane>,
    fe: Arc<Frontend>,
    client: Arc<Client>,
    req: Request<Body>,
) -> Response<Body> {
    let busy = client.conn.begin();
    // An authority-form target (`evil.com`) has no path: no valid form but CONNECT's.
    let target = match (req.uri().path_and_query(), req.uri().scheme()) {
        (Some(p), _) => p.as_str(),
        (None, Some(_)) => "/",
        (None, None) => "",
    };
    let line = RequestLine {
        method: req.method().as_str().as_bytes(),
        target,
        authority: target_authority(req.uri(), req.version()),
        version: req.version(),
        bodiless: req.body().is_end_stream(),
    };
    let (peer, cookies) = ((client.peer, client.tls), &client.cookies);
    let mut ex = Exchange::new(&dp, &fe, peer, cookies, &line, req.headers());
    let http10 = req.version() == Version::HTTP_10;
    if let Err(refusal) = framing::request(req.headers(), http10) {
        return ex.fail(refusal).response();
    }
    match ex.route(req.headers(), &line).await {
        Ok(Route::Server) => {}
        Ok(Route::Redirect(location)) => {
            ex.finish(308);
            return redirect(&location);
        }
        Err(refusal) => return refusal.response(),
    }
    // Bodies of known length: hyper frames them itself.
    let from = req.body().size_hint().exact().unwrap_or(0);
    match forward(&mut ex, &client, req, busy).await {
        Ok(resp) => {
            ex.add_bytes(from, resp.body().size_hint().exact().unwrap_or(0));
            ex.finish(resp.status().as_u16());
            resp
        }
        Err(refusal) => refusal.response(),
    }
}

/// The request rewritten for the server: HTTP/1.1, the hop rule applied, holdfast's
/// cookie stripped, `X-Forwarded-*` set, `Host` from the request's host.
fn rewrite(
    ex: &Exchange<'_>,
    client: &Client,
    req: Request<Body>,
    upgrade: bool,
) -> (http::request::Parts, Body) {
    let (mut parts, body) = req.into_parts();
    let authority = target_authority(&parts.uri, parts.version);
    let host = request_host(&parts.headers, authority).map(str::to_string);
    let forwarded = Forwarded::of(
        &parts.headers,
        &client.peer_text,
        ex.peer_trusted(),
        client.tls,
        host.as_deref().map(str::as_bytes),
    )
    .header_values();
    let headers = &mut parts.headers;
    for (name, value) in forwarded {
        match value {
            Some(v) => headers.insert(name, v),
            None => headers.remove(name),
        };
    }
    remove_hop_by_hop(headers, upgrade);
    // One `Content-Length`, one value, however the client repeated it (RFC 9110 §8.6).
    if let Some(n) = framing::declared_length(&*headers) {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
    }
    one_cookie_field(headers, ex.own_cookie());
    // A body of unknown length (HTTP/2 without `content-length`, HTTP/1.1 chunked) goes
    // chunked whatever the method: hyper's client sends a `GET`'s as no body at all.
    if !body.is_end_stream() && body.size_hint().exact().is_none() {
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    }
    if let Some(h) = host.as_deref()
        && !single_value_is(headers, HOST, h)
        && let Ok(h) = HeaderValue::from_str(h)
    {
        headers.insert(HOST, h);
    }
    parts.version = Version::HTTP_11;
    (parts, body)
}

/// Sends the request (a bodiless one over the fast path's server leg, others over
/// hyper's client) and passes the response back, or splices the upgraded connections.
async fn forward(
    ex: &mut Exchange<'_>,
    client: &Client,
    mut req: Request<Body>,
    busy: Busy,
) -> Result<Response<Body>, Refusal> {
    let upgrade = is_upgrade(req.headers()) && req.version() == Version::HTTP_11;
    if req.body().is_end_stream() && !upgrade {
        // Written for the server straight from the client's fields.
        let (parts, _) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let side = ClientSide {
            peer: &client.peer_text,
            tls: client.tls,
            authority: target_authority(&parts.uri, parts.version),
        };
        let (resp, active) = h1::leg::send(ex, &parts, path, side).await?;
        return Ok(relay(ex, resp, active, busy, Arc::default()));
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let chunked = req.headers().contains_key(TRANSFER_ENCODING);
    let (parts, body) = rewrite(ex, client, req, upgrade);
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    // Boxed: the rarer path's state stays out of every request's future.
    let sent = Box::pin(forward_streaming(ex, parts, body, &path, chunked)).await?;
    let (mut resp, active, fault) = sent;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let added = ex.answered(resp.headers(), 101, &active);
        let server_upgrade = hyper::upgrade::on(&mut resp);
        let grace = ex.plane().timeouts.client;
        tokio::spawn(async move {
            let _hold = (busy, active);
            if let (Ok(a), Ok(b)) = (client_upgrade.await, server_upgrade.await) {
                tunnel::splice(TokioIo::new(a), TokioIo::new(b), grace).await;
            }
        });
        let (parts, _) = resp.into_parts();
        return Ok(with_added(Response::from_parts(parts, empty()), &added));
    }
    remove_hop_by_hop(resp.headers_mut(), false);
    Ok(relay(ex, resp.map(incoming), active, busy, fault))
}

/// Sends a request with a body, or an upgrade, over hyper's client, the body watched
/// for a client that breaks or stalls it (once more to another server after a connect
/// failure when the exchange allows).
async fn forward_streaming(
    ex: &mut Exchange<'_>,
    parts: http::request::Parts,
    body: Body,
    path: &PathAndQuery,
    chunked: bool,
) -> Result<(Response<Incoming>, super::persist::Active, Arc<BodyFault>), Refusal> {
    let timeouts = &ex.plane().timeouts;
    let (mut body, fault) = Watched::wrap(body, timeouts.client);
    if chunked {
        // A chunked body broken from its first size line is refused before anything
        // goes out: the server may answer a GET without reading its body at all.
        body = read_ahead(body, timeouts.client_header)
            .await
            .map_err(|()| ex.fail(Refusal::BadRequest("malformed request body")))?;
    }
    let (resp, active) = send(ex, parts, body, path, &fault).await?;
    Ok((resp, active, fault))
}

/// The server's response (its hop-by-hop fields removed) as the client gets it: what
/// the table learns from it taken, the proxy's fields added, the request's guards held
/// until its body is sent.
fn relay<B>(
    ex: &mut Exchange<'_>,
    resp: Response<B>,
    active: super::persist::Active,
    busy: Busy,
    fault: Arc<BodyFault>,
) -> Response<Body>
where
    B: HttpBody<Data = Bytes, Error = BodyError> + Send + Sync + Unpin + 'static,
{
    let added = ex.answered(resp.headers(), resp.status().as_u16(), &active);
    let (parts, body) = resp.into_parts();
    let stall = StallAfterAnswer {
        fault,
        metrics: ex.plane().lasting.metrics.clone(),
    };
    let body = Guarded::wrap(body, (active, busy, stall));
    with_added(Response::from_parts(parts, body), &added)
}

/// One send of the request, and a second on another server after a connect failure of
/// a replayable (bodiless) request; `fault` tells a client's broken or stalled body from
/// a server's failure.
async fn send(
    ex: &mut Exchange<'_>,
    parts: http::request::Parts,
    body: Body,
    path: &PathAndQuery,
    fault: &BodyFault,
) -> Result<(Response<Incoming>, super::persist::Active), Refusal> {
    let dp: &DataPlane = ex.plane();
    let (mut parts, mut body) = (Some(parts), Some(body));
    loop {
        let Ok(uri) = server_uri(ex.server(), path) else {
            return Err(ex.fail(Refusal::BadServerAddress));
        };
        // Only a replayable (bodiless) request is sent twice: its body is empty either time.
        let this = match ex.replayable() {
            true => parts.clone(),
            false => parts.take(),
        };
        let Some(this) = this else {
            return Err(ex.fail(Refusal::BadGateway));
        };
        let mut out = Request::from_parts(this, body.take().unwrap_or_else(empty));
        *out.uri_mut() = uri;
        let active = ex.activate();
        let sent = tokio::time::timeout(dp.timeouts.server, dp.lasting.client.request(out));
        match sent.await {
            // The client's body broke (a malformed chunk) or stalled: its error,
            // whatever the server made of the part it got (RFC 9112 §7.1).
            _ if let Some(refusal) = fault.refusal() => return Err(ex.fail(refusal)),
            Ok(Ok(resp)) => return Ok((resp, active)),
            Ok(Err(e)) if e.is_connect() => ex.connect_failed(&e)?,
            Ok(Err(e)) => return Err(ex.server_failed(Refusal::BadGateway, &e)),
            Err(_) => return Err(ex.server_failed(Refusal::ServerTimeout, &"timeout")),
        }
    }
}

/// The authority of an absolute-form target (it has a scheme) or HTTP/2's `:authority`;
/// hyper also reads an authority into targets that have none (`evil.com`), and that one
/// does not count.
fn target_authority(uri: &Uri, version: Version) -> Option<&str> {
    let absolute = uri.scheme().is_some() || version == Version::HTTP_2;
    uri.authority().filter(|_| absolute).map(|a| a.as_str())
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

/// `resp` with the fields the proxy adds.
fn with_added(mut resp: Response<Body>, added: &Added) -> Response<Body> {
    for (name, value) in added.fields() {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut().append(name, v);
        }
    }
    resp
}

/// A 308 to `location`.
fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}
