//! Cookies: reading a named cookie from `Cookie` headers, learning an application cookie
//! from `Set-Cookie`, and holdfast's own insert cookie `<server>.<session id>.<time>.<MAC>`,
//! whose HMAC-SHA256 (cluster secret, over backend, server, id and time) makes a forged,
//! altered or other backend's value count as no cookie.

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};
use sha2::Sha256;

use super::fields::{Fields, Kind};
use crate::config::SameSite;

/// Bytes of the MAC kept in the cookie (hex: twice as many characters).
const MAC_LEN: usize = 16;

/// Largest cookie value looked at; longer ones are ignored.
const MAX_VALUE: usize = 512;

/// The value of cookie `name` in one `Cookie` header value.
pub fn cookie_in<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty() && v.len() <= MAX_VALUE)
}

/// The value of cookie `name` in the request's `Cookie` headers (the first one).
pub fn request_cookie<'a>(fields: &'a impl Fields, name: &str) -> Option<&'a str> {
    fields.texts(Kind::Cookie).find_map(|v| cookie_in(v, name))
}

/// True when one `Cookie` header value holds cookie `name`.
pub fn has_cookie(header: &str, name: &str) -> bool {
    header
        .split(';')
        .any(|p| p.trim().split_once('=').is_some_and(|(n, _)| n == name))
}

/// The pairs of one `Cookie` header value other than cookie `name`, trimmed.
pub fn other_cookies<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> {
    header
        .split(';')
        .map(str::trim)
        .filter(move |p| !p.is_empty() && p.split_once('=').is_none_or(|(n, _)| n != name))
}

/// Appends to `out` the pairs of every `Cookie` value in `values`, joined by `; `,
/// without cookie `own` (holdfast's, never shown to the server); false when none
/// remains. HTTP/2 sends each cookie in a field of its own, and an HTTP/1.1 server
/// expects one field (RFC 9113 §8.2.3, RFC 6265 §5.4).
pub fn join_cookies<'f>(
    out: &mut Vec<u8>,
    values: impl Iterator<Item = &'f [u8]>,
    own: Option<&str>,
) -> bool {
    let mut first = true;
    let mut pair = |out: &mut Vec<u8>, bytes: &[u8]| {
        if !std::mem::take(&mut first) {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(bytes);
    };
    for value in values {
        match (std::str::from_utf8(value), own) {
            (Ok(text), Some(own)) => other_cookies(text, own).for_each(|p| pair(out, p.as_bytes())),
            _ if value.trim_ascii().is_empty() => {}
            _ => pair(out, value),
        }
    }
    !first
}

/// Leaves the request one `Cookie` field, without holdfast's cookie `own` (none when
/// nothing remains): [`join_cookies`] over hyper's fields.
pub fn one_cookie_field(headers: &mut HeaderMap, own: Option<&str>) {
    let mut all = headers.get_all(COOKIE).iter();
    let several = all.next().is_some() && all.next().is_some();
    let own_sent = own.is_some_and(|own| {
        headers
            .get_all(COOKIE)
            .iter()
            .any(|v| v.to_str().is_ok_and(|s| has_cookie(s, own)))
    });
    if !several && !own_sent {
        return;
    }
    let mut joined = Vec::new();
    let values = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes);
    let kept = join_cookies(&mut joined, values, own);
    headers.remove(COOKIE);
    if kept && let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(COOKIE, v);
    }
}

/// The value one `Set-Cookie` header value sets for cookie `name`, unless it is a
/// deletion (empty value or `Max-Age=0`).
pub fn set_cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let mut parts = header.split(';');
    let (n, value) = parts.next()?.trim().split_once('=')?;
    let deleted = parts.any(|a| {
        a.trim()
            .split_once('=')
            .is_some_and(|(k, v)| k.eq_ignore_ascii_case("max-age") && v.trim() == "0")
    });
    let value = value.trim().trim_matches('"');
    (n == name && !deleted && !value.is_empty() && value.len() <= MAX_VALUE).then_some(value)
}

