//! Message heads on the fast path: a request or response head parsed by httparse out of
//! the read buffer into offsets (so the buffer stays free to borrow), each header field
//! classified once by name, and the framing its body has.

use std::mem::MaybeUninit;
use std::ops::Range;

/// Most header fields the fast path parses in one head; `limits.max_headers` is capped
/// by it (a head with more gets 431).
pub const MAX_FIELDS: usize = 256;

/// The header fields the proxy acts on; every other is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Forwarded unchanged (unless `Connection` names it).
    Other,
    /// `Content-Length`.
    ContentLength,
    /// `Transfer-Encoding`.
    TransferEncoding,
    /// `Connection`.
    Connection,
    /// `Upgrade`.
    Upgrade,
    /// `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Proxy-Authorization`.
    HopByHop,
    /// `Host`.
    Host,
    /// `Cookie`.
    Cookie,
    /// `Set-Cookie`.
    SetCookie,
    /// `Expect`.
    Expect,
    /// `X-Forwarded-For`.
    ForwardedFor,
    /// `X-Forwarded-Proto`.
    ForwardedProto,
    /// `X-Forwarded-Host`.
    ForwardedHost,
}

/// The kind of the field named `name` (any case).
pub fn kind(name: &[u8]) -> Kind {
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    match name.len() {
        2 if is("te") => Kind::HopByHop,
        4 if is("host") => Kind::Host,
        6 if is("cookie") => Kind::Cookie,
        6 if is("expect") => Kind::Expect,
        7 if is("upgrade") => Kind::Upgrade,
        7 if is("trailer") => Kind::HopByHop,
        10 if is("connection") => Kind::Connection,
        10 if is("keep-alive") => Kind::HopByHop,
        10 if is("set-cookie") => Kind::SetCookie,
        14 if is("content-length") => Kind::ContentLength,
        15 if is("x-forwarded-for") => Kind::ForwardedFor,
        16 if is("proxy-connection") => Kind::HopByHop,
        16 if is("x-forwarded-host") => Kind::ForwardedHost,
        17 if is("transfer-encoding") => Kind::TransferEncoding,
        17 if is("x-forwarded-proto") => Kind::ForwardedProto,
        19 if is("proxy-authorization") => Kind::HopByHop,
        _ => Kind::Other,
    }
}

/// One header field: its kind and where its name and value are in the head.
#[derive(Clone, Debug)]
pub struct Field {
    /// What it is to the proxy.
    pub kind: Kind,
    /// Its name's bytes in the head.
    pub name: Range<usize>,
    /// Its value's bytes in the head.
    pub value: Range<usize>,
}

/// Why a head could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// More fields than allowed (431).
    TooManyFields,
    /// Not HTTP/1.x (HTTP/2's preface, for one).
    Version,
    /// Malformed (400 from a client, 502 from a server).
    Malformed,
}

/// A parsed head; every range points into the buffer it was parsed from.
#[derive(Debug, Default)]
pub struct Head {
    /// Bytes of the head, final CRLF included.
    pub len: usize,
    /// HTTP/1 minor version.
    pub minor: u8,
    /// Request: the method.
    pub method: Range<usize>,
    /// Request: the target as sent.
    pub target: Range<usize>,
    /// Response: the status code.
    pub status: u16,
    /// Response: the reason phrase.
    pub reason: Range<usize>,
    /// The header fields, in order.
    pub fields: Vec<Field>,
}

fn span(base: &[u8], part: &[u8]) -> Range<usize> {
    if part.is_empty() {
        // May be a constant "" rather than a slice of `base`.
        return 0..0;
    }
    // `part` is a subslice of `base` (httparse returns slices of its input).
    let start = part.as_ptr() as usize - base.as_ptr() as usize;
    start..start + part.len()
}

fn error(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyFields,
        httparse::Error::Version => HeadError::Version,
        _ => HeadError::Malformed,
    }
}

impl Head {
    fn fill(&mut self, buf: &[u8], len: usize, minor: Option<u8>, headers: &[httparse::Header]) {
        self.len = len;
        self.minor = minor.unwrap_or(1);
        self.fields.clear();
        self.fields.extend(headers.iter().map(|h| Field {
            kind: kind(h.name.as_bytes()),
            name: span(buf, h.name.as_bytes()),
            value: span(buf, h.value),
        }));
    }

