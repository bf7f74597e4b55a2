//! How a message's body is delimited (RFC 9112 §6), and which requests are refused
//! because two parsers could read their framing differently (request smuggling). One
//! rule, applied by both engines before anything is forwarded.

use super::fields::{Fields, Kind};
use super::refusal::Refusal;

/// How a message's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// This many bytes (0: no body).
    Length(u64),
    /// The chunked coding.
    Chunked,
    /// Until the server closes the connection (responses only).
    Close,
}

/// The framing of a request body, or why it is refused: both `Content-Length` and
/// `Transfer-Encoding`, differing or malformed lengths, `Transfer-Encoding` on HTTP/1.0
/// (400, RFC 9112 §6.1, §6.3); a transfer coding other than `chunked` (501, RFC 9112
/// §6.1: the proxy would pass bytes in a coding neither side may expect); `chunked` more
/// than once (400, RFC 9112 §7.1: a sender must not apply it twice).
pub fn request(fields: &impl Fields, http10: bool) -> Result<Framing, Refusal> {
    let bad = Refusal::BadRequest;
    let length = content_length(fields).map_err(bad)?;
    if !fields.has(Kind::TransferEncoding) {
        return Ok(Framing::Length(length.unwrap_or(0)));
    }
    if length.is_some() {
        return Err(bad("both Content-Length and Transfer-Encoding"));
    }
    if http10 {
        return Err(bad("Transfer-Encoding on HTTP/1.0"));
    }
    let mut chunked = 0;
    for coding in fields.tokens(Kind::TransferEncoding) {
        if !coding.eq_ignore_ascii_case(b"chunked") {
            return Err(Refusal::NotImplemented(
                "transfer coding other than chunked",
            ));
        }
        chunked += 1;
    }
    match chunked {
        1 => Ok(Framing::Chunked),
        0 => Err(bad("empty Transfer-Encoding")),
        _ => Err(bad("chunked applied more than once")),
    }
}

/// The request's body length when `Content-Length` gives it, as one number however many
/// times it was repeated (`5, 5` is sent on as `5`, RFC 9110 §8.6).
pub fn declared_length(fields: &impl Fields) -> Option<u64> {
    content_length(fields).ok().flatten()
}

/// The framing of a response body (RFC 9112 §6.3) with `status`, to a `HEAD` request or
/// not.
pub fn response(fields: &impl Fields, status: u16, head: bool) -> Result<Framing, &'static str> {
    if head || matches!(status, 100..=199 | 204 | 304) {
        return Ok(Framing::Length(0));
    }
    if fields.has(Kind::TransferEncoding) {
        return Ok(if chunked_last(fields) {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    Ok(match content_length(fields)? {
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

/// The `Content-Length`, if any; every one must be the same number of at most 19 digits.
pub fn content_length(fields: &impl Fields) -> Result<Option<u64>, &'static str> {
    let mut length = None;
    for v in fields.values(Kind::ContentLength) {
        for part in v.split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err("bad Content-Length");
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("bad Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length values");
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// True when the last transfer coding is `chunked`.
fn chunked_last(fields: &impl Fields) -> bool {
    fields
        .tokens(Kind::TransferEncoding)
        .last()
        .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
}

#[cfg(test)]
mod tests {
    use super::super::fields::HeadFields;
    use super::super::h1::head::Head;
    use super::*;
    use http::HeaderMap;

    /// The rule gives the same answer over both engines' representations.
    fn both(text: &[u8]) -> Result<Framing, Refusal> {
        let mut h = Head::default();
        assert!(h.parse_request(text, 100).unwrap());
        let fast = request(
            &HeadFields {
                head: &h,
                buf: text,
            },
            false,
        );
        let mut map = HeaderMap::new();
        for f in &h.fields {
            let name = http::HeaderName::from_bytes(&text[f.name.clone()]).unwrap();
            let value = http::HeaderValue::from_bytes(&text[f.value.clone()]).unwrap();
            map.append(name, value);
        }
        assert_eq!(
            fast,
            request(&map, false),
            "{}",
            String::from_utf8_lossy(text)
        );
        fast
    }

    #[test]
    fn rfc9112_6_3_ambiguous_framing_is_refused() {
        let cl_te = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(both(cl_te).is_err());
        assert!(both(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").is_err());
        assert!(both(b"GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\n").is_err());
        assert!(both(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").is_err());
        let twice =
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            both(twice),
            Err(Refusal::BadRequest("chunked applied more than once"))
        );
        assert_eq!(
            both(b"GET / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n"),
            Ok(Framing::Length(2))
        );
        assert_eq!(
            both(b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"),
            Err(Refusal::NotImplemented(
                "transfer coding other than chunked"
            ))
        );
        assert_eq!(
            both(b"GET / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(both(b"GET / HTTP/1.1\r\n\r\n"), Ok(Framing::Length(0)));
    }

    #[test]
    fn rfc9112_6_3_response_framing() {
        let mut h = Head::default();
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
        assert!(h.parse_response(resp).unwrap());
        let f = HeadFields {
            head: &h,
            buf: resp,
        };
        assert_eq!(response(&f, 200, false), Ok(Framing::Chunked));
        assert_eq!(response(&f, 200, true), Ok(Framing::Length(0)));
        assert_eq!(response(&f, 304, false), Ok(Framing::Length(0)));
        let close = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n";
        assert!(h.parse_response(close).unwrap());
        let f = HeadFields {
            head: &h,
            buf: close,
        };
        assert_eq!(response(&f, 200, false), Ok(Framing::Close));
    }
}
