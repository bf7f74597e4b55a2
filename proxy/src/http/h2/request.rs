//! A request's header block, decoded, checked against RFC 9113 §8 and made into an
//! `http::Request`: pseudo-header fields first and once each, names in lower case, no
//! connection-specific field, values without CR, LF, NUL or edge whitespace.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, Method, Request, Uri, Version};

/// Why a header block cannot be a request (a stream error, RFC 9113 §8.1.1), or why it
/// is refused with an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Malformed: the stream is reset with PROTOCOL_ERROR.
    Malformed(&'static str),
    /// Over a limit: answered 431.
    Over(Limit),
}

/// The limit a request's fields broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The fields are larger than `limits.max_header_size`.
    Size,
    /// More fields than `limits.max_headers`.
    Count,
}

/// The limits a request's fields are held to.
#[derive(Clone, Copy, Debug)]
pub struct FieldLimits {
    /// Largest field section, counted as RFC 9113 §6.5.2 does (name + value + 32 each).
    pub max_size: usize,
    /// Most fields.
    pub max_fields: usize,
}

/// One decoded field, checked (RFC 9113 §8.2) and made into `http` types once, when
/// it is decoded or enters the HPACK table.
#[derive(Clone, Debug)]
pub enum Field {
    /// `:method`.
    Method(Method),
    /// `:scheme`.
    Scheme(Bytes),
    /// `:authority`.
    Authority(Bytes),
    /// `:path`.
    Path(Bytes),
    /// A regular field.
    Header(HeaderName, HeaderValue),
    /// A field no request may carry: why.
    Bad(&'static str),
}

impl Field {
    /// The field `name`: `value`, checked.
    pub fn of(name: &[u8], value: &Bytes) -> Field {
        if !valid_value(value) {
            return Field::Bad("a field value with CR, LF, NUL or edge whitespace");
        }
        match name {
            b":method" => match Method::from_bytes(value) {
                Ok(method) => Field::Method(method),
                Err(_) => Field::Bad("an invalid :method"),
            },
            b":scheme" => Field::Scheme(value.clone()),
            b":authority" => Field::Authority(value.clone()),
            b":path" => Field::Path(value.clone()),
            [b':', ..] => Field::Bad("an unknown pseudo-header field"),
            _ => regular(name, value),
        }
    }
}

fn regular(name: &[u8], value: &Bytes) -> Field {
    if name.iter().any(u8::is_ascii_uppercase) {
        return Field::Bad("a field name in upper case");
    }
    let Ok(name) = HeaderName::from_bytes(name) else {
        return Field::Bad("an invalid field name");
    };
    if connection_specific(&name, value) {
        return Field::Bad("a connection-specific field");
    }
    match HeaderValue::from_maybe_shared(value.clone()) {
        Ok(value) => Field::Header(name, value),
        Err(_) => Field::Bad("an invalid field value"),
    }
}

/// A header block being decoded: pseudo-header fields and regular fields as they come.
pub struct Fields {
    limits: FieldLimits,
    trailers: bool,
    method: Option<Method>,
    scheme: Option<Bytes>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    headers: HeaderMap,
    size: usize,
    count: usize,
    regular_seen: bool,
    fault: Option<Fault>,
}

impl Fields {
    /// A request's fields (`trailers`: a trailer section, where no pseudo-field may be).
    pub fn new(limits: FieldLimits, trailers: bool) -> Fields {
        Fields {
            limits,
            trailers,
            method: None,
            scheme: None,
            authority: None,
            path: None,
            headers: HeaderMap::new(),
            size: 0,
            count: 0,
            regular_seen: false,
            fault: None,
        }
    }

    /// Takes one decoded field of `size` octets; the first fault is kept and the rest
    /// ignored.
    pub fn add(&mut self, field: &Field, size: usize) {
        if self.fault.is_some() {
            return;
        }
        self.size += size;
        self.count += 1;
        if let Err(fault) = self.take(field) {
            self.fault = Some(fault);
        } else if self.size > self.limits.max_size {
            self.fault = Some(Fault::Over(Limit::Size));
        } else if self.count > self.limits.max_fields {
            self.fault = Some(Fault::Over(Limit::Count));
        }
    }

