//! What is open to each server from this node: requests in flight, responses still
//! streaming, upgraded tunnels (DESIGN.md: open means active). The flusher turns them into
//! touches of their bindings and promises for their servers, so a server is never released
//! while anything is open to it, and the release comes a ttl after the last one closed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use holdfast_table::model::Promise;

use super::clock::now_ms;

/// An exchange open long enough to be refreshed by a flush gets one last touch when it
/// closes (shorter ones were touched when answered).
const LONG_LIVED: Duration = Duration::from_millis(500);

/// A closed exchange's promise is reported until this long after it has passed (well
/// past any `max_skew`), then forgotten: the table has released on it by then.
const RETAIN: u64 = 10_000;

/// One open exchange.
#[derive(Clone, Debug)]
pub struct Open {
    /// Backend name.
    pub backend: Arc<str>,
    /// Server name.
    pub server: Arc<str>,
    /// The binding it belongs to (touched while open), if any.
    pub key: Option<Vec<u8>>,
    /// The backend's ttl, for touches (ms).
    pub ttl: u64,
    /// How long after it closed it still holds its server: the ttl for a persistent
    /// backend (its client may come back), 0 without persistence (ms).
    pub hold: u64,
}

#[derive(Default)]
struct Inner {
    // Keyed by a counter: hashed with foldhash, not SipHash (one insert per request).
    open: hashbrown::HashMap<u64, (Open, Instant)>,
    /// Long-lived keyed exchanges closed since the last report: touched a last time.
    closed: Vec<Open>,
    /// Closed exchanges without a binding: (backend, server) -> close time + hold.
    // Hashed with foldhash: a promise is kept per answered request without a binding.
    promised: hashbrown::HashMap<(Arc<str>, Arc<str>), u64>,
}

/// The node's open exchanges.
#[derive(Default)]
pub struct OpenSet {
    inner: Mutex<Inner>,
    next: AtomicU64,
}

/// Keeps an exchange in the [`OpenSet`] until dropped.
pub struct OpenGuard {
    set: Arc<OpenSet>,
    id: u64,
}

/// What a batch reports of open and recently closed exchanges.
#[derive(Debug, Default)]
pub struct Activity {
    /// Exchanges whose bindings to touch (they all have a key).
    pub touches: Vec<Open>,
    /// The node's promises, all of them: (backend, server) -> until (ms since epoch, or
    /// [`Promise::OPEN`]).
    pub promises: HashMap<(Arc<str>, Arc<str>), u64>,
}

impl OpenSet {
    /// Registers `open` until the returned guard is dropped.
    pub fn open(self: &Arc<Self>, open: Open) -> OpenGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.inner.lock().open.insert(id, (open, Instant::now()));
        OpenGuard {
            set: self.clone(),
            id,
        }
    }

    /// Promises `server` of `backend` until `until` (ms since epoch): something of this
    /// node's holds it that the table does not know of (a bind or touch the queue could
    /// not take).
    pub fn promise(&self, backend: Arc<str>, server: Arc<str>, until: u64) {
        let mut inner = self.inner.lock();
        let promise = inner.promised.entry((backend, server)).or_default();
        *promise = (*promise).max(until);
    }

    /// True when nothing is open and no promise is left to report.
    pub fn is_quiet(&self) -> bool {
        let inner = self.inner.lock();
        inner.open.is_empty() && inner.closed.is_empty() && inner.promised.is_empty()
    }

    /// Exchanges open now, per (backend, server).
    pub fn counts(&self) -> HashMap<(Arc<str>, Arc<str>), u64> {
        let mut out: HashMap<_, u64> = HashMap::new();
        for (o, _) in self.inner.lock().open.values() {
            *out.entry((o.backend.clone(), o.server.clone()))
                .or_default() += 1;
        }
        out
    }

    /// What a batch reports: a touch of every open exchange's binding and of long-lived
    /// ones closed since the last report, and every promise (open servers: no end).
    pub fn activity(&self) -> Activity {
        let now = now_ms();
        let mut inner = self.inner.lock();
        inner
            .promised
            .retain(|_, until| until.saturating_add(RETAIN) >= now);
        let mut out = Activity {
            promises: inner
                .promised
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            ..Activity::default()
        };
        let closed = std::mem::take(&mut inner.closed);
        let open = inner.open.values().map(|(o, _)| o);
        out.touches = closed
            .into_iter()
            .chain(open.cloned())
            .filter(|o| o.key.is_some())
            .collect();
        for (o, _) in inner.open.values() {
            out.promises
                .insert((o.backend.clone(), o.server.clone()), Promise::OPEN);
        }
        out
    }
}

impl OpenGuard {
    /// The exchange turned out to belong to binding `key` (learned from its response):
    /// from now on it touches that binding rather than promising its server.
    pub fn set_key(&self, key: &[u8]) {
        if let Some((open, _)) = self.set.inner.lock().open.get_mut(&self.id) {
            open.key = Some(key.to_vec());
        }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let mut inner = self.set.inner.lock();
        let Some((open, since)) = inner.open.remove(&self.id) else {
            return;
        };
        if open.key.is_none() {
            // Nothing in the table holds the server for it: a promise does.
            drop(inner);
            self.set
                .promise(open.backend, open.server, now_ms() + open.hold);
        } else if since.elapsed() >= LONG_LIVED {
            // Its binding does, from a last touch (shorter ones were touched when
            // answered); so a session the application ends frees the server at once.
            inner.closed.push(open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(key: Option<&str>, hold: u64) -> Open {
        Open {
            backend: "app".into(),
            server: "s1".into(),
            key: key.map(|k| k.as_bytes().to_vec()),
            ttl: 1_000,
            hold,
        }
    }

    #[test]
    fn open_servers_are_promised_without_end_and_closed_ones_until_their_hold() {
        let set = Arc::new(OpenSet::default());
        let keyed = set.open(open(Some("k"), 1_000));
        let bare = set.open(open(None, 1_000));
        assert_eq!(set.counts().values().sum::<u64>(), 2);
        let a = set.activity();
        assert_eq!(a.touches.len(), 1);
        assert_eq!(
            a.promises.values().copied().collect::<Vec<_>>(),
            vec![Promise::OPEN]
        );
        drop(keyed);
        let a = set.activity();
        assert_eq!(
            a.promises.values().copied().collect::<Vec<_>>(),
            vec![Promise::OPEN]
        );
        assert!(
            a.touches.is_empty(),
            "a short keyed one was touched when answered, and promises nothing when closed"
        );
        drop(bare);
        let a = set.activity();
        let until = a.promises.values().copied().next().expect("a promise");
        assert!(until >= now_ms() + 900 && until < Promise::OPEN, "{until}");
        assert!(set.counts().is_empty());
        // Reported again (a batch replaces the node's promises) until long past.
        assert_eq!(set.activity().promises.len(), 1);
        assert!(!set.is_quiet());
    }
}
