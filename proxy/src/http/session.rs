//! Where a backend's session key travels: in holdfast's or the application's cookie, or
//! (learn mode, `header = "..."`) in a header the application sets on its responses and
//! its clients send back, like MCP's `Mcp-Session-Id`. One rule for both engines.

use super::cookie::{deletes_cookie, learned_cookie, request_cookie};
use super::fields::{Fields, Kind};
use crate::config::{BackendSection, Persistence};

/// Longest session header value looked at; longer ones are ignored.
const MAX_VALUE: usize = 512;

fn usable(v: &[u8]) -> Option<&str> {
    let v = std::str::from_utf8(v).ok()?.trim();
    (!v.is_empty() && v.len() <= MAX_VALUE).then_some(v)
}

/// The session key a request carries.
pub fn in_request<'a>(b: &BackendSection, fields: &'a impl Fields) -> Option<&'a str> {
    match &b.header {
        Some(h) => fields.named(h).and_then(usable),
        None => request_cookie(fields, b.cookie_name()),
    }
}

/// The session key a response sets (learn mode only).
pub fn in_response<'a>(b: &BackendSection, fields: &'a impl Fields) -> Option<&'a str> {
    if b.persistence != Persistence::Learn {
        return None;
    }
    match &b.header {
        Some(h) => fields.named(h).and_then(usable),
        None => learned_cookie(fields, b.cookie_name()),
    }
}

/// Whether an answered exchange ended the client's session (learn mode): a `Set-Cookie`
/// deleting the session cookie; for a header session (MCP), a `DELETE` answered 2xx or
/// any 404 (the server no longer knows the session).
pub fn ended(b: &BackendSection, delete: bool, status: u16, fields: &impl Fields) -> bool {
    if b.persistence != Persistence::Learn {
        return false;
    }
    match &b.header {
        Some(_) => status == 404 || (delete && (200..300).contains(&status)),
        None => fields
            .texts(Kind::SetCookie)
            .any(|v| deletes_cookie(v, b.cookie_name())),
    }
}
