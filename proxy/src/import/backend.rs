//! A HAProxy `backend` (or the back half of a `listen`) in holdfast's terms: `balance`,
//! persistence from `cookie` or a stick table (`stick on req.cook(X)`, `src`), the health
//! check from `option httpchk` and the servers' `check`, and each `server`.

use std::collections::BTreeMap;

use super::haproxy_cfg::{Line, Section};
use super::model::{Backend, Server, quoted};
use super::translate::{Defaults, Report, inherent, timeout};
use super::values::{duration, server_addr};

/// What a backend keys its persistence on.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    /// HAProxy inserts its cookie (`cookie NAME insert`).
    Insert(String),
    /// The application's cookie (`cookie NAME prefix|rewrite`, `stick on req.cook(X)`).
    Cookie(String),
    /// A request header (`stick on req.hdr(X)`).
    Header(String),
    /// The client address (`stick on src`, `balance source`).
    Source,
}

/// `server` options followed by a value.
const SERVER_ARGUMENT: [&str; 16] = [
    "maxconn",
    "minconn",
    "maxqueue",
    "port",
    "addr",
    "slowstart",
    "id",
    "resolvers",
    "init-addr",
    "track",
    "on-marked-down",
    "on-error",
    "verify",
    "sni",
    "ca-file",
    "agent-check",
];

/// A backend as read.
#[derive(Debug, Default)]
pub struct BackendDraft {
    backend: Backend,
    header: Option<String>,
    key: Option<Key>,
    checks: Vec<Line>,
    checked: bool,
    check_timing: BTreeMap<&'static str, String>,
    redirect: bool,
}

impl BackendDraft {
    /// Reads `lines` of `section` (a `backend`, or the back half of a `listen`).
    pub fn read(
        section: &Section,
        lines: &[Line],
        defaults: &Defaults,
        report: &mut Report,
    ) -> Self {
        let mut d = BackendDraft {
            checks: defaults.checks.clone(),
            ..BackendDraft::default()
        };
        d.backend.name = section.name.clone();
        if let Some(b) = &defaults.balance {
            d.balance(b, report);
        }
        for line in lines {
            d.line(line, report);
        }
        d
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.backend.name
    }

    /// True when it redirects plain HTTP to HTTPS.
    pub fn redirects_https(&self) -> bool {
        self.redirect
    }

    fn line(&mut self, line: &Line, report: &mut Report) {
        match (line.word(0), line.word(1)) {
            _ if inherent(line) => {}
            ("balance", _) => self.balance(line, report),
            ("cookie", _) => self.cookie(line, report),
            ("stick-table", _) => self.stick_table(line, report),
            ("stick", _) => self.stick(line, report),
            ("option", "httpchk") | ("http-check", _) => self.checks.push(line.clone()),
            ("server", _) => self.server(line, report),
            ("default-server", _) => self.timing(line, &line.words[1..], report),
            ("redirect", _) => self.redirect |= super::frontend::redirect_https(line, report),
            ("timeout", _) => timeout(line, report),
            ("http-request", "set-header" | "add-header")
                if line.word(2).eq_ignore_ascii_case("x-forwarded-proto") => {}
            ("retries", _) => report.approximate(
                line,
                "holdfast retries a failed connect once, on another server, for requests that can be replayed",
            ),
            ("mode", _) => report.drop_line(line, "holdfast proxies HTTP only"),
            _ => report.unknown(line),
        }
    }

    fn balance(&mut self, line: &Line, report: &mut Report) {
        self.backend.balance = match line.word(1) {
            "roundrobin" | "static-rr" => None,
            "leastconn" => Some("leastconn".into()),
            "source" => {
                self.key.get_or_insert(Key::Source);
                None
            }
            other => {
                report.drop_line(
                    line,
                    format!("`balance {other}` has no holdfast counterpart: round robin"),
                );
                None
            }
        };
    }

