//! The data plane's narrow view of the cluster: the read view it routes from, the bind
//! queue it records into, the node's open exchanges, and a way to ask the leader about a
//! key this node does not know yet. A node provides it; unit tests build one in memory.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use holdfast_table::view::ReadView;

use crate::cluster::{BindQueue, Node, OpenSet};

/// A future that answers a leader lookup.
pub type Lookup<'a> = Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>>;

/// Asks the cluster where a key is bound when the local view does not know it.
pub trait LeaderLookup: Send + Sync {
    /// The server `key` is bound to in `backend`, waiting at most `wait`; `None` when no
    /// one knows in time.
    fn lookup<'a>(&'a self, backend: &'a str, key: &'a [u8], wait: Duration) -> Lookup<'a>;
}

impl LeaderLookup for Node {
    fn lookup<'a>(&'a self, backend: &'a str, key: &'a [u8], wait: Duration) -> Lookup<'a> {
        Box::pin(self.leader_lookup(backend, key, wait))
    }
}

/// What the data plane reads and writes of the cluster, and nothing more.
#[derive(Clone)]
pub struct TableAccess {
    /// Bindings and server states as last applied here.
    pub view: Arc<ReadView>,
    /// Where binds, touches and session ends go (never waited for).
    pub queue: BindQueue,
    /// The node's open exchanges (touches and promises in every batch).
    pub open: Arc<OpenSet>,
    /// Lookups of keys bound elsewhere a moment ago.
    pub leader: Arc<dyn LeaderLookup>,
}

impl TableAccess {
    /// The access a running node gives its data plane.
    pub fn of(node: &Arc<Node>) -> TableAccess {
        TableAccess {
            view: node.shared().view().clone(),
            queue: node.queue().clone(),
            open: node.open_set().clone(),
            leader: node.clone(),
        }
    }
}
