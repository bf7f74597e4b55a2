//! The admin API's wire types, shared by the server (`admin`), its client (`ctl`), the
//! stats page and the integration tests: every answer, request body and error is one of
//! these, serialized as JSON. States, roles and health are enums here and lowercase words
//! on the wire.

pub mod history;
mod request;
mod status;
pub mod traffic;

use std::fmt;

use holdfast_table::model;
use serde::{Deserialize, Serialize};

pub use request::{Ack, ApiError, MemberAdd, PinRequest, StateChange};
pub use status::{
    Alive, BackendStatus, Backends, ClusterStatus, Holder, MemberStatus, Readiness, ServerView,
    Stats, TableEntry, TableStatus,
};

/// A server's admin state as the API shows it: the table's
/// [`AdminState`](holdfast_table::model::AdminState) without a drain's times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    /// New clients may be balanced to the server.
    Ready,
    /// Only clients already bound to the server reach it.
    Drain,
    /// No traffic: the server is safe to shut down.
    Maint,
}

impl AdminState {
    /// Every state, in the order a server goes through them when drained.
    pub const ALL: [AdminState; 3] = [AdminState::Ready, AdminState::Drain, AdminState::Maint];
}

impl From<model::AdminState> for AdminState {
    fn from(state: model::AdminState) -> AdminState {
        match state {
            model::AdminState::Ready => AdminState::Ready,
            model::AdminState::Drain { .. } => AdminState::Drain,
            model::AdminState::Maint => AdminState::Maint,
        }
    }
}

impl fmt::Display for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        })
    }
}

/// A node's own health check of a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// The last checks passed.
    Up,
    /// The last checks failed.
    Down,
    /// Not checked (no check configured, or no data plane on this node).
    Unknown,
}

impl Health {
    /// From a check's verdict (`None`: not checked).
    pub fn from_check(up: Option<bool>) -> Health {
        match up {
            Some(true) => Health::Up,
            Some(false) => Health::Down,
            None => Health::Unknown,
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Unknown => "unknown",
        })
    }
}

/// A member's part in the Raft group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The current leader.
    Leader,
    /// A voter that is not the leader.
    Follower,
    /// A non-voting member catching up.
    Learner,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Learner => "learner",
        })
    }
}

/// The admin API's paths, for its clients.
pub mod paths {
    /// `GET`: [`ClusterStatus`](super::ClusterStatus).
    pub const CLUSTER: &str = "/v1/cluster";
    /// `GET`: [`Backends`](super::Backends).
    pub const BACKENDS: &str = "/v1/backends";
    /// `POST` a [`MemberAdd`](super::MemberAdd).
    pub const MEMBERS: &str = "/v1/members";
    /// `GET`: [`Readiness`](super::Readiness), 200 when ready, 503 when not.
    pub const READYZ: &str = "/readyz";
    /// `GET`: [`Alive`](super::Alive).
    pub const HEALTHZ: &str = "/healthz";
    /// `GET`: [`Stats`](super::Stats).
    pub const STATS: &str = "/stats.json";
    /// `GET`: the Prometheus text exposition.
    pub const METRICS: &str = "/metrics";

    /// `POST` a [`StateChange`](super::StateChange) for `backend/server`.
    pub fn server_state(backend: &str, server: &str) -> String {
        format!("/v1/backends/{backend}/servers/{server}/state")
    }

    /// `GET`: [`TableStatus`](super::TableStatus) of `backend`, at most `limit` bindings;
    /// `POST` a [`PinRequest`](super::PinRequest) (without the query).
    pub fn table(backend: &str, limit: usize) -> String {
        format!("/v1/table/{backend}?limit={limit}")
    }

    /// `DELETE`: removes member `id`.
    pub fn member(id: u64) -> String {
        format!("/v1/members/{id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_are_lowercase_words_on_the_wire() {
        let words = serde_json::to_string(&(AdminState::Drain, Health::Unknown, Role::Learner));
        assert_eq!(
            words.ok().as_deref(),
            Some(r#"["drain","unknown","learner"]"#)
        );
        let back: Result<AdminState, _> = serde_json::from_str(r#""maint""#);
        assert_eq!(back.ok(), Some(AdminState::Maint));
        assert_eq!(AdminState::Ready.to_string(), "ready");
    }

    #[test]
    fn the_table_state_maps_without_its_times() {
        let drain = model::AdminState::Drain {
            since: 5,
            deadline: Some(9),
        };
        assert_eq!(AdminState::from(drain), AdminState::Drain);
    }
}
