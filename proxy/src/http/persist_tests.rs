//! Unit tests of persistence: every mode × the bound server's state × where the binding
//! is known, against a data plane built in memory around a real read view and bind
//! queue, with a fake leader (the narrow `TableAccess` interface; no Raft node).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use holdfast_table::StickTable;
use holdfast_table::model::{AdminState, Bind, Command, NodeBatch, Proposal, ServerStatus};
use holdfast_table::view::{ReadView, ServerStates};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::*;
use crate::cluster::{BindQueue, OpenSet, Record};
use crate::http::table::{LeaderLookup, Lookup, TableAccess};
use crate::http::{HttpMetrics, running};

/// A leader that knows what the test told it, and counts how often it was asked.
#[derive(Default)]
struct FakeLeader {
    known: Mutex<HashMap<Vec<u8>, String>>,
    asked: Mutex<u32>,
}

impl LeaderLookup for FakeLeader {
    fn lookup<'a>(&'a self, _: &'a str, key: &'a [u8], _: Duration) -> Lookup<'a> {
        *self.asked.lock() += 1;
        let found = self.known.lock().get(key).cloned();
        Box::pin(async move { found })
    }
}

/// One backend `b` with servers s1..s3 in `mode`, around an in-memory table.
struct Lab {
    dp: DataPlane,
    records: mpsc::Receiver<Record>,
    leader: Arc<FakeLeader>,
    view: Arc<ReadView>,
    /// The table the view reads.
    table: Mutex<StickTable>,
}

fn lab(mode: &str) -> Lab {
    lab_with(mode, "")
}

/// [`lab`] with more settings of the backend.
fn lab_with(mode: &str, extra: &str) -> Lab {
    let text = format!(
        "[node]\nid = 1\n[cluster]\nsecret = \"unit-test-secret-0123456789\"\n\
         [[backend]]\nname = \"b\"\npersistence = \"{mode}\"\ncookie = \"SID\"\nttl = \"60s\"\n{extra}\
         server = [{{ name = \"s1\", addr = \"127.0.0.1:1\", cookie = \"SRV1\" }}, \
         {{ name = \"s2\", addr = \"127.0.0.1:2\" }}, {{ name = \"s3\", addr = \"127.0.0.1:3\" }}]\n"
    );
    let config = crate::config::parse(&text).expect("test config");
    let open = Arc::new(OpenSet::default());
    let (queue, records) = BindQueue::new(1024, open.clone());
    let leader = Arc::new(FakeLeader::default());
    let view = Arc::new(ReadView::new());
    let table = TableAccess {
        view: view.clone(),
        queue,
        open,
        leader: leader.clone(),
    };
    let metrics = Arc::new(HttpMetrics::default());
    let lasting = Arc::new(running::lasting(table, metrics, &config));
    let dp = running::build_plane(lasting, &config, None);
    let dp = Arc::try_unwrap(dp).unwrap_or_else(|_| unreachable!("a new plane has one owner"));
    Lab {
        dp,
        records,
        leader,
        view,
        table: Mutex::new(StickTable::new()),
    }
}

/// The state of the server a client is bound to.
#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Ready,
    Drain,
    Maint,
    Down,
}

/// Where this node can learn the client's binding.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Known {
    View,
    Overrides,
    Leader,
    Nowhere,
}

const CLIENT: &str = "192.0.2.10";

impl Lab {
    fn pool(&self) -> Arc<Pool> {
        self.dp.pools["b"].clone()
    }

    fn set(&self, server: &str, state: State) {
        let admin_state = match state {
            State::Drain => AdminState::Drain {
                since: 0,
                deadline: None,
            },
            State::Maint => AdminState::Maint,
            State::Ready | State::Down => AdminState::Ready,
        };
        self.view.publish_states(ServerStates {
            servers: vec![ServerStatus {
                backend: "b".into(),
                server: server.into(),
                admin_state,
                bindings: 0,
                last_expiry: 0,
                promised_until: 0,
                evicted_until: 0,
            }],
            now: 0,
        });
        let pool = self.pool();
        pool.server(server)
            .expect("server")
            .set_up(state != State::Down);
    }

