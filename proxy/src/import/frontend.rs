//! A HAProxy `frontend` (or the front half of a `listen`) in holdfast's terms: each
//! `bind` a frontend with its certificates, `acl` + `use_backend` on the host or the path
//! as routes, `default_backend`, `redirect scheme https`; the headers holdfast sets itself.

use std::collections::HashMap;

use super::backend::BackendDraft;
use super::haproxy_cfg::{Line, Section};
use super::model::{Frontend, Route};
use super::translate::{Defaults, Report, inherent, max_connections, timeout};
use super::values::listen;

/// What an ACL tests, as far as routes can express it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Test {
    /// The host is one of these (exact names or `*.suffix`).
    Host(Vec<String>),
    /// The path starts with one of these.
    Path(Vec<String>),
}

/// `bind` options followed by a value.
const WITH_ARGUMENT: [&str; 13] = [
    "ciphers",
    "ciphersuites",
    "ssl-min-ver",
    "ssl-max-ver",
    "curves",
    "ecdhe",
    "ca-file",
    "verify",
    "crt-list",
    "name",
    "process",
    "maxconn",
    "interface",
];

/// One `bind` line translated.
#[derive(Clone, Debug)]
struct Bind {
    listen: String,
    files: Vec<String>,
    dirs: Vec<String>,
}

/// A frontend as read, before the backends are known.
#[derive(Debug)]
pub struct FrontendDraft {
    name: String,
    header: Line,
    binds: Vec<Bind>,
    acls: HashMap<String, Vec<Test>>,
    routes: Vec<(Route, Line)>,
    /// The backend of requests no route matches, and its line.
    pub default_backend: Option<(String, Option<Line>)>,
    redirect: bool,
}

impl FrontendDraft {
    /// Reads `section`'s lines.
    pub fn read(
        section: &Section,
        defaults: &Defaults,
        crt_base: &str,
        report: &mut Report,
    ) -> Self {
        let mut d = FrontendDraft {
            name: section.name.clone(),
            header: section.header.clone(),
            binds: Vec::new(),
            acls: HashMap::new(),
            routes: Vec::new(),
            default_backend: None,
            redirect: false,
        };
        if defaults.tcp {
            report.drop_line(
                &section.header,
                "`mode tcp` from defaults: holdfast proxies HTTP only",
            );
        }
        for line in &section.lines {
            d.line(line, crt_base, report);
        }
        d
    }

    fn line(&mut self, line: &Line, crt_base: &str, report: &mut Report) {
        match line.word(0) {
            _ if inherent(line) => {}
            "bind" => self.bind(line, crt_base, report),
            "acl" => self.acl(line, report),
            "use_backend" => self.use_backend(line, report),
            "default_backend" => {
                self.default_backend = Some((line.word(1).to_string(), Some(line.clone())))
            }
            "redirect" => self.redirect |= redirect_https(line, report),
            "reqadd" | "http-request" if sets_forwarded_proto(line) => {}
            "maxconn" => max_connections(line, report),
            "timeout" => timeout(line, report),
            "mode" => report.drop_line(line, "holdfast proxies HTTP only"),
            _ => report.unknown(line),
        }
    }

    fn bind(&mut self, line: &Line, crt_base: &str, report: &mut Report) {
        let (addr, exact) = match listen(line.word(1)) {
            Ok(a) => a,
            Err(why) => return report.drop_line(line, why),
        };
        if !exact {
            report.approximate(
                line,
                format!("not an IP address: listening on {addr}; set the address"),
            );
        }
        let mut bind = Bind {
            listen: addr,
            files: Vec::new(),
            dirs: Vec::new(),
        };
        let words = &line.words[2..];
        let mut i = 0;
        while i < words.len() {
            match words[i].as_str() {
                // holdfast offers h2 and http/1.1 by ALPN anyway.
                "ssl" | "alpn" | "npn" => i += usize::from(words[i] != "ssl"),
                "crt" => {
                    let path = join(crt_base, words.get(i + 1).map_or("", String::as_str));
                    match path.ends_with('/')
                        || !path.rsplit('/').next().unwrap_or("").contains('.')
                    {
                        true => bind.dirs.push(path.trim_end_matches('/').to_string()),
                        false => bind.files.push(path),
                    }
                    i += 1;
                }
                other => {
                    report.approximate(line, format!("bind option `{other}` ignored"));
                    i += usize::from(WITH_ARGUMENT.contains(&other));
                }
            }
            i += 1;
        }
        if bind.dirs.len() > 1 {
            report.approximate(
                line,
                "holdfast reads one certificate directory per frontend: the first is kept",
            );
        }
        self.binds.push(bind);
    }

