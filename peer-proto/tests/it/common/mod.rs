//! Shared test fixtures: the test Raft type config, a handler that serves Raft RPCs and
//! forwards writes into the local Raft, node start-up over real TCP, and log capture.

pub mod certs;

use std::collections::BTreeMap;
use std::io::{Cursor, Write};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_peer_proto::{
    ForwardError, PeerAddress, PeerConfig, PeerHandler, PeerNetwork, ServerHandle, spawn_server,
};
use openraft::raft::ClientWriteResponse;
use openraft::{Config, Raft};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::store::{LogStore, StateMachine};

/// Test write command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    pub key: String,
    pub value: String,
}

/// Test write response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResp {
    pub previous: Option<String>,
    pub index: u64,
}

/// Test node value: only the peer address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestNode {
    pub addr: String,
}

impl PeerAddress for TestNode {
    fn peer_addr(&self) -> &str {
        &self.addr
    }
}

// `Cursor` must be in scope: the 0.9 macro's default SnapshotData names it unqualified.
openraft::declare_raft_types!(
    pub TC: D = Put, R = PutResp, NodeId = u64, Node = TestNode,
);

/// Serves peers for one test node.
pub struct Handler {
    pub id: u64,
    pub raft: Raft<TC>,
}

impl PeerHandler<TC> for Handler {
    fn raft(&self) -> &Raft<TC> {
        &self.raft
    }

    async fn client_write(
        &self,
        _from: u64,
        req: Put,
    ) -> Result<ClientWriteResponse<TC>, ForwardError> {
        match tokio::time::timeout(Duration::from_secs(5), self.raft.client_write(req)).await {
            Err(_) => Err(ForwardError::NoQuorum(
                "write not committed within 5s".into(),
            )),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => match e.forward_to_leader::<TestNode>() {
                Some(f) => Err(ForwardError::NotLeader {
                    leader: f.leader_id,
                }),
                None => Err(ForwardError::Rejected(e.to_string())),
            },
        }
    }

    async fn query(&self, from: u64, q: Vec<u8>) -> Result<Vec<u8>, ForwardError> {
        if q == b"reject" {
            return Err(ForwardError::Rejected("asked to".into()));
        }
        let mut out = format!("node {} answers node {from}: ", self.id).into_bytes();
        out.extend_from_slice(&q);
        Ok(out)
    }
}

/// A running test node.
pub struct Node {
    pub id: u64,
    pub addr: String,
    pub raft: Raft<TC>,
    pub sm: StateMachine,
    pub server: ServerHandle,
}

impl Node {
    /// Membership value for this node.
    pub fn member(&self) -> TestNode {
        TestNode {
            addr: self.addr.clone(),
        }
    }

    /// Stops the peer server and the Raft core.
    pub async fn stop(self) {
        self.server.stop().await;
        let _ = self.raft.shutdown().await;
    }
}

/// Starts node `id` with `config` on 127.0.0.1:0 (Raft not initialized).
pub async fn start_node(config: PeerConfig) -> Node {
    start_node_on(config, "127.0.0.1:0").await
}

/// Starts node `id` with `config` listening on `bind` (Raft not initialized).
pub async fn start_node_on(config: PeerConfig, bind: &str) -> Node {
    let id = config.node_id;
    let listener = TcpListener::bind(bind).await.expect("bind");
    let addr = listener.local_addr().expect("local addr").to_string();
    let config = Arc::new(config);
    let raft_config = Config {
        cluster_name: "test".into(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        ..Default::default()
    };
    let raft_config = Arc::new(raft_config.validate().expect("raft config"));
    let sm = StateMachine::default();
    let network = PeerNetwork::<TC>::new(config.clone());
    let raft = Raft::new(id, raft_config, network, LogStore::default(), sm.clone())
        .await
        .expect("raft");
    let handler = Arc::new(Handler {
        id,
        raft: raft.clone(),
    });
    let server = spawn_server::<TC, _>(listener, config, handler).expect("spawn server");
    Node {
        id,
        addr,
        raft,
        sm,
        server,
    }
}

/// Starts a node and initializes it as a single-node cluster.
pub async fn start_single(config: PeerConfig) -> Node {
    let node = start_node(config).await;
    node.raft
        .initialize(BTreeMap::from([(node.id, node.member())]))
        .await
        .expect("initialize");
    node.raft
        .wait(Some(Duration::from_secs(10)))
        .current_leader(node.id, "single node leader")
        .await
        .expect("leader");
    node
}

/// Secret-mode config for `node_id` in cluster "test".
pub fn secret_config(node_id: u64, secret: &[u8]) -> PeerConfig {
    PeerConfig::with_secret("test", node_id, secret.to_vec()).expect("config")
}

/// Captured log output of the current thread (use with a current-thread runtime).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Installs a capturing subscriber for this thread; keep the guard alive.
    pub fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs lock")).into_owned()
    }

    /// Waits up to 2 s for `needle` to appear in the logs.
    pub async fn wait_for(&self, needle: &str) -> String {
        for _ in 0..200 {
            if self.text().contains(needle) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.text()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
