//! The translation's walk over a `haproxy.cfg`: `global` and `defaults` settings, each
//! `frontend`, `backend` and `listen` handed to its translator, and the notes that name
//! every line not translated as written.

use super::backend::BackendDraft;
use super::frontend::FrontendDraft;
use super::haproxy_cfg::{Line, Section, parse};
use super::model::Imported;
use super::values::duration;

/// A line that was not translated, or only approximately, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Its line number.
    pub line: usize,
    /// The line as written.
    pub text: String,
    /// Why.
    pub why: String,
    /// True when nothing of it was translated; false when it was approximated.
    pub dropped: bool,
}

/// A translation: the configuration and its notes, in line order.
#[derive(Debug, Default)]
pub struct Report {
    /// The holdfast configuration.
    pub config: Imported,
    /// What was not translated as written.
    pub notes: Vec<Note>,
}

impl Report {
    /// Notes that `line` was not translated, because `why`.
    pub fn drop_line(&mut self, line: &Line, why: impl Into<String>) {
        self.note(line, why, true);
    }

    /// Notes that `line`'s keyword has no counterpart in holdfast.
    pub fn unknown(&mut self, line: &Line) {
        let keyword = match line.word(0) {
            k @ ("option" | "http-request" | "http-response" | "tcp-request" | "stats") => {
                format!("{k} {}", line.word(1))
            }
            k => k.to_string(),
        };
        self.drop_line(line, format!("`{keyword}` has no holdfast counterpart"));
    }

    /// Notes that `line` was translated only approximately, because `why`.
    pub fn approximate(&mut self, line: &Line, why: impl Into<String>) {
        self.note(line, why, false);
    }

    fn note(&mut self, line: &Line, why: impl Into<String>, dropped: bool) {
        self.notes.push(Note {
            line: line.number,
            text: line.text.clone(),
            why: why.into(),
            dropped,
        });
    }
}

/// What a `defaults` section gives the sections after it.
#[derive(Clone, Debug, Default)]
pub struct Defaults {
    /// `balance`.
    pub balance: Option<Line>,
    /// `option httpchk` and `http-check` lines.
    pub checks: Vec<Line>,
    /// `mode tcp`.
    pub tcp: bool,
}

/// Keywords that need no translation: holdfast always does what they ask.
const INHERENT: [(&str, &str); 8] = [
    ("mode", "http"),
    ("option", "forwardfor"),
    ("option", "httplog"),
    ("option", "dontlognull"),
    ("option", "redispatch"),
    ("option", "http-server-close"),
    ("option", "http-keep-alive"),
    ("log", "global"),
];

/// True when `line` asks for what holdfast does anyway.
pub fn inherent(line: &Line) -> bool {
    INHERENT
        .iter()
        .any(|(a, b)| line.word(0) == *a && line.word(1) == *b)
}

/// Translates a whole `haproxy.cfg`.
pub fn translate(text: &str) -> Report {
    let (before, sections) = parse(text);
    let mut report = Report::default();
    for line in &before {
        report.drop_line(line, "outside any section");
    }
    let mut defaults = Defaults::default();
    let mut frontends = Vec::new();
    let mut backends = Vec::new();
    let mut crt_base = String::new();
    for section in &sections {
        match section.kind.as_str() {
            "global" => global(section, &mut report, &mut crt_base),
            "defaults" => defaults = defaults_section(section, &mut report),
            "frontend" => frontends.push(FrontendDraft::read(
                section,
                &defaults,
                &crt_base,
                &mut report,
            )),
            "backend" => backends.push(BackendDraft::read(
                section,
                &section.lines,
                &defaults,
                &mut report,
            )),
            "listen" => {
                let (fe_lines, be_lines) = split_listen(section);
                let mut fe = section.clone();
                fe.lines = fe_lines;
                let mut draft = FrontendDraft::read(&fe, &defaults, &crt_base, &mut report);
                draft.default_backend = Some((section.name.clone(), None));
                frontends.push(draft);
                backends.push(BackendDraft::read(
                    section,
                    &be_lines,
                    &defaults,
                    &mut report,
                ));
            }
            other => report.drop_line(
                &section.header,
                format!("a `{other}` section has no holdfast counterpart (its lines are skipped)"),
            ),
        }
    }
    super::frontend::finish(frontends, &backends, &mut report);
    for b in backends {
        b.finish(&mut report);
    }
    report.notes.sort_by_key(|n| n.line);
    report
}

