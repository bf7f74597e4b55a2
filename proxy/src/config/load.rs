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

fn check(text: &str, config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, line: Option<usize>, message: String| {
        problems.push(Problem {
            key: key.to_string(),
            line,
            message,
        })
    };
    let cluster = &config.cluster;
    let mut ids = BTreeSet::new();
    for m in &cluster.members {
        if !ids.insert(m.id) {
            let line = find_line(text, &format!("id = {}", m.id), 1);
            problem(
                "cluster.members.id",
                line,
                format!("duplicate member id {}", m.id),
            );
        }
    }
    if !cluster.members.is_empty() && !ids.contains(&config.node.id) {
        problem(
            "cluster.members",
            find_line(text, "members", 0),
            format!(
                "this node (node.id = {}) is not among the members",
                config.node.id
            ),
        );
    }
    for (key, value) in [
        ("cluster.tick", cluster.tick),
        ("cluster.flush", cluster.flush),
    ] {
        if value.is_zero() {
            let leaf = key.rsplit('.').next().unwrap_or(key);
            problem(
                key,
                find_line(text, leaf, 0),
                "must be greater than zero".into(),
            );
        }
    }
    if cluster.secret.len() < 16 && cluster.tls.is_none() {
        problem(
            "cluster.secret",
            find_line(text, "secret", 0),
            "must be at least 16 characters".into(),
        );
    }
    if let Some(tls) = &cluster.tls {
        for (key, path) in [
            ("cluster.tls.ca", &tls.ca),
            ("cluster.tls.cert", &tls.cert),
            ("cluster.tls.key", &tls.key),
        ] {
            if let Err(e) = std::fs::metadata(path) {
                problem(
                    key,
                    find_line(text, "tls", 0),
                    format!("cannot read {}: {e}", path.display()),
                );
            }
        }
    }
    let mut backends = BTreeSet::new();
    for b in &config.backends {
        let name_line = |nth| find_line(text, &format!("name = \"{}\"", b.name), nth);
        if !backends.insert(b.name.as_str()) {
            problem(
                "backend.name",
                name_line(1),
                format!("duplicate backend {:?}", b.name),
            );
        }
        if b.ttl.is_zero() {
            problem(
                "backend.ttl",
                name_line(0),
                format!("backend {:?}: ttl must be > 0", b.name),
            );
        }
        let mut servers = BTreeSet::new();
        for s in &b.servers {
            if !servers.insert(s.name.as_str()) {
                let line = find_line(text, &format!("name = \"{}\"", s.name), 1);
                problem(
                    "backend.server.name",
                    line,
                    format!("duplicate server {:?} in backend {:?}", s.name, b.name),
                );
            }
        }
    }
    problems.extend(super::proxy_check::check(text, config));
    problems
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
