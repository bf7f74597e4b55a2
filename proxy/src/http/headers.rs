//! The header rules of a proxy hop, over either engine's fields: which fields stay on
//! this side of the hop (hop-by-hop, and those `Connection` names), the `X-Forwarded-*`
//! values sent on, the client's address behind trusted proxies, and the request's host.
//! Each engine's writer applies them; none decides them on its own.

use std::borrow::Cow;
use std::net::IpAddr;

use http::HeaderMap;
use http::header::{CONNECTION, HeaderName, HeaderValue, TRANSFER_ENCODING, UPGRADE};

use super::fields::{Fields, Kind, kind};
use crate::config::Cidr;

/// Which fields of one message are not forwarded as they are (RFC 9110 §7.6.1):
/// `Connection`, the hop-by-hop fields, `Upgrade` unless the exchange switches protocols,
/// and the end-to-end fields `Connection` names. A field the proxy itself acts on (`Host`,
/// cookies, framing, forwarding) is never removed by being named: that would let a client
/// strip what the proxy relies on.
pub struct Hop<'a, F: Fields> {
    fields: &'a F,
    names_fields: bool,
    upgrade: bool,
}

impl<'a, F: Fields> Hop<'a, F> {
    /// The rule for `fields`; with `upgrade`, `Upgrade` goes on to the next hop.
    pub fn of(fields: &'a F, upgrade: bool) -> Self {
        let names_fields = fields.tokens(Kind::Connection).any(|t| {
            !t.eq_ignore_ascii_case(b"close")
                && !t.eq_ignore_ascii_case(b"keep-alive")
                && !t.eq_ignore_ascii_case(b"upgrade")
        });
        Hop {
            fields,
            names_fields,
            upgrade,
        }
    }

    /// True when the field `name` (of kind `kind`) stays on this side of the hop.
    pub fn drops(&self, kind: Kind, name: &[u8]) -> bool {
        match kind {
            Kind::Connection | Kind::HopByHop => true,
            Kind::Upgrade => !self.upgrade,
            Kind::Other if self.names_fields => self
                .fields
                .tokens(Kind::Connection)
                .any(|t| t.eq_ignore_ascii_case(name)),
            _ => false,
        }
    }
}