/// `global`: `maxconn`, `crt-base`; every other process setting is named as dropped.
fn global(section: &Section, report: &mut Report, crt_base: &mut String) {
    for line in &section.lines {
        match line.word(0) {
            "maxconn" => max_connections(line, report),
            "crt-base" => *crt_base = line.word(1).to_string(),
            "log" | "daemon" | "user" | "group" | "uid" | "gid" | "chroot" | "pidfile" | "nbthread"
            | "nbproc" | "master-worker" => report.drop_line(
                line,
                "a process setting: holdfast runs in the foreground under its supervisor, logs to standard error and uses one worker thread per CPU",
            ),
            k if k.starts_with("ssl-default") || k.starts_with("tune.ssl") => report.drop_line(
                line,
                "TLS policy is holdfast's own (rustls: TLS 1.2 and 1.3, safe cipher suites)",
            ),
            _ => report.unknown(line),
        }
    }
}

/// `maxconn N` anywhere: the node's connection limit (the largest one seen).
pub fn max_connections(line: &Line, report: &mut Report) {
    match line.word(1).parse::<u64>() {
        Ok(n) if n > 0 => {
            let m = report.config.max_connections.get_or_insert(n);
            *m = (*m).max(n);
        }
        _ => report.drop_line(line, "not a number of connections"),
    }
}

/// `timeout KIND VALUE` anywhere: holdfast's timeouts are per node.
pub fn timeout(line: &Line, report: &mut Report) {
    let key = match line.word(1) {
        "connect" => "connect",
        "server" => "server",
        "http-request" => "client_header",
        "http-keep-alive" | "client" => "keep_alive",
        other => {
            return report.drop_line(
                line,
                format!("`timeout {other}` has no holdfast counterpart"),
            );
        }
    };
    let Some(value) = duration(line.word(2)) else {
        return report.drop_line(line, "not a duration");
    };
    let timeouts = &mut report.config.timeouts;
    // `timeout http-keep-alive` wins over `timeout client` for the idle time between
    // requests, as in HAProxy.
    if line.word(1) == "client" && timeouts.contains_key("keep_alive") {
        return;
    }
    timeouts.insert(key, value);
}

fn defaults_section(section: &Section, report: &mut Report) -> Defaults {
    let mut d = Defaults::default();
    for line in &section.lines {
        match (line.word(0), line.word(1)) {
            ("mode", "tcp") => d.tcp = true,
            _ if inherent(line) => {}
            ("balance", _) => d.balance = Some(line.clone()),
            ("option", "httpchk") | ("http-check", _) => d.checks.push(line.clone()),
            ("timeout", _) => timeout(line, report),
            ("maxconn", _) => max_connections(line, report),
            ("retries", _) => report.approximate(
                line,
                "holdfast retries a failed connect once, on another server, for requests that can be replayed",
            ),
            _ => report.unknown(line),
        }
    }
    d
}

/// A `listen` section's lines: those of a frontend, and those of a backend.
fn split_listen(section: &Section) -> (Vec<Line>, Vec<Line>) {
    const FRONTEND: [&str; 8] = [
        "bind",
        "acl",
        "use_backend",
        "default_backend",
        "reqadd",
        "http-request",
        "maxconn",
        "capture",
    ];
    section.lines.iter().cloned().partition(|l| {
        FRONTEND.contains(&l.word(0)) || (l.word(0) == "timeout" && l.word(1) == "client")
    })
}