    fn bind(&self, key: &[u8], server: &str, known: Known) {
        match known {
            Known::View => {
                let mut table = self.table.lock();
                table.apply(&Proposal {
                    now: 1,
                    command: Command::from(NodeBatch {
                        binds: vec![Bind {
                            backend: "b".into(),
                            key: key.to_vec(),
                            server: server.into(),
                            ttl: u64::MAX / 4,
                            replaces: None,
                            maxlife: None,
                        }],
                        ..NodeBatch::default()
                    }),
                });
                self.view.attach(table.reader());
            }
            Known::Overrides => {
                let ttl = Duration::from_secs(60);
                self.dp
                    .lasting
                    .overrides
                    .set(&Arc::from("b"), key, Arc::from(server), ttl)
            }
            Known::Leader => {
                self.leader
                    .known
                    .lock()
                    .insert(key.to_vec(), server.to_string());
            }
            Known::Nowhere => {}
        }
    }

    fn breaks(&self) -> u64 {
        self.dp.lasting.metrics.session_breaks("b")
    }

    async fn plan(&self, cookie: Option<&str>) -> Result<Plan, Refusal> {
        let client: IpAddr = CLIENT.parse().expect("address");
        plan(
            &self.dp,
            &self.pool(),
            cookie,
            client,
            &VerifiedCookie::default(),
        )
        .await
    }

    fn drain_records(&mut self) -> Vec<Record> {
        let mut out = Vec::new();
        while let Ok(r) = self.records.try_recv() {
            out.push(r);
        }
        out
    }
}

const STATES: [State; 4] = [State::Ready, State::Drain, State::Maint, State::Down];
const KNOWN: [Known; 4] = [Known::View, Known::Overrides, Known::Leader, Known::Nowhere];

fn usable(state: State) -> bool {
    matches!(state, State::Ready | State::Drain)
}

/// What a bound client must get: its server while usable; else a counted break and
/// another server; an unknown client a balanced server and no break.
fn check(case: &str, plan: &Plan, breaks: u64, bound: bool, state: State) {
    let on_s1 = &*plan.server.name == "s1";
    if bound && usable(state) {
        assert!(on_s1, "{case}: stays on its server");
        assert_eq!(breaks, 0, "{case}: no break");
        assert!(plan.matched.is_some(), "{case}: touches its binding");
    } else if bound {
        assert!(!on_s1, "{case}: leaves its unusable server");
        assert_eq!(breaks, 1, "{case}: one counted break");
    } else {
        assert_eq!(breaks, 0, "{case}: a new client is no break");
        assert!(plan.matched.is_none(), "{case}: nothing to touch");
        assert!(
            state == State::Ready || !on_s1,
            "{case}: only a ready server takes new clients"
        );
    }
}

