//! The fast path's writer of heads: the header rules (`headers.rs`) applied while a head
//! is copied, in one pass, into the output buffer, holdfast's own cookie stripped on the
//! way out and the insert cookie added on the way back.

use super::head::Head;
use crate::http::cookie::join_cookies;
use crate::http::exchange::Added;
use crate::http::fields::{Fields, Kind};
use crate::http::framing::declared_length;
use crate::http::headers::{Forwarded, Hop};

/// What the request head's rewrite needs to know about the hop.
#[derive(Clone, Copy)]
pub struct RequestHop<'a> {
    /// The client peer's address as text (the `X-Forwarded-For` value added).
    pub peer: &'a str,
    /// The peer is a trusted proxy: its `X-Forwarded-*` are kept and appended to.
    pub trusted: bool,
    /// The client connection is TLS.
    pub tls: bool,
    /// Insert mode: holdfast's cookie, never shown to the server.
    pub own_cookie: Option<&'a str>,
    /// The `Host` sent in place of the request's own: an absolute-form target's or
    /// HTTP/2's authority (RFC 9112 §3.2.2). `None` keeps the request's `Host`.
    pub host: Option<&'a [u8]>,
    /// The `Host` sent when the request names none (HTTP/1.0): the server's address. It
    /// is not the client's host, so no `X-Forwarded-Host` says it.
    pub fallback_host: Option<&'a [u8]>,
}

/// Writes one header field line.
pub(super) fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// One `Cookie` line from every `Cookie` field of the request, without holdfast's own
/// cookie `own`; none when nothing remains.
fn cookie_line<'f>(out: &mut Vec<u8>, values: impl Iterator<Item = &'f [u8]>, own: Option<&str>) {
    let start = out.len();
    out.extend_from_slice(b"cookie: ");
    match join_cookies(out, values, own) {
        true => out.extend_from_slice(b"\r\n"),
        false => out.truncate(start),
    }
}

