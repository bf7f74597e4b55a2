//! The holdfast configuration an import builds, and its TOML text: only what an import
//! can fill in, written in the order and with the keys of `docs/config.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A translated frontend (one per `bind` line).
#[derive(Clone, Debug, Default)]
pub struct Frontend {
    /// Name.
    pub name: String,
    /// Listen address.
    pub listen: String,
    /// Certificate files (each holding its key, HAProxy's `crt FILE`).
    pub cert_files: Vec<String>,
    /// Certificate directories (HAProxy's `crt DIR`).
    pub cert_dirs: Vec<String>,
    /// Routes in order: (host, path prefix, backend).
    pub routes: Vec<Route>,
    /// The default backend.
    pub default_backend: Option<String>,
    /// Redirect every request to HTTPS.
    pub redirect_https: bool,
}

/// One route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    /// Exact host or `*.suffix`.
    pub host: Option<String>,
    /// Path prefix.
    pub path_prefix: Option<String>,
    /// Backend.
    pub backend: String,
}

/// A translated backend.
#[derive(Clone, Debug, Default)]
pub struct Backend {
    /// Name.
    pub name: String,
    /// `roundrobin` or `leastconn`.
    pub balance: Option<String>,
    /// `insert`, `learn`, `source` or `none`.
    pub persistence: String,
    /// The cookie name.
    pub cookie: Option<String>,
    /// Learn mode: the header the session travels in.
    pub header: Option<String>,
    /// Binding time-to-live.
    pub ttl: Option<String>,
    /// Longest session life.
    pub maxlife: Option<String>,
    /// The health check's settings (key → TOML value).
    pub check: Option<BTreeMap<&'static str, String>>,
    /// Servers.
    pub servers: Vec<Server>,
}

/// A translated server.
#[derive(Clone, Debug, Default)]
pub struct Server {
    /// Name.
    pub name: String,
    /// `host:port`.
    pub addr: String,
    /// Weight, when not 1.
    pub weight: Option<u32>,
    /// HAProxy's cookie value for it, honoured during the switch.
    pub cookie: Option<String>,
}

/// The whole translated configuration.
#[derive(Clone, Debug, Default)]
pub struct Imported {
    /// Frontends.
    pub frontends: Vec<Frontend>,
    /// Backends.
    pub backends: Vec<Backend>,
    /// `[timeouts]` key → duration.
    pub timeouts: BTreeMap<&'static str, String>,
    /// `[limits] max_connections`.
    pub max_connections: Option<u64>,
}

/// `s` as a TOML string.
pub fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Imported {
    /// The configuration file, with `secret` as the cluster secret.
    pub fn to_toml(&self, source: &str, secret: &str) -> String {
        let mut out = format!(
            "# Translated from {source} by `holdfast import-haproxy`; check it with\n\
             # `holdfast check`. Set [node] id and [cluster] members on every node.\n\n\
             [node]\nid = 1\n\n[cluster]\nsecret = {}\n",
            quoted(secret)
        );
        if !self.timeouts.is_empty() {
            out.push_str("\n[timeouts]\n");
            for (k, v) in &self.timeouts {
                let _ = writeln!(out, "{k} = {}", quoted(v));
            }
        }
        if let Some(n) = self.max_connections {
            let _ = write!(out, "\n[limits]\nmax_connections = {n}\n");
        }
        for f in &self.frontends {
            f.write(&mut out);
        }
        for b in &self.backends {
            b.write(&mut out);
        }
        out
    }
}

impl Frontend {
    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "\n[[frontend]]\nname = {}\nlisten = {}\n",
            quoted(&self.name),
            quoted(&self.listen)
        );
        if !self.cert_files.is_empty() || !self.cert_dirs.is_empty() {
            let certs: Vec<String> = self
                .cert_files
                .iter()
                .map(|c| format!("{{ cert = {0}, key = {0} }}", quoted(c)))
                .collect();
            let _ = write!(out, "tls = {{ certs = [{}]", certs.join(", "));
            if let Some(dir) = self.cert_dirs.first() {
                let _ = write!(out, ", dir = {}", quoted(dir));
            }
            out.push_str(" }\n");
        }
        if let Some(b) = &self.default_backend {
            let _ = writeln!(out, "default_backend = {}", quoted(b));
        }
        if self.redirect_https {
            out.push_str("redirect_https = true\n");
        }
        if !self.routes.is_empty() {
            out.push_str("routes = [\n");
            for r in &self.routes {
                let mut parts = Vec::new();
                if let Some(h) = &r.host {
                    parts.push(format!("host = {}", quoted(h)));
                }
                if let Some(p) = &r.path_prefix {
                    parts.push(format!("path_prefix = {}", quoted(p)));
                }
                parts.push(format!("backend = {}", quoted(&r.backend)));
                let _ = writeln!(out, "  {{ {} }},", parts.join(", "));
            }
            out.push_str("]\n");
        }
    }
}

impl Backend {
    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "\n[[backend]]\nname = {}\npersistence = {}\n",
            quoted(&self.name),
            quoted(&self.persistence)
        );
        let optional = [
            ("cookie", &self.cookie),
            ("header", &self.header),
            ("ttl", &self.ttl),
            ("maxlife", &self.maxlife),
            ("balance", &self.balance),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                let _ = writeln!(out, "{key} = {}", quoted(v));
            }
        }
        if let Some(check) = &self.check {
            let parts: Vec<String> = check.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            let _ = writeln!(out, "check = {{ {} }}", parts.join(", "));
        }
        out.push_str("server = [\n");
        for s in &self.servers {
            let mut parts = vec![
                format!("name = {}", quoted(&s.name)),
                format!("addr = {}", quoted(&s.addr)),
            ];
            if let Some(w) = s.weight {
                parts.push(format!("weight = {w}"));
            }
            if let Some(c) = &s.cookie {
                parts.push(format!("cookie = {}", quoted(c)));
            }
            let _ = writeln!(out, "  {{ {} }},", parts.join(", "));
        }
        out.push_str("]\n");
    }
}
