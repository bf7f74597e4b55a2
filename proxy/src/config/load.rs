//! Reading a config file: TOML syntax and type errors with their line, then the checks
//! serde cannot make (duplicates, membership), each naming the key and the line.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use super::Config;
use super::spans::{Spans, key_of, line_at};

/// One thing wrong with a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key (dotted path) at fault.
    pub key: String,
    /// 1-based line, when it could be located.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// A config that could not be used, with every problem found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but is not a valid config.
    #[error("{path}: {}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The file.
        path: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// Reads and checks the config at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&text).map_err(|problems| ConfigError::Invalid {
        path: shown,
        problems,
    })
}

/// Parses and checks config text; on failure returns every problem found.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let config: Config = toml::from_str(text).map_err(|e| vec![syntax_problem(text, &e)])?;
    let problems = check(text, &config);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

fn syntax_problem(text: &str, e: &toml::de::Error) -> Problem {
    let line = e.span().map(|span| line_at(text, span.start));
    let message = e.message().to_string();
    // toml names an unknown or missing key in backticks; otherwise the key is the one
    // whose value holds the error (a type error inside an inline table included).
    let names_key = ["unknown field", "missing field", "duplicate key"]
        .iter()
        .any(|m| message.contains(m));
    let spans = Spans::of(text);
    let key = message
        .split('`')
        .nth(1)
        .filter(|_| names_key)
        .map(str::to_string)
        .or_else(|| Some(key_of(spans.path_at(e.span()?.start)?)))
        .unwrap_or_else(|| "(syntax)".into());
    Problem { key, line, message }
}

/// The problems found in one config file, each at its key and at the line that holds it.
pub(super) struct Problems {
    spans: Spans,
    found: Vec<Problem>,
}

impl Problems {
    fn new(text: &str) -> Problems {
        Problems {
            spans: Spans::of(text),
            found: Vec::new(),
        }
    }

    /// Records that the key at `path` (`backend[1].server[0].weight`) is wrong: `message`.
    pub(super) fn at(&mut self, path: &str, message: impl Into<String>) {
        self.found.push(Problem {
            key: key_of(path),
            line: self.spans.line(path),
            message: message.into(),
        });
    }

    /// For every `(path, zero)` whose value is zero: "must be greater than zero".
    pub(super) fn positive(&mut self, values: &[(&str, bool)]) {
        for &(path, zero) in values {
            if zero {
                self.at(path, "must be greater than zero");
            }
        }
    }
}

fn check(text: &str, config: &Config) -> Vec<Problem> {
    let mut problems = Problems::new(text);
    check_node(&mut problems, config);
    check_cluster(&mut problems, config);
    check_backends(&mut problems, config);
    super::proxy_check::check(&mut problems, config);
    problems.found
}

/// Listen addresses: the admin listener, the peer port and no frontend on the same one.
fn check_node(problems: &mut Problems, config: &Config) {
    let admin = config.admin.listen;
    let peer = config.cluster.peer_listen;
    if admin == peer {
        problems.at(
            "admin.listen",
            format!("{admin} is also cluster.peer_listen"),
        );
    }
    for (i, f) in config.frontends.iter().enumerate() {
        if f.listen == admin || f.listen == peer {
            let other = if f.listen == admin {
                "admin.listen"
            } else {
                "cluster.peer_listen"
            };
            let message = format!("frontend {:?}: {} is also {other}", f.name, f.listen);
            problems.at(&format!("frontend[{i}].listen"), message);
        }
    }
}

/// The longest `max_skew` accepted: every expiry and release waits this much more, so a
/// mistyped unit would hold every drain for days.
const MAX_SKEW: std::time::Duration = std::time::Duration::from_secs(600);

