//! The holdfast stick table: which client is bound to which backend server, as a
//! deterministic state machine replicated with Raft (see `DESIGN.md`, "Time, expiry and
//! release"). [`model`] is the vocabulary, [`state`] the pure state machine, [`raft`] the
//! openraft glue and durable store, [`view`] the node-local read view of the data plane.

pub mod codec;
#[doc(hidden)]
pub mod measure;
pub mod model;
pub mod raft;
pub mod state;
pub mod view;

pub use state::{Change, StickTable};
