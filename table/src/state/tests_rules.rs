//! Unit tests of the binding rules: bind, conflict, touch, revive, refuse, expiry at the
//! millisecond boundary, the clock and per-server counts.

use super::StickTable;
use super::test_util::{SKEW, batch, batch_resp, bind, server_of, set_state, tick, touch};
use crate::model::RequestedState;

#[test]
fn bind_creates_binding_with_ttl_plus_skew() {
    let mut t = StickTable::new();
    let r = batch(
        &mut t,
        1000,
        1,
        vec![bind("app", "k", "s1", 5000)],
        vec![],
        0,
    );
    assert_eq!(r, batch_resp(1, 0, 0));
    let b = t.lookup("app", b"k").unwrap();
    assert_eq!(
        (b.server.as_str(), b.expires_at),
        ("s1", 1000 + 5000 + SKEW)
    );
    assert_eq!(t.bindings_of("app", "s1"), 1);
    assert_eq!(t.len(), 1);
    assert_eq!(t.counters().bound, 1);
    assert!(t.lookup("other", b"k").is_none());
    assert!(t.lookup("app", b"x").is_none());
}

#[test]
fn repeated_bind_to_same_server_is_a_touch_not_a_conflict() {
    let mut t = StickTable::new();
    batch(
        &mut t,
        1000,
        1,
        vec![bind("app", "k", "s1", 5000)],
        vec![],
        0,
    );
    let r = batch(
        &mut t,
        2000,
        1,
        vec![bind("app", "k", "s1", 5000)],
        vec![],
        0,
    );
    assert_eq!(r, batch_resp(0, 0, 0));
    let c = t.counters();
    assert_eq!((c.bound, c.conflicts, c.touched), (1, 0, 1));
    assert_eq!(
        t.lookup("app", b"k").unwrap().expires_at,
        2000 + 5000 + SKEW
    );
}

#[test]
fn a_redispatched_bind_moves_the_binding_once() {
    let mut t = StickTable::new();
    batch(
        &mut t,
        1000,
        1,
        vec![bind("app", "k", "s1", 5000)],
        vec![],
        0,
    );
    set_state(&mut t, 1500, "s1", RequestedState::Maint);
    let mut moved = bind("app", "k", "s2", 5000);
    moved.replaces = Some("s1".into());
    batch(&mut t, 2000, 2, vec![moved], vec![], 0);
    assert_eq!(t.lookup("app", b"k").unwrap().server, "s2");
    assert_eq!(
        (t.bindings_of("app", "s1"), t.bindings_of("app", "s2")),
        (0, 1)
    );
    assert_eq!(t.server("app", "s1").unwrap().last_expiry, 2000);
    // Another node's move of the same client, decided on the same stale view, loses.
    let mut late = bind("app", "k", "s3", 5000);
    late.replaces = Some("s1".into());
    batch(&mut t, 2100, 3, vec![late], vec![], 0);
    assert_eq!(t.lookup("app", b"k").unwrap().server, "s2");
    let c = t.counters();
    assert_eq!((c.bound, c.rebound, c.conflicts), (1, 1, 1));
}

#[test]
fn first_committed_bind_wins_and_later_bind_touches_winner() {
    let mut t = StickTable::new();
    batch(
        &mut t,
        1000,
        1,
        vec![bind("app", "k", "s1", 5000)],
        vec![],
        0,
    );
    let r = batch(
        &mut t,
        2000,
        2,
        vec![bind("app", "k", "s2", 5000)],
        vec![],
        0,
    );
    assert_eq!(r, batch_resp(0, 1, 0));
    let b = t.lookup("app", b"k").unwrap();
    assert_eq!(
        (b.server.as_str(), b.expires_at),
        ("s1", 2000 + 5000 + SKEW)
    );
    assert_eq!(t.bindings_of("app", "s1"), 1);
    assert_eq!(t.bindings_of("app", "s2"), 0);
    let c = t.counters();
    assert_eq!((c.bound, c.conflicts, c.touched), (1, 1, 1));
    // The loser's server is registered all the same.
    assert!(t.server("app", "s2").is_some());
}

#[test]
fn same_key_in_two_backends_is_two_bindings() {
    let mut t = StickTable::new();
    let r = batch(
        &mut t,
        1,
        1,
        vec![bind("a", "k", "s1", 10), bind("b", "k", "s1", 10)],
        vec![],
        0,
    );
    assert_eq!(r, batch_resp(2, 0, 0));
    assert_eq!(t.len(), 2);
    assert_eq!(t.bindings_of("a", "s1"), 1);
    assert_eq!(t.bindings_of("b", "s1"), 1);
}

