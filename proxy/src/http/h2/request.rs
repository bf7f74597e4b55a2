//! A request's header block, decoded, checked against RFC 9113 §8 and made into an
//! `http::Request`: pseudo-header fields first and once each, names in lower case, no
//! connection-specific field, values without CR, LF, NUL or edge whitespace.

use std::borrow::Cow;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri, Version};

/// Why a header block cannot be a request (a stream error, RFC 9113 §8.1.1), or why it
/// is refused with an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Malformed: the stream is reset with PROTOCOL_ERROR.
    Malformed(&'static str),
    /// The fields are larger than `limits.max_header_size` (431).
    TooLarge,
    /// More fields than `limits.max_headers` (431).
    TooMany,
}

/// The limits a request's fields are held to.
#[derive(Clone, Copy, Debug)]
pub struct FieldLimits {
    /// Largest field section, counted as RFC 9113 §6.5.2 does (name + value + 32 each).
    pub max_size: usize,
    /// Most fields.
    pub max_fields: usize,
}

/// A header block being decoded: pseudo-header fields and regular fields as they come.
pub struct Fields {
    limits: FieldLimits,
    trailers: bool,
    method: Option<Method>,
    scheme: Option<String>,
    authority: Option<String>,
    path: Option<String>,
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

    /// Takes one decoded field; the first fault is kept and the rest ignored.
    pub fn add(&mut self, name: Cow<'_, [u8]>, value: Cow<'_, [u8]>) {
        if self.fault.is_some() {
            return;
        }
        self.size += name.len() + value.len() + 32;
        self.count += 1;
        if let Err(fault) = self.take(&name, value) {
            self.fault = Some(fault);
        } else if self.size > self.limits.max_size {
            self.fault = Some(Fault::TooLarge);
        } else if self.count > self.limits.max_fields {
            self.fault = Some(Fault::TooMany);
        }
    }

    fn take(&mut self, name: &[u8], value: Cow<'_, [u8]>) -> Result<(), Fault> {
        if !valid_value(&value) {
            return Err(Fault::Malformed(
                "a field value with CR, LF, NUL or edge whitespace",
            ));
        }
        match name.strip_prefix(b":") {
            Some(pseudo) => self.pseudo(pseudo, value),
            None => self.regular(name, value),
        }
    }

    fn pseudo(&mut self, name: &[u8], value: Cow<'_, [u8]>) -> Result<(), Fault> {
        if self.trailers || self.regular_seen {
            return Err(Fault::Malformed(
                "a pseudo-header field in trailers or after a field",
            ));
        }
        let text = || {
            String::from_utf8(value.to_vec())
                .map_err(|_| Fault::Malformed("a pseudo-header field not in UTF-8"))
        };
        let slot = match name {
            b"method" => {
                let method = Method::from_bytes(&value)
                    .map_err(|_| Fault::Malformed("an invalid :method"))?;
                return once(&mut self.method, method);
            }
            b"scheme" => &mut self.scheme,
            b"authority" => &mut self.authority,
            b"path" => &mut self.path,
            _ => return Err(Fault::Malformed("an unknown pseudo-header field")),
        };
        once(slot, text()?)
    }

    fn regular(&mut self, name: &[u8], value: Cow<'_, [u8]>) -> Result<(), Fault> {
        self.regular_seen = true;
        if name.iter().any(u8::is_ascii_uppercase) {
            return Err(Fault::Malformed("a field name in upper case"));
        }
        let name =
            HeaderName::from_bytes(name).map_err(|_| Fault::Malformed("an invalid field name"))?;
        if connection_specific(&name, &value) {
            return Err(Fault::Malformed("a connection-specific field"));
        }
        let value = match value {
            Cow::Owned(v) => HeaderValue::from_maybe_shared(bytes::Bytes::from(v)),
            Cow::Borrowed(v) => HeaderValue::from_bytes(v),
        };
        let value = value.map_err(|_| Fault::Malformed("an invalid field value"))?;
        self.headers.append(name, value);
        Ok(())
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
                Uri::try_from(authority).map_err(|_| Fault::Malformed("an invalid :authority"))?
            }
            (true, _, _) => return Err(Fault::Malformed("a CONNECT with :scheme or :path")),
            (false, None, _) => return Err(Fault::Malformed("no :scheme")),
            (false, _, None) => return Err(Fault::Malformed("no :path")),
            (false, Some(_), Some(path)) if path.is_empty() => {
                return Err(Fault::Malformed("an empty :path"));
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
fn target(scheme: &str, authority: Option<String>, path: String) -> Result<Uri, Fault> {
    let invalid = |_| Fault::Malformed("an invalid request target");
    let Some(authority) = authority else {
        return Uri::try_from(path).map_err(invalid);
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(match scheme {
        "https" => http::uri::Scheme::HTTPS,
        "http" => http::uri::Scheme::HTTP,
        other => other.parse().map_err(invalid)?,
    });
    parts.authority = Some(authority.parse().map_err(invalid)?);
    parts.path_and_query = Some(path.parse().map_err(invalid)?);
    Uri::from_parts(parts).map_err(|_| Fault::Malformed("an invalid request target"))
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