/// True when one `Set-Cookie` header value deletes cookie `name`: an empty value, a
/// `Max-Age` of zero or less, or an `Expires` in the past (applications write 1970).
pub fn deletes_cookie(header: &str, name: &str) -> bool {
    let mut parts = header.split(';');
    let Some((n, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
        return false;
    };
    if n != name {
        return false;
    }
    let value = value.trim().trim_matches('"');
    value.is_empty()
        || parts.any(|a| {
            let Some((k, v)) = a.trim().split_once('=') else {
                return false;
            };
            let v = v.trim();
            (k.eq_ignore_ascii_case("max-age") && v.parse::<i64>().is_ok_and(|s| s <= 0))
                || (k.eq_ignore_ascii_case("expires") && expired_date(v))
        })
}

/// An HTTP date before 2001 (the four-digit year): far enough in the past for any
/// application that deletes a cookie.
fn expired_date(date: &str) -> bool {
    date.split(|c: char| !c.is_ascii_digit())
        .find(|t| t.len() == 4)
        .and_then(|y| y.parse::<u32>().ok())
        .is_some_and(|y| y <= 2000)
}

/// The value the backend sets for cookie `name` in its `Set-Cookie` headers (the last
/// one), if it sets one that is not a deletion.
pub fn learned_cookie<'a>(fields: &'a impl Fields, name: &str) -> Option<&'a str> {
    fields
        .texts(Kind::SetCookie)
        .filter_map(|v| set_cookie_value(v, name))
        .last()
}

/// The `Cache-Control` directive added to a response that sets holdfast's cookie, unless
/// it already keeps caches from storing it (`private`, `no-store`, `no-cache`): a shared
/// cache must never hand one client's session cookie to another (HAProxy's `nocache`).
/// The response stays cacheable; its `Set-Cookie` does not (RFC 9111 §5.2.2.4).
pub fn cache_guard(fields: &impl Fields) -> Option<&'static str> {
    let kept_private = fields.tokens(Kind::CacheControl).any(|d| {
        let name = d.split(|b| *b == b'=').next().unwrap_or(d).trim_ascii();
        [&b"private"[..], b"no-store", b"no-cache"]
            .iter()
            .any(|p| name.eq_ignore_ascii_case(p))
    });
    (!kept_private).then_some("no-cache=\"set-cookie\"")
}

/// Signs and checks holdfast's insert cookie with the cluster secret.
#[derive(Clone)]
pub struct CookieSigner {
    key: Hmac<Sha256>,
}

/// A valid insert cookie's content, borrowed from the cookie's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signed<'v> {
    /// The server it names.
    pub server: &'v str,
    /// The session id (the table key).
    pub id: &'v str,
    /// When it was issued or last refreshed (seconds since the Unix epoch).
    pub at: u64,
}

impl<'v> Signed<'v> {
    /// The fields of a well-formed cookie value, with its time as written and its MAC
    /// in hex; nothing checked but the form.
    fn parse(value: &'v str) -> Option<(Signed<'v>, &'v str, &'v str)> {
        let mut parts = value.rsplitn(4, '.');
        let (tag, at, id, server) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if server.is_empty() || id.is_empty() || tag.len() != MAC_LEN * 2 {
            return None;
        }
        if at.is_empty() || at.len() > 12 || !at.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let signed = Signed {
            server,
            id,
            at: at.parse().ok()?,
        };
        Some((signed, at, tag))
    }
}

/// The last insert cookie a client connection's requests showed valid, with its backend:
/// a browser sends the same cookie with every request of a connection, and its MAC is
/// checked once.
#[derive(Default)]
pub struct VerifiedCookie(parking_lot::Mutex<Option<(Box<str>, Box<str>)>>);

