//! Unit tests of admin states and the release rule: drain, release, what blocks it
//! (live bindings, watermarks, new members, the drain's `since`), deadlines, membership.

use super::StickTable;
use super::test_util::{SKEW, batch, bind, set_state, tick, touch};
use crate::model::{AdminState, RequestedState, TableParams};

const DRAIN: RequestedState = RequestedState::Drain {
    deadline_after: None,
};

fn state(t: &StickTable, server: &str) -> AdminState {
    t.server("app", server).unwrap().admin_state
}

fn report(t: &mut StickTable, now: u64, node: u64, watermark: u64) {
    batch(t, now, node, vec![], vec![], watermark);
}

fn members(t: &mut StickTable, m: &[u64]) {
    t.set_members(&m.iter().copied().collect());
    t.check_invariants().unwrap();
}

#[test]
fn drain_is_released_when_bindings_are_gone_and_every_watermark_passed() {
    let mut t = StickTable::new();
    members(&mut t, &[1, 2]);
    batch(&mut t, 0, 1, vec![bind("app", "k", "s1", 100)], vec![], 0);
    let s = set_state(&mut t, 10, "s1", DRAIN);
    assert_eq!(
        s,
        AdminState::Drain {
            since: 10,
            deadline: None
        }
    );
    let expiry = 100 + SKEW;
    let point = expiry + SKEW; // max(last_expiry, since) + skew
    // Past its expiry by the clock, the binding lives on while any member may still
    // have a touch for it on the way: its watermark has not passed expiry + skew.
    tick(&mut t, expiry + 1);
    assert_eq!(t.bindings_of("app", "s1"), 1);
    report(&mut t, 400, 1, point + 1);
    report(&mut t, 400, 2, point);
    assert_eq!(t.bindings_of("app", "s1"), 1);
    assert!(matches!(state(&t, "s1"), AdminState::Drain { .. }));
    t.take_changes();
    // The slowest member passes it: the binding expires, and the drain is released.
    report(&mut t, 400, 2, point + 1);
    assert_eq!(t.bindings_of("app", "s1"), 0);
    assert_eq!(state(&t, "s1"), AdminState::Maint);
    assert_eq!(t.counters().released, 1);
    assert_eq!(t.counters().forced_releases, 0);
    assert_eq!(
        t.take_changes(),
        vec![
            super::Change::Remove {
                backend: "app".into(),
                key: b"k".to_vec()
            },
            super::Change::Servers
        ]
    );
    assert!(t.release_blockers("app", "s1").is_empty());
}

#[test]
fn live_binding_blocks_release_whatever_the_watermarks() {
    let mut t = StickTable::new();
    members(&mut t, &[1]);
    batch(&mut t, 0, 1, vec![bind("app", "k", "s1", 1000)], vec![], 0);
    set_state(&mut t, 0, "s1", DRAIN);
    report(&mut t, 500, 1, u64::MAX);
    assert!(matches!(state(&t, "s1"), AdminState::Drain { .. }));
    assert!(t.release_blockers("app", "s1").is_empty());
    // Touches keep it alive; released only after the last expiry.
    batch(
        &mut t,
        900,
        1,
        vec![],
        vec![touch("app", "k", "s1", 1000)],
        0,
    );
    tick(&mut t, 900 + 1000 + SKEW);
    assert!(matches!(state(&t, "s1"), AdminState::Drain { .. }));
    tick(&mut t, 900 + 1000 + SKEW + 1);
    assert_eq!(state(&t, "s1"), AdminState::Maint);
}

#[test]
fn watermark_behind_last_expiry_blocks_release() {
    let mut t = StickTable::new();
    members(&mut t, &[1]);
    batch(&mut t, 0, 1, vec![bind("app", "k", "s1", 100)], vec![], 0);
    set_state(&mut t, 0, "s1", DRAIN);
    let expiry = 100 + SKEW;
    let point = expiry + SKEW;
    // A member that lags for longer than the grace no longer holds expiry back...
    let late = expiry + TableParams::default().expiry_grace + 1;
    report(&mut t, late, 1, point - 1);
    assert_eq!(t.bindings_of("app", "s1"), 0);
    assert_eq!(t.server("app", "s1").unwrap().last_expiry, expiry);
    // ...but it still holds the release back.
    assert_eq!(t.release_blockers("app", "s1"), vec![1]);
    assert!(matches!(state(&t, "s1"), AdminState::Drain { .. }));
    // Watermarks only move forward.
    report(&mut t, late, 1, 3);
    assert_eq!(t.watermarks()[&1], point - 1);
    report(&mut t, late, 1, point);
    assert_eq!(state(&t, "s1"), AdminState::Maint);
}

