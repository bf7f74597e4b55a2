//! One running cluster node: opens the durable log and state machine, starts openraft,
//! the peer listener, the flusher and the leader's ticker, and forms or joins the cluster
//! from the static member list.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use holdfast_peer_proto::{
    CallError, ForwardError, PeerAuth, PeerClient, PeerConfig, PeerNetwork, TlsMaterial,
};
use holdfast_table::model::{NodeId, TableParams};
use holdfast_table::raft::{LogStore, Raft, SharedState, StateMachineStore};
use holdfast_table::view::ReadView;
use openraft::{BasicNode, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::bootstrap;
use super::flusher::{self, FlushStats};
use super::handler::Handler;
use super::membership::{self, ClusterOp, PeerQuery};
use super::open::OpenSet;
use super::queue::BindQueue;
use super::readiness::{self, CommitWatch};
use super::writer::{self, Leader, WriteError, Writer};
use crate::api::Readiness;
use crate::config::Config;

/// A running node. Shared (`Arc`) by the admin API and the data plane.
pub struct Node {
    id: NodeId,
    config: ArcSwap<Config>,
    raft: Raft,
    shared: Arc<SharedState>,
    writer: Arc<Writer>,
    peers: PeerClient<holdfast_table::raft::TypeConfig>,
    queue: BindQueue,
    flush_stats: Arc<FlushStats>,
    commits: Arc<CommitWatch>,
    open: Arc<OpenSet>,
    /// Set once the data plane's frontends listen: only then is the node ready.
    serving: std::sync::atomic::AtomicBool,
    tasks: Vec<JoinHandle<()>>,
}

fn peer_config(config: &Config) -> anyhow::Result<PeerConfig> {
    let cluster = &config.cluster;
    let peer = match &cluster.tls {
        Some(tls) => {
            let material =
                TlsMaterial::from_pem_files(&tls.ca, &tls.cert, &tls.key, &tls.server_name)?;
            PeerConfig::new(
                cluster.name.clone(),
                config.node.id,
                PeerAuth::Tls(material),
            )?
        }
        None => PeerConfig::with_secret(
            cluster.name.clone(),
            config.node.id,
            cluster.secret.as_bytes().to_vec(),
        )?,
    };
    Ok(peer)
}

fn raft_config(config: &Config) -> anyhow::Result<Arc<openraft::Config>> {
    let c = openraft::Config {
        cluster_name: config.cluster.name.clone(),
        // openraft bounds each AppendEntries by the heartbeat interval: leave room for a
        // follower's fsync on a loaded machine.
        heartbeat_interval: 250,
        election_timeout_min: 1200,
        election_timeout_max: 2400,
        // Bounds each snapshot chunk's round trip, and the last chunk's includes the
        // follower decoding and persisting the whole snapshot (seconds at ten million
        // bindings): shorter, and a large snapshot is sent again and again (measured:
        // 91 s to join at 10 M with 2 s).
        install_snapshot_timeout: 30_000,
        max_payload_entries: 64,
        // Snapshots are triggered by size (see `snapshots.rs`), not by entry count.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: config.cluster.snapshot_every.min(1_000),
        ..Default::default()
    };
    Ok(Arc::new(c.validate().context("raft configuration")?))
}

/// The static member list of `config` (this node alone when none is configured).
fn static_members(config: &Config) -> BTreeMap<NodeId, BasicNode> {
    let cluster = &config.cluster;
    if cluster.members.is_empty() {
        return BTreeMap::from([(
            config.node.id,
            BasicNode {
                addr: cluster.peer_listen.to_string(),
            },
        )]);
    }
    cluster
        .members
        .iter()
        .map(|m| {
            (
                m.id,
                BasicNode {
                    addr: m.addr.clone(),
                },
            )
        })
        .collect()
}

impl Node {
    /// Starts the node described by `config`.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Node>> {
        let id = config.node.id;
        let dir = config.node.data_dir.clone();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create data_dir {}", dir.display()))?;
        let log = LogStore::open(&dir.join("raft-log.redb"))?;
        let view = Arc::new(ReadView::new());
        let sm = StateMachineStore::open(&dir, view)?;
        let shared = sm.shared().clone();

        let peer = Arc::new(peer_config(&config)?);
        let network = PeerNetwork::new(peer.clone());
        let raft = Raft::new(id, raft_config(&config)?, network, log, sm)
            .await
            .context("starting raft")?;
        let peers = PeerClient::new(peer.clone());
        if !raft.is_initialized().await? {
            let formed = std::sync::atomic::AtomicBool::new(false);
            let members = static_members(&config);
            bootstrap::refuse_if_formed_without_me(&peers, id, &members, &dir, &formed).await?;
        }
        let writer = Arc::new(Writer::new(
            id,
            raft.clone(),
            peers.clone(),
            config.cluster.write_timeout,
        ));

        let listener = TcpListener::bind(config.cluster.peer_listen)
            .await
            .with_context(|| {
                format!("cannot listen for peers on {}", config.cluster.peer_listen)
            })?;
        let commits = Arc::new(CommitWatch::default());
        let handler = Arc::new(Handler {
            raft: raft.clone(),
            writer: writer.clone(),
            shared: shared.clone(),
            commits: commits.clone(),
        });
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(holdfast_peer_proto::serve(
            listener,
            peer.clone(),
            handler,
            std::future::pending::<()>(),
        )));

        let open = Arc::new(OpenSet::default());
        let (queue, rx) = BindQueue::new(config.cluster.queue_limit, open.clone());
        let flush_stats = Arc::new(FlushStats::default());
        let flusher = flusher::Flusher {
            node: id,
            writer: writer.clone(),
            shared: shared.clone(),
            open: open.clone(),
            interval: config.cluster.flush,
            limit: config.cluster.queue_limit,
            stats: flush_stats.clone(),
        };
        tasks.push(tokio::spawn(flusher.run(rx)));
        tasks.push(tokio::spawn(super::snapshots::run_policy(
            raft.clone(),
            shared.clone(),
            config.cluster.snapshot_every,
        )));
        tasks.push(tokio::spawn(writer::run_ticker(
            writer.clone(),
            raft.clone(),
            id,
            config.cluster.tick,
        )));

        let node = Arc::new(Node {
            id,
            config: ArcSwap::from_pointee(config),
            raft,
            shared,
            writer,
            peers,
            queue,
            flush_stats,
            commits,
            open,
            serving: std::sync::atomic::AtomicBool::new(false),
            tasks,
        });
        node.form_cluster().await?;
        tokio::spawn(super::limits::keep(Arc::downgrade(&node)));
        Ok(node)
    }

    /// Starts forming a brand-new cluster from the static member list (see [`bootstrap`]);
    /// a node that already has state, or that waits to be added, does nothing.
    async fn form_cluster(self: &Arc<Self>) -> anyhow::Result<()> {
        if self.raft.is_initialized().await? {
            return Ok(());
        }
        let config = self.config();
        let cluster = &config.cluster;
        if cluster.join {
            tracing::info!(
                id = self.id,
                "join mode: waiting to be added by `ctl members add`"
            );
            return Ok(());
        }
        let members = static_members(&config);
        if !members.contains_key(&self.id) {
            tracing::info!(
                id = self.id,
                "not in the static member list: waiting to be added"
            );
            return Ok(());
        }
        let params = TableParams {
            max_skew: cluster.max_skew.as_millis() as u64,
            expiry_grace: cluster.expiry_grace.as_millis() as u64,
        };
        tokio::spawn(bootstrap::form(bootstrap::Formation {
            raft: self.raft.clone(),
            writer: self.writer.clone(),
            peers: self.peers.clone(),
            id: self.id,
            members,
            params,
            data_dir: config.node.data_dir.clone(),
        }));
        Ok(())
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The configuration the node runs with (replaced by [`Node::reload_config`]).
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Replaces the configuration after a reload (SIGHUP). Only backends and the data
    /// plane's settings take effect at once; the cluster section needs a restart, and a
    /// change there is refused so the running node and its file do not silently differ.
    pub fn reload_config(&self, new: Config) -> Result<(), String> {
        let old = self.config();
        let (a, b) = (&old, &new);
        // What is read once, at start: a reload that changes it would say "reloaded" and
        // apply nothing.
        let fixed = [
            ("node.id", a.node.id != b.node.id),
            ("node.data_dir", a.node.data_dir != b.node.data_dir),
            ("cluster.name", a.cluster.name != b.cluster.name),
            ("cluster.secret", a.cluster.secret != b.cluster.secret),
            (
                "cluster.peer_listen",
                a.cluster.peer_listen != b.cluster.peer_listen,
            ),
            ("cluster.members", a.cluster.members != b.cluster.members),
            (
                "cluster.queue_limit",
                a.cluster.queue_limit != b.cluster.queue_limit,
            ),
            ("admin.listen", a.admin.listen != b.admin.listen),
            (
                "limits.max_connections",
                a.limits.max_connections != b.limits.max_connections,
            ),
        ];
        if let Some((key, _)) = fixed.iter().find(|(_, changed)| *changed) {
            return Err(format!(
                "{key} changed: restart the node for that (membership changes go through `holdfast ctl members`)"
            ));
        }
        self.config.store(Arc::new(new));
        Ok(())
    }

    /// The Raft handle.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The state shared with the state machine (table, read view).
    pub fn shared(&self) -> &Arc<SharedState> {
        &self.shared
    }

    /// Submits commands to the cluster.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// The data plane's never-blocking queue of binds and touches.
    pub fn queue(&self) -> &BindQueue {
        &self.queue
    }

    /// The client for talking to peers.
    pub(super) fn peer_client(&self) -> &PeerClient<holdfast_table::raft::TypeConfig> {
        &self.peers
    }

    /// The exchanges open from this node (open means active: they hold their server).
    pub fn open_set(&self) -> &Arc<OpenSet> {
        &self.open
    }

    /// Counters of the flusher.
    pub fn flush_stats(&self) -> &Arc<FlushStats> {
        &self.flush_stats
    }

    /// Whether this node may serve clients and speak for the table (`/readyz`).
    pub fn readiness(&self) -> Readiness {
        let mut r = readiness::evaluate(&self.raft, self.id, &self.commits);
        if r.ready && !self.serving.load(std::sync::atomic::Ordering::Acquire) {
            r.ready = false;
            r.reason = Some("caught up; frontends opening".into());
        }
        r
    }

    /// Marks the data plane's frontends as listening (see [`Node::readiness`]).
    pub fn set_serving(&self) {
        self.serving
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Completes when the Raft core stops on a fatal error (a storage failure, a broken
    /// invariant), with what it said. The node must then stop serving: its table is no
    /// longer kept true.
    pub async fn fatal(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_and_update().running_state {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return "raft core ended".into();
            }
        }
    }

    /// Waits until the node is ready, logging why not every few seconds.
    pub async fn wait_ready(&self) {
        let mut last_said = tokio::time::Instant::now();
        loop {
            let r = readiness::evaluate(&self.raft, self.id, &self.commits);
            if r.ready {
                tracing::info!(id = self.id, applied = r.applied, "ready: serving clients");
                return;
            }
            if last_said.elapsed() >= std::time::Duration::from_secs(5) {
                tracing::info!(
                    id = self.id,
                    reason = r.reason.as_deref().unwrap_or(""),
                    "not ready yet"
                );
                last_said = tokio::time::Instant::now();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The TTL of `backend` in ms (the configured one, or 30 minutes if unknown).
    pub fn ttl_of(&self, backend: &str) -> u64 {
        self.config()
            .backend(backend)
            .map(|b| b.ttl.as_millis() as u64)
            .unwrap_or(30 * 60 * 1000)
    }

    /// Checks that `backend/server` is configured (any name passes when no backend is).
    pub fn check_server(&self, backend: &str, server: &str) -> Result<(), String> {
        let config = self.config();
        if config.backends.is_empty() {
            return Ok(());
        }
        let b = config
            .backend(backend)
            .ok_or_else(|| format!("no backend {backend:?}"))?;
        if b.servers.iter().any(|s| s.name == server) {
            Ok(())
        } else {
            Err(format!("no server {server:?} in backend {backend:?}"))
        }
    }

    /// Waits (at most two seconds) until this node has applied log entry `index`, e.g. a
    /// write's ([`Committed::index`](super::writer::Committed)): its table then shows it.
    pub async fn wait_applied(&self, index: u64) {
        let wait = self.raft.wait(Some(std::time::Duration::from_secs(2)));
        if let Err(e) = wait.applied_index_at_least(Some(index), "a write").await {
            tracing::debug!(index, error = %e, "write not applied here in time");
        }
    }

    /// Carries out a membership change on the leader, forwarding it if need be.
    pub async fn cluster_op(&self, op: ClusterOp) -> Result<(), WriteError> {
        let deadline = self
            .config()
            .cluster
            .write_timeout
            .max(std::time::Duration::from_secs(30));
        let run = async {
            if self.is_leader() {
                return membership::execute(&self.raft, &self.peers, &op)
                    .await
                    .map_err(WriteError::Rejected);
            }
            self.ask_leader(&PeerQuery::Cluster(op)).await.map(|_| ())
        };
        tokio::time::timeout(deadline, run)
            .await
            .unwrap_or_else(|_| {
                Err(WriteError::NoQuorum(format!(
                    "not done within {deadline:?}"
                )))
            })
    }

    /// Where `key` is bound in `backend`, for a key this node's view does not know yet,
    /// waiting at most `wait`. For the `learn` persistence mode: the session cookie may
    /// have been bound a moment ago on another node, so this asks the leader and, until
    /// the wait is over, keeps watching the local view, where a bind still on its way
    /// through the log shows up a few milliseconds later. `None` when neither knows it in
    /// time (or there is no leader).
    pub async fn leader_lookup(
        &self,
        backend: &str,
        key: &[u8],
        wait: std::time::Duration,
    ) -> Option<String> {
        let query = PeerQuery::Lookup {
            backend: backend.to_string(),
            key: key.to_vec(),
        };
        let ask = async {
            if self.is_leader() {
                self.raft.ensure_linearizable().await.ok()?;
                return self
                    .shared
                    .with_table(|t| t.lookup(backend, key).map(|b| b.server));
            }
            let bytes = self.ask_leader(&query).await.ok()?;
            serde_json::from_slice::<Option<String>>(&bytes)
                .ok()
                .flatten()
        };
        let watch = async {
            loop {
                if let Some(b) = self.shared.view().lookup(backend, key) {
                    return b.server.to_string();
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        };
        let both = async {
            tokio::pin!(ask);
            tokio::pin!(watch);
            let mut asked = false;
            loop {
                tokio::select! {
                    found = &mut ask, if !asked => match found {
                        Some(server) => return server,
                        None => asked = true,
                    },
                    server = &mut watch => return server,
                }
            }
        };
        tokio::time::timeout(wait, both).await.ok()
    }

    fn is_leader(&self) -> bool {
        matches!(self.writer.leader(), Leader::Me)
    }

    /// Sends `query` to the current leader over the peer protocol.
    async fn ask_leader(&self, query: &PeerQuery) -> Result<Vec<u8>, WriteError> {
        let addr = match self.writer.leader() {
            Leader::Other(_, Some(addr)) => addr,
            Leader::Other(l, None) => {
                return Err(WriteError::NoQuorum(format!(
                    "address of leader {l} unknown"
                )));
            }
            Leader::Me => {
                return Err(WriteError::NoQuorum(
                    "leadership just moved here: retry".into(),
                ));
            }
            Leader::Unknown => return Err(WriteError::NoQuorum("no leader elected".into())),
        };
        let q = serde_json::to_vec(query).map_err(|e| WriteError::Rejected(e.to_string()))?;
        self.peers.query(&addr, q).await.map_err(|e| match e {
            CallError::Remote(ForwardError::Rejected(m)) => WriteError::Rejected(m),
            other => WriteError::NoQuorum(other.to_string()),
        })
    }

    /// Stops the node's tasks and Raft.
    pub async fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}
