//! Property tests of the stick-table state machine: agreement with a naive reference model,
//! determinism across replicas, snapshot/replay equivalence, release safety, and snapshot
//! decoding of garbage.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use holdfast_table::model::{AdminState, Command, Proposal, Response};
use holdfast_table::{Change, StickTable};
use proptest::prelude::*;
use support::{BACKENDS, Model, Step, ops, steps};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

fn run(t: &mut StickTable, step: &Step) -> Response {
    match step {
        Step::Apply(i, p) => {
            t.note_index(*i);
            t.apply(p)
        }
        Step::Members(i, m) => {
            t.note_index(*i);
            t.set_members(m);
            Response::Empty
        }
    }
}

fn replay(steps: &[Step]) -> StickTable {
    let mut t = StickTable::new();
    for s in steps {
        run(&mut t, s);
    }
    t
}

/// Every binding of the table, by (backend, key), through the public listing.
fn listing(t: &StickTable) -> BTreeMap<(String, Vec<u8>), (String, u64)> {
    BACKENDS
        .iter()
        .flat_map(|b| {
            t.bindings(b, usize::MAX)
                .into_iter()
                .map(move |x| ((b.to_string(), x.key), (x.server, x.expires_at)))
        })
        .collect()
}

/// Applies a change feed to a map, as the read view does.
fn follow(view: &mut BTreeMap<(String, Vec<u8>), (String, u64)>, changes: Vec<Change>) {
    for c in changes {
        match c {
            Change::Upsert {
                backend,
                key,
                server,
                expires_at,
            } => {
                view.insert((backend.to_string(), key), (server.to_string(), expires_at));
            }
            Change::Remove { backend, key } => {
                view.remove(&(backend.to_string(), key));
            }
            Change::Servers => {}
        }
    }
}

/// Checks the release rule around one step: no server left `drain` for `maint` unless the
/// rule allowed it (or its deadline passed, or an operator asked), and no draining server
/// that the rule would release is left draining.
fn check_release(before: &StickTable, after: &StickTable, step: &Step) {
    let now = after.now();
    let skew = after.params().max_skew;
    for s in after.servers() {
        let old = before.server(&s.backend, &s.server).map(|x| x.admin_state);
        let point = |since: u64| {
            s.last_expiry
                .max(s.evicted_until)
                .max(since)
                .saturating_add(skew)
        };
        let evicted_gone = s.evicted_until == 0 || s.evicted_until < after.horizon();
        let drained_at = after.drain_index(&s.backend, &s.server).unwrap_or(0);
        let applied = |n: &u64| after.reported_applied().get(n).copied().unwrap_or(0);
        let promises = after.promises(&s.backend, &s.server);
        let promised = |n: &u64| promises.iter().find(|(m, _)| m == n).map(|&(_, u)| u);
        let holds_back = |n: &u64, w: u64, since: u64| {
            w < point(since)
                || applied(n) < drained_at
                || promised(n).is_some_and(|u| u.saturating_add(skew) >= now)
        };
        let rule_holds = |since: u64| {
            s.bindings == 0
                && evicted_gone
                && after
                    .watermarks()
                    .iter()
                    .all(|(n, &w)| !holds_back(n, w, since))
        };
        if let (Some(AdminState::Drain { since, deadline }), AdminState::Maint) =
            (old, s.admin_state)
        {
            let operator = matches!(step, Step::Apply(_, Proposal {
                command: Command::SetServerState { backend, server, .. }, ..
            }) if *backend == s.backend && *server == s.server);
            let forced = deadline.is_some_and(|d| now >= d);
            assert!(
                operator || forced || rule_holds(since),
                "{}/{} released early: {s:?}, watermarks {:?}",
                s.backend,
                s.server,
                after.watermarks()
            );
            if !operator && !forced {
                assert_eq!(after.lookup_count(&s.backend, &s.server), 0);
            }
        }
        if let AdminState::Drain { since, deadline } = s.admin_state {
            assert!(
                !rule_holds(since),
                "{}/{} should have been released",
                s.backend,
                s.server
            );
            assert!(deadline.is_none_or(|d| now < d), "deadline not enforced");
            let blockers: Vec<u64> = after
                .watermarks()
                .iter()
                .filter(|&(n, &w)| holds_back(n, w, since))
                .map(|(&n, _)| n)
                .collect();
            assert_eq!(after.release_blockers(&s.backend, &s.server), blockers);
        }
    }
}

/// Counting helper over the public listing (independent of the maintained counts).
trait LookupCount {
    fn lookup_count(&self, backend: &str, server: &str) -> u64;
}

impl LookupCount for StickTable {
    fn lookup_count(&self, backend: &str, server: &str) -> u64 {
        self.bindings(backend, usize::MAX)
            .iter()
            .filter(|b| b.server == server)
            .count() as u64
    }
}

