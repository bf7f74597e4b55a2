//! The proxy's header rules applied while a head is copied out, in one pass into the
//! output buffer: hop-by-hop fields and those `Connection` names dropped, `X-Forwarded-*`
//! set, holdfast's own cookie stripped; on the way back the insert cookie added.

use super::head::{Head, Kind};
use crate::http::cookie::{has_cookie, other_cookies};

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

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// True when a `Connection` field of `head` names the field `name` (beyond the tokens
/// `close`, `keep-alive` and `upgrade`, which name no field sent here).
fn named_by_connection(head: &Head, buf: &[u8], name: &[u8]) -> bool {
    head.values(buf, Kind::Connection)
        .flat_map(|v| v.split(|b| *b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(name))
}

/// True when `Connection` names something besides `close`, `keep-alive`, `upgrade`.
fn names_fields(head: &Head, buf: &[u8]) -> bool {
    head.values(buf, Kind::Connection)
        .flat_map(|v| v.split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case(b"close")
                && !t.eq_ignore_ascii_case(b"keep-alive")
                && !t.eq_ignore_ascii_case(b"upgrade")
        })
}

/// Writes the request head for the server: HTTP/1.1, the fields kept, `X-Forwarded-For`
/// (appended to a trusted proxy's), `-Proto` and `-Host` (a trusted proxy's kept).
pub fn write_request(out: &mut Vec<u8>, head: &Head, buf: &[u8], hop: &RequestHop) {
    out.extend_from_slice(&buf[head.method.clone()]);
    out.push(b' ');
    out.extend_from_slice(&buf[head.target.clone()]);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let named = names_fields(head, buf);
    let (mut kept_proto, mut kept_host) = (false, false);
    for f in &head.fields {
        let (name, value) = (&buf[f.name.clone()], &buf[f.value.clone()]);
        match f.kind {
            Kind::Connection
            | Kind::Upgrade
            | Kind::HopByHop
            | Kind::TransferEncoding
            | Kind::ForwardedFor => {}
            Kind::ForwardedProto | Kind::ForwardedHost if !hop.trusted => {}
            Kind::ForwardedProto => {
                kept_proto = true;
                field(out, name, value);
            }
            Kind::ForwardedHost => {
                kept_host = true;
                field(out, name, value);
            }
            Kind::Cookie if hop.own_cookie.is_some() => {
                let own = hop.own_cookie.unwrap_or_default();
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
            _ if named && named_by_connection(head, buf, name) => {}
            _ => field(out, name, value),
        }
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    if hop.trusted {
        for v in head.values(buf, Kind::ForwardedFor) {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(hop.peer.as_bytes());
    out.extend_from_slice(b"\r\n");
    if !kept_proto {
        let proto: &[u8] = if hop.tls { b"https" } else { b"http" };
        field(out, b"x-forwarded-proto", proto);
    }
    if !kept_host && let Some(host) = head.values(buf, Kind::Host).next() {
        field(out, b"x-forwarded-host", host);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the response head for the client: HTTP/1.1, the fields kept (the framing ones
/// too: the body passes through as the server framed it), the insert cookie, and
/// `Connection: close` when the client connection ends after it.
pub fn write_response(
    out: &mut Vec<u8>,
    head: &Head,
    buf: &[u8],
    set_cookie: Option<&str>,
    close: bool,
) {
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
    let named = names_fields(head, buf);
    let chunked = head.has(Kind::TransferEncoding);
    for f in &head.fields {
        let (name, value) = (&buf[f.name.clone()], &buf[f.value.clone()]);
        match f.kind {
            Kind::Connection | Kind::Upgrade | Kind::HopByHop => {}
            Kind::ContentLength if chunked => {}
            _ if named && named_by_connection(head, buf, name) => {}
            _ => field(out, name, value),
        }
    }
    if let Some(cookie) = set_cookie {
        field(out, b"set-cookie", cookie.as_bytes());
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
        assert!(out.contains("X-Forwarded-Proto: https\r\n"), "{out}");
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
        write_response(&mut out, &h, text, Some("HFSID=v; Path=/"), true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: PHPSESSID=1\r\n\
             set-cookie: HFSID=v; Path=/\r\nconnection: close\r\n\r\n"
        );
    }
}
