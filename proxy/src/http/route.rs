//! A frontend's routing table: requests matched by host (exact or `*.domain` wildcard)
//! and path prefix to a backend, first match wins, else the default backend.

use std::sync::Arc;

use super::headers::host_name;
use super::pool::Pool;
use crate::config::FrontendSection;

/// How a route matches the host.
#[derive(Debug)]
enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.com` stored as `.example.com`: any name ending with it.
    Suffix(String),
}

#[derive(Debug)]
struct Route {
    host: HostMatch,
    prefix: Option<String>,
    backend: Arc<Pool>,
}

/// A frontend's compiled routes.
#[derive(Debug)]
pub struct Router {
    routes: Vec<Route>,
    default: Option<Arc<Pool>>,
}

impl Router {
    /// Compiles `frontend`'s routes; `pool` resolves backend names (validated by config).
    pub fn new(frontend: &FrontendSection, pool: impl Fn(&str) -> Option<Arc<Pool>>) -> Router {
        let routes = frontend
            .routes
            .iter()
            .filter_map(|r| {
                let host = match r.host.as_deref() {
                    None => HostMatch::Any,
                    Some(h) => match h.strip_prefix('*') {
                        Some(rest) => HostMatch::Suffix(rest.to_ascii_lowercase()),
                        None => HostMatch::Exact(host_name(h).into_owned()),
                    },
                };
                Some(Route {
                    host,
                    prefix: r.path_prefix.clone(),
                    backend: pool(&r.backend)?,
                })
            })
            .collect();
        Router {
            routes,
            default: frontend.default_backend.as_deref().and_then(pool),
        }
    }

    /// The backend for a request to `host` (as sent, port allowed) and `path`.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Arc<Pool>> {
        let name = host.map(host_name).unwrap_or_default();
        self.routes
            .iter()
            .find(|r| {
                let host_ok = match &r.host {
                    HostMatch::Any => true,
                    HostMatch::Exact(h) => **h == *name,
                    HostMatch::Suffix(s) => name.len() > s.len() && name.ends_with(s.as_str()),
                };
                host_ok && r.prefix.as_deref().is_none_or(|p| path.starts_with(p))
            })
            .map(|r| &r.backend)
            .or(self.default.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_host_and_prefix() {
        let text = r#"
[node]
id = 1
[[backend]]
name = "a"
[[backend]]
name = "b"
[[backend]]
name = "c"
[[frontend]]
name = "f"
listen = "127.0.0.1:1"
default_backend = "c"
routes = [
  { host = "app.local", backend = "a" },
  { host = "*.example.com", path_prefix = "/api", backend = "b" },
]
"#;
        let config = crate::config::parse(text).unwrap();
        let pools: Vec<Arc<Pool>> = config
            .backends
            .iter()
            .map(|b| Arc::new(Pool::new(b, None)))
            .collect();
        let router = Router::new(&config.frontends[0], |n| {
            pools.iter().find(|p| &*p.name == n).cloned()
        });
        let name = |h: Option<&str>, p: &str| router.route(h, p).map(|b| b.name.to_string());
        assert_eq!(name(Some("APP.local:8080"), "/x").as_deref(), Some("a"));
        assert_eq!(name(Some("x.example.com"), "/api/v1").as_deref(), Some("b"));
        assert_eq!(name(Some("x.example.com"), "/web").as_deref(), Some("c"));
        assert_eq!(name(Some("example.com"), "/api").as_deref(), Some("c"));
        assert_eq!(name(None, "/").as_deref(), Some("c"));
    }
}