impl VerifiedCookie {
    /// [`CookieSigner::verify`], remembering the last valid value.
    pub fn verify<'v>(
        &self,
        signer: &CookieSigner,
        backend: &str,
        value: &'v str,
    ) -> Option<Signed<'v>> {
        let known = matches!(&*self.0.lock(), Some((b, v)) if **b == *backend && **v == *value);
        if known {
            return Signed::parse(value).map(|(signed, ..)| signed);
        }
        let signed = signer.verify(backend, value)?;
        *self.0.lock() = Some((backend.into(), value.into()));
        Some(signed)
    }
}

impl CookieSigner {
    /// A signer keyed by `secret`.
    pub fn new(secret: &[u8]) -> CookieSigner {
        // HMAC accepts keys of any length, so this cannot fail.
        let key = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        CookieSigner { key }
    }

    /// The MAC covers every field, the backend included: a cookie of one backend is no
    /// cookie for another.
    fn mac(&self, backend: &str, server: &str, id: &str, at: &str) -> Hmac<Sha256> {
        let mut mac = self.key.clone();
        for (i, part) in [backend, server, id, at].into_iter().enumerate() {
            if i > 0 {
                mac.update(&[0]);
            }
            mac.update(part.as_bytes());
        }
        mac
    }

    /// A fresh random session id (128 bits, hex).
    pub fn new_id() -> String {
        hex(&rand::random::<[u8; 16]>())
    }

    /// The cookie value of `backend` naming `server` and session `id`, stamped `at`
    /// (seconds since the epoch): `<server>.<id>.<at>.<MAC>`.
    pub fn sign(&self, backend: &str, server: &str, id: &str, at: u64) -> String {
        let at = at.to_string();
        let tag = self.mac(backend, server, id, &at).finalize().into_bytes();
        format!("{server}.{id}.{at}.{}", hex(&tag[..MAC_LEN]))
    }

    /// The server, session id and time of a cookie value of `backend`, if its MAC is
    /// right.
    pub fn verify<'v>(&self, backend: &str, value: &'v str) -> Option<Signed<'v>> {
        let (signed, at, tag) = Signed::parse(value)?;
        let tag = unhex(tag)?;
        self.mac(backend, signed.server, signed.id, at)
            .verify_truncated_left(&tag)
            .ok()?;
        Some(signed)
    }
}

/// The `Set-Cookie` header value for the insert cookie.
pub fn set_cookie(name: &str, value: &str, secure: bool, same_site: SameSite) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite={}{secure}",
        same_site.as_str()
    )
}