/// Writes the request head for the server: HTTP/1.1, `Host`, the fields the hop rule
/// keeps, one `Cookie` line, the framing fields once, and the `X-Forwarded-*` values
/// last. Both engines write every request head they send themselves with it.
pub fn write_request(
    out: &mut Vec<u8>,
    method: &[u8],
    target: &[u8],
    fields: &impl Fields,
    hop: &RequestHop,
) {
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    match (hop.host, hop.fallback_host) {
        (Some(host), _) => field(out, b"host", host),
        (None, Some(host)) if !fields.has(Kind::Host) => field(out, b"host", host),
        _ => {}
    }
    let rule = Hop::of(fields, false);
    // One `Content-Length`, one value, however the client repeated it (RFC 9110 §8.6).
    let mut length = declared_length(fields);
    // The request's framing was checked (`framing::request`): a transfer coding is
    // `chunked`, once, and the body passes as the client chunked it.
    let mut chunked = fields.has(Kind::TransferEncoding);
    if length.is_none() && !chunked && expects_content(method) {
        // No body: said so, for a method that defines one (RFC 9110 §8.6).
        field(out, b"content-length", b"0");
    }
    let mut cookies = true;
    for (kind, name, value) in fields.each() {
        match kind {
            Kind::ContentLength => {
                if let Some(n) = length.take() {
                    field(out, b"content-length", n.to_string().as_bytes());
                }
            }
            Kind::TransferEncoding => {
                if std::mem::take(&mut chunked) {
                    field(out, b"transfer-encoding", b"chunked");
                }
            }
            Kind::ForwardedFor | Kind::ForwardedProto | Kind::ForwardedHost => {}
            Kind::Host if hop.host.is_some() => {}
            Kind::Cookie => {
                if std::mem::take(&mut cookies) {
                    cookie_line(out, fields.values(Kind::Cookie), hop.own_cookie);
                }
            }
            kind if rule.drops(kind, name) => {}
            _ => field(out, name, value),
        }
    }
    let host = hop.host.or_else(|| fields.values(Kind::Host).next());
    let forwarded = Forwarded::of(fields, hop.peer, hop.trusted, hop.tls, host);
    for (kind, value) in forwarded.fields() {
        if let (Some(name), Some(value)) = (kind.name(), value) {
            field(out, name.as_bytes(), value);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// True for the methods whose requests define a meaning for content.
fn expects_content(method: &[u8]) -> bool {
    matches!(method, b"POST" | b"PUT" | b"PATCH")
}

/// Writes the response head for the client: HTTP/1.1, the fields the hop rule keeps (the
/// framing ones too: the body passes through as the server framed it), the insert
/// cookie, and `Connection: close` when the client connection ends after it.
pub fn write_response(out: &mut Vec<u8>, head: &Head, buf: &[u8], added: &Added, close: bool) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let status = head.status.min(999);
    out.extend_from_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(&buf[head.reason.clone()]);
    out.extend_from_slice(b"\r\n");
    let fields = head.fields(buf);
    let rule = Hop::of(&fields, false);
    let chunked = fields.has(Kind::TransferEncoding);
    for f in &head.fields {
        let (name, value) = (&buf[f.name.clone()], &buf[f.value.clone()]);
        match f.kind {
            Kind::ContentLength if chunked => {}
            kind if rule.drops(kind, name) => {}
            _ => field(out, name, value),
        }
    }
    for (name, value) in added.fields() {
        field(out, name.as_bytes(), value.as_bytes());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &[u8], hop: &RequestHop) -> String {
        let mut h = Head::default();
        assert!(h.parse_request(text, 100).unwrap());
        let mut out = Vec::new();
        let (method, target) = (&text[h.method.clone()], &text[h.target.clone()]);
        write_request(&mut out, method, target, &h.fields(text), hop);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn request_fields_are_forwarded_by_the_rules() {
        let text = b"GET /p?q HTTP/1.1\r\nHost: app\r\nConnection: keep-alive, X-Secret\r\n\
            X-Secret: 1\r\nKeep-Alive: 5\r\nCookie: a=1; HFSID=x.y.z; b=2\r\nCookie: HFSID=q\r\n\
            X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n";
        let hop = RequestHop {
            peer: "10.0.0.1",
            trusted: false,
            tls: false,
            own_cookie: Some("HFSID"),
            host: None,
            fallback_host: None,
        };
        assert_eq!(
            request(text, &hop),
            "GET /p?q HTTP/1.1\r\nHost: app\r\ncookie: a=1; b=2\r\nAccept: */*\r\n\
             x-forwarded-for: 10.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: app\r\n\r\n"
        );
        let trusted = RequestHop {
            trusted: true,
            own_cookie: None,
            ..hop
        };
        let out = request(text, &trusted);
        assert!(
            out.contains("x-forwarded-for: 1.2.3.4, 10.0.0.1\r\n"),
            "{out}"
        );
        assert!(out.contains("x-forwarded-proto: https\r\n"), "{out}");
        assert!(!out.contains("x-forwarded-proto: http\r\n"), "{out}");
        // Every `Cookie` field in one line (RFC 6265 §5.4).
        assert!(
            out.contains("cookie: a=1; HFSID=x.y.z; b=2; HFSID=q\r\n"),
            "{out}"
        );
    }

    #[test]
    fn response_fields_are_forwarded_by_the_rules() {
        let text = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
            Transfer-Encoding: chunked\r\nContent-Length: 9\r\nSet-Cookie: PHPSESSID=1\r\n\r\n";
        let mut h = Head::default();
        assert!(h.parse_response(text).unwrap());
        let mut out = Vec::new();
        let added = Added {
            set_cookie: Some("HFSID=v; Path=/".into()),
            cache_control: None,
        };
        write_response(&mut out, &h, text, &added, true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: PHPSESSID=1\r\n\
             set-cookie: HFSID=v; Path=/\r\nconnection: close\r\n\r\n"
        );
    }
}
