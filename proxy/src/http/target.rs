//! Where a request says it is going, checked before it is routed (RFC 9112 §3.2–3.3,
//! RFC 9113 §8.3.1): the request-target's form, one valid `Host`, the absolute form's
//! authority over `Host`, and the methods a reverse proxy does not serve (`CONNECT`).

use http::Version;

use super::fields::{Fields, Kind};
use super::refusal::Refusal;

/// The parts of a request line the rule looks at.
pub struct Target<'a> {
    /// The method.
    pub method: &'a [u8],
    /// The target's path and query, as sent (origin form), or `*`.
    pub path: &'a str,
    /// The authority of an absolute-form target (with a scheme) or HTTP/2's
    /// `:authority`.
    pub authority: Option<&'a str>,
    /// The protocol version.
    pub version: Version,
}

/// Refuses what must not be routed: `CONNECT` (501), a target in no valid form, a
/// missing, repeated or invalid `Host` (400), and an HTTP/2 `Host` naming another
/// authority than `:authority`.
pub fn check(t: &Target, fields: &impl Fields) -> Result<(), Refusal> {
    if t.method == b"CONNECT" {
        return Err(Refusal::NotImplemented("CONNECT is not supported"));
    }
    let origin = t.path.starts_with('/');
    let asterisk = t.path == "*" && t.method == b"OPTIONS";
    if !(origin || asterisk || t.authority.is_some()) {
        return Err(Refusal::BadRequest("invalid request target"));
    }
    let mut hosts = fields.values(Kind::Host);
    let (first, second) = (hosts.next(), hosts.next());
    if second.is_some() {
        return Err(Refusal::BadRequest("more than one Host"));
    }
    match (first, t.version) {
        (None, Version::HTTP_11) => return Err(Refusal::BadRequest("missing Host")),
        (Some(h), _) if !valid_host(h) => return Err(Refusal::BadRequest("invalid Host")),
        (Some(h), Version::HTTP_2) if t.authority.is_some_and(|a| a.as_bytes() != h) => {
            return Err(Refusal::BadRequest("Host differs from :authority"));
        }
        _ => {}
    }
    if let Some(a) = t.authority
        && !valid_host(a.as_bytes())
    {
        return Err(Refusal::BadRequest("invalid authority"));
    }
    Ok(())
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a reg-name (unreserved,
/// percent-encoded and sub-delims characters), an IPv4 address or a bracketed IP
/// literal, then an optional port of digits. Empty is allowed (RFC 9112 §3.2).
pub fn valid_host(host: &[u8]) -> bool {
    let (name, port) = match host.iter().rposition(|b| *b == b':') {
        Some(i) if !host.starts_with(b"[") || host[..i].ends_with(b"]") => {
            (&host[..i], &host[i + 1..])
        }
        _ => (host, &b""[..]),
    };
    if !port.iter().all(u8::is_ascii_digit) || port.len() > 5 {
        return false;
    }
    if let Some(literal) = name.strip_prefix(b"[") {
        return literal.strip_suffix(b"]").is_some_and(|ip| {
            !ip.is_empty()
                && ip
                    .iter()
                    .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        });
    }
    name.iter().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn fields(hosts: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append("host", v.parse().unwrap());
        }
        h
    }

    fn target<'a>(method: &'a str, path: &'a str, authority: Option<&'a str>) -> Target<'a> {
        Target {
            method: method.as_bytes(),
            path,
            authority,
            version: Version::HTTP_11,
        }
    }

    #[test]
    fn rfc9112_3_2_host_is_required_once_and_valid() {
        let get = target("GET", "/", None);
        assert!(check(&get, &fields(&["a"])).is_ok());
        assert!(check(&get, &fields(&["a.example:8080"])).is_ok());
        assert!(check(&get, &fields(&["[::1]:80"])).is_ok());
        assert_eq!(
            check(&get, &fields(&[])),
            Err(Refusal::BadRequest("missing Host"))
        );
        assert_eq!(
            check(&get, &fields(&["a", "b"])),
            Err(Refusal::BadRequest("more than one Host"))
        );
        for bad in ["a b", "a/b", "a:x", "a@b", "[::1", "a:123456"] {
            assert_eq!(
                check(&get, &fields(&[bad])),
                Err(Refusal::BadRequest("invalid Host")),
                "{bad}"
            );
        }
        let old = Target {
            version: Version::HTTP_10,
            ..target("GET", "/", None)
        };
        assert!(check(&old, &fields(&[])).is_ok(), "HTTP/1.0 needs no Host");
    }

    #[test]
    fn rfc9112_3_2_request_target_forms() {
        let h = fields(&["a"]);
        assert!(check(&target("OPTIONS", "*", None), &h).is_ok());
        assert!(check(&target("GET", "*", None), &h).is_err());
        assert!(check(&target("GET", "!", None), &h).is_err());
        assert!(check(&target("GET", "evil.com", None), &h).is_err());
        assert!(
            check(&target("GET", "/", Some("b")), &h).is_ok(),
            "absolute form"
        );
        assert_eq!(
            check(&target("CONNECT", "a:443", Some("a:443")), &h),
            Err(Refusal::NotImplemented("CONNECT is not supported"))
        );
    }

    #[test]
    fn rfc9113_8_3_1_host_must_match_authority() {
        let h2 = |authority| Target {
            version: Version::HTTP_2,
            ..target("GET", "/", Some(authority))
        };
        assert!(check(&h2("a"), &fields(&[])).is_ok());
        assert!(check(&h2("a"), &fields(&["a"])).is_ok());
        assert!(check(&h2("a"), &fields(&["b"])).is_err());
    }
}
