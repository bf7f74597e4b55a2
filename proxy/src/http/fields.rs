//! A message's header fields as both engines hold them (the fast path's parsed head over
//! its buffer, hyper's `HeaderMap`), behind one small trait, so every rule that reads
//! fields — framing, hop-by-hop, forwarding, session keys — is written once.

use http::HeaderMap;
use http::header::HeaderName;

use super::h1::head::Head;

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
    /// `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Proxy-Authorization`,
    /// `HTTP2-Settings`.
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
    /// `Cache-Control`.
    CacheControl,
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
        13 if is("cache-control") => Kind::CacheControl,
        14 if is("content-length") => Kind::ContentLength,
        // HTTP/2's upgrade settings (RFC 7540 §3.2.1) mean nothing past this hop, named
        // in `Connection` or not (h2csmuggler's `--upgrade-only` does not name it).
        14 if is("http2-settings") => Kind::HopByHop,
        15 if is("x-forwarded-for") => Kind::ForwardedFor,
        16 if is("proxy-connection") => Kind::HopByHop,
        16 if is("x-forwarded-host") => Kind::ForwardedHost,
        17 if is("transfer-encoding") => Kind::TransferEncoding,
        17 if is("x-forwarded-proto") => Kind::ForwardedProto,
        19 if is("proxy-authorization") => Kind::HopByHop,
        _ => Kind::Other,
    }
}

impl Kind {
    /// The field name of a kind that has exactly one (`None` for `Other`, `HopByHop`).
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Kind::ContentLength => "content-length",
            Kind::TransferEncoding => "transfer-encoding",
            Kind::Connection => "connection",
            Kind::Upgrade => "upgrade",
            Kind::Host => "host",
            Kind::Cookie => "cookie",
            Kind::SetCookie => "set-cookie",
            Kind::Expect => "expect",
            Kind::ForwardedFor => "x-forwarded-for",
            Kind::ForwardedProto => "x-forwarded-proto",
            Kind::ForwardedHost => "x-forwarded-host",
            Kind::CacheControl => "cache-control",
            Kind::Other | Kind::HopByHop => return None,
        })
    }
}

/// Read access to a message's header fields.
pub trait Fields {
    /// The values of the fields of `kind`, in order (`kind` has a single name).
    fn values(&self, kind: Kind) -> impl Iterator<Item = &[u8]>;

    /// The first value of the field named `name` (any case).
    fn named(&self, name: &str) -> Option<&[u8]>;

    /// Every field in order, as (kind, name, value).
    fn each(&self) -> impl Iterator<Item = (Kind, &[u8], &[u8])>;

    /// True when a field of `kind` is present.
    fn has(&self, kind: Kind) -> bool {
        self.values(kind).next().is_some()
    }

    /// The comma-separated elements of every field of `kind`, trimmed, empties skipped
    /// (RFC 9110 §5.6.1).
    fn tokens(&self, kind: Kind) -> impl Iterator<Item = &[u8]> {
        self.values(kind)
            .flat_map(|v| v.split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
    }

    /// True when a `Connection` field lists `token`.
    fn connection_has(&self, token: &str) -> bool {
        self.tokens(Kind::Connection)
            .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }

    /// The values of the fields of `kind` that are text.
    fn texts(&self, kind: Kind) -> impl Iterator<Item = &str> {
        self.values(kind)
            .filter_map(|v| std::str::from_utf8(v).ok())
    }
}

/// A parsed head together with the buffer its ranges point into.
#[derive(Clone, Copy)]
pub struct HeadFields<'a> {
    /// The head.
    pub head: &'a Head,
    /// Its buffer.
    pub buf: &'a [u8],
}

impl Fields for HeadFields<'_> {
    fn values(&self, kind: Kind) -> impl Iterator<Item = &[u8]> {
        self.head
            .fields
            .iter()
            .filter(move |f| f.kind == kind)
            .map(|f| &self.buf[f.value.clone()])
    }

    fn named(&self, name: &str) -> Option<&[u8]> {
        self.head
            .fields
            .iter()
            .find(|f| self.buf[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| &self.buf[f.value.clone()])
    }

    fn has(&self, kind: Kind) -> bool {
        self.head.fields.iter().any(|f| f.kind == kind)
    }

    fn each(&self) -> impl Iterator<Item = (Kind, &[u8], &[u8])> {
        self.head.fields.iter().map(|f| {
            (
                f.kind,
                &self.buf[f.name.clone()],
                &self.buf[f.value.clone()],
            )
        })
    }
}

impl Fields for HeaderMap {
    fn values(&self, kind: Kind) -> impl Iterator<Item = &[u8]> {
        let name = kind.name().map(HeaderName::from_static);
        name.into_iter()
            .flat_map(|n| self.get_all(n).into_iter())
            .map(|v| v.as_bytes())
    }

    fn named(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(|v| v.as_bytes())
    }

    fn each(&self) -> impl Iterator<Item = (Kind, &[u8], &[u8])> {
        self.iter().map(|(name, value)| {
            let name = name.as_str().as_bytes();
            (kind(name), name, value.as_bytes())
        })
    }
}
