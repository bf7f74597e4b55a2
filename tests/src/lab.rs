//! A data-plane lab: real `holdfast backend` processes s1..s3 and a cluster of real nodes
//! whose config gets one HTTP frontend per node and backends over those servers, with the
//! admin calls the data-plane tests need (server states, metrics).

use std::time::Duration;

use holdfast::api::{AdminState, paths};

use crate::backend::BackendProc;
use crate::configs::MODES;
use crate::node::{Cluster, ClusterOptions};

/// How long a lab waits for anything cluster-wide.
pub const PATIENCE: Duration = Duration::from_secs(40);

/// Backends s1..s3 and the cluster in front of them.
pub struct Lab {
    /// The node processes.
    pub cluster: Cluster,
    /// The backend processes, `backends[i]` named `s{i+1}`.
    pub backends: Vec<BackendProc>,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// Starts three backends and `nodes` nodes. `config` gets the `server = [...]` list of
    /// the three backends and returns the TOML appended to every node's config; it may use
    /// `{http}` for the node's frontend address.
    pub fn start(nodes: usize, config: impl Fn(&str) -> String) -> Lab {
        Lab::start_with(nodes, ClusterOptions::default(), config)
    }

    /// [`Lab::start`] with `options` (its `extra` is replaced by what `config` returns).
    pub fn start_with(
        nodes: usize,
        options: ClusterOptions,
        config: impl Fn(&str) -> String,
    ) -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let backends: Vec<BackendProc> = (1..=3)
            .map(|i| BackendProc::start(&format!("s{i}"), dir.path()))
            .collect();
        let servers = format!(
            "server = [{}]",
            backends
                .iter()
                .map(|b| format!("{{ name = \"{}\", addr = \"{}\" }}", b.name, b.addr))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let options = ClusterOptions {
            extra: config(&servers),
            ..options
        };
        let cluster = Cluster::start(nodes, options);
        let lab = Lab {
            cluster,
            backends,
            _dir: dir,
        };
        let all: Vec<usize> = (0..nodes).collect();
        lab.cluster.wait_frontends(&all, PATIENCE);
        lab
    }

    /// Frontend address of node `i`.
    pub fn http(&self, i: usize) -> String {
        self.cluster.node(i).http.clone()
    }

    /// Sets `backend/server` to `state` through node `i` and waits until every node
    /// applied it.
    pub fn set_state(&self, i: usize, backend: &str, server: &str, state: AdminState) {
        let node = self.cluster.node(i);
        let reply = node.set_state(backend, server, state).expect("admin call");
        assert_eq!(reply.status, 200, "{}", reply.body);
        self.cluster.wait_state(backend, server, state);
    }

    /// Drains `server` in the backend of every mode of [`MODES`] with `ctl drain` through
    /// node `via`; panics if one is refused.
    pub fn drain_in_every_mode(&self, via: usize, server: &str) {
        for (backend, _) in MODES {
            let target = format!("{backend}/{server}");
            let (code, _, err) = self.cluster.node(via).ctl(&["drain", &target]);
            assert_eq!(code, 0, "drain {target}: {err}");
        }
    }

    /// The value of the metric line starting with `series` (name and labels as
    /// rendered, e.g. `holdfast_session_breaks_total{backend="app"}`) on node `i`.
    pub fn metric(&self, i: usize, series: &str) -> Option<f64> {
        let reply = self
            .cluster
            .node(i)
            .call("GET", paths::METRICS, None)
            .ok()?;
        reply
            .body
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Waits until the binding count of the table on every node equals `want` for
    /// `backend` (the replicated table, read through the admin API).
    pub fn wait_bindings(&self, backend: &str, want: usize) {
        let what = format!("{want} bindings of {backend}");
        self.cluster.wait_everywhere(&what, |n| {
            n.table(backend).map(|t| t.bindings.len()) == Some(want)
        });
    }
}