#[test]
fn touch_extends_but_never_shortens() {
    let mut t = StickTable::new();
    batch(
        &mut t,
        1000,
        1,
        vec![bind("app", "k", "s1", 5000)],
        vec![],
        0,
    );
    batch(
        &mut t,
        3000,
        1,
        vec![],
        vec![touch("app", "k", "s1", 5000)],
        0,
    );
    assert_eq!(
        t.lookup("app", b"k").unwrap().expires_at,
        3000 + 5000 + SKEW
    );
    // A touch with a shorter ttl leaves the later expiry alone, but still counts.
    batch(
        &mut t,
        3500,
        1,
        vec![],
        vec![touch("app", "k", "s1", 10)],
        0,
    );
    assert_eq!(
        t.lookup("app", b"k").unwrap().expires_at,
        3000 + 5000 + SKEW
    );
    assert_eq!(t.counters().touched, 2);
    // A touch naming another server extends the existing binding, whatever its server.
    batch(
        &mut t,
        4000,
        2,
        vec![],
        vec![touch("app", "k", "s2", 5000)],
        0,
    );
    assert_eq!(server_of(&t, "k").as_deref(), Some("s1"));
    assert_eq!(
        t.lookup("app", b"k").unwrap().expires_at,
        4000 + 5000 + SKEW
    );
    assert_eq!(t.bindings_of("app", "s2"), 0);
}

#[test]
fn touch_of_expired_binding_revives_it() {
    let mut t = StickTable::new();
    batch(&mut t, 0, 1, vec![bind("app", "k", "s1", 100)], vec![], 0);
    tick(&mut t, 100 + SKEW + 1);
    assert!(t.lookup("app", b"k").is_none());
    assert_eq!(t.counters().expired, 1);
    batch(
        &mut t,
        1000,
        1,
        vec![],
        vec![touch("app", "k", "s2", 100)],
        0,
    );
    let b = t.lookup("app", b"k").unwrap();
    assert_eq!((b.server.as_str(), b.expires_at), ("s2", 1000 + 100 + SKEW));
    assert_eq!(t.counters().revived, 1);
    assert_eq!(t.bindings_of("app", "s2"), 1);
}

#[test]
fn dead_binding_not_yet_swept_is_not_live_for_a_bind() {
    // The proposal's clock passes the binding's expiry: the bind in the same entry must
    // see no live binding (and the old one counts as expired for its server).
    let mut t = StickTable::new();
    batch(&mut t, 0, 1, vec![bind("app", "k", "s1", 100)], vec![], 0);
    let r = batch(
        &mut t,
        10_000,
        2,
        vec![bind("app", "k", "s2", 100)],
        vec![],
        0,
    );
    assert_eq!(r, batch_resp(1, 0, 0));
    assert_eq!(server_of(&t, "k").as_deref(), Some("s2"));
    assert_eq!(t.server("app", "s1").unwrap().last_expiry, 100 + SKEW);
    assert_eq!(t.counters().expired, 1);
}

#[test]
fn maint_refuses_binds_and_revivals_but_not_touches_of_live_bindings() {
    let mut t = StickTable::new();
    batch(
        &mut t,
        0,
        1,
        vec![bind("app", "live", "s1", 1000)],
        vec![],
        0,
    );
    set_state(&mut t, 0, "s1", RequestedState::Maint);
    let r = batch(
        &mut t,
        10,
        1,
        vec![bind("app", "new", "s1", 1000)],
        vec![
            touch("app", "live", "s1", 1000),
            touch("app", "gone", "s1", 1000),
        ],
        0,
    );
    assert_eq!(r, batch_resp(0, 0, 1));
    assert!(t.lookup("app", b"new").is_none());
    assert!(t.lookup("app", b"gone").is_none());
    assert_eq!(
        t.lookup("app", b"live").unwrap().expires_at,
        10 + 1000 + SKEW
    );
    let c = t.counters();
    assert_eq!((c.refused, c.touched, c.revived), (2, 1, 0));
}

#[test]
fn bind_to_draining_server_is_accepted() {
    let mut t = StickTable::new();
    t.set_members(&[1].into());
    set_state(
        &mut t,
        0,
        "s1",
        RequestedState::Drain {
            deadline_after: None,
        },
    );
    let r = batch(&mut t, 5, 1, vec![bind("app", "k", "s1", 100)], vec![], 0);
    assert_eq!(r, batch_resp(1, 0, 0));
    assert_eq!(t.bindings_of("app", "s1"), 1);
}

