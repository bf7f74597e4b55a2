//! Shared by the state-machine property tests: random operation sequences over a small
//! universe and their conversion to concrete proposals; the naive reference model of the
//! table semantics they are compared against is in `model.rs`.

mod model;

pub use model::Model;

use std::collections::BTreeSet;

use holdfast_table::model::{
    Bind, Command, Millis, NodeBatch, NodeId, Promise, Proposal, RequestedState, SessionEnd, Touch,
};
use proptest::prelude::*;

pub const BACKENDS: [&str; 2] = ["a", "b"];
pub const SERVERS: [&str; 3] = ["s0", "s1", "s2"];
pub const KEYS: usize = 6;

/// One randomly generated operation; times are relative to a running leader clock.
#[derive(Clone, Debug)]
pub enum Op {
    Tick {
        dt: i64,
    },
    Batch {
        dt: i64,
        node: NodeId,
        binds: Vec<(usize, usize, usize, Millis)>,
        touches: Vec<(usize, usize, usize, Millis)>,
        lag: Millis,
        /// How many log entries behind the batch's node was when it took its watermark.
        behind: u64,
        /// Promises: (backend, server, how far past the leader clock).
        promises: Vec<(usize, usize, Millis)>,
        /// Sessions ended: (backend, key).
        ends: Vec<(usize, usize)>,
    },
    State {
        dt: i64,
        backend: usize,
        server: usize,
        state: RequestedState,
    },
    Params {
        dt: i64,
        skew: Millis,
    },
    Members(Vec<NodeId>),
    /// Bound the table (0: no bound).
    Limits {
        max_bindings: u64,
    },
}

/// A concrete step, applied identically to the table and the model.
#[derive(Clone, Debug)]
pub enum Step {
    /// Apply the proposal of log entry `.0`.
    Apply(u64, Proposal),
    /// A membership change at log entry `.0`.
    Members(u64, BTreeSet<NodeId>),
}

fn dt() -> impl Strategy<Value = i64> {
    prop_oneof![8 => 0i64..400, 1 => -600i64..0, 1 => 400i64..3000]
}

fn entry() -> impl Strategy<Value = (usize, usize, usize, Millis)> {
    (0..BACKENDS.len(), 0..KEYS, 0..SERVERS.len(), 0u64..1500)
}

fn requested() -> impl Strategy<Value = RequestedState> {
    prop_oneof![
        1 => Just(RequestedState::Ready),
        1 => Just(RequestedState::Maint),
        3 => proptest::option::of(0u64..3000)
            .prop_map(|deadline_after| RequestedState::Drain { deadline_after }),
    ]
}

/// One random operation.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => dt().prop_map(|dt| Op::Tick { dt }),
        8 => (
            dt(),
            1u64..=4,
            proptest::collection::vec(entry(), 0..4),
            proptest::collection::vec(entry(), 0..4),
            0u64..1200,
            prop_oneof![3 => Just(0u64), 1 => 1u64..12],
            prop_oneof![
                3 => Just(Vec::new()),
                1 => proptest::collection::vec(
                    (0..BACKENDS.len(), 0..SERVERS.len(), 0u64..2500),
                    1..3,
                ),
            ],
            prop_oneof![
                3 => Just(Vec::new()),
                1 => proptest::collection::vec((0..BACKENDS.len(), 0..KEYS), 1..3),
            ],
        )
            .prop_map(|(dt, node, binds, touches, lag, behind, promises, ends)| Op::Batch {
                dt,
                node,
                binds,
                touches,
                lag,
                behind,
                promises,
                ends,
            }),
        3 => (dt(), 0..BACKENDS.len(), 0..SERVERS.len(), requested()).prop_map(
            |(dt, backend, server, state)| Op::State {
                dt,
                backend,
                server,
                state,
            }
        ),
        1 => (dt(), 0u64..400).prop_map(|(dt, skew)| Op::Params { dt, skew }),
        1 => proptest::sample::subsequence(vec![1u64, 2, 3, 4], 0..=4).prop_map(Op::Members),
        1 => prop_oneof![Just(0u64), 1u64..6].prop_map(|max_bindings| Op::Limits { max_bindings }),
    ]
}

