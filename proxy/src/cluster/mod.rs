//! The cluster node: wires the stick table's Raft log and state machine to the peer
//! protocol, and carries the data plane's binds and touches into the log without ever
//! making a request wait for consensus.

mod bootstrap;
mod clock;
mod flusher;
mod handler;
mod limits;
mod membership;
mod node;
mod open;
mod queue;
mod readiness;
mod snapshots;
mod status;
mod writer;

pub use clock::now_ms;
pub use flusher::FlushStats;
pub use membership::{ClusterOp, validate_addr};
pub use node::Node;
pub use open::{Open, OpenGuard, OpenSet};
pub use queue::{BindQueue, QueueStats, Record};
pub use writer::{Committed, WriteError, Writer};
