//! Unit tests of parameters, server registration and listing, the change feed, and
//! arithmetic at the edges of time.

use std::sync::Arc;

use super::test_util::{SKEW, batch, bind, set_state, tick, touch};
use super::{Change, StickTable};
use crate::model::{AdminState, Command, Proposal, RequestedState, Response, TableParams};

#[test]
fn set_params_changes_future_expiries_only() {
    let mut t = StickTable::new();
    batch(&mut t, 0, 1, vec![bind("app", "a", "s1", 100)], vec![], 0);
    let r = t.apply(&Proposal {
        now: 0,
        command: Command::SetParams(TableParams {
            max_skew: 7,
            ..TableParams::default()
        }),
    });
    assert_eq!(r, Response::Params);
    assert_eq!(t.params().max_skew, 7);
    batch(&mut t, 0, 1, vec![bind("app", "b", "s1", 100)], vec![], 0);
    assert_eq!(t.lookup("app", b"a").unwrap().expires_at, 100 + SKEW);
    assert_eq!(t.lookup("app", b"b").unwrap().expires_at, 107);
}

#[test]
fn servers_are_registered_on_first_mention_and_listed_by_name() {
    let mut t = StickTable::new();
    batch(&mut t, 0, 1, vec![bind("web", "k", "z", 1)], vec![], 0);
    batch(&mut t, 0, 1, vec![], vec![touch("app", "k", "y", 1)], 0);
    set_state(&mut t, 0, "x", RequestedState::Ready);
    let names: Vec<_> = t
        .servers()
        .into_iter()
        .map(|s| (s.backend, s.server, s.admin_state))
        .collect();
    assert_eq!(
        names,
        vec![
            ("app".into(), "x".into(), AdminState::Ready),
            ("app".into(), "y".into(), AdminState::Ready),
            ("web".into(), "z".into(), AdminState::Ready),
        ]
    );
    assert_eq!(t.backends(), vec!["app".to_string(), "web".to_string()]);
}

#[test]
fn changes_report_upserts_removes_and_server_changes_in_order() {
    let mut t = StickTable::new();
    batch(&mut t, 0, 1, vec![bind("app", "k", "s1", 100)], vec![], 0);
    batch(&mut t, 10, 1, vec![], vec![touch("app", "k", "s1", 100)], 0);
    tick(&mut t, 10_000);
    let app: Arc<str> = Arc::from("app");
    let s1: Arc<str> = Arc::from("s1");
    assert_eq!(
        t.take_changes(),
        vec![
            Change::Servers,
            Change::Upsert {
                backend: app.clone(),
                key: b"k".to_vec(),
                server: s1.clone(),
                expires_at: 100 + SKEW,
            },
            Change::Upsert {
                backend: app.clone(),
                key: b"k".to_vec(),
                server: s1,
                expires_at: 110 + SKEW,
            },
            Change::Remove {
                backend: app,
                key: b"k".to_vec(),
            },
        ]
    );
    assert!(t.take_changes().is_empty());
    t.set_change_tracking(false);
    batch(
        &mut t,
        10_000,
        1,
        vec![bind("app", "k", "s1", 100)],
        vec![],
        0,
    );
    assert!(t.take_changes().is_empty());
}

#[test]
fn huge_ttl_saturates_instead_of_overflowing() {
    let mut t = StickTable::new();
    batch(
        &mut t,
        5,
        1,
        vec![bind("app", "k", "s1", u64::MAX)],
        vec![],
        0,
    );
    assert_eq!(t.lookup("app", b"k").unwrap().expires_at, u64::MAX);
    tick(&mut t, u64::MAX);
    assert!(t.lookup("app", b"k").is_some());
    let back = StickTable::decode_snapshot(&t.encode_snapshot()).unwrap();
    assert_eq!(back.encode_snapshot(), t.encode_snapshot());
}