    fn cookie(&mut self, line: &Line, report: &mut Report) {
        let name = line.word(1).to_string();
        if name.is_empty() {
            return report.drop_line(line, "a cookie needs a name");
        }
        let mut words = line.words.iter().skip(2);
        let mut insert = false;
        while let Some(w) = words.next() {
            match w.as_str() {
                "insert" => insert = true,
                "indirect" | "nocache" | "httponly" | "secure" | "preserve" => {}
                "prefix" | "rewrite" => report.approximate(
                    line,
                    "holdfast learns the application's cookie from its Set-Cookie instead of rewriting it",
                ),
                "maxidle" => self.backend.ttl = words.next().and_then(|v| duration(v)),
                "maxlife" => self.backend.maxlife = words.next().and_then(|v| duration(v)),
                other => report.approximate(line, format!("cookie option `{other}` ignored")),
            }
        }
        self.key = Some(if insert {
            Key::Insert(name)
        } else {
            Key::Cookie(name)
        });
    }

    fn stick_table(&mut self, line: &Line, report: &mut Report) {
        let words = &line.words;
        match words.iter().position(|w| w == "expire") {
            Some(i) => self.backend.ttl = words.get(i + 1).and_then(|v| duration(v)),
            None => report.approximate(line, "no `expire`: holdfast's default ttl (30m) applies"),
        }
        if words.iter().any(|w| w == "peers") {
            report.approximate(
                line,
                "`peers`: holdfast replicates every table through its cluster",
            );
        }
    }

    fn stick(&mut self, line: &Line, report: &mut Report) {
        let sample = line.word(2);
        let inner = |p: &str| {
            let lower = sample.to_ascii_lowercase();
            let rest = lower.starts_with(p).then(|| &sample[p.len()..])?;
            rest.strip_suffix(')').map(str::to_string)
        };
        let key = match line.word(1) {
            "on" | "match" | "store-request" | "store-response" => {
                if sample == "src" {
                    Some(Key::Source)
                } else if let Some(c) = inner("req.cook(")
                    .or(inner("cook("))
                    .or(inner("res.cook("))
                    .or(inner("set-cookie("))
                {
                    Some(Key::Cookie(c))
                } else {
                    inner("req.hdr(").or(inner("hdr(")).map(Key::Header)
                }
            }
            _ => None,
        };
        match key {
            Some(k)
                if self
                    .key
                    .as_ref()
                    .is_none_or(|old| *old == k || *old == Key::Source) =>
            {
                self.key = Some(k)
            }
            Some(_) => report.approximate(line, "a second persistence key: the first one is kept"),
            None => report.drop_line(
                line,
                "only `stick on|match|store-response` of src, a cookie or a header translates",
            ),
        }
    }

    fn server(&mut self, line: &Line, report: &mut Report) {
        let addr = match server_addr(line.word(2)) {
            Ok(a) => a,
            Err(why) => return report.drop_line(line, format!("server left out: {why}")),
        };
        let mut server = Server {
            name: line.word(1).to_string(),
            addr,
            ..Server::default()
        };
        let mut words = line.words.iter().skip(3);
        while let Some(w) = words.next() {
            match w.as_str() {
                "check" => self.checked = true,
                "cookie" => server.cookie = words.next().cloned(),
                "weight" => {
                    server.weight = words
                        .next()
                        .and_then(|v| v.parse().ok())
                        .filter(|w| *w != 1)
                }
                "disabled" | "backup" => {
                    server.weight = Some(0);
                    report.approximate(line, format!("`{w}`: weight 0 (no new clients); use `holdfast ctl maint` or `ready` for the admin state"));
                }
                "inter" | "rise" | "fall" => {
                    let value = words.next().cloned().unwrap_or_default();
                    self.timing(line, &[w.clone(), value], report);
                }
                "ssl" => {
                    return report.drop_line(
                        line,
                        "server left out: holdfast speaks plain HTTP to servers",
                    );
                }
                other => {
                    report.approximate(line, format!("server option `{other}` ignored"));
                    if SERVER_ARGUMENT.contains(&other) {
                        words.next();
                    }
                }
            }
        }
        self.backend.servers.push(server);
    }

