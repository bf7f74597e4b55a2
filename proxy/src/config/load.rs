//! Reading a config file: TOML syntax and type errors with their line, then the checks
//! serde cannot make (duplicates, membership), each naming the key and the line.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use super::Config;

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
    // toml names an unknown or missing key in backticks; otherwise the key is whatever
    // stands before `=` on the offending line.
    let names_key = ["unknown field", "missing field", "duplicate key"]
        .iter()
        .any(|m| message.contains(m));
    let key = message
        .split('`')
        .nth(1)
        .filter(|_| names_key)
        .map(str::to_string)
        .or_else(|| {
            let l = text.lines().nth(line? - 1)?;
            let (k, _) = l.split_once('=')?;
            Some(k.trim().to_string()).filter(|k| !k.is_empty() && !k.contains(['{', '[']))
        })
        .unwrap_or_else(|| "(syntax)".into());
    Problem { key, line, message }
}

pub(super) fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line of the `nth` (0-based) occurrence of `needle` in `text`, if any.
pub(super) fn find_line(text: &str, needle: &str, nth: usize) -> Option<usize> {
    text.match_indices(needle)
        .nth(nth)
        .map(|(offset, _)| line_at(text, offset))
}

/// The problems found in one config file's `text`, each at its key and line.
pub(super) struct Problems<'t> {
    text: &'t str,
    found: Vec<Problem>,
}

impl<'t> Problems<'t> {
    fn new(text: &'t str) -> Problems<'t> {
        Problems {
            text,
            found: Vec::new(),
        }
    }

    /// Records that `key`, at `line`, is wrong: `message`.
    pub(super) fn add(&mut self, key: &str, line: Option<usize>, message: impl Into<String>) {
        self.found.push(Problem {
            key: key.to_string(),
            line,
            message: message.into(),
        });
    }

    /// The line of the `nth` (0-based) occurrence of `needle` in the file.
    pub(super) fn line(&self, needle: &str, nth: usize) -> Option<usize> {
        find_line(self.text, needle, nth)
    }

    /// For every `(key, zero)` whose value is zero: "must be greater than zero", at the
    /// first line naming the key's last part.
    pub(super) fn positive(&mut self, values: &[(&str, bool)]) {
        for &(key, zero) in values {
            if zero {
                let leaf = key.rsplit('.').next().unwrap_or(key);
                self.add(key, self.line(leaf, 0), "must be greater than zero");
            }
        }
    }
}

fn check(text: &str, config: &Config) -> Vec<Problem> {
    let mut problems = Problems::new(text);
    check_cluster(&mut problems, config);
    check_backends(&mut problems, config);
    super::proxy_check::check(&mut problems, config);
    problems.found
}

fn check_cluster(problems: &mut Problems, config: &Config) {
    let cluster = &config.cluster;
    let mut ids = BTreeSet::new();
    for m in &cluster.members {
        if !ids.insert(m.id) {
            let line = problems.line(&format!("id = {}", m.id), 1);
            let message = format!("duplicate member id {}", m.id);
            problems.add("cluster.members.id", line, message);
        }
    }
    if !cluster.members.is_empty() && !ids.contains(&config.node.id) {
        let message = format!(
            "this node (node.id = {}) is not among the members",
            config.node.id
        );
        problems.add("cluster.members", problems.line("members", 0), message);
    }
    problems.positive(&[
        ("cluster.tick", cluster.tick.is_zero()),
        ("cluster.flush", cluster.flush.is_zero()),
    ]);
    if cluster.secret.len() < 16 && cluster.tls.is_none() {
        let line = problems.line("secret", 0);
        problems.add("cluster.secret", line, "must be at least 16 characters");
    }
    if let Some(tls) = &cluster.tls {
        for (key, path) in [
            ("cluster.tls.ca", &tls.ca),
            ("cluster.tls.cert", &tls.cert),
            ("cluster.tls.key", &tls.key),
        ] {
            if let Err(e) = std::fs::metadata(path) {
                let message = format!("cannot read {}: {e}", path.display());
                problems.add(key, problems.line("tls", 0), message);
            }
        }
    }
}

fn check_backends(problems: &mut Problems, config: &Config) {
    let mut backends = BTreeSet::new();
    for b in &config.backends {
        let name = format!("name = \"{}\"", b.name);
        if !backends.insert(b.name.as_str()) {
            let message = format!("duplicate backend {:?}", b.name);
            problems.add("backend.name", problems.line(&name, 1), message);
        }
        if b.ttl.is_zero() {
            let message = format!("backend {:?}: ttl must be > 0", b.name);
            problems.add("backend.ttl", problems.line(&name, 0), message);
        }
        let mut servers = BTreeSet::new();
        for s in &b.servers {
            if !servers.insert(s.name.as_str()) {
                let line = problems.line(&format!("name = \"{}\"", s.name), 1);
                let message = format!("duplicate server {:?} in backend {:?}", s.name, b.name);
                problems.add("backend.server.name", line, message);
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
}