fn check_cluster(problems: &mut Problems, config: &Config) {
    let cluster = &config.cluster;
    let mut ids = BTreeSet::new();
    for (i, m) in cluster.members.iter().enumerate() {
        if !ids.insert(m.id) {
            problems.at(
                &format!("cluster.members[{i}].id"),
                format!("duplicate member id {}", m.id),
            );
        }
        if let Err(why) = super::host_port(&m.addr) {
            let message = format!("member {}: {:?} is not host:port ({why})", m.id, m.addr);
            problems.at(&format!("cluster.members[{i}].addr"), message);
        }
    }
    if !cluster.members.is_empty() && !ids.contains(&config.node.id) {
        let message = format!(
            "this node (node.id = {}) is not among the members",
            config.node.id
        );
        problems.at("cluster.members", message);
    }
    problems.positive(&[
        ("cluster.tick", cluster.tick.is_zero()),
        ("cluster.flush", cluster.flush.is_zero()),
        ("cluster.write_timeout", cluster.write_timeout.is_zero()),
        ("cluster.queue_limit", cluster.queue_limit == 0),
    ]);
    if cluster.max_skew > MAX_SKEW {
        problems.at(
            "cluster.max_skew",
            "must be at most 10m: every release waits this long",
        );
    }
    if cluster.secret.len() < 16 && cluster.tls.is_none() {
        problems.at("cluster.secret", "must be at least 16 characters");
    }
    if let Some(tls) = &cluster.tls {
        for (key, path) in [
            ("cluster.tls.ca", &tls.ca),
            ("cluster.tls.cert", &tls.cert),
            ("cluster.tls.key", &tls.key),
        ] {
            if let Err(e) = std::fs::metadata(path) {
                problems.at(key, format!("cannot read {}: {e}", path.display()));
            }
        }
        check_peer_certificate(problems, tls, config.node.id);
    }
}

/// The node's peer certificate must load and name this node, or every peer refuses it.
fn check_peer_certificate(problems: &mut Problems, tls: &super::PeerTlsSection, node_id: u64) {
    if ![&tls.ca, &tls.cert, &tls.key].iter().all(|p| p.exists()) {
        return; // reported above, by key
    }
    let material = holdfast_peer_proto::TlsMaterial::from_pem_files(
        &tls.ca,
        &tls.cert,
        &tls.key,
        &tls.server_name,
    );
    match material {
        Err(e) => problems.at("cluster.tls", e.to_string()),
        Ok(m) if m.check_names_node(node_id).is_err() => problems.at(
            "cluster.tls.cert",
            format!(
                "{} does not name node {node_id}: a node's certificate carries the SANs {:?} and {:?}",
                tls.cert.display(),
                tls.server_name,
                holdfast_peer_proto::node_san(node_id, &tls.server_name)
            ),
        ),
        Ok(_) => {}
    }
}

