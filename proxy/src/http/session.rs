//! Where a backend's session key travels: in holdfast's or the application's cookie, or
//! (learn mode, `header = "..."`) in a header the application sets on its responses and
//! its clients send back, like MCP's `Mcp-Session-Id`. One rule for both engines.

use http::HeaderMap;

use super::cookie::{cookie_in, deletes_cookie, learned_cookie, request_cookie, set_cookie_value};
use super::h1::head::{Head, Kind};
use crate::config::{BackendSection, Persistence};

/// Longest session header value looked at; longer ones are ignored.
const MAX_VALUE: usize = 512;

fn usable(v: &str) -> Option<&str> {
    let v = v.trim();
    (!v.is_empty() && v.len() <= MAX_VALUE).then_some(v)
}

/// The session key a request carries (hyper's headers).
pub fn in_request<'a>(b: &BackendSection, headers: &'a HeaderMap) -> Option<&'a str> {
    match &b.header {
        Some(h) => headers.get(h.as_str())?.to_str().ok().and_then(usable),
        None => request_cookie(headers, b.cookie_name()),
    }
}

/// The session key a response sets (hyper's headers): learn mode only.
pub fn in_response(b: &BackendSection, headers: &HeaderMap) -> Option<String> {
    match &b.header {
        Some(h) => headers
            .get(h.as_str())?
            .to_str()
            .ok()
            .and_then(usable)
            .map(str::to_string),
        None => learned_cookie(headers, b.cookie_name()),
    }
}

/// The session key a request carries (the fast path's parsed head).
pub fn in_request_head<'a>(b: &BackendSection, head: &'a Head, bytes: &'a [u8]) -> Option<&'a str> {
    match &b.header {
        Some(h) => named(head, bytes, h),
        None => head
            .values(bytes, Kind::Cookie)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .find_map(|v| cookie_in(v, b.cookie_name())),
    }
}

/// The session key a response sets (the fast path's parsed head): learn mode only.
pub fn in_response_head<'a>(
    b: &BackendSection,
    head: &'a Head,
    bytes: &'a [u8],
) -> Option<&'a str> {
    match &b.header {
        Some(h) => named(head, bytes, h),
        None => head
            .values(bytes, Kind::SetCookie)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .filter_map(|v| set_cookie_value(v, b.cookie_name()))
            .last(),
    }
}

/// Whether an answered exchange ended the client's session (learn mode): a `Set-Cookie`
/// deleting the session cookie; for a header session (MCP), a `DELETE` answered 2xx or
/// any 404 (the server no longer knows the session).
pub fn ended<'a>(
    b: &BackendSection,
    delete: bool,
    status: u16,
    mut set_cookies: impl Iterator<Item = &'a str>,
) -> bool {
    if b.persistence != Persistence::Learn {
        return false;
    }
    match &b.header {
        Some(_) => status == 404 || (delete && (200..300).contains(&status)),
        None => set_cookies.any(|v| deletes_cookie(v, b.cookie_name())),
    }
}

/// The first value of header `name` in a parsed head.
fn named<'a>(head: &Head, bytes: &'a [u8], name: &str) -> Option<&'a str> {
    head.fields
        .iter()
        .find(|f| bytes[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
        .and_then(|f| std::str::from_utf8(&bytes[f.value.clone()]).ok())
        .and_then(usable)
}
