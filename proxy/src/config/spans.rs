//! Where each key of a config file is, from the TOML parser's own spans: a dotted path
//! with array indices (`backend[1].server[0].weight`) to its 1-based line, so a problem
//! is reported at the line that holds it, not at the first line with similar text.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The lines of a file's keys, and the extent of each value.
#[derive(Debug, Default)]
pub struct Spans {
    lines: BTreeMap<String, usize>,
    extents: Vec<(String, Range<usize>)>,
}

impl Spans {
    /// The spans of `text`; empty if it is not TOML (its syntax error says where).
    pub fn of(text: &str) -> Spans {
        let mut spans = Spans::default();
        if let Ok(root) = DeTable::parse(text) {
            for (key, value) in root.get_ref() {
                spans.walk(text, key.get_ref(), key.span(), value);
            }
        }
        spans
    }

    fn walk(&mut self, text: &str, path: &str, key: Range<usize>, value: &Spanned<DeValue>) {
        self.lines
            .insert(path.to_string(), line_at(text, key.start));
        self.extents.push((path.to_string(), value.span()));
        match value.get_ref() {
            DeValue::Table(table) => {
                for (k, v) in table {
                    self.walk(text, &format!("{path}.{}", k.get_ref()), k.span(), v);
                }
            }
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.walk(text, &format!("{path}[{i}]"), item.span(), item);
                }
            }
            _ => {}
        }
    }

    /// The line of `path`, or of its nearest enclosing key that has one.
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(line) = self.lines.get(p) {
                return Some(*line);
            }
            p = &p[..p.rfind(['.', '['])?];
        }
    }

    /// The innermost key whose value covers byte `offset`, as a dotted path.
    pub fn path_at(&self, offset: usize) -> Option<&str> {
        self.extents
            .iter()
            .filter(|(_, r)| r.contains(&offset))
            .min_by_key(|(_, r)| r.len())
            .map(|(p, _)| p.as_str())
    }
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// `path` without its array indices: the key as `docs/config.md` names it.
pub fn key_of(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut skipping = false;
    for c in path.chars() {
        match c {
            '[' => skipping = true,
            ']' => skipping = false,
            c if !skipping => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_on_their_own_lines() {
        let text = "[node]\nid = 1\n\n[[backend]]\nname = \"a\"\n\n[[backend]]\nname = \"b\"\n\
                    server = [\n  { name = \"s1\", weight = 1 },\n  { name = \"s2\", weight = 300 },\n]\n";
        let s = Spans::of(text);
        assert_eq!(s.line("node.id"), Some(2));
        assert_eq!(s.line("backend[1].name"), Some(8));
        assert_eq!(s.line("backend[1].server[1].weight"), Some(11));
        assert_eq!(s.line("backend[1].server[1].nothing"), Some(11));
        assert_eq!(
            key_of("backend[1].server[1].weight"),
            "backend.server.weight"
        );
        let at = text.find("300").unwrap();
        assert_eq!(s.path_at(at), Some("backend[1].server[1].weight"));
    }
}