    fn take(&mut self, field: &Field) -> Result<(), Fault> {
        if let Field::Header(name, value) = field {
            self.regular_seen = true;
            self.headers.append(name.clone(), value.clone());
            return Ok(());
        }
        if let Field::Bad(why) = field {
            return Err(Fault::Malformed(why));
        }
        if self.trailers || self.regular_seen {
            return Err(Fault::Malformed(
                "a pseudo-header field in trailers or after a field",
            ));
        }
        match field {
            Field::Method(m) => once(&mut self.method, m.clone()),
            Field::Scheme(v) => once(&mut self.scheme, v.clone()),
            Field::Authority(v) => once(&mut self.authority, v.clone()),
            Field::Path(v) => once(&mut self.path, v.clone()),
            Field::Header(..) | Field::Bad(_) => Ok(()),
        }
    }

    /// The trailer fields, or why they are refused.
    pub fn into_trailers(self) -> Result<HeaderMap, Fault> {
        match self.fault {
            Some(fault) => Err(fault),
            None => Ok(self.headers),
        }
    }

    /// The request (its body added by the caller), or why there is none.
    pub fn into_request(self) -> Result<Request<()>, Fault> {
        if let Some(fault) = self.fault {
            return Err(fault);
        }
        let method = self.method.ok_or(Fault::Malformed("no :method"))?;
        let uri = match (method == Method::CONNECT, self.scheme, self.path) {
            // RFC 9113 §8.5: `:authority` only.
            (true, None, None) => {
                let authority = self
                    .authority
                    .ok_or(Fault::Malformed("a CONNECT without :authority"))?;
                Uri::from_maybe_shared(authority)
                    .map_err(|_| Fault::Malformed("an invalid :authority"))?
            }
            (true, _, _) => return Err(Fault::Malformed("a CONNECT with :scheme or :path")),
            (false, None, _) => return Err(Fault::Malformed("no :scheme")),
            (false, _, None) => return Err(Fault::Malformed("no :path")),
            (false, Some(_), Some(path)) if path.is_empty() => {
                return Err(Fault::Malformed("an empty :path"));
            }
            (false, Some(_), Some(path)) if !origin_form(&path, &method) => {
                return Err(Fault::Malformed("a :path not in origin form"));
            }
            (false, Some(scheme), Some(path)) => target(&scheme, self.authority, path)?,
        };
        let mut req = Request::new(());
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_2;
        *req.headers_mut() = self.headers;
        Ok(req)
    }
}

/// The request's target from its pseudo-fields: absolute with an `:authority`, the
/// path alone without one (the `Host` field then names the host).
fn target(scheme: &[u8], authority: Option<Bytes>, path: Bytes) -> Result<Uri, Fault> {
    let invalid = Fault::Malformed("an invalid request target");
    let Some(authority) = authority else {
        return Uri::from_maybe_shared(path).map_err(|_| invalid);
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(match scheme {
        b"https" => http::uri::Scheme::HTTPS,
        b"http" => http::uri::Scheme::HTTP,
        other => http::uri::Scheme::try_from(other).map_err(|_| invalid)?,
    });
    parts.authority = Some(Authority::from_maybe_shared(authority).map_err(|_| invalid)?);
    parts.path_and_query = Some(PathAndQuery::from_maybe_shared(path).map_err(|_| invalid)?);
    Uri::from_parts(parts).map_err(|_| invalid)
}

/// RFC 9113 §8.3.1: `:path` is in origin form, or `*` for OPTIONS. `http` parses `*`
/// for any method and a bare `?query`, which would reach the server as request lines no
/// HTTP/1.1 client could send (`GET *`, `GET ?q`).
fn origin_form(path: &[u8], method: &Method) -> bool {
    path.starts_with(b"/") || (path == b"*" && method == Method::OPTIONS)
}

/// Sets `slot` to `value` unless it is set already (a repeated pseudo-field).
fn once<T>(slot: &mut Option<T>, value: T) -> Result<(), Fault> {
    match slot.replace(value) {
        None => Ok(()),
        Some(_) => Err(Fault::Malformed("a repeated pseudo-header field")),
    }
}

/// Fields that mean something only on one connection (RFC 9113 §8.2.2); `te` may say
/// `trailers` and nothing else.
fn connection_specific(name: &HeaderName, value: &[u8]) -> bool {
    match name.as_str() {
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade" => true,
        "te" => value != b"trailers",
        _ => false,
    }
}

/// RFC 9113 §8.2.1: no NUL, CR or LF anywhere, no whitespace first or last.
fn valid_value(value: &[u8]) -> bool {
    let edge = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    !edge(value.first())
        && !edge(value.last())
        && !value.iter().any(|b| matches!(b, 0 | b'\r' | b'\n'))
}