#[tokio::test]
async fn learn_mode_for_every_state_and_place_known() {
    for state in STATES {
        for known in KNOWN {
            let mut lab = lab("learn");
            lab.set("s1", state);
            lab.bind(b"sess-1", "s1", known);
            let plan = lab.plan(Some("sess-1")).await.expect("a server");
            let case = format!("learn {state:?} {known:?}");
            check(&case, &plan, lab.breaks(), known != Known::Nowhere, state);
            assert_eq!(plan.sent_key.as_deref(), Some(&b"sess-1"[..]), "{case}");
            if known != Known::Nowhere && !usable(state) {
                // The move is bound, so every node follows it.
                assert_eq!(plan.bind_key.as_deref(), Some(&b"sess-1"[..]), "{case}");
                assert_eq!(plan.replaces.as_deref(), Some("s1"), "{case}");
            }
            if known == Known::Nowhere {
                // Learned on the request: the unknown cookie is bound where it went.
                assert_eq!(
                    record(&lab.dp, &lab.pool(), &plan, None, false, false),
                    None
                );
                let binds: Vec<_> = lab.drain_records();
                assert!(
                    matches!(&binds[..], [Record::Bind(b)] if b.key == b"sess-1" && b.server == *plan.server.name),
                    "{case}: {binds:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn learn_mode_asks_the_leader_once_for_an_unknown_cookie() {
    let lab = lab("learn");
    lab.plan(Some("stale")).await.expect("a server");
    lab.plan(Some("stale")).await.expect("a server");
    assert_eq!(*lab.leader.asked.lock(), 1, "a miss is remembered");
    lab.plan(None).await.expect("a server");
    assert_eq!(*lab.leader.asked.lock(), 1, "no cookie, no question");
}

#[tokio::test]
async fn source_mode_for_every_state_and_place_known() {
    for state in STATES {
        for known in KNOWN {
            let lab = lab("source");
            lab.set("s1", state);
            lab.bind(CLIENT.as_bytes(), "s1", known);
            let plan = lab.plan(None).await.expect("a server");
            let case = format!("source {state:?} {known:?}");
            // The leader is never asked in source mode: every node places a new client
            // the same way, by its address.
            let bound = matches!(known, Known::View | Known::Overrides);
            check(&case, &plan, lab.breaks(), bound, state);
            if !bound {
                let pool = lab.pool();
                let states = lab.view.states();
                let by_key = pool
                    .pick_by_key(&states, CLIENT.as_bytes())
                    .expect("a server");
                assert_eq!(plan.server.name, by_key.name, "{case}");
                assert_eq!(plan.bind_key.as_deref(), Some(CLIENT.as_bytes()), "{case}");
            }
            assert_eq!(*lab.leader.asked.lock(), 0, "{case}");
        }
    }
}

#[tokio::test]
async fn insert_mode_for_every_state_and_place_known() {
    for state in STATES {
        for known in KNOWN {
            let mut lab = lab("insert");
            lab.set("s1", state);
            let now = crate::cluster::now_ms() / 1000;
            // Nowhere: a cookie older than ttl + ttl/4, with no binding: an ended session.
            let at = if known == Known::Nowhere {
                now - 600
            } else {
                now
            };
            let cookie = lab.dp.signer.sign("b", "s1", "id-1", at);
            lab.bind(b"id-1", "s1", known);
            let plan = lab.plan(Some(&cookie)).await.expect("a server");
            let case = format!("insert {state:?} {known:?}");
            // A fresh signed cookie is honoured without a binding (not applied yet).
            check(&case, &plan, lab.breaks(), known != Known::Nowhere, state);
            if plan.matched.is_none() {
                assert!(plan.new_session.is_some(), "{case}: a new session");
                let set = record(&lab.dp, &lab.pool(), &plan, None, false, true);
                assert!(set.is_some_and(|c| c.starts_with("SID=")), "{case}");
                // First contact stores nothing (DESIGN.md, Promises).
                assert!(lab.drain_records().is_empty(), "{case}");
            } else {
                record(&lab.dp, &lab.pool(), &plan, None, false, true);
                // The client came back with its cookie: the touch makes (or extends) its
                // binding.
                assert!(
                    matches!(&lab.drain_records()[..], [Record::Touch(t)] if t.key == b"id-1" && t.server == "s1"),
                    "{case}"
                );
            }
        }
    }
}

#[tokio::test]
async fn insert_mode_refuses_forged_cookies_as_new_clients() {
    let lab = lab("insert");
    let now = crate::cluster::now_ms() / 1000;
    let good = lab.dp.signer.sign("b", "s1", "id-1", now);
    let forged = good.replacen("s1", "s2", 1);
    let plan = lab.plan(Some(&forged)).await.expect("a server");
    assert!(plan.matched.is_none() && plan.new_session.is_some());
    assert_eq!(lab.breaks(), 0);
}

#[tokio::test]
async fn no_persistence_balances_every_request() {
    for state in STATES {
        let lab = lab("none");
        lab.set("s1", state);
        for _ in 0..6 {
            let plan = lab.plan(Some("whatever")).await.expect("a server");
            check(
                &format!("none {state:?}"),
                &plan,
                lab.breaks(),
                false,
                state,
            );
        }
    }
}

#[tokio::test]
async fn on_lost_reject_answers_the_configured_status() {
    let lab = lab_with("learn", "on_lost = \"reject\"\nlost_status = 410\n");
    lab.set("s1", State::Maint);
    lab.bind(b"sess-1", "s1", Known::View);
    let refused = lab.plan(Some("sess-1")).await.expect_err("rejected");
    assert_eq!(refused, Refusal::SessionLost(http::StatusCode::GONE));
    assert_eq!(lab.breaks(), 1);
}

#[tokio::test]
async fn insert_mode_honours_haproxys_cookie_values_during_a_switch() {
    for state in STATES {
        let mut lab = lab("insert");
        lab.set("s1", state);
        let plan = lab.plan(Some("SRV1")).await.expect("a server");
        let case = format!("legacy cookie, s1 {state:?}");
        // Its server while usable (a draining server keeps its sessions); a new session
        // either way, whose signed cookie replaces HAProxy's.
        assert_eq!(&*plan.server.name == "s1", usable(state), "{case}");
        assert!(plan.new_session.is_some(), "{case}");
        let set = record(&lab.dp, &lab.pool(), &plan, None, false, false).expect("a cookie");
        assert!(set.starts_with("SID="), "{case}: {set}");
        assert!(lab.drain_records().is_empty(), "{case}");
    }
}

/// DESIGN.md, Promises: a new insert session's exchange binds nothing; once it closes,
/// its server is promised for as long as the cookie is honoured without a binding
/// (ttl + ttl/4), one number per server however many clients.
#[tokio::test]
async fn a_new_insert_session_promises_its_server_instead_of_binding() {
    let mut lab = lab("insert");
    let before = crate::cluster::now_ms();
    for _ in 0..50 {
        let plan = lab.plan(None).await.expect("a server");
        assert!(plan.new_session.is_some());
        let active = open(&lab.dp, &lab.pool(), &plan);
        record(&lab.dp, &lab.pool(), &plan, None, false, false).expect("a cookie");
        drop(active);
    }
    assert!(lab.drain_records().is_empty(), "nothing queued");
    let activity = lab.dp.lasting.table.open.activity();
    assert!(activity.touches.is_empty());
    assert!(!activity.promises.is_empty() && activity.promises.len() <= 3);
    let window = 75_000; // ttl 60 s + ttl/4
    for until in activity.promises.values() {
        assert!(*until >= before + window, "{until} < {before} + {window}");
    }
}

/// A bind or touch the full queue cannot take raises its server's promise instead of
/// being lost (DESIGN.md, Promises).
#[test]
fn what_the_full_queue_cannot_take_becomes_a_promise() {
    let open = Arc::new(OpenSet::default());
    let (queue, _records) = BindQueue::new(1, open.clone());
    let bind = |server: &str| Bind {
        backend: "b".into(),
        key: b"k".to_vec(),
        server: server.into(),
        ttl: 60_000,
        replaces: None,
        maxlife: None,
    };
    let before = crate::cluster::now_ms();
    queue.bind(bind("s1"));
    assert!(open.activity().promises.is_empty(), "it fit");
    queue.bind(bind("s2"));
    let promises = open.activity().promises;
    let until = promises.get(&(Arc::from("b"), Arc::from("s2")));
    assert!(until.is_some_and(|&u| u >= before + 60_000), "{promises:?}");
    assert_eq!(
        queue
            .stats()
            .overflow
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