/// A random sequence of up to `max` operations.
pub fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..max)
}

fn key(k: usize) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

/// Turns operations into concrete steps: a leader clock that mostly moves forward, with
/// some proposals stamped in the past.
pub fn steps(ops: &[Op]) -> Vec<Step> {
    let mut leader: Millis = 1_000;
    let mut stamp = |dt: i64| {
        let now = leader.saturating_add_signed(dt);
        leader = leader.max(now);
        (now, leader)
    };
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let index = i as u64 + 1;
            let (now, command) = match op {
                Op::Tick { dt } => (stamp(*dt).0, Command::Tick),
                Op::Batch {
                    dt,
                    node,
                    binds,
                    touches,
                    lag,
                    behind,
                    promises,
                    ends,
                } => {
                    let (now, leader) = stamp(*dt);
                    let batch = NodeBatch {
                        node: *node,
                        binds: binds
                            .iter()
                            .map(|&(b, k, s, ttl)| Bind {
                                backend: BACKENDS[b].into(),
                                key: key(k),
                                server: SERVERS[s].into(),
                                ttl,
                                // Every third bind is a re-dispatch away from the next
                                // server, so moves race with binds, touches and expiry.
                                replaces: (ttl % 3 == 0)
                                    .then(|| SERVERS[(s + 1) % SERVERS.len()].into()),
                                // Some bindings are capped: maxlife shorter than a ttl.
                                maxlife: (ttl % 4 == 1).then_some(ttl / 2),
                            })
                            .collect(),
                        touches: touches
                            .iter()
                            .map(|&(b, k, s, ttl)| Touch {
                                backend: BACKENDS[b].into(),
                                key: key(k),
                                server: SERVERS[s].into(),
                                ttl,
                                maxlife: (ttl % 4 == 1).then_some(ttl / 2),
                            })
                            .collect(),
                        watermark: leader.saturating_sub(*lag),
                        applied: (index - 1).saturating_sub(*behind),
                        ends: ends
                            .iter()
                            .map(|&(b, k)| SessionEnd {
                                backend: BACKENDS[b].into(),
                                key: key(k),
                            })
                            .collect(),
                        // Some batches say nothing of promises; an `ahead` of 0 stands
                        // for an exchange still open.
                        promises: (lag % 5 != 0).then(|| {
                            promises
                                .iter()
                                .map(|&(b, s, ahead)| Promise {
                                    backend: BACKENDS[b].into(),
                                    server: SERVERS[s].into(),
                                    until: if ahead == 0 {
                                        Promise::OPEN
                                    } else {
                                        leader + ahead
                                    },
                                })
                                .collect()
                        }),
                    };
                    (now, Command::from(batch))
                }
                Op::State {
                    dt,
                    backend,
                    server,
                    state,
                } => (
                    stamp(*dt).0,
                    Command::SetServerState {
                        backend: BACKENDS[*backend].into(),
                        server: SERVERS[*server].into(),
                        state: *state,
                    },
                ),
                Op::Params { dt, skew } => (
                    stamp(*dt).0,
                    Command::SetParams(holdfast_table::model::TableParams {
                        max_skew: *skew,
                        // Short enough that sequences reach it, so both ways a binding
                        // can expire (watermarks passed, or grace ran out) are exercised.
                        expiry_grace: *skew * 4 + 500,
                    }),
                ),
                Op::Members(m) => return Step::Members(index, m.iter().copied().collect()),
                Op::Limits { max_bindings } => (
                    stamp(0).0,
                    Command::SetLimits(holdfast_table::model::TableLimits {
                        max_bindings: *max_bindings,
                    }),
                ),
            };
            Step::Apply(index, Proposal { now, command })
        })
        .collect()
}