fn check_backends(problems: &mut Problems, config: &Config) {
    let mut backends = BTreeSet::new();
    for (i, b) in config.backends.iter().enumerate() {
        let at = |key: &str| format!("backend[{i}].{key}");
        if !backends.insert(b.name.as_str()) {
            problems.at(&at("name"), format!("duplicate backend {:?}", b.name));
        }
        if let Err(why) = super::valid_name(&b.name) {
            problems.at(&at("name"), format!("backend {:?}: {why}", b.name));
        }
        if b.ttl.is_zero() {
            problems.at(&at("ttl"), format!("backend {:?}: ttl must be > 0", b.name));
        }
        let mut servers = BTreeSet::new();
        for (j, s) in b.servers.iter().enumerate() {
            let server = |key: &str| format!("backend[{i}].server[{j}].{key}");
            if !servers.insert(s.name.as_str()) {
                let message = format!("duplicate server {:?} in backend {:?}", s.name, b.name);
                problems.at(&server("name"), message);
            }
            if let Err(why) = super::valid_name(&s.name) {
                problems.at(&server("name"), format!("server {:?}: {why}", s.name));
            }
            if let Err(why) = super::host_port(&s.addr) {
                let message = format!("server {:?}: {:?} is not host:port ({why})", s.name, s.addr);
                problems.at(&server("addr"), message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[node]
id = 1

[cluster]
secret = "0123456789abcdef"
members = [{ id = 1, addr = "127.0.0.1:1" }, { id = 2, addr = "127.0.0.1:2" }]
max_skew = "100ms"

[[backend]]
name = "app"
ttl = "10s"
server = [{ name = "s1", addr = "127.0.0.1:9001" }]
"#;

    #[test]
    fn good_config_parses() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.cluster.members.len(), 2);
        assert_eq!(c.cluster.max_skew.as_millis(), 100);
        assert_eq!(c.backend("app").unwrap().ttl.as_secs(), 10);
    }

    #[test]
    fn errors_name_key_and_line() {
        let bad = GOOD.replace("max_skew = \"100ms\"", "max_skew = \"100 parsecs\"");
        let p = parse(&bad).unwrap_err();
        assert_eq!(p[0].line, Some(8), "{p:?}");
        assert!(p[0].message.contains("bad duration"), "{p:?}");

        let bad = GOOD.replace("id = 1\n", "id = 1\ncolour = 3\n");
        let p = parse(&bad).unwrap_err();
        assert_eq!((p[0].key.as_str(), p[0].line), ("colour", Some(4)), "{p:?}");

        let bad = GOOD.replace("[node]\nid = 1", "[node]\nid = 3");
        let p = parse(&bad).unwrap_err();
        assert_eq!(p[0].key, "cluster.members", "{p:?}");
        assert_eq!(p[0].line, Some(7));
    }

    /// Problems as (key, line).
    fn found(text: &str) -> Vec<(String, Option<usize>)> {
        let p = parse(text).unwrap_err();
        p.into_iter().map(|p| (p.key, p.line)).collect()
    }

    #[test]
    fn problems_are_reported_at_the_line_that_holds_them() {
        // A comment that mentions the key, and the same value on two lines.
        let text = format!(
            "{GOOD}\n# cookie = \"bad name\" was tried here\n[[backend]]\nname = \"web\"\n\
             cookie = \"bad name\"\nserver = [\n  {{ name = \"a\", addr = \"127.0.0.1:1\", weight = 257 }},\n\
             {{ name = \"b\", addr = \"127.0.0.1:2\", weight = 257 }},\n]\n"
        );
        let f = found(&text);
        assert!(f.contains(&("backend.cookie".into(), Some(18))), "{f:?}");
        assert!(
            f.contains(&("backend.server.weight".into(), Some(20))),
            "{f:?}"
        );
        assert!(
            f.contains(&("backend.server.weight".into(), Some(21))),
            "{f:?}"
        );
        // A type error inside an inline table names its key.
        let bad = GOOD.replace("addr = \"127.0.0.1:9001\"", "addr = 9001");
        let f = found(&bad);
        assert_eq!(f[0].0, "backend.server.addr", "{f:?}");
    }

    #[test]
    fn values_that_would_break_the_node_are_refused() {
        let cases = [
            ("127.0.0.1:9001", "127.0.0.1:99999", "backend.server.addr"),
            ("127.0.0.1:2\" }", "nohost\" }", "cluster.members.addr"),
            (
                "max_skew = \"100ms\"",
                "max_skew = \"3650d\"",
                "cluster.max_skew",
            ),
            (
                "max_skew = \"100ms\"",
                "write_timeout = \"0s\"",
                "cluster.write_timeout",
            ),
            (
                "max_skew = \"100ms\"",
                "queue_limit = 0",
                "cluster.queue_limit",
            ),
            ("name = \"s1\"", "name = \"\"", "backend.server.name"),
            ("name = \"s1\"", "name = \"s/1\"", "backend.server.name"),
        ];
        for (from, to, key) in cases {
            let bad = GOOD.replace(from, to);
            assert_ne!(bad, GOOD, "{from}");
            let f = found(&bad);
            assert!(
                f.iter().any(|(k, l)| k == key && l.is_some()),
                "{to}: {f:?}"
            );
        }
        let clash = format!("{GOOD}\n[admin]\nlisten = \"127.0.0.1:8420\"\n");
        assert!(found(&clash).iter().any(|(k, _)| k == "admin.listen"));
    }
}
