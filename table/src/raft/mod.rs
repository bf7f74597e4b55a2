//! openraft glue for the stick table: the type configuration, the durable log store and
//! the state-machine adapter. Everything openraft-specific lives here, so a later port to
//! openraft 0.10 touches this module only.

mod background;
pub mod log_store;
mod log_tail;
pub mod sm_store;
pub mod snapshot_file;
pub mod types;

pub use log_store::{LogStore, OpenError};
pub use sm_store::{RestoreError, SharedState, StateMachineStore};
pub use types::{Raft, TypeConfig};