#[test]
fn a_lagging_member_holds_expiry_until_its_watermark_passes_or_grace_runs_out() {
    let mut t = StickTable::new();
    members(&mut t, &[1, 2]);
    batch(&mut t, 0, 1, vec![bind("app", "k", "s1", 100)], vec![], 0);
    let expiry = 100 + SKEW;
    report(&mut t, 1_000, 1, 1_000);
    // Node 2 has not reported past the expiry: a touch of it may still be on its way.
    tick(&mut t, 5_000);
    assert!(t.lookup("app", b"k").is_some());
    // The late touch arrives and keeps the binding, with no break in between.
    batch(
        &mut t,
        5_100,
        2,
        vec![],
        vec![touch("app", "k", "s1", 100)],
        5_000,
    );
    let b = t
        .lookup("app", b"k")
        .expect("binding kept by the late touch");
    assert_eq!(b.expires_at, 5_100 + 100 + SKEW);
    assert_eq!(t.counters().revived, 0);
    // A member silent for longer than the grace does not keep it forever.
    tick(
        &mut t,
        5_100 + 100 + SKEW + TableParams::default().expiry_grace + 1,
    );
    assert!(t.lookup("app", b"k").is_none());
    assert!(expiry < 5_000);
}

#[test]
fn drain_since_term_covers_binds_made_before_the_drain_was_seen() {
    // No binding ever: the release point is since + skew.
    let mut t = StickTable::new();
    members(&mut t, &[1]);
    report(&mut t, 0, 1, 10_000);
    set_state(&mut t, 10_000, "s1", DRAIN);
    assert!(matches!(state(&t, "s1"), AdminState::Drain { .. }));
    report(&mut t, 10_000, 1, 10_000 + SKEW - 1);
    assert_eq!(t.release_blockers("app", "s1"), vec![1]);
    report(&mut t, 10_000, 1, 10_000 + SKEW);
    assert_eq!(state(&t, "s1"), AdminState::Maint);
}

#[test]
fn drain_with_nothing_to_wait_for_answers_maint_at_once() {
    let mut t = StickTable::new();
    // No member set known: nothing blocks.
    assert_eq!(set_state(&mut t, 100, "s1", DRAIN), AdminState::Maint);
    assert_eq!(t.counters().released, 1);
}

#[test]
fn new_member_blocks_release_until_it_reports() {
    let mut t = StickTable::new();
    members(&mut t, &[1]);
    set_state(&mut t, 0, "s1", DRAIN);
    members(&mut t, &[1, 2]);
    assert_eq!(t.watermarks()[&2], 0);
    report(&mut t, 0, 1, SKEW);
    assert_eq!(t.release_blockers("app", "s1"), vec![2]);
    assert!(matches!(state(&t, "s1"), AdminState::Drain { .. }));
    report(&mut t, 0, 2, SKEW);
    assert_eq!(state(&t, "s1"), AdminState::Maint);
}

#[test]
fn removing_a_silent_member_unblocks_release() {
    let mut t = StickTable::new();
    members(&mut t, &[1, 2]);
    set_state(&mut t, 0, "s1", DRAIN);
    report(&mut t, 0, 1, 10_000);
    assert_eq!(t.release_blockers("app", "s1"), vec![2]);
    members(&mut t, &[1]);
    assert_eq!(state(&t, "s1"), AdminState::Maint);
    assert_eq!(t.watermarks().keys().copied().collect::<Vec<_>>(), vec![1]);
    // Existing members keep their watermark across membership changes.
    members(&mut t, &[1, 3]);
    assert_eq!(t.watermarks()[&1], 10_000);
    assert_eq!(t.watermarks()[&3], 0);
}