/// Lower-case hex of `bytes`, in one allocation (every new session pays for two).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::SET_COOKIE;

    #[test]
    fn hex_is_lower_case_two_digits_per_byte_and_unhex_reverses_it() {
        assert_eq!(hex(&[0x00, 0x09, 0x9f, 0xff]), "00099fff");
        assert_eq!(unhex("00099fff"), Some(vec![0x00, 0x09, 0x9f, 0xff]));
    }

    #[test]
    fn a_connection_checks_a_cookie_once_and_every_other_value_again() {
        let s = CookieSigner::new(b"secret-secret-secret");
        let memo = VerifiedCookie::default();
        let v = s.sign("web", "s1", "abcd", 1_700_000_000);
        let signed = Some(Signed {
            server: "s1",
            id: "abcd",
            at: 1_700_000_000,
        });
        assert_eq!(memo.verify(&s, "web", &v), signed);
        assert_eq!(memo.verify(&s, "web", &v), signed);
        // Remembered for its backend and its exact value only.
        assert_eq!(memo.verify(&s, "web2", &v), None);
        assert_eq!(memo.verify(&s, "web", &v.replacen("s1", "s2", 1)), None);
        assert_eq!(memo.verify(&s, "web", &v), signed);
        let other = CookieSigner::new(b"another-secret-secret");
        assert_eq!(
            memo.verify(&other, "web", &other.sign("web", "s2", "ef", 1))
                .map(|c| c.server),
            Some("s2")
        );
    }

    #[test]
    fn signed_cookie_round_trip_and_forgery() {
        let s = CookieSigner::new(b"secret-secret-secret");
        let id = CookieSigner::new_id();
        let v = s.sign("web", "s1.example", &id, 1_700_000_000);
        assert_eq!(
            s.verify("web", &v),
            Some(Signed {
                server: "s1.example",
                id: &id,
                at: 1_700_000_000,
            })
        );
        // Another backend, another server, an altered id, time or MAC, another key:
        // rejected.
        assert_eq!(s.verify("web2", &v), None);
        assert_eq!(s.verify("web", &v.replacen("s1", "s2", 1)), None);
        assert_eq!(s.verify("web", &v.replacen(&id[..4], "ffff", 1)), None);
        assert_eq!(
            s.verify("web", &v.replacen("1700000000", "1900000000", 1)),
            None
        );
        let mut bad = v.clone();
        bad.pop();
        bad.push('z');
        assert_eq!(s.verify("web", &bad), None);
        assert_eq!(CookieSigner::new(b"other").verify("web", &v), None);
        assert_eq!(s.verify("web", "s1"), None);
        assert_eq!(s.verify("web", "..."), None);
        assert_eq!(s.verify("web", "é.é.1.é"), None);
        assert_eq!(
            s.verify("web", "a.b.-1.00000000000000000000000000000000"),
            None
        );
    }

    #[test]
    fn cookie_deletions_are_recognised() {
        assert!(deletes_cookie("PHPSESSID=; Path=/", "PHPSESSID"));
        assert!(deletes_cookie("PHPSESSID=x; Max-Age=0", "PHPSESSID"));
        assert!(deletes_cookie("PHPSESSID=deleted; max-age=-1", "PHPSESSID"));
        assert!(deletes_cookie(
            "PHPSESSID=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; path=/",
            "PHPSESSID"
        ));
        assert!(!deletes_cookie("PHPSESSID=abc; Max-Age=3600", "PHPSESSID"));
        assert!(!deletes_cookie(
            "PHPSESSID=abc; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
            "PHPSESSID"
        ));
        assert!(!deletes_cookie("other=; Max-Age=0", "PHPSESSID"));
    }

    #[test]
    fn cookies_are_read_stripped_and_learned() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; HFSID=x.y.z; b=2"));
        h.append(COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(request_cookie(&h, "HFSID"), Some("x.y.z"));
        assert_eq!(request_cookie(&h, "c"), Some("3"));
        one_cookie_field(&mut h, Some("HFSID"));
        assert_eq!(request_cookie(&h, "HFSID"), None);
        assert_eq!(request_cookie(&h, "b"), Some("2"));
        let joined: Vec<_> = h.get_all(COOKIE).iter().collect();
        assert_eq!(joined, ["a=1; b=2; c=3"]);
        let mut crumbs = HeaderMap::new();
        crumbs.append(COOKIE, HeaderValue::from_static("a=1"));
        crumbs.append(COOKIE, HeaderValue::from_static("b=2"));
        one_cookie_field(&mut crumbs, None);
        assert_eq!(crumbs.get_all(COOKIE).iter().count(), 1);
        assert_eq!(request_cookie(&crumbs, "b"), Some("2"));

        let mut r = HeaderMap::new();
        r.append(
            SET_COOKIE,
            HeaderValue::from_static("PHPSESSID=abc; Path=/"),
        );
        r.append(SET_COOKIE, HeaderValue::from_static("other=1"));
        assert_eq!(learned_cookie(&r, "PHPSESSID"), Some("abc"));
        let mut d = HeaderMap::new();
        d.append(
            SET_COOKIE,
            HeaderValue::from_static("PHPSESSID=abc; Max-Age=0"),
        );
        assert_eq!(learned_cookie(&d, "PHPSESSID"), None);
    }
}