    fn acl(&mut self, line: &Line, report: &mut Report) {
        match test(&line.words[2..]) {
            Ok(t) => self
                .acls
                .entry(line.word(1).to_string())
                .or_default()
                .push(t),
            Err(why) => report.drop_line(line, why),
        }
    }

    fn use_backend(&mut self, line: &Line, report: &mut Report) {
        let backend = line.word(1).to_string();
        if line.word(2) != "if" {
            return report.drop_line(line, "only `use_backend NAME if ACL…` translates to routes");
        }
        match routes(&line.words[3..], &self.acls, &backend) {
            Ok(r) => self.routes.extend(r.into_iter().map(|r| (r, line.clone()))),
            Err(why) => report.drop_line(line, why),
        }
    }
}

fn join(base: &str, path: &str) -> String {
    if base.is_empty() || path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", base.trim_end_matches('/'))
    }
}

/// `reqadd X-Forwarded-Proto:\ https` or `http-request set-header X-Forwarded-Proto …`:
/// holdfast sets it itself from the listener.
fn sets_forwarded_proto(line: &Line) -> bool {
    let text = line.words.join(" ").to_ascii_lowercase();
    text.contains("x-forwarded-proto")
        && (line.word(0) == "reqadd" || matches!(line.word(1), "set-header" | "add-header"))
}

/// `redirect scheme https [code N] [if !{ ssl_fc }]`: true when it redirects to HTTPS.
pub fn redirect_https(line: &Line, report: &mut Report) -> bool {
    let condition = line.words.iter().position(|w| w == "if" || w == "unless");
    let plain_only = condition.is_none_or(|i| {
        let rest = line.words[i..].join(" ");
        rest == "if !{ ssl_fc }" || rest == "unless { ssl_fc }"
    });
    if line.word(1) == "scheme" && line.word(2) == "https" && plain_only {
        return true;
    }
    report.drop_line(
        line,
        "only `redirect scheme https` (on plain HTTP) translates",
    );
    false
}

/// An ACL's criterion, flags and values as a test routes can express.
fn test(words: &[String]) -> Result<Test, String> {
    let criterion = words
        .first()
        .map_or("", String::as_str)
        .to_ascii_lowercase();
    let mut values = Vec::new();
    let mut matching = None;
    let mut rest = words.iter().skip(1);
    while let Some(w) = rest.next() {
        match w.as_str() {
            "-i" | "--" => {}
            "-m" => matching = rest.next().cloned(),
            "-f" => return Err("patterns from a file (-f) are not translated".into()),
            v => values.push(v.to_ascii_lowercase()),
        }
    }
    let host = |v: &String| v.split(':').next().unwrap_or("").to_string();
    let base = criterion
        .trim_start_matches("req.")
        .split(',')
        .next()
        .unwrap_or("");
    match (base, matching.as_deref()) {
        ("hdr(host)", None | Some("str")) => Ok(Test::Host(values.iter().map(host).collect())),
        ("hdr_end(host)", None) | ("hdr(host)", Some("end")) => Ok(Test::Host(
            values
                .iter()
                .map(|v| format!("*.{}", host(v).trim_start_matches('.')))
                .collect(),
        )),
        ("hdr_dom(host)", None) | ("hdr(host)", Some("dom")) => Ok(Test::Host(
            values
                .iter()
                .flat_map(|v| [host(v), format!("*.{}", host(v))])
                .collect(),
        )),
        ("path_beg" | "url_beg", None) | ("path" | "url", Some("beg")) => Ok(Test::Path(values)),
        _ => Err(format!(
            "ACL `{}` does not translate to a route (host, host suffix or path prefix)",
            words.join(" ")
        )),
    }
}

