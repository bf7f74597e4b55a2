//! What the admin API's writes take and give back: a server state change, a pin, a new
//! member; the acknowledgement of a write; the error every failed call answers with.

use holdfast_table::model::RequestedState;
use serde::{Deserialize, Serialize};

use super::AdminState;
use crate::config::parse_duration;

/// Body of `POST /v1/backends/{b}/servers/{s}/state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateChange {
    /// The state asked for.
    pub state: AdminState,
    /// For a drain: force release this long after it applies (e.g. `30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
}

impl StateChange {
    /// A change to `state` with no deadline.
    pub fn to(state: AdminState) -> StateChange {
        StateChange {
            state,
            deadline: None,
        }
    }

    /// The command's state, with the deadline parsed; an error says what is wrong with it.
    pub fn requested(&self) -> Result<RequestedState, String> {
        let deadline_after = self
            .deadline
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|m| format!("deadline: {m}"))?
            .map(|d| d.as_millis() as u64);
        Ok(match self.state {
            AdminState::Ready => RequestedState::Ready,
            AdminState::Drain => RequestedState::Drain { deadline_after },
            AdminState::Maint => RequestedState::Maint,
        })
    }
}

/// Body of `POST /v1/table/{backend}`: pin a key to a server (like HAProxy's `set table`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// The persistence key.
    pub key: String,
    /// The server it is bound to.
    pub server: String,
}

/// Body of `POST /v1/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberAdd {
    /// The new member's node id.
    pub id: u64,
    /// Its peer address (`host:port`).
    pub addr: String,
}

/// The answer to a write that committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Always true: a failed write answers an [`ApiError`].
    pub ok: bool,
    /// After a state change: the server's state once applied (a drain may already be
    /// released to `maint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_state: Option<AdminState>,
}

impl Ack {
    /// A write that committed.
    pub fn ok() -> Ack {
        Ack {
            ok: true,
            admin_state: None,
        }
    }

    /// A state change that committed, leaving the server in `state`.
    pub fn state(state: AdminState) -> Ack {
        Ack {
            ok: true,
            admin_state: Some(state),
        }
    }
}

/// The body of every error answer (4xx, 5xx).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    /// What went wrong.
    pub error: String,
}

impl ApiError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> ApiError {
        ApiError {
            error: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_deadline_is_parsed() {
        let change = StateChange {
            state: AdminState::Drain,
            deadline: Some("2s".into()),
        };
        assert_eq!(
            change.requested(),
            Ok(RequestedState::Drain {
                deadline_after: Some(2000)
            })
        );
        let bad = StateChange {
            deadline: Some("soon".into()),
            ..change
        };
        assert!(bad.requested().is_err_and(|m| m.starts_with("deadline")));
    }

    #[test]
    fn a_state_change_reads_what_ctl_always_sent() {
        let body = r#"{"state": "drain", "deadline": null}"#;
        let change: Result<StateChange, _> = serde_json::from_str(body);
        assert_eq!(change.ok(), Some(StateChange::to(AdminState::Drain)));
        let unknown: Result<StateChange, _> = serde_json::from_str(r#"{"state": "gone"}"#);
        assert!(unknown.is_err());
    }
}