    /// Parses a request head at the start of `buf`: `Ok(false)` if it is not all there yet.
    pub fn parse_request(&mut self, buf: &[u8], max_fields: usize) -> Result<bool, HeadError> {
        let mut slots = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_FIELDS];
        let slots = &mut slots[..max_fields.clamp(1, MAX_FIELDS)];
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(buf, slots).map_err(error)? {
            httparse::Status::Partial => Ok(false),
            httparse::Status::Complete(len) => {
                let (Some(method), Some(target)) = (req.method, req.path) else {
                    return Err(HeadError::Malformed);
                };
                self.method = span(buf, method.as_bytes());
                self.target = span(buf, target.as_bytes());
                self.fill(buf, len, req.version, req.headers);
                Ok(true)
            }
        }
    }

    /// Parses a response head at the start of `buf`: `Ok(false)` if it is not all there yet.
    pub fn parse_response(&mut self, buf: &[u8]) -> Result<bool, HeadError> {
        let mut slots = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_FIELDS];
        let mut resp = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .allow_spaces_after_header_name_in_responses(true)
            .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
            .map_err(error)?;
        match parsed {
            httparse::Status::Partial => Ok(false),
            httparse::Status::Complete(len) => {
                self.status = resp.code.ok_or(HeadError::Malformed)?;
                self.reason = span(buf, resp.reason.unwrap_or("").as_bytes());
                self.fill(buf, len, resp.version, resp.headers);
                Ok(true)
            }
        }
    }

    /// The values of the fields of `kind`.
    pub fn values<'a>(&'a self, buf: &'a [u8], kind: Kind) -> impl Iterator<Item = &'a [u8]> {
        self.fields
            .iter()
            .filter(move |f| f.kind == kind)
            .map(move |f| &buf[f.value.clone()])
    }

    /// True when a field of `kind` is present.
    pub fn has(&self, kind: Kind) -> bool {
        self.fields.iter().any(|f| f.kind == kind)
    }

    /// True when a `Connection` field lists `token`.
    pub fn connection_has(&self, buf: &[u8], token: &str) -> bool {
        self.values(buf, Kind::Connection)
            .flat_map(|v| v.split(|b| *b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }
}

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

/// The framing of a request body, or why it is refused (400): both `Content-Length` and
/// `Transfer-Encoding`, differing or malformed lengths. `Transfer-Encoding` alone is
/// `Chunked` if its last coding is chunked, refused otherwise.
pub fn request_framing(head: &Head, buf: &[u8]) -> Result<Framing, &'static str> {
    let length = content_length(head, buf)?;
    if head.has(Kind::TransferEncoding) {
        if length.is_some() {
            return Err("both Content-Length and Transfer-Encoding");
        }
        return if chunked_last(head, buf) {
            Ok(Framing::Chunked)
        } else {
            Err("Transfer-Encoding without chunked last")
        };
    }
    Ok(Framing::Length(length.unwrap_or(0)))
}

/// The framing of a response body (RFC 9112 §6.3) to a request with `method`.
pub fn response_framing(head: &Head, buf: &[u8], method: &[u8]) -> Result<Framing, &'static str> {
    if method == b"HEAD" || matches!(head.status, 100..=199 | 204 | 304) {
        return Ok(Framing::Length(0));
    }
    if head.has(Kind::TransferEncoding) {
        return Ok(if chunked_last(head, buf) {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    Ok(match content_length(head, buf)? {
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

/// The `Content-Length`, if any; every one must be the same number.
fn content_length(head: &Head, buf: &[u8]) -> Result<Option<u64>, &'static str> {
    let mut length = None;
    for v in head.values(buf, Kind::ContentLength) {
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
fn chunked_last(head: &Head, buf: &[u8]) -> bool {
    head.values(buf, Kind::TransferEncoding)
        .flat_map(|v| v.split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .last()
        .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests_into_offsets_and_kinds() {
        let buf = b"POST /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-Y: z\r\n\r\nabc";
        let mut h = Head::default();
        assert!(h.parse_request(buf, 100).unwrap());
        assert_eq!(&buf[h.method.clone()], b"POST");
        assert_eq!(&buf[h.target.clone()], b"/a?b");
        assert_eq!(h.len, buf.len() - 3);
        let kinds: Vec<Kind> = h.fields.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [Kind::Host, Kind::ContentLength, Kind::Other]);
        assert_eq!(request_framing(&h, buf), Ok(Framing::Length(3)));
        assert!(!h.parse_request(&buf[..20], 100).unwrap());
        assert_eq!(
            h.parse_request(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", 1),
            Err(HeadError::TooManyFields)
        );
        assert_eq!(
            h.parse_request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 10),
            Err(HeadError::Version)
        );
    }

    #[test]
    fn framing_refuses_ambiguity() {
        let mut h = Head::default();
        let mut framing = |text: &[u8]| {
            assert!(h.parse_request(text, 100).unwrap());
            request_framing(&h, text)
        };
        assert!(
            framing(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .is_err()
        );
        assert!(
            framing(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").is_err()
        );
        assert!(framing(b"GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\n").is_err());
        assert!(framing(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").is_err());
        assert_eq!(
            framing(b"GET / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n"),
            Ok(Framing::Length(2))
        );
        assert_eq!(
            framing(b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"),
            Ok(Framing::Chunked)
        );
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
        assert!(h.parse_response(resp).unwrap());
        assert_eq!(response_framing(&h, resp, b"GET"), Ok(Framing::Chunked));
        assert_eq!(response_framing(&h, resp, b"HEAD"), Ok(Framing::Length(0)));
        let close = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n";
        assert!(h.parse_response(close).unwrap());
        assert_eq!((h.status, h.minor), (200, 0));
        assert_eq!(response_framing(&h, close, b"GET"), Ok(Framing::Close));
    }
}
