//! `haproxy.cfg` read the way HAProxy reads it: sections opened by a keyword at the start
//! of a line, each line split into words on blanks, with `\` escaping the next character,
//! quotes grouping words, and `#` starting a comment. Every line keeps its number.

/// One configuration line, split into words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number in the file.
    pub number: usize,
    /// The line as written (trimmed), for reports.
    pub text: String,
    /// Its words, escapes and quotes resolved.
    pub words: Vec<String>,
}

impl Line {
    /// The `i`th word, or "".
    pub fn word(&self, i: usize) -> &str {
        self.words.get(i).map_or("", String::as_str)
    }
}

/// A section: `global`, `defaults`, `frontend NAME`, `backend NAME`, `listen NAME`, or
/// one holdfast has no counterpart for (`userlist`, `peers`, `resolvers`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// The section keyword.
    pub kind: String,
    /// Its name ("" for `global` and an unnamed `defaults`).
    pub name: String,
    /// The line that opens it.
    pub header: Line,
    /// Its lines, in order.
    pub lines: Vec<Line>,
}

/// The keywords that open a section.
const SECTIONS: [&str; 14] = [
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "userlist",
    "peers",
    "resolvers",
    "cache",
    "program",
    "http-errors",
    "ring",
    "mailers",
    "crt-store",
];

/// Splits `text` into sections; lines before the first section are returned apart.
pub fn parse(text: &str) -> (Vec<Line>, Vec<Section>) {
    let mut before = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let words = split(raw);
        let Some(first) = words.first() else {
            continue;
        };
        let line = Line {
            number: i + 1,
            text: raw.trim().to_string(),
            words: words.clone(),
        };
        if SECTIONS.contains(&first.as_str()) {
            sections.push(Section {
                kind: first.clone(),
                name: line.word(1).to_string(),
                header: line,
                lines: Vec::new(),
            });
        } else if let Some(s) = sections.last_mut() {
            s.lines.push(line);
        } else {
            before.push(line);
        }
    }
    (before, sections)
}

/// The words of one line: blanks separate, `\x` is a literal `x`, `"…"` and `'…'`
/// group, `#` outside quotes ends the line.
pub fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (q, None) if q == '"' || q == '\'' => {
                quote = Some(q);
                in_word = true;
            }
            (q, Some(open)) if q == open => quote = None,
            ('#', None) => break,
            (c, None) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (c, _) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_haproxys_quoting() {
        assert_eq!(
            split(r"   reqadd X-Forwarded-Proto:\ https   # set it"),
            ["reqadd", "X-Forwarded-Proto: https"]
        );
        assert_eq!(
            split(r#"option httpchk HEAD /t.php HTTP/1.0\nUser-Agent:\ HAProxy"#),
            [
                "option",
                "httpchk",
                "HEAD",
                "/t.php",
                "HTTP/1.0nUser-Agent: HAProxy"
            ]
        );
        assert_eq!(
            split(r#"acl a hdr(host) -i "x y" 'z'"#),
            ["acl", "a", "hdr(host)", "-i", "x y", "z"]
        );
        assert!(split("   # only a comment").is_empty());
    }

    #[test]
    fn sections_keep_their_lines_and_numbers() {
        let (before, sections) =
            parse("# top\nglobal\n  maxconn 10\n\nbackend b\n  server s 1.2.3.4:80\n");
        assert!(before.is_empty());
        assert_eq!(sections.len(), 2);
        assert_eq!(
            (sections[1].kind.as_str(), sections[1].name.as_str()),
            ("backend", "b")
        );
        assert_eq!(sections[1].lines[0].number, 6);
        assert_eq!(sections[0].lines[0].words, ["maxconn", "10"]);
    }
}
