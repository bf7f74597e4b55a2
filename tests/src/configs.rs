//! The TOML the labs run behind their nodes' frontends: one backend per persistence mode
//! ([`three_modes_config`]) or one plain backend ([`plain_config`]), and the names the
//! tests use to address them.

/// The three persistence modes of [`three_modes_config`]: (backend, Host header).
pub const MODES: [(&str, &str); 3] = [
    ("ins", "insert.local"),
    ("lrn", "learn.local"),
    ("src", "source.local"),
];

/// Config of a [`Lab`](crate::Lab): one frontend per node routing by Host to one backend per
/// persistence mode (`ins`, `lrn`, `src`, see [`MODES`]) over `servers`, all with `ttl`;
/// `source` trusts `X-Forwarded-For` from 127.0.0.1.
pub fn three_modes_config(servers: &str, ttl: &str) -> String {
    format!(
        r#"
[[frontend]]
name = "web"
listen = "{{http}}"
default_backend = "ins"
routes = [
  {{ host = "insert.local", backend = "ins" }},
  {{ host = "learn.local", backend = "lrn" }},
  {{ host = "source.local", backend = "src" }},
]

[[backend]]
name = "ins"
ttl = "{ttl}"
persistence = "insert"
{servers}

[[backend]]
name = "lrn"
ttl = "{ttl}"
persistence = "learn"
cookie = "PHPSESSID"
learn_wait = "1s"
{servers}

[[backend]]
name = "src"
ttl = "{ttl}"
persistence = "source"
trusted_proxies = ["127.0.0.1/32"]
{servers}
"#
    )
}

/// The Host headers of [`MODES`], one per persistence mode.
pub fn mode_hosts() -> Vec<&'static str> {
    MODES.iter().map(|(_, h)| *h).collect()
}

/// `server` in the backend of every mode of [`MODES`]: (backend, server) pairs.
pub fn in_every_mode(server: &'static str) -> Vec<(&'static str, &'static str)> {
    MODES.iter().map(|(b, _)| (*b, server)).collect()
}

/// The backend of [`three_modes_config`] a Host header is routed to.
pub fn backend_of(host: &str) -> &'static str {
    MODES
        .iter()
        .find(|(_, h)| *h == host)
        .map(|(b, _)| *b)
        .expect("host of a mode")
}

/// Config of a [`Lab`](crate::Lab): one frontend per node sending everything to backend
/// `app` over `servers`, without persistence.
pub fn plain_config(servers: &str) -> String {
    format!(
        r#"
[[frontend]]
name = "web"
listen = "{{http}}"
default_backend = "app"

[[backend]]
name = "app"
persistence = "none"
{servers}
"#
    )
}
