//! The stats page's memory, kept by the node: once a second it samples every draining
//! server (bindings, open streams) from the drain's start to its release, and notes the
//! cluster's events (drains, releases, forced releases, state changes, leader changes,
//! members added or removed). Bounded: a few drains, a few hundred events.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::api::history::{DrainOutcome, DrainSeries, Event, EventKind, Sample};
use crate::api::{AdminState, Backends, Health};
use crate::cluster::{Node, now_ms};

/// Events kept.
const MAX_EVENTS: usize = 200;
/// Drains kept after they ended.
const MAX_ENDED: usize = 8;

/// What the sampler saw last.
#[derive(Default)]
struct Seen {
    states: BTreeMap<(String, String), AdminState>,
    leader: Option<u64>,
    members: BTreeSet<u64>,
    forced: u64,
    started: bool,
}

#[derive(Default)]
struct Inner {
    drains: Vec<DrainSeries>,
    events: VecDeque<Event>,
    seen: Seen,
}

/// Drains over time and recent events; shared by the sampler and `/stats.json`.
#[derive(Default)]
pub struct History {
    inner: Mutex<Inner>,
}

impl History {
    /// Samples `node` once a second until the task is dropped.
    pub fn spawn(self: &Arc<Self>, node: Arc<Node>) -> tokio::task::JoinHandle<()> {
        let history = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                history.sample(&node);
            }
        })
    }

    /// The drains (running first, then the latest ended) and the events, newest last.
    pub fn snapshot(&self) -> (Vec<DrainSeries>, Vec<Event>) {
        let inner = self.inner.lock();
        (inner.drains.clone(), inner.events.iter().cloned().collect())
    }

    fn sample(&self, node: &Node) {
        let backends = node.backends_status(|_, _| Health::Unknown);
        let m = node.raft().metrics().borrow().clone();
        let members: BTreeSet<u64> = m.membership_config.membership().voter_ids().collect();
        let forced = node.shared().with_table(|t| t.counters().forced_releases);
        let now = now_ms();
        let mut inner = self.inner.lock();
        inner.record(now, &backends, forced);
        inner.cluster_events(now, m.current_leader, members);
        inner.seen.started = true;
    }
}

impl Inner {
    fn event(&mut self, at: u64, kind: EventKind, text: String) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(Event { at, kind, text });
    }

    /// Samples every draining server and notes state changes.
    fn record(&mut self, now: u64, backends: &Backends, forced: u64) {
        let forced_now = forced > self.seen.forced;
        self.seen.forced = forced;
        for (backend, s) in backends.servers() {
            let key = (backend.to_string(), s.name.clone());
            let before = self.seen.states.insert(key.clone(), s.admin_state);
            if s.admin_state == AdminState::Drain {
                self.sample_drain(now, &key, s.bindings, s.open_here);
            }
            if !self.seen.started || before == Some(s.admin_state) {
                continue;
            }
            self.state_changed(now, &key, before, s.admin_state, forced_now);
        }
        self.trim();
    }

    fn sample_drain(&mut self, now: u64, key: &(String, String), bindings: u64, open: u64) {
        let running = self
            .drains
            .iter_mut()
            .find(|d| d.ended.is_none() && (&d.backend, &d.server) == (&key.0, &key.1));
        let series = match running {
            Some(d) => d,
            None => {
                self.drains.push(DrainSeries {
                    backend: key.0.clone(),
                    server: key.1.clone(),
                    began: now,
                    points: Vec::new(),
                    ended: None,
                    outcome: None,
                });
                self.drains.last_mut().expect("just pushed")
            }
        };
        series.points.push(Sample {
            at: now,
            bindings,
            open,
        });
        if series.points.len() > DrainSeries::MAX_POINTS {
            // Keep the shape, halve the resolution.
            let kept: Vec<Sample> = series.points.iter().step_by(2).copied().collect();
            series.points = kept;
        }
    }

    fn state_changed(
        &mut self,
        now: u64,
        key: &(String, String),
        before: Option<AdminState>,
        after: AdminState,
        forced: bool,
    ) {
        let name = format!("{}/{}", key.0, key.1);
        let outcome = match (before, after) {
            (_, AdminState::Drain) => {
                self.event(now, EventKind::Drain, format!("{name}: drain began"));
                None
            }
            (Some(AdminState::Drain), AdminState::Maint) if forced => {
                self.event(
                    now,
                    EventKind::ForcedRelease,
                    format!("{name}: released by its deadline"),
                );
                Some(DrainOutcome::Forced)
            }
            (Some(AdminState::Drain), AdminState::Maint) => {
                self.event(
                    now,
                    EventKind::Release,
                    format!("{name}: released: safe to shut down"),
                );
                Some(DrainOutcome::Released)
            }
            (Some(AdminState::Drain), AdminState::Ready) => {
                self.event(
                    now,
                    EventKind::State,
                    format!("{name}: drain cancelled (ready)"),
                );
                Some(DrainOutcome::Cancelled)
            }
            (_, state) => {
                self.event(now, EventKind::State, format!("{name}: now {state}"));
                None
            }
        };
        if let Some(outcome) = outcome
            && let Some(d) = self
                .drains
                .iter_mut()
                .find(|d| d.ended.is_none() && (&d.backend, &d.server) == (&key.0, &key.1))
        {
            d.ended = Some(now);
            d.outcome = Some(outcome);
            d.points.push(Sample {
                at: now,
                bindings: 0,
                open: 0,
            });
        }
    }

    /// Leader changes and members added or removed.
    fn cluster_events(&mut self, now: u64, leader: Option<u64>, members: BTreeSet<u64>) {
        if self.seen.started && leader != self.seen.leader {
            let text = match leader {
                Some(id) => format!("node {id} is the leader"),
                None => "no leader".to_string(),
            };
            self.event(now, EventKind::Leader, text);
        }
        // The first membership seen is the cluster forming, not a change.
        if self.seen.started && !self.seen.members.is_empty() {
            for id in members
                .difference(&self.seen.members)
                .copied()
                .collect::<Vec<_>>()
            {
                self.event(now, EventKind::MemberAdded, format!("node {id} added"));
            }
            for id in self
                .seen
                .members
                .difference(&members)
                .copied()
                .collect::<Vec<_>>()
            {
                self.event(now, EventKind::MemberRemoved, format!("node {id} removed"));
            }
        }
        self.seen.leader = leader;
        self.seen.members = members;
    }

    /// Keeps the running drains and the latest ended ones.
    fn trim(&mut self) {
        let ended = self.drains.iter().filter(|d| d.ended.is_some()).count();
        if ended > MAX_ENDED {
            let mut drop = ended - MAX_ENDED;
            self.drains.retain(|d| {
                let old = d.ended.is_some() && drop > 0;
                drop -= usize::from(old);
                !old
            });
        }
    }
}
