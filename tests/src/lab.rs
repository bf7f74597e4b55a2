//! A data-plane lab: real `holdfast backend` processes s1..s3 and a cluster of real nodes
//! whose config gets one HTTP frontend per node and backends over those servers, with the
//! admin calls the data-plane tests need (server states, metrics).

use std::time::Duration;

use serde_json::json;

use crate::backend::BackendProc;
use crate::node::{Cluster, ClusterOptions};
use crate::wait_for;

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
    pub fn set_state(&self, i: usize, backend: &str, server: &str, state: &str) {
        let path = format!("/v1/backends/{backend}/servers/{server}/state");
        let reply = self
            .cluster
            .node(i)
            .call("POST", &path, Some(&json!({ "state": state })))
            .expect("admin call");
        assert_eq!(reply.status, 200, "{}", reply.body);
        wait_for(
            &format!("{backend}/{server} to be {state} everywhere"),
            PATIENCE,
            || {
                self.cluster
                    .running()
                    .iter()
                    .all(|&n| {
                        self.cluster.node(n).admin_state(backend, server).as_deref() == Some(state)
                    })
                    .then_some(())
            },
        );
    }

    /// The value of the metric line starting with `series` (name and labels as
    /// rendered, e.g. `holdfast_session_breaks_total{backend="app"}`) on node `i`.
    pub fn metric(&self, i: usize, series: &str) -> Option<f64> {
        let reply = self.cluster.node(i).call("GET", "/metrics", None).ok()?;
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
        wait_for(
            &format!("{want} bindings of {backend} on every node"),
            PATIENCE,
            || {
                self.cluster
                    .running()
                    .iter()
                    .all(|&n| {
                        self.cluster
                            .node(n)
                            .get(&format!("/v1/table/{backend}?limit=100000"))
                            .and_then(|t| t["bindings"].as_array().map(Vec::len))
                            == Some(want)
                    })
                    .then_some(())
            },
        );
    }
}