proptest! {
    #![proptest_config(config())]

    /// The table agrees with the reference model after every step, its counts equal a
    /// recount, its change feed reproduces its bindings, and the release rule holds.
    #[test]
    fn agrees_with_model_and_keeps_invariants(ops in ops(200)) {
        let mut t = StickTable::new();
        let mut m = Model::new();
        let mut view = BTreeMap::new();
        let mut prev_now = 0;
        for step in steps(&ops) {
            let before = t.clone();
            let got = run(&mut t, &step);
            let want = match &step {
                Step::Apply(i, p) => {
                    m.note_index(*i);
                    m.apply(p)
                }
                Step::Members(i, members) => {
                    m.note_index(*i);
                    m.set_members(members);
                    Response::Empty
                }
            };
            prop_assert_eq!(got, want);
            prop_assert!(t.now() >= prev_now);
            prev_now = t.now();
            prop_assert_eq!(t.now(), m.now);
            prop_assert_eq!(t.counters(), m.counters);
            prop_assert_eq!(t.watermarks(), &m.watermarks);
            prop_assert_eq!(t.reported_applied(), &m.reported);
            prop_assert_eq!(t.servers(), m.server_statuses());
            prop_assert_eq!(&listing(&t), &m.bindings);
            prop_assert_eq!(t.len(), m.bindings.len());
            t.check_invariants().map_err(TestCaseError::fail)?;
            for s in t.servers() {
                prop_assert_eq!(t.bindings_of(&s.backend, &s.server), t.lookup_count(&s.backend, &s.server));
            }
            follow(&mut view, t.take_changes());
            prop_assert_eq!(&view, &m.bindings);
            check_release(&before, &t, &step);
        }
    }

    /// Two replicas fed the same steps hold byte-identical state, whether or not they
    /// record changes.
    #[test]
    fn replicas_agree_byte_for_byte(ops in ops(200)) {
        let steps = steps(&ops);
        let mut a = StickTable::new();
        let mut b = StickTable::new();
        b.set_change_tracking(false);
        for s in &steps {
            prop_assert_eq!(run(&mut a, s), run(&mut b, s));
        }
        prop_assert_eq!(a.encode_snapshot(), b.encode_snapshot());
    }

    /// Snapshot at any point, decode, replay the rest: same bytes as replaying everything.
    #[test]
    fn snapshot_then_replay_equals_full_replay(ops in ops(200), cut in any::<prop::sample::Index>()) {
        let steps = steps(&ops);
        let cut = cut.index(steps.len() + 1);
        let full = replay(&steps);
        let head = replay(&steps[..cut]);
        let bytes = head.encode_snapshot();
        let mut restored = StickTable::decode_snapshot(&bytes).unwrap();
        restored.check_invariants().map_err(TestCaseError::fail)?;
        prop_assert_eq!(restored.encode_snapshot(), bytes);
        let mut head = head;
        for s in &steps[cut..] {
            prop_assert_eq!(run(&mut restored, s), run(&mut head, s));
        }
        restored.check_invariants().map_err(TestCaseError::fail)?;
        prop_assert_eq!(restored.encode_snapshot(), full.encode_snapshot());
    }

    /// The encoding does not depend on the order bindings and servers were created in.
    #[test]
    fn encoding_is_canonical(keys in proptest::collection::btree_set(0u32..1000, 1..40),
                             seed in any::<u64>()) {
        let binds: Vec<_> = keys
            .iter()
            .map(|k| holdfast_table::model::Bind {
                backend: BACKENDS[(*k % 2) as usize].into(),
                key: k.to_be_bytes().to_vec(),
                server: format!("s{}", k % 5),
                ttl: u64::from(k % 7) * 100,
                replaces: None,
                maxlife: None,
            })
            .collect();
        let mut shuffled = binds.clone();
        // Deterministic shuffle from the seed (no rand dependency needed).
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let make = |binds: Vec<_>| {
            let mut t = StickTable::new();
            for b in binds {
                t.apply(&Proposal {
                    now: 10,
                    command: Command::from(holdfast_table::model::NodeBatch {
                        node: 1,
                        binds: vec![b],
                        ..Default::default()
                    }),
                });
            }
            t.encode_snapshot()
        };
        prop_assert_eq!(make(binds), make(shuffled));
    }

    /// Garbage never makes decoding panic; whatever decodes is a consistent state whose
    /// encoding is a fixed point. (The input bytes themselves need not be canonical:
    /// bincode accepts a varint written longer than needed, and the state is what counts.)
    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut framed = vec![1u8];
        framed.extend_from_slice(&bytes);
        for input in [&bytes[..], &framed[..]] {
            if let Ok(t) = StickTable::decode_snapshot(input) {
                t.check_invariants().map_err(TestCaseError::fail)?;
                prop_assert_eq!(reencoded(&t), t.encode_snapshot());
            }
        }
    }

    /// Truncated, extended or corrupted snapshots are rejected or decode to a canonical
    /// state; truncation and trailing bytes are always rejected.
    #[test]
    fn damaged_snapshots_are_rejected(ops in ops(60), at in any::<prop::sample::Index>(),
                                      flip in any::<u8>()) {
        let bytes = replay(&steps(&ops)).encode_snapshot();
        let i = at.index(bytes.len());
        prop_assert!(StickTable::decode_snapshot(&bytes[..i]).is_err());
        let mut longer = bytes.clone();
        longer.push(flip);
        prop_assert!(StickTable::decode_snapshot(&longer).is_err());
        let mut bad = bytes.clone();
        bad[i] ^= flip | 1;
        if let Ok(t) = StickTable::decode_snapshot(&bad) {
            t.check_invariants().map_err(TestCaseError::fail)?;
            prop_assert_eq!(reencoded(&t), t.encode_snapshot());
        }
    }
}

/// The snapshot of `t`, decoded and encoded again.
fn reencoded(t: &StickTable) -> Vec<u8> {
    StickTable::decode_snapshot(&t.encode_snapshot())
        .expect("a table's own snapshot decodes")
        .encode_snapshot()
}

#[test]
fn members_given_as_set_are_watermarked() {
    let mut t = StickTable::new();
    t.set_members(&BTreeSet::from([3, 1]));
    assert_eq!(
        t.watermarks().keys().copied().collect::<Vec<_>>(),
        vec![1, 3]
    );
}