#[test]
fn non_member_watermarks_are_ignored_but_their_binds_applied() {
    let mut t = StickTable::new();
    members(&mut t, &[1]);
    batch(
        &mut t,
        0,
        9,
        vec![bind("app", "k", "s2", 10)],
        vec![],
        1_000,
    );
    assert!(!t.watermarks().contains_key(&9));
    assert_eq!(t.bindings_of("app", "s2"), 1);
}

#[test]
fn deadline_forces_release_even_with_live_bindings() {
    let mut t = StickTable::new();
    members(&mut t, &[1]);
    batch(
        &mut t,
        0,
        1,
        vec![bind("app", "k", "s1", 100_000)],
        vec![],
        0,
    );
    let drain = RequestedState::Drain {
        deadline_after: Some(1000),
    };
    assert_eq!(
        set_state(&mut t, 100, "s1", drain),
        AdminState::Drain {
            since: 100,
            deadline: Some(1100)
        }
    );
    tick(&mut t, 1099);
    assert!(matches!(state(&t, "s1"), AdminState::Drain { .. }));
    tick(&mut t, 1100);
    assert_eq!(state(&t, "s1"), AdminState::Maint);
    assert_eq!(t.counters().forced_releases, 1);
    assert_eq!(t.counters().released, 0);
    assert_eq!(t.bindings_of("app", "s1"), 1);
}

#[test]
fn draining_again_keeps_since_and_replaces_the_deadline() {
    let mut t = StickTable::new();
    members(&mut t, &[1]);
    set_state(&mut t, 100, "s1", DRAIN);
    let s = set_state(
        &mut t,
        200,
        "s1",
        RequestedState::Drain {
            deadline_after: Some(50),
        },
    );
    assert_eq!(
        s,
        AdminState::Drain {
            since: 100,
            deadline: Some(250)
        }
    );
    tick(&mut t, 249);
    assert!(matches!(state(&t, "s1"), AdminState::Drain { .. }));
    tick(&mut t, 250);
    assert_eq!(state(&t, "s1"), AdminState::Maint);
    assert_eq!(t.counters().forced_releases, 1);
    // Draining again without a deadline clears it.
    set_state(
        &mut t,
        300,
        "s2",
        RequestedState::Drain {
            deadline_after: Some(10),
        },
    );
    let s = set_state(&mut t, 305, "s2", DRAIN);
    assert_eq!(
        s,
        AdminState::Drain {
            since: 300,
            deadline: None
        }
    );
    tick(&mut t, 10_000);
    assert!(matches!(state(&t, "s2"), AdminState::Drain { .. }));
}

#[test]
fn ready_cancels_a_drain_and_maint_is_immediate() {
    let mut t = StickTable::new();
    members(&mut t, &[1]);
    set_state(&mut t, 0, "s1", DRAIN);
    assert_eq!(
        set_state(&mut t, 0, "s1", RequestedState::Ready),
        AdminState::Ready
    );
    report(&mut t, 0, 1, u64::MAX);
    assert_eq!(state(&t, "s1"), AdminState::Ready);
    assert!(t.release_blockers("app", "s1").is_empty());
    assert_eq!(
        set_state(&mut t, 0, "s1", RequestedState::Maint),
        AdminState::Maint
    );
    assert_eq!(t.counters().released, 0);
    assert!(t.release_blockers("app", "nope").is_empty());
}

#[test]
fn released_state_survives_a_snapshot() {
    let mut t = StickTable::new();
    members(&mut t, &[1, 2]);
    batch(&mut t, 0, 1, vec![bind("app", "k", "s1", 100)], vec![], 0);
    set_state(&mut t, 10, "s1", DRAIN);
    let back = StickTable::decode_snapshot(&t.encode_snapshot()).unwrap();
    back.check_invariants().unwrap();
    assert_eq!(back.members(), t.members());
    assert_eq!(back.servers(), t.servers());
    assert_eq!(back.release_blockers("app", "s1"), vec![1, 2]);
    assert_eq!(back.encode_snapshot(), t.encode_snapshot());
}

