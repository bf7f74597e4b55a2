//! Whether this node may speak for the table (`/readyz`): its Raft core runs, it is a
//! voter, a leader is known and in touch, and it has applied what the leader had committed
//! a moment ago. A node that is not ready takes no client traffic at start.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use holdfast_table::raft::Raft;
use parking_lot::Mutex;

use crate::api::Readiness;

/// A commit index counts as "learned a moment ago" once it is this old: a node that has
/// applied it has caught up with the leader as of then.
const SETTLE: Duration = Duration::from_millis(500);
/// A follower that heard nothing from its leader for this long is not ready (about two
/// election timeouts: the leader sends a heartbeat every 250 ms).
const SILENCE: Duration = Duration::from_secs(5);
/// A leader whose last quorum acknowledgement is older than this is not ready.
const QUORUM_ACK: Duration = Duration::from_secs(5);

/// The commit indexes announced by the leader's AppendEntries, with when they arrived.
#[derive(Debug, Default)]
pub struct CommitWatch {
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl CommitWatch {
    /// Records an AppendEntries' `leader_commit` (`None`: the leader has committed nothing).
    pub fn observe(&self, leader_commit: Option<u64>) {
        let now = Instant::now();
        let commit = leader_commit.unwrap_or(0);
        let mut samples = self.samples.lock();
        while samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > SILENCE)
        {
            samples.pop_front();
        }
        // One sample per 50 ms is plenty; keep the latest commit in the last one.
        match samples.back_mut() {
            Some((at, c)) if now.duration_since(*at) < Duration::from_millis(50) => {
                *c = (*c).max(commit)
            }
            _ => samples.push_back((now, commit)),
        }
    }

    /// The newest commit index learned at least [`SETTLE`] ago, the newest one learned at
    /// all, and how long since the last AppendEntries. `None` if none arrived recently.
    fn reference(&self) -> Option<(Option<u64>, u64, Duration)> {
        let now = Instant::now();
        let samples = self.samples.lock();
        let (last_at, newest) = *samples.back()?;
        let settled = samples
            .iter()
            .rev()
            .find(|(at, _)| now.duration_since(*at) >= SETTLE)
            .map(|&(_, c)| c);
        Some((settled, newest, now.duration_since(last_at)))
    }
}

/// A node that is not ready, and why.
fn not_ready(reason: String, applied: u64, leader_commit: u64) -> Readiness {
    Readiness {
        ready: false,
        reason: Some(reason),
        applied,
        leader_commit,
        lag: leader_commit.saturating_sub(applied),
    }
}

/// Evaluates node `id`'s readiness from its Raft metrics and the commits it was told of.
pub fn evaluate(raft: &Raft, id: u64, watch: &CommitWatch) -> Readiness {
    let m = raft.metrics().borrow().clone();
    let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
    if let Err(fatal) = &m.running_state {
        return not_ready(format!("raft core stopped: {fatal}"), applied, applied);
    }
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    if !voters.contains(&id) {
        return not_ready(
            "not a voter (a learner catching up, or not a member)".into(),
            applied,
            applied,
        );
    }
    let Some(leader) = m.current_leader else {
        return not_ready("no leader known".into(), applied, applied);
    };
    if leader == id {
        let last = m.last_log_index.unwrap_or(0);
        let acked = voters.len() == 1
            || m.millis_since_quorum_ack
                .is_some_and(|ms| ms < QUORUM_ACK.as_millis() as u64);
        if !acked {
            return not_ready("leader without a quorum".into(), applied, last);
        }
        return Readiness {
            ready: true,
            reason: None,
            applied,
            leader_commit: last,
            lag: last.saturating_sub(applied),
        };
    }
    follower_readiness(watch, leader, applied)
}

fn follower_readiness(watch: &CommitWatch, leader: u64, applied: u64) -> Readiness {
    let Some((settled, newest, silence)) = watch.reference() else {
        return not_ready(
            format!("nothing heard from leader {leader} yet"),
            applied,
            applied,
        );
    };
    if silence > SILENCE {
        return not_ready(
            format!("nothing heard from leader {leader} for {silence:?}"),
            applied,
            newest,
        );
    }
    match settled {
        Some(commit) if applied >= commit => Readiness {
            ready: true,
            reason: None,
            applied,
            leader_commit: newest,
            lag: newest.saturating_sub(applied),
        },
        Some(commit) => not_ready(
            format!("catching up: applied {applied} of {commit}"),
            applied,
            newest,
        ),
        None => not_ready(
            "catching up: just joined the leader".into(),
            applied,
            newest,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_reference_until_a_sample_settles() {
        let watch = CommitWatch::default();
        watch.observe(Some(10));
        let (settled, newest, _) = watch.reference().expect("a sample");
        assert_eq!((settled, newest), (None, 10));
        let r = follower_readiness(&watch, 1, 10);
        assert!(!r.ready, "{r:?}");
    }

    #[test]
    fn a_settled_commit_must_be_applied() {
        let watch = CommitWatch::default();
        watch
            .samples
            .lock()
            .push_back((Instant::now() - SETTLE * 2, 40));
        watch.observe(Some(50));
        assert!(!follower_readiness(&watch, 1, 39).ready);
        let r = follower_readiness(&watch, 1, 40);
        assert!(r.ready, "{r:?}");
        assert_eq!(r.lag, 10);
    }

    #[test]
    fn silence_from_the_leader_is_not_ready() {
        let watch = CommitWatch::default();
        watch
            .samples
            .lock()
            .push_back((Instant::now() - SILENCE * 2, 40));
        let r = follower_readiness(&watch, 1, 40);
        assert!(!r.ready);
        assert!(r.reason.unwrap().contains("nothing heard"));
    }
}
