//! The checks of the data-plane sections serde cannot make: routes naming unknown backends,
//! unreadable certificates, bad cookie names, zero limits; each problem names its key and line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::load::Problems;
use super::{
    BackendSection, CheckSection, Config, FrontendSection, LimitsSection, Persistence,
    RouteSection, TlsSection,
};

impl TlsSection {
    /// Every (certificate, key) file pair, `certs` first then the directory in name order.
    pub fn cert_files(&self) -> Result<Vec<(PathBuf, PathBuf)>, String> {
        let mut out: Vec<(PathBuf, PathBuf)> = self
            .certs
            .iter()
            .map(|c| (c.cert.clone(), c.key.clone()))
            .collect();
        if let Some(dir) = &self.dir {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| format!("cannot read directory {}: {e}", dir.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("pem") | Some("crt")
                    )
                })
                .collect();
            found.sort();
            for cert in found {
                let key = cert.with_extension("key");
                let key = if key.exists() { key } else { cert.clone() };
                out.push((cert, key));
            }
        }
        Ok(out)
    }
}

/// Reads a PEM certificate chain; an error names the file.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let chain: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate PEM in {}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(chain)
}

/// Reads a PEM private key; an error names the file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| format!("no usable private key in {}: {e}", path.display()))
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Adds the problems of the data-plane sections of `config` to `problems`.
pub(super) fn check(problems: &mut Problems, config: &Config) {
    let backends: BTreeSet<&str> = config.backends.iter().map(|b| b.name.as_str()).collect();
    let mut names = BTreeSet::new();
    let mut listens = BTreeSet::new();
    for f in &config.frontends {
        if !names.insert(f.name.as_str()) {
            let line = problems.line(&format!("name = \"{}\"", f.name), 1);
            problems.add(
                "frontend.name",
                line,
                format!("duplicate frontend {:?}", f.name),
            );
        }
        if !listens.insert(f.listen) {
            let line = problems.line(&f.listen.to_string(), 1);
            let message = format!("address {} is used by two frontends", f.listen);
            problems.add("frontend.listen", line, message);
        }
        check_frontend(problems, f, &backends);
    }
    for b in &config.backends {
        check_backend(problems, b);
    }
    check_limits(problems, &config.limits);
    let t = &config.timeouts;
    problems.positive(&[
        ("timeouts.client_header", t.client_header.is_zero()),
        ("timeouts.keep_alive", t.keep_alive.is_zero()),
        ("timeouts.tls_handshake", t.tls_handshake.is_zero()),
        ("timeouts.connect", t.connect.is_zero()),
        ("timeouts.server", t.server.is_zero()),
    ]);
}

/// Frontend `f`: the backends it routes to exist, its routes and certificates are usable.
fn check_frontend(problems: &mut Problems, f: &FrontendSection, backends: &BTreeSet<&str>) {
    let name_line = problems.line(&format!("name = \"{}\"", f.name), 0);
    let mut wanted: Vec<(&str, &str)> = f
        .routes
        .iter()
        .map(|r| ("frontend.routes.backend", r.backend.as_str()))
        .collect();
    if let Some(d) = &f.default_backend {
        wanted.push(("frontend.default_backend", d));
    }
    if wanted.is_empty() && !f.redirect_https {
        let message = format!(
            "frontend {:?} has neither routes nor a default_backend",
            f.name
        );
        problems.add("frontend.default_backend", name_line, message);
    }
    for (key, b) in wanted {
        if !backends.contains(b) {
            let message = format!("frontend {:?}: no backend named {b:?}", f.name);
            problems.add(key, problems.line(&format!("\"{b}\""), 0), message);
        }
    }
    for r in &f.routes {
        check_route(problems, r);
    }
    if let Some(tls) = &f.tls {
        let line = problems.line("tls", 0).or(name_line);
        check_certs(problems, f, tls, line);
    }
}

/// A route's host pattern and path prefix.
fn check_route(problems: &mut Problems, r: &RouteSection) {
    if let Some(host) = &r.host {
        let rest = host.strip_prefix("*.").unwrap_or(host);
        if rest.is_empty() || rest.contains('*') || rest.contains('/') {
            let message = format!("bad host {host:?}: use an exact name or *.example.com");
            problems.add("frontend.routes.host", problems.line(host, 0), message);
        }
    }
    if let Some(p) = &r.path_prefix
        && !p.starts_with('/')
    {
        let message = format!("path prefix {p:?} must start with /");
        problems.add("frontend.routes.path_prefix", problems.line(p, 0), message);
    }
}

/// Every certificate and key of frontend `f`'s `tls` can be read.
fn check_certs(
    problems: &mut Problems,
    f: &FrontendSection,
    tls: &TlsSection,
    line: Option<usize>,
) {
    let files = match tls.cert_files() {
        Err(e) => return problems.add("frontend.tls.dir", line, e),
        Ok(files) if files.is_empty() => {
            let message = format!("frontend {:?}: no certificate configured", f.name);
            return problems.add("frontend.tls.certs", line, message);
        }
        Ok(files) => files,
    };
    for (cert, key) in files {
        let at = |p: &Path| problems.line(&p.display().to_string(), 0).or(line);
        let (cert_line, key_line) = (at(&cert), at(&key));
        if let Err(e) = read_chain(&cert) {
            problems.add("frontend.tls.certs.cert", cert_line, e);
        }
        if let Err(e) = read_key(&key) {
            problems.add("frontend.tls.certs.key", key_line, e);
        }
    }
}

