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
    for (i, f) in config.frontends.iter().enumerate() {
        if !names.insert(f.name.as_str()) {
            problems.at(
                &format!("frontend[{i}].name"),
                format!("duplicate frontend {:?}", f.name),
            );
        }
        if !listens.insert(f.listen) {
            let message = format!("address {} is used by two frontends", f.listen);
            problems.at(&format!("frontend[{i}].listen"), message);
        }
        check_frontend(problems, i, f, &backends);
    }
    for (i, b) in config.backends.iter().enumerate() {
        check_backend(problems, i, b);
    }
    check_limits(problems, &config.limits);
    let t = &config.timeouts;
    problems.positive(&[
        ("timeouts.client_header", t.client_header.is_zero()),
        ("timeouts.keep_alive", t.keep_alive.is_zero()),
        ("timeouts.tls_handshake", t.tls_handshake.is_zero()),
        ("timeouts.connect", t.connect.is_zero()),
        ("timeouts.server", t.server.is_zero()),
        ("timeouts.client", t.client.is_zero()),
    ]);
}

/// Frontend `f` (the `i`th): the backends it routes to exist, its routes and
/// certificates are usable.
fn check_frontend(
    problems: &mut Problems,
    i: usize,
    f: &FrontendSection,
    backends: &BTreeSet<&str>,
) {
    let at = |key: &str| format!("frontend[{i}].{key}");
    let mut wanted: Vec<(String, &str)> = f
        .routes
        .iter()
        .enumerate()
        .map(|(r, route)| (at(&format!("routes[{r}].backend")), route.backend.as_str()))
        .collect();
    if let Some(d) = &f.default_backend {
        wanted.push((at("default_backend"), d));
    }
    if wanted.is_empty() && !f.redirect_https {
        let message = format!(
            "frontend {:?} has neither routes nor a default_backend",
            f.name
        );
        problems.at(&at("default_backend"), message);
    }
    for (path, b) in wanted {
        if !backends.contains(b) {
            problems.at(
                &path,
                format!("frontend {:?}: no backend named {b:?}", f.name),
            );
        }
    }
    for (r, route) in f.routes.iter().enumerate() {
        check_route(problems, &at(&format!("routes[{r}]")), route);
    }
    if let Some(tls) = &f.tls {
        check_certs(problems, &at("tls"), f, tls);
    }
}

/// A route's host pattern and path prefix (`path`: the route's key).
fn check_route(problems: &mut Problems, path: &str, r: &RouteSection) {
    if let Some(host) = &r.host {
        let rest = host.strip_prefix("*.").unwrap_or(host);
        if rest.is_empty() || rest.contains('*') || rest.contains('/') {
            let message = format!("bad host {host:?}: use an exact name or *.example.com");
            problems.at(&format!("{path}.host"), message);
        }
    }
    if let Some(p) = &r.path_prefix
        && !p.starts_with('/')
    {
        let message = format!("path prefix {p:?} must start with /");
        problems.at(&format!("{path}.path_prefix"), message);
    }
}

/// Every certificate and key of frontend `f`'s `tls` (at `path`) can be read.
fn check_certs(problems: &mut Problems, path: &str, f: &FrontendSection, tls: &TlsSection) {
    let files = match tls.cert_files() {
        Err(e) => return problems.at(&format!("{path}.dir"), e),
        Ok(files) if files.is_empty() => {
            let message = format!("frontend {:?}: no certificate configured", f.name);
            return problems.at(&format!("{path}.certs"), message);
        }
        Ok(files) => files,
    };
    for (n, (cert, key)) in files.iter().enumerate() {
        // Files from `dir` have no key of their own: the directory's line stands.
        let listed = |k: &str| match n < tls.certs.len() {
            true => format!("{path}.certs[{n}].{k}"),
            false => format!("{path}.dir"),
        };
        if let Err(e) = read_chain(cert) {
            problems.at(&listed("cert"), e);
        }
        if let Err(e) = read_key(key) {
            problems.at(&listed("key"), e);
        }
    }
}

/// Backend `b` (the `i`th): its cookie or header name, lost status, learn wait, check
/// and weights.
fn check_backend(problems: &mut Problems, i: usize, b: &BackendSection) {
    let at = |key: &str| format!("backend[{i}].{key}");
    if !is_token(b.cookie_name()) {
        let message = format!(
            "backend {:?}: bad cookie name {:?}",
            b.name,
            b.cookie_name()
        );
        problems.at(&at("cookie"), message);
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
            problems.at(&at("header"), format!("backend {:?}: {why}", b.name));
        }
    }
    if !(400..=599).contains(&b.lost_status) {
        let message = format!("backend {:?}: must be a 4xx or 5xx status", b.name);
        problems.at(&at("lost_status"), message);
    }
    if b.persistence == Persistence::Learn && b.learn_wait.as_secs() > 10 {
        problems.at(&at("learn_wait"), "must be at most 10s");
    }
    if let Some(c) = &b.check {
        check_health_check(problems, &at("check"), c);
    }
    for (j, s) in b.servers.iter().enumerate() {
        if s.weight > 256 {
            let message = format!("server {:?}: weight must be 0..=256", s.name);
            problems.at(&at(&format!("server[{j}].weight")), message);
        }
    }
}

/// A backend's active health check (at `path`).
fn check_health_check(problems: &mut Problems, path: &str, c: &CheckSection) {
    for (key, zero) in [
        ("interval", c.interval.is_zero()),
        ("timeout", c.timeout.is_zero()),
        ("rise", c.rise == 0),
        ("fall", c.fall == 0),
    ] {
        let key = format!("{path}.{key}");
        problems.positive(&[(key.as_str(), zero)]);
    }
    if http::Method::from_bytes(c.method.as_bytes()).is_err() {
        problems.at(
            &format!("{path}.method"),
            format!("bad HTTP method {:?}", c.method),
        );
    }
    if !c.path.starts_with('/') || http::Uri::try_from(c.path.as_str()).is_err() {
        problems.at(
            &format!("{path}.path"),
            format!("bad check path {:?}", c.path),
        );
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
        problems.at("limits.max_headers", message);
    }
    if limits.max_header_size < 8192 {
        problems.at("limits.max_header_size", "must be at least 8192 bytes");
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
