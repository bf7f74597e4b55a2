//! Message heads on the fast path: a request or response head parsed by httparse out of
//! the read buffer into offsets (so the buffer stays free to borrow), each header field
//! classified once by name.

use std::mem::MaybeUninit;
use std::ops::Range;

use crate::http::fields::{HeadFields, Kind, kind};

/// Most header fields the fast path parses in one head; `limits.max_headers` is capped
/// by it (a head with more gets 431).
pub const MAX_FIELDS: usize = 256;

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

    /// The fields of this head, read through the buffer it was parsed from.
    pub fn fields<'a>(&'a self, buf: &'a [u8]) -> HeadFields<'a> {
        HeadFields { head: self, buf }
    }
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
}