    /// `inter`, `rise`, `fall` of a server or `default-server`: the backend's check timing.
    fn timing(&mut self, line: &Line, words: &[String], report: &mut Report) {
        let mut it = words.iter();
        while let Some(w) = it.next() {
            let value = it.next().map_or("", String::as_str);
            let (key, v) = match w.as_str() {
                "inter" => ("interval", duration(value).map(|d| quoted(&d))),
                "rise" | "fall" => (
                    if w == "rise" { "rise" } else { "fall" },
                    value.parse::<u32>().ok().map(|n| n.to_string()),
                ),
                "check" => continue,
                other => {
                    report.approximate(line, format!("`{other}` ignored"));
                    continue;
                }
            };
            match v {
                Some(v) => {
                    self.check_timing.insert(key, v);
                }
                None => report.drop_line(line, format!("`{w} {value}` is not a valid value")),
            }
        }
    }

    /// The health check: HTTP from `option httpchk` / `http-check`, else TCP.
    fn check(&self, report: &mut Report) -> Option<BTreeMap<&'static str, String>> {
        if !self.checked {
            return None;
        }
        let mut check = self.check_timing.clone();
        check.insert("type", quoted("tcp"));
        for line in &self.checks {
            http_check(line, &mut check, report);
        }
        Some(check)
    }

    /// The backend into the report's configuration.
    pub fn finish(mut self, report: &mut Report) {
        self.backend.check = self.check(report);
        let (persistence, cookie) = match self.key.take() {
            Some(Key::Insert(c)) => ("insert", Some(c)),
            Some(Key::Cookie(c)) => ("learn", Some(c)),
            Some(Key::Header(h)) => {
                self.header = Some(h);
                ("learn", None)
            }
            Some(Key::Source) => ("source", None),
            None => ("none", None),
        };
        if persistence != "insert" {
            for s in &mut self.backend.servers {
                s.cookie = None;
            }
        }
        self.backend.persistence = persistence.into();
        self.backend.cookie = cookie;
        self.backend.header = self.header;
        report.config.backends.push(self.backend);
    }
}

/// `option httpchk [[METHOD] URI [VERSION]]`, `http-check expect status N`,
/// `http-check send meth M uri U hdr Host H`.
fn http_check(line: &Line, check: &mut BTreeMap<&'static str, String>, report: &mut Report) {
    check.insert("type", quoted("http"));
    let w = &line.words;
    match (line.word(0), line.word(1)) {
        ("option", "httpchk") => {
            let (method, uri) = match w.len() {
                2 => ("OPTIONS", "/"),
                3 => ("OPTIONS", w[2].as_str()),
                _ => (w[2].as_str(), w[3].as_str()),
            };
            check.insert("method", quoted(method));
            check.insert("path", quoted(uri));
            if let Some(host) = old_style_host(&line.text) {
                check.insert("host", quoted(&host));
            }
        }
        ("http-check", "expect") if line.word(2) == "status" => {
            check.insert("expect", quoted(line.word(3)));
        }
        ("http-check", "send") => {
            let mut it = w.iter().skip(2);
            while let Some(k) = it.next() {
                let v = it.next().map_or("", String::as_str);
                match k.as_str() {
                    "meth" => check.insert("method", quoted(v)),
                    "uri" => check.insert("path", quoted(v)),
                    "hdr" if v.eq_ignore_ascii_case("host") => {
                        check.insert("host", quoted(it.next().map_or("", String::as_str)))
                    }
                    _ => None,
                };
            }
        }
        _ => report.drop_line(line, "this health-check form does not translate"),
    }
}

/// The `Host` an old-style check sends in its version string (`HTTP/1.1\r\nHost:\ h`).
fn old_style_host(text: &str) -> Option<String> {
    let at = text.to_ascii_lowercase().find("host:")?;
    let rest = text[at + 5..].trim_start_matches(['\\', ' ']);
    let host: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '\\')
        .collect();
    (!host.is_empty()).then_some(host)
}