/// DESIGN.md: a watermark counts toward a drain only from a batch taken after its node
/// applied the drain. A member that was paused reports a fresh watermark from before it
/// applied the drain (it may still have balanced new clients to the server since): that
/// must not release it.
#[test]
fn a_watermark_taken_before_the_node_applied_the_drain_does_not_release_it() {
    use crate::model::{Command, NodeBatch, Proposal};
    let mut t = StickTable::new();
    members(&mut t, &[1, 2]);
    t.note_index(10);
    set_state(&mut t, 10, "s1", DRAIN);
    assert_eq!(t.drain_index("app", "s1"), Some(10));
    let with_applied = |t: &mut StickTable, node: u64, watermark: u64, applied: u64| {
        t.note_index(t.index + 1);
        t.apply(&Proposal {
            now: 1_000,
            command: Command::from(NodeBatch {
                node,
                watermark,
                applied,
                ..NodeBatch::default()
            }),
        });
        t.check_invariants().unwrap();
    };
    with_applied(&mut t, 1, 5_000, 10);
    // Node 2's watermark is far past the release point, but it had applied only up to 9.
    with_applied(&mut t, 2, 5_000, 9);
    assert!(matches!(state(&t, "s1"), AdminState::Drain { .. }));
    assert_eq!(t.release_blockers("app", "s1"), vec![2]);
    // Its next batch, taken after it applied the drain, lets the release through.
    with_applied(&mut t, 2, 5_001, 12);
    assert_eq!(state(&t, "s1"), AdminState::Maint);
    assert_eq!(t.drain_index("app", "s1"), None);
}

/// DESIGN.md (c): an open stream or tunnel on a node is a promise for its server; the
/// release waits for the table clock to pass every member's promise (plus the skew).
#[test]
fn a_promise_holds_the_release_until_the_clock_passes_it() {
    use crate::model::Promise;
    let mut t = StickTable::new();
    members(&mut t, &[1, 2]);
    set_state(&mut t, 10, "s1", DRAIN);
    promise(&mut t, 1_000, 1, 0);
    promise(&mut t, 1_000, 2, 5_000);
    assert_eq!(t.server("app", "s1").unwrap().promised_until, 5_000);
    assert_eq!(t.release_blockers("app", "s1"), vec![2]);
    // Open: no clock passes it. A batch without promises (an operator's pin) keeps it.
    promise(&mut t, 2_000, 2, Promise::OPEN);
    report(&mut t, 2_000, 1, 60_000);
    report(&mut t, 2_000, 2, 60_000);
    tick(&mut t, 50_000);
    assert!(matches!(state(&t, "s1"), AdminState::Drain { .. }));
    assert_eq!(t.release_blockers("app", "s1"), vec![2]);
    // Closed at 50 000: the node's next report replaces its promise.
    promise(&mut t, 50_000, 2, 51_000);
    tick(&mut t, 51_000 + SKEW);
    assert!(matches!(state(&t, "s1"), AdminState::Drain { .. }));
    tick(&mut t, 51_001 + SKEW);
    assert_eq!(state(&t, "s1"), AdminState::Maint);
}

fn promise(t: &mut StickTable, now: u64, node: u64, until: u64) {
    use crate::model::{Command, NodeBatch, Promise, Proposal};
    t.apply(&Proposal {
        now,
        command: Command::from(NodeBatch {
            node,
            watermark: now,
            promises: Some(vec![Promise {
                backend: "app".into(),
                server: "s1".into(),
                until,
            }]),
            ..NodeBatch::default()
        }),
    });
    t.check_invariants().unwrap();
}

