//! Helpers shared by the state machine's unit tests: building binds and touches, and
//! applying batches, ticks and admin states with an invariant check after each.

use super::StickTable;
use crate::model::{
    AdminState, Bind, Command, NodeBatch, Proposal, RequestedState, Response, Touch,
};

pub(super) const SKEW: u64 = 250;

pub(super) fn bind(backend: &str, key: &str, server: &str, ttl: u64) -> Bind {
    Bind {
        backend: backend.into(),
        key: key.as_bytes().to_vec(),
        server: server.into(),
        ttl,
        replaces: None,
        maxlife: None,
    }
}

pub(super) fn touch(backend: &str, key: &str, server: &str, ttl: u64) -> Touch {
    Touch {
        backend: backend.into(),
        key: key.as_bytes().to_vec(),
        server: server.into(),
        ttl,
        maxlife: None,
    }
}

pub(super) fn batch(
    t: &mut StickTable,
    now: u64,
    node: u64,
    binds: Vec<Bind>,
    touches: Vec<Touch>,
    watermark: u64,
) -> Response {
    let r = t.apply(&Proposal {
        now,
        command: Command::from(NodeBatch {
            node,
            binds,
            touches,
            watermark,
            applied: 0,
            ends: Vec::new(),
            promises: None,
        }),
    });
    t.check_invariants().unwrap();
    r
}

pub(super) fn tick(t: &mut StickTable, now: u64) {
    t.apply(&Proposal {
        now,
        command: Command::Tick,
    });
    t.check_invariants().unwrap();
}

pub(super) fn set_state(
    t: &mut StickTable,
    now: u64,
    server: &str,
    state: RequestedState,
) -> AdminState {
    let r = t.apply(&Proposal {
        now,
        command: Command::SetServerState {
            backend: "app".into(),
            server: server.into(),
            state,
        },
    });
    t.check_invariants().unwrap();
    match r {
        Response::ServerState(s) => s,
        other => panic!("unexpected response {other:?}"),
    }
}

pub(super) fn batch_resp(bound: u32, conflicts: u32, refused: u32) -> Response {
    Response::Batch {
        bound,
        conflicts,
        refused,
    }
}

pub(super) fn server_of(t: &StickTable, key: &str) -> Option<String> {
    t.lookup("app", key.as_bytes()).map(|b| b.server)
}
