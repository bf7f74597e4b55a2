//! HAProxy's value syntaxes in holdfast's: durations (milliseconds by default, `us` to
//! `d` units), listen and server addresses.

/// A HAProxy duration as a holdfast duration, or `None` if it is not one.
pub fn duration(v: &str) -> Option<String> {
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = v.split_at(digits);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "" | "ms" => format!("{n}ms"),
        "us" => format!("{}ms", n.div_ceil(1000)),
        "s" | "m" | "h" | "d" => format!("{n}{unit}"),
        _ => return None,
    })
}

/// A `bind` address as a listen address: `*:80` and `:80` listen on every IPv4 address.
/// `Err` says why it is not usable; `Ok((addr, exact))` is `exact == false` when the host
/// was a placeholder replaced by `0.0.0.0`.
pub fn listen(v: &str) -> Result<(String, bool), &'static str> {
    if v.contains('@') {
        return Err("an address family prefix (unix@, ipv4@, fd@ …) has no holdfast counterpart");
    }
    let (host, port) = v.rsplit_once(':').ok_or("no port")?;
    if port.contains('-') {
        return Err("port ranges are not supported: one frontend per port");
    }
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or("not a port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host {
        "" | "*" | "0.0.0.0" => Ok((format!("0.0.0.0:{port}"), true)),
        h if h.parse::<std::net::IpAddr>().is_ok() => Ok((bracket(h, port), true)),
        _ => Ok((format!("0.0.0.0:{port}"), false)),
    }
}

fn bracket(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A `server` address as `host:port`, or why it cannot be one.
pub fn server_addr(v: &str) -> Result<String, &'static str> {
    if v.contains('@') || v.starts_with('/') {
        return Err("not a TCP address (unix socket or address family prefix)");
    }
    let (host, port) = v
        .rsplit_once(':')
        .ok_or("no port: HAProxy would use the client's destination port")?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or("the port is not a number from 1 to 65535")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let valid = !host.is_empty()
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    if !valid {
        return Err("the host is neither an IP address nor a host name");
    }
    Ok(bracket(host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_values_translate() {
        assert_eq!(duration("5000").as_deref(), Some("5000ms"));
        assert_eq!(duration("30s").as_deref(), Some("30s"));
        assert_eq!(duration("1500us").as_deref(), Some("2ms"));
        assert_eq!(duration("x"), None);
        assert_eq!(listen("*:80"), Ok(("0.0.0.0:80".into(), true)));
        assert_eq!(listen(":::443"), Ok(("[::]:443".into(), true)));
        assert_eq!(
            listen("xxx.xxx.xxx.xxx:443"),
            Ok(("0.0.0.0:443".into(), false))
        );
        assert!(listen("unix@/run/x.sock").is_err());
        assert_eq!(server_addr("10.0.0.1:8080").as_deref(), Ok("10.0.0.1:8080"));
        assert!(server_addr("SRV1_IP:PORT").is_err());
        assert!(server_addr("10.0.0.1").is_err());
    }
}
