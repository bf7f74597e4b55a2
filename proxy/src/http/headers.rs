//! Header rules of a proxy hop: request framing checks against smuggling, hop-by-hop
//! removal, the `X-Forwarded-*` headers, and the client address behind trusted proxies.

use std::net::IpAddr;

use http::header::{
    CONNECTION, CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue, PROXY_AUTHORIZATION, TE,
    TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{Request, Version};

use crate::config::Cidr;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded as such. Names, not strings, so
/// removing them parses nothing.
static HOP_BY_HOP: [HeaderName; 8] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHORIZATION,
];

/// Rejects requests whose framing two parsers could read differently: both
/// `Content-Length` and `Transfer-Encoding`, differing `Content-Length` values, or
/// `Transfer-Encoding` on HTTP/1.0.
pub fn check_framing<B>(req: &Request<B>) -> Result<(), &'static str> {
    let headers = req.headers();
    let te = headers.contains_key(TRANSFER_ENCODING);
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    let first = lengths.next();
    if te && first.is_some() {
        return Err("both Content-Length and Transfer-Encoding");
    }
    if te && req.version() == Version::HTTP_10 {
        return Err("Transfer-Encoding on HTTP/1.0");
    }
    if let Some(first) = first {
        let parse = |v: &HeaderValue| -> Option<u64> { v.to_str().ok()?.trim().parse().ok() };
        let n = parse(first).ok_or("bad Content-Length")?;
        for other in lengths {
            if parse(other) != Some(n) {
                return Err("conflicting Content-Length values");
            }
        }
    }
    Ok(())
}

/// True when the request asks to switch protocols (WebSocket).
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.headers().contains_key(UPGRADE) && connection_has(req.headers(), "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers and the ones `Connection` names. With `upgrade`, keeps
/// `Upgrade` and sets `Connection: upgrade` so the next hop sees the switch request.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if !(upgrade && name == UPGRADE) {
            headers.remove(name);
        }
    }
    let kept = if upgrade {
        headers.get(UPGRADE).cloned()
    } else {
        None
    };
    // One pass over the names present instead of a hashed removal per hop-by-hop name:
    // most messages carry none of them, or only `Connection`.
    let present: Vec<HeaderName> = headers
        .keys()
        .filter(|k| HOP_BY_HOP.iter().any(|h| h == *k))
        .cloned()
        .collect();
    for name in present {
        headers.remove(name);
    }
    if let Some(v) = kept {
        headers.insert(UPGRADE, v);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// True when `ip` is one of the trusted proxies.
pub fn trusted(ip: IpAddr, proxies: &[Cidr]) -> bool {
    proxies.iter().any(|c| c.contains(ip))
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the last
/// (rightmost) untrusted address of `X-Forwarded-For`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &[Cidr]) -> IpAddr {
    let xff = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok());
    client_ip_from(peer, xff, proxies)
}

/// [`client_ip`] from the `X-Forwarded-For` values as text.
pub fn client_ip_from<'a>(
    peer: IpAddr,
    xff: impl Iterator<Item = &'a str>,
    proxies: &[Cidr],
) -> IpAddr {
    if !trusted(peer, proxies) {
        return peer;
    }
    let hops: Vec<IpAddr> = xff
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !trusted(**ip, proxies))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
}

/// Sets `X-Forwarded-For/-Proto/-Host`: appended to (kept) when the peer is a trusted
/// proxy, replaced otherwise.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: IpAddr,
    tls: bool,
    host: Option<&str>,
    proxies: &[Cidr],
) {
    let trust = trusted(peer, proxies);
    let prior: Vec<&str> = if trust {
        headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    } else {
        Vec::new()
    };
    let xff = if prior.is_empty() {
        peer.to_string()
    } else {
        format!("{}, {peer}", prior.join(", "))
    };
    if let Ok(v) = HeaderValue::try_from(xff) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if !(trust && headers.contains_key(&X_FORWARDED_PROTO)) {
        let proto = if tls { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if !(trust && headers.contains_key(&X_FORWARDED_HOST)) {
        match host.and_then(|h| HeaderValue::from_str(h).ok()) {
            Some(v) => {
                headers.insert(X_FORWARDED_HOST, v);
            }
            None => {
                headers.remove(X_FORWARDED_HOST);
            }
        }
    }
}

/// The request's host as sent (`Host` header, else the URI authority), port included.
pub fn request_host<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// A host without its port, lower-cased, for routing.
pub fn host_name(host: &str) -> String {
    let name = if host.starts_with('[') {
        host.find(']').map(|i| &host[..=i]).unwrap_or(host)
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter()
            .map(|c| Cidr::try_from(c.to_string()).unwrap())
            .collect()
    }

    #[test]
    fn framing() {
        let ok = Request::builder()
            .header("content-length", "5")
            .body(())
            .unwrap();
        assert!(check_framing(&ok).is_ok());
        let both = Request::builder()
            .header("content-length", "5")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap();
        assert!(check_framing(&both).is_err());
        let two = Request::builder()
            .header("content-length", "5")
            .header("content-length", "6")
            .body(())
            .unwrap();
        assert!(check_framing(&two).is_err());
    }

    #[test]
    fn forwarded_for_trust() {
        let proxies = cidrs(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_static("1.2.3.4, 10.0.0.7"),
        );
        let untrusted: IpAddr = "192.0.2.9".parse().unwrap();
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_ip(untrusted, &h, &proxies), untrusted);
        assert_eq!(
            client_ip(proxy, &h, &proxies),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        let mut a = h.clone();
        set_forwarded(&mut a, proxy, false, Some("x"), &proxies);
        assert_eq!(a[&X_FORWARDED_FOR], "1.2.3.4, 10.0.0.7, 10.0.0.1");
        set_forwarded(&mut h, untrusted, true, Some("x"), &proxies);
        assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.9");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
    }

    #[test]
    fn hop_by_hop_and_hosts() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert_eq!(host_name("App.Local:8080"), "app.local");
        assert_eq!(host_name("[::1]:80"), "[::1]");
    }
}