#[test]
fn expiry_happens_exactly_when_clock_passes_expires_at() {
    let mut t = StickTable::new();
    batch(
        &mut t,
        1000,
        1,
        vec![bind("app", "k", "s1", 500)],
        vec![],
        0,
    );
    let at = 1000 + 500 + SKEW;
    tick(&mut t, at);
    assert!(t.lookup("app", b"k").is_some(), "live at expires_at");
    assert_eq!(t.bindings_of("app", "s1"), 1);
    tick(&mut t, at + 1);
    assert!(t.lookup("app", b"k").is_none(), "gone one ms later");
    assert_eq!(t.bindings_of("app", "s1"), 0);
    assert_eq!(t.server("app", "s1").unwrap().last_expiry, at);
    assert_eq!(t.counters().expired, 1);
    assert!(t.is_empty());
}

#[test]
fn touched_binding_survives_its_original_bucket() {
    let mut t = StickTable::new();
    batch(&mut t, 0, 1, vec![bind("app", "k", "s1", 1000)], vec![], 0);
    for now in (500..20_000).step_by(500) {
        batch(
            &mut t,
            now,
            1,
            vec![],
            vec![touch("app", "k", "s1", 1000)],
            0,
        );
        assert!(t.lookup("app", b"k").is_some(), "alive at {now}");
    }
    tick(&mut t, 19_500 + 1000 + SKEW);
    assert!(t.lookup("app", b"k").is_some());
    tick(&mut t, 19_500 + 1000 + SKEW + 1);
    assert!(t.lookup("app", b"k").is_none());
    assert_eq!(t.counters().expired, 1);
}

#[test]
fn clock_never_goes_back() {
    let mut t = StickTable::new();
    tick(&mut t, 5000);
    tick(&mut t, 10);
    assert_eq!(t.now(), 5000);
    batch(&mut t, 10, 1, vec![bind("app", "k", "s1", 100)], vec![], 0);
    assert_eq!(t.lookup("app", b"k").unwrap().expires_at, 5000 + 100 + SKEW);
}

#[test]
fn counts_follow_binds_and_expiry() {
    let mut t = StickTable::new();
    let binds = (0..10)
        .map(|i| {
            bind(
                "app",
                &format!("k{i}"),
                if i % 3 == 0 { "a" } else { "b" },
                100 * i,
            )
        })
        .collect();
    batch(&mut t, 0, 1, binds, vec![], 0);
    assert_eq!(
        (t.bindings_of("app", "a"), t.bindings_of("app", "b")),
        (4, 6)
    );
    tick(&mut t, 450 + SKEW);
    // ttl 0..=400 (k0..k4) expired: k0 and k3 were on a.
    assert_eq!(
        (t.bindings_of("app", "a"), t.bindings_of("app", "b")),
        (2, 3)
    );
    assert_eq!(t.bindings_of("app", "nope"), 0);
    assert_eq!(t.len(), 5);
    let listed: Vec<_> = t.bindings("app", 3).into_iter().map(|b| b.key).collect();
    assert_eq!(listed, vec![b"k5".to_vec(), b"k6".to_vec(), b"k7".to_vec()]);
    assert_eq!(t.bindings("app", 100).len(), 5);
    assert!(t.bindings("app", 0).is_empty());
}

/// `maxlife` (issue 11): touches extend a capped binding only up to its creation plus
/// maxlife (plus the skew); then it expires however active the client is.
#[test]
fn maxlife_caps_a_binding_however_often_it_is_touched() {
    let mut t = StickTable::new();
    let mut b = bind("app", "k", "s1", 1_000);
    b.maxlife = Some(2_500);
    batch(&mut t, 0, 1, vec![b], vec![], 0);
    let cap = 2_500 + SKEW;
    for now in (500..=2_000).step_by(500) {
        batch(
            &mut t,
            now,
            1,
            vec![],
            vec![touch("app", "k", "s1", 1_000)],
            now,
        );
        let e = t.lookup("app", b"k").expect("bound").expires_at;
        assert_eq!(e, (now + 1_000 + SKEW).min(cap));
    }
    batch(&mut t, cap + 1, 1, vec![], vec![], cap + 1_000);
    assert!(t.lookup("app", b"k").is_none(), "expired at its maxlife");
    // A new bind of the key starts a new life.
    let mut again = bind("app", "k", "s1", 1_000);
    again.maxlife = Some(2_500);
    batch(&mut t, cap + 2, 1, vec![again], vec![], cap + 2);
    assert!(t.lookup("app", b"k").is_some());
}