/// Removes from `headers` what the hop rule drops and `Transfer-Encoding` (hyper frames
/// the body itself); with `upgrade`, the next hop sees `Connection: upgrade`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let hop = Hop::of(&*headers, upgrade);
    // One pass over the names present: most messages carry none of these fields.
    let dropped: Vec<HeaderName> = headers
        .keys()
        .filter(|k| hop.drops(kind(k.as_str().as_bytes()), k.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in dropped {
        headers.remove(name);
    }
    headers.remove(TRANSFER_ENCODING);
    if upgrade && headers.contains_key(UPGRADE) {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// True when the request asks to switch to WebSocket (RFC 6455 §4.1): the only protocol
/// holdfast upgrades to. Any other `Upgrade` (`h2c` among them, RFC 9110 §7.8) is a
/// hop-by-hop field like any other and goes no further.
pub fn is_upgrade(fields: &impl Fields) -> bool {
    fields.connection_has("upgrade")
        && fields
            .tokens(Kind::Upgrade)
            .any(|t| t.eq_ignore_ascii_case(b"websocket"))
}

/// The `X-Forwarded-*` values sent to the server: appended to (`For`) or kept
/// (`Proto`, `Host`) when the peer is a trusted proxy, replaced otherwise. Fields of
/// these names in the request are never forwarded as they are.
pub struct Forwarded<'a> {
    /// `X-Forwarded-For`.
    pub for_: Cow<'a, [u8]>,
    /// `X-Forwarded-Proto`.
    pub proto: &'a [u8],
    /// `X-Forwarded-Host`, if there is a host.
    pub host: Option<&'a [u8]>,
}

impl<'a> Forwarded<'a> {
    /// The values for a request with `fields` from `peer` (its address as text), over TLS
    /// or not, for `host`.
    pub fn of(
        fields: &'a impl Fields,
        peer: &'a str,
        trusted: bool,
        tls: bool,
        host: Option<&'a [u8]>,
    ) -> Self {
        let scheme: &[u8] = if tls { b"https" } else { b"http" };
        if !trusted {
            return Forwarded {
                for_: Cow::Borrowed(peer.as_bytes()),
                proto: scheme,
                host,
            };
        }
        let mut prior = fields.values(Kind::ForwardedFor).peekable();
        let for_ = match prior.peek() {
            None => Cow::Borrowed(peer.as_bytes()),
            Some(_) => {
                let mut v = Vec::new();
                for p in prior {
                    v.extend_from_slice(p);
                    v.extend_from_slice(b", ");
                }
                v.extend_from_slice(peer.as_bytes());
                Cow::Owned(v)
            }
        };
        Forwarded {
            for_,
            proto: fields.values(Kind::ForwardedProto).next().unwrap_or(scheme),
            host: fields.values(Kind::ForwardedHost).next().or(host),
        }
    }

    /// The three fields as header names and values (`None`: the field is removed).
    pub fn header_values(&self) -> [(HeaderName, Option<HeaderValue>); 3] {
        self.fields().map(|(kind, value)| {
            let name = HeaderName::from_static(kind.name().unwrap_or_default());
            (name, value.and_then(|v| HeaderValue::from_bytes(v).ok()))
        })
    }

    /// Sets the values in `headers`, replacing any there.
    pub fn set(&self, headers: &mut HeaderMap) {
        for (name, value) in self.header_values() {
            match value {
                Some(v) => headers.insert(name, v),
                None => headers.remove(name),
            };
        }
    }

    /// The three fields as (kind, value); `None` when none is sent.
    pub fn fields(&self) -> [(Kind, Option<&[u8]>); 3] {
        [
            (Kind::ForwardedFor, Some(&self.for_)),
            (Kind::ForwardedProto, Some(self.proto)),
            (Kind::ForwardedHost, self.host),
        ]
    }
}

/// True when `ip` is one of the trusted proxies.
pub fn trusted(ip: IpAddr, proxies: &[Cidr]) -> bool {
    proxies.iter().any(|c| c.contains(ip))
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the last
/// (rightmost) untrusted address of `X-Forwarded-For`.
pub fn client_ip(peer: IpAddr, fields: &impl Fields, proxies: &[Cidr]) -> IpAddr {
    if !trusted(peer, proxies) {
        return peer;
    }
    let hops: Vec<IpAddr> = fields
        .texts(Kind::ForwardedFor)
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

/// The request's host, port included: an absolute-form target's authority (or HTTP/2's
/// `:authority`), which wins over `Host` (RFC 9112 §3.2.2), else `Host`.
pub fn request_host<'a>(fields: &'a impl Fields, authority: Option<&'a str>) -> Option<&'a str> {
    authority.or_else(|| fields.texts(Kind::Host).next())
}

/// A host without its port, lower-cased, for routing (borrowed when it is already).
pub fn host_name(host: &str) -> Cow<'_, str> {
    let name = if host.starts_with('[') {
        host.find(']').map(|i| &host[..=i]).unwrap_or(host)
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    let name = name.trim_end_matches('.');
    match name.bytes().any(|b| b.is_ascii_uppercase()) {
        true => Cow::Owned(name.to_ascii_lowercase()),
        false => Cow::Borrowed(name),
    }
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
    fn forwarded_for_trust() {
        let proxies = cidrs(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
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
        Forwarded::of(&h, "10.0.0.1", true, false, Some(b"x")).set(&mut a);
        assert_eq!(a["x-forwarded-for"], "1.2.3.4, 10.0.0.7, 10.0.0.1");
        let mut b = h.clone();
        Forwarded::of(&h, "192.0.2.9", false, true, Some(b"x")).set(&mut b);
        assert_eq!(b["x-forwarded-for"], "192.0.2.9");
        assert_eq!(b["x-forwarded-proto"], "https");
        assert_eq!(b["x-forwarded-host"], "x");
    }

    #[test]
    fn rfc9110_7_6_1_hop_by_hop_fields_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("close, x-secret, host"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("1"));
        h.insert("host", HeaderValue::from_static("a"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, false);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["host", "x-kept"]);
        assert_eq!(host_name("App.Local:8080"), "app.local");
        assert_eq!(host_name("[::1]:80"), "[::1]");
    }
}