/// Backend `b`: its cookie or header name, lost status, learn wait, check and weights.
fn check_backend(problems: &mut Problems, b: &BackendSection) {
    let line = problems.line(&format!("name = \"{}\"", b.name), 0);
    if !is_token(b.cookie_name()) {
        let at = problems.line("cookie", 0).or(line);
        let message = format!(
            "backend {:?}: bad cookie name {:?}",
            b.name,
            b.cookie_name()
        );
        problems.add("backend.cookie", at, message);
    }
    if let Some(h) = &b.header {
        let why = if b.persistence != Persistence::Learn {
            Some("a session header is for persistence = \"learn\"".to_string())
        } else if b.cookie.is_some() {
            Some("set either cookie or header, not both".to_string())
        } else if !is_token(h) {
            Some(format!("bad header name {h:?}"))
        } else {
            None
        };
        if let Some(why) = why {
            let at = problems.line("header", 0).or(line);
            problems.add("backend.header", at, format!("backend {:?}: {why}", b.name));
        }
    }
    if !(400..=599).contains(&b.lost_status) {
        let at = problems.line("lost_status", 0).or(line);
        let message = format!("backend {:?}: must be a 4xx or 5xx status", b.name);
        problems.add("backend.lost_status", at, message);
    }
    if b.persistence == Persistence::Learn && b.learn_wait.as_secs() > 10 {
        let at = problems.line("learn_wait", 0);
        problems.add("backend.learn_wait", at, "must be at most 10s");
    }
    if let Some(c) = &b.check {
        check_health_check(problems, c);
    }
    for s in &b.servers {
        if s.weight > 256 {
            let at = problems.line(&format!("name = \"{}\"", s.name), 0);
            let message = format!("server {:?}: weight must be 0..=256", s.name);
            problems.add("backend.server.weight", at, message);
        }
    }
}

/// A backend's active health check.
fn check_health_check(problems: &mut Problems, c: &CheckSection) {
    problems.positive(&[
        ("backend.check.interval", c.interval.is_zero()),
        ("backend.check.timeout", c.timeout.is_zero()),
        ("backend.check.rise", c.rise == 0),
        ("backend.check.fall", c.fall == 0),
    ]);
    if http::Method::from_bytes(c.method.as_bytes()).is_err() {
        let message = format!("bad HTTP method {:?}", c.method);
        problems.add("backend.check.method", problems.line("method", 0), message);
    }
    if !c.path.starts_with('/') || http::Uri::try_from(c.path.as_str()).is_err() {
        let message = format!("bad check path {:?}", c.path);
        problems.add("backend.check.path", problems.line("path", 0), message);
    }
}

/// The connection and header limits.
fn check_limits(problems: &mut Problems, limits: &LimitsSection) {
    problems.positive(&[
        ("limits.max_connections", limits.max_connections == 0),
        ("limits.max_headers", limits.max_headers == 0),
    ]);
    if limits.max_headers > crate::http::MAX_HEADER_FIELDS {
        let message = format!("must be at most {}", crate::http::MAX_HEADER_FIELDS);
        problems.add(
            "limits.max_headers",
            problems.line("max_headers", 0),
            message,
        );
    }
    if limits.max_header_size < 8192 {
        let at = problems.line("max_header_size", 0);
        problems.add("limits.max_header_size", at, "must be at least 8192 bytes");
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    const BASE: &str = r#"
[node]
id = 1

[[backend]]
name = "app"
persistence = "learn"
cookie = "PHPSESSID"
server = [{ name = "s1", addr = "127.0.0.1:9001", weight = 2 }]
check = { type = "http", path = "/health", expect = "200-299", interval = "1s" }

[[frontend]]
name = "web"
listen = "127.0.0.1:8080"
default_backend = "app"
routes = [{ host = "*.example.com", path_prefix = "/api", backend = "app" }]

[timeouts]
client_header = "5s"
"#;

    #[test]
    fn proxy_sections_parse() {
        let c = parse(BASE).unwrap();
        assert_eq!(c.frontends.len(), 1);
        let b = c.backend("app").unwrap();
        assert_eq!(b.cookie_name(), "PHPSESSID");
        assert_eq!(b.servers[0].weight, 2);
        assert_eq!(b.check.as_ref().unwrap().expect.high, 299);
        assert_eq!(c.timeouts.client_header.as_secs(), 5);
        assert_eq!(c.limits.max_header_size, 16 * 1024);
    }

    #[test]
    fn problems_name_key_and_line() {
        let bad = BASE.replace("backend = \"app\" }]", "backend = \"nope\" }]");
        let p = parse(&bad).unwrap_err();
        assert_eq!(p[0].key, "frontend.routes.backend", "{p:?}");
        assert_eq!(p[0].line, Some(16), "{p:?}");

        let bad = BASE.replace("client_header = \"5s\"", "client_header = \"5 fortnights\"");
        let p = parse(&bad).unwrap_err();
        assert_eq!(p[0].line, Some(19), "{p:?}");

        let bad = BASE.replace(
            "routes = [",
            "tls = { certs = [{ cert = \"/nonexistent.pem\", key = \"/nonexistent.key\" }] }\nroutes = [",
        );
        let p = parse(&bad).unwrap_err();
        assert_eq!(p[0].key, "frontend.tls.certs.cert", "{p:?}");
        assert!(p[0].message.contains("cannot read"), "{p:?}");
        assert_eq!(p[0].line, Some(16), "{p:?}");

        let bad = BASE.replace("persistence = \"learn\"", "persistence = \"magic\"");
        let p = parse(&bad).unwrap_err();
        assert_eq!(p[0].line, Some(7), "{p:?}");
    }
}