#[test]
fn the_projected_release_is_where_the_rule_releases() {
    use super::Holder;
    let mut t = StickTable::new();
    members(&mut t, &[1, 2]);
    assert_eq!(t.projected_release("app", "s1"), None, "not draining");
    batch(&mut t, 0, 1, vec![bind("app", "k", "s1", 100)], vec![], 0);
    batch(&mut t, 50, 2, vec![], vec![touch("app", "k", "s1", 300)], 0);
    set_state(&mut t, 60, "s1", DRAIN);
    let p = t.projected_release("app", "s1").expect("draining");
    assert_eq!(p.holder, Holder::Bindings);
    let at = p.at.expect("a time");
    // The touched binding expires at 50 + 300 + skew; the release needs every watermark
    // a skew past that.
    assert_eq!(at, 50 + 300 + SKEW + SKEW);
    // Every watermark at `at`: not past it yet.
    for node in [1, 2] {
        report(&mut t, at, node, at);
    }
    assert!(
        matches!(state(&t, "s1"), AdminState::Drain { .. }),
        "one ms early"
    );
    assert_eq!(
        t.projected_release("app", "s1").and_then(|p| p.at),
        Some(at)
    );
    report(&mut t, at, 1, at + 1);
    assert!(
        matches!(state(&t, "s1"), AdminState::Drain { .. }),
        "node 2 not past"
    );
    report(&mut t, at, 2, at + 1);
    assert_eq!(t.bindings_of("app", "s1"), 0, "expired");
    assert_eq!(
        state(&t, "s1"),
        AdminState::Maint,
        "released where projected"
    );
}

#[test]
fn promises_open_streams_and_deadlines_shape_the_projection() {
    use super::Holder;
    use crate::model::Promise;
    let mut t = StickTable::new();
    members(&mut t, &[1, 2]);
    report(&mut t, 0, 2, 0);
    set_state(&mut t, 10, "s1", DRAIN);
    assert_eq!(
        t.projected_release("app", "s1").map(|p| p.holder),
        Some(Holder::Drain)
    );
    promise(&mut t, 20, 1, 5_000);
    let p = t.projected_release("app", "s1").expect("draining");
    assert_eq!((p.at, p.holder), (Some(5_000 + SKEW), Holder::Promise(1)));
    promise(&mut t, 30, 1, Promise::OPEN);
    let p = t.projected_release("app", "s1").expect("draining");
    assert_eq!((p.at, p.holder), (None, Holder::OpenStreams(1)));
    let mut t = StickTable::new();
    members(&mut t, &[1]);
    set_state(
        &mut t,
        0,
        "s1",
        RequestedState::Drain {
            deadline_after: Some(2_000),
        },
    );
    promise(&mut t, 10, 1, Promise::OPEN);
    let p = t.projected_release("app", "s1").expect("draining");
    assert_eq!((p.at, p.holder), (Some(2_000), Holder::Deadline));
}

/// DESIGN.md, a bounded table: a full table evicts the binding closest to expiry, and its
/// expiry, folded into `evicted_until`, holds its server's release back like the binding.
#[test]
fn an_evicted_binding_holds_the_release_until_it_would_have_expired() {
    use crate::model::{Command, Proposal, TableLimits};
    let mut t = StickTable::new();
    members(&mut t, &[1]);
    t.apply(&Proposal {
        now: 0,
        command: Command::SetLimits(TableLimits { max_bindings: 2 }),
    });
    let binds = vec![
        bind("app", "late", "s2", 9_000),
        bind("app", "soon", "s1", 5_000),
        bind("app", "later", "s2", 9_000),
    ];
    batch(&mut t, 0, 1, binds, vec![], 0);
    t.check_invariants().unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t.counters().evicted, 1);
    assert!(
        t.lookup("app", b"soon").is_none(),
        "closest to expiry goes first"
    );
    let s1 = t.server("app", "s1").unwrap();
    assert_eq!((s1.bindings, s1.evicted_until), (0, 5_000 + SKEW));
    set_state(&mut t, 10, "s1", DRAIN);
    // No live binding, but the evicted one would still be alive: held.
    report(&mut t, 4_000, 1, 4_000);
    assert!(matches!(state(&t, "s1"), AdminState::Drain { .. }));
    let projected = t.projected_release("app", "s1").and_then(|p| p.at);
    assert_eq!(projected, Some(5_000 + 2 * SKEW));
    report(&mut t, 6_000, 1, 5_000 + 2 * SKEW + 1);
    assert_eq!(state(&t, "s1"), AdminState::Maint);
    // Lowering the bound evicts at once, again closest to expiry (ties by key).
    t.apply(&Proposal {
        now: 6_000,
        command: Command::SetLimits(TableLimits { max_bindings: 1 }),
    });
    assert!(t.lookup("app", b"late").is_none() && t.lookup("app", b"later").is_some());
    t.check_invariants().unwrap();
}