/// The routes of `use_backend backend if CONDITION`: alternatives (`||`, `or`) of ACLs
/// that all hold (at most one host test and one path test each).
fn routes(
    cond: &[String],
    acls: &HashMap<String, Vec<Test>>,
    backend: &str,
) -> Result<Vec<Route>, String> {
    let mut out = Vec::new();
    for alternative in cond.split(|w| w == "||" || w == "or") {
        let (mut hosts, mut paths): (Option<Vec<String>>, Option<Vec<String>>) = (None, None);
        let mut words = alternative.iter();
        while let Some(w) = words.next() {
            let tests = if w == "{" {
                let inner: Vec<String> =
                    words.by_ref().take_while(|w| *w != "}").cloned().collect();
                vec![test(&inner)?]
            } else if w.starts_with('!') {
                return Err("negated conditions do not translate to routes".into());
            } else {
                acls.get(w.as_str())
                    .cloned()
                    .ok_or(format!("unknown or untranslated ACL `{w}`"))?
            };
            for t in tests {
                let slot = match &t {
                    Test::Host(_) => &mut hosts,
                    Test::Path(_) => &mut paths,
                };
                let values = match t {
                    Test::Host(v) | Test::Path(v) => v,
                };
                slot.get_or_insert_with(Vec::new).extend(values);
            }
        }
        for host in hosts
            .clone()
            .map_or(vec![None], |h| h.into_iter().map(Some).collect())
        {
            for path in paths
                .clone()
                .map_or(vec![None], |p| p.into_iter().map(Some).collect())
            {
                out.push(Route {
                    host: host.clone(),
                    path_prefix: path,
                    backend: backend.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Frontends into the report's configuration, one per `bind` line; a plain-HTTP
/// frontend that reaches a backend redirecting to HTTPS redirects too. Routes to a
/// backend that is not there are dropped.
pub fn finish(drafts: Vec<FrontendDraft>, backends: &[BackendDraft], report: &mut Report) {
    let exists = |name: &str| backends.iter().any(|b| b.name() == name);
    for d in drafts {
        let mut routes = Vec::new();
        for (route, line) in &d.routes {
            match exists(&route.backend) {
                true => routes.push(route.clone()),
                false => report.drop_line(line, format!("no backend `{}`", route.backend)),
            }
        }
        let default_backend = match &d.default_backend {
            Some((name, _)) if exists(name) => Some(name.clone()),
            Some((name, Some(line))) => {
                report.drop_line(
                    line,
                    format!("no backend `{name}`: requests no route matches get 503"),
                );
                None
            }
            _ => None,
        };
        if routes.is_empty() && default_backend.is_none() {
            report.drop_line(&d.header, "nothing to route to: the frontend is left out");
            continue;
        }
        let reaches = |b: &BackendDraft| {
            default_backend.as_deref() == Some(b.name())
                || routes.iter().any(|r| r.backend == b.name())
        };
        let backend_redirects = backends.iter().any(|b| b.redirects_https() && reaches(b));
        let many = d.binds.len() > 1;
        for (i, bind) in d.binds.iter().enumerate() {
            let tls = !bind.files.is_empty() || !bind.dirs.is_empty();
            report.config.frontends.push(Frontend {
                name: if many {
                    format!("{}-{}", d.name, i + 1)
                } else {
                    d.name.clone()
                },
                listen: bind.listen.clone(),
                cert_files: bind.files.clone(),
                cert_dirs: bind.dirs.iter().take(1).cloned().collect(),
                routes: routes.clone(),
                default_backend: default_backend.clone(),
                redirect_https: !tls && (d.redirect || backend_redirects),
            });
        }
    }
}
