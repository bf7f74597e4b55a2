//! The fast path's writer of heads: the header rules (`headers.rs`) applied while a head
//! is copied, in one pass, into the output buffer, holdfast's own cookie stripped on the
//! way out and the insert cookie added on the way back.

use super::head::Head;
use crate::http::cookie::{has_cookie, other_cookies};
use crate::http::exchange::Added;
use crate::http::fields::{Fields, Kind};
use crate::http::framing::declared_length;
use crate::http::headers::{Forwarded, Hop};

/// What the request head's rewrite needs to know about the hop.
pub struct RequestHop<'a> {
    /// The client peer's address as text (the `X-Forwarded-For` value added).
    pub peer: &'a str,
    /// The peer is a trusted proxy: its `X-Forwarded-*` are kept and appended to.
    pub trusted: bool,
    /// The client connection is TLS.
    pub tls: bool,
    /// Insert mode: holdfast's cookie, never shown to the server.
    pub own_cookie: Option<&'a str>,
}

/// Writes one header field line.
pub(super) fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A `Cookie` field without holdfast's own cookie `own` (left out when nothing remains).
fn cookie_without(out: &mut Vec<u8>, name: &[u8], value: &[u8], own: &str) {
    match std::str::from_utf8(value) {
        Ok(text) if has_cookie(text, own) => {
            let mut first = true;
            for pair in other_cookies(text, own) {
                out.extend_from_slice(if first { b"cookie: " } else { b"; " });
                out.extend_from_slice(pair.as_bytes());
                first = false;
            }
            if !first {
                out.extend_from_slice(b"\r\n");
            }
        }
        _ => field(out, name, value),
    }
}

/// Writes the request head for the server: HTTP/1.1, the fields the hop rule keeps, and
/// the `X-Forwarded-*` values last.
pub fn write_request(out: &mut Vec<u8>, head: &Head, buf: &[u8], hop: &RequestHop) {
    out.extend_from_slice(&buf[head.method.clone()]);
    out.push(b' ');
    out.extend_from_slice(&buf[head.target.clone()]);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let fields = head.fields(buf);
    let rule = Hop::of(&fields, false);
    // One `Content-Length`, one value, however the client repeated it (RFC 9110 §8.6).
    let mut length = declared_length(&fields);
    // The request's framing was checked (`framing::request`): a transfer coding is
    // `chunked`, once, and the body passes as the client chunked it.
    let mut chunked = fields.has(Kind::TransferEncoding);
    for f in &head.fields {
        let (name, value) = (&buf[f.name.clone()], &buf[f.value.clone()]);
        match (f.kind, hop.own_cookie) {
            (Kind::ContentLength, _) => {
                if let Some(n) = length.take() {
                    field(out, b"content-length", n.to_string().as_bytes());
                }
            }
            (Kind::TransferEncoding, _) => {
                if std::mem::take(&mut chunked) {
                    field(out, b"transfer-encoding", b"chunked");
                }
            }
            (Kind::ForwardedFor | Kind::ForwardedProto | Kind::ForwardedHost, _) => {}
            (Kind::Cookie, Some(own)) => cookie_without(out, name, value, own),
            (kind, _) if rule.drops(kind, name) => {}
            _ => field(out, name, value),
        }
    }
    let host = fields.values(Kind::Host).next();
    let forwarded = Forwarded::of(&fields, hop.peer, hop.trusted, hop.tls, host);
    for (kind, value) in forwarded.fields() {
        if let (Some(name), Some(value)) = (kind.name(), value) {
            field(out, name.as_bytes(), value);
        }
    }
    out.extend_from_slice(b"\r\n");
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
        write_request(&mut out, &h, text, hop);
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
        assert!(out.contains("Cookie: HFSID=q\r\n"), "{out}");
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
