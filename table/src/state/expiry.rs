//! The expiry index: time buckets of slot ids, swept from the oldest, so the cost of expiry
//! per tick is the number of bindings due (plus one partly due bucket), never the table size.

use std::collections::BTreeMap;

use super::store::SlotId;
use crate::model::Millis;

/// Bucket width is `2^BUCKET_SHIFT` ms (256 ms, about half a leader tick).
const BUCKET_SHIFT: u32 = 8;

fn bucket_of(t: Millis) -> u64 {
    t >> BUCKET_SHIFT
}

fn bucket_start(b: u64) -> Millis {
    b << BUCKET_SHIFT
}

/// Slot ids filed by the bucket of their expiry, lazily.
///
/// Invariant: every live slot has exactly one entry, in a bucket no later than the bucket
/// of its current `expires_at` (a touch moves expiry later without re-filing). Slots are
/// only freed by a sweep consuming their entry, so entries never go stale.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExpiryIndex {
    buckets: BTreeMap<u64, Vec<SlotId>>,
    /// Clock of the last sweep: nothing can come due again until the clock moves.
    swept_at: Millis,
    /// The next evictions, worked out from the earliest bucket (see [`ExpiryIndex::evict_next`]).
    evicting: Option<Evicting>,
}

/// The live slots of the earliest bucket, in eviction order (last is next), each with the
/// expiry it had when the order was made.
#[derive(Clone, Debug)]
struct Evicting {
    bucket: u64,
    order: Vec<(SlotId, Millis)>,
}

impl ExpiryIndex {
    /// Files a new binding under its expiry.
    pub(crate) fn file(&mut self, slot: SlotId, expires_at: Millis) {
        let b = bucket_of(expires_at);
        if self.evicting.as_ref().is_some_and(|e| b <= e.bucket) {
            // The eviction order no longer covers every slot of its bucket.
            self.evicting = None;
        }
        self.buckets.entry(b).or_default().push(slot);
    }

    /// A slot already filed became a binding again (an ended session's key bound anew):
    /// the eviction order, made without it, is dropped.
    pub(crate) fn revived(&mut self) {
        self.evicting = None;
    }

    /// The live slot to evict next: the one with the earliest expiry, ties broken by
    /// `order` (backend name and key), so every replica evicts the same binding whatever
    /// its slot ids. `live` gives a slot's expiry and order, `None` for an ended session.
    /// The slot is taken out of the index; the caller removes it from the store.
    ///
    /// Costs a sort of one bucket when the earliest bucket changes, then O(1) per
    /// eviction: a flood that fills the table pays little for each binding it evicts.
    pub(crate) fn evict_next<K: Ord>(
        &mut self,
        expires_at: impl Fn(SlotId) -> Option<Millis>,
        live: impl Fn(SlotId) -> Option<(Millis, K)>,
    ) -> Option<SlotId> {
        loop {
            if self.evicting.is_none() {
                self.evicting = Some(self.eviction_order(&expires_at, &live)?);
            }
            let e = self.evicting.as_mut()?;
            let Some((slot, at)) = e.order.pop() else {
                // Every live slot of the bucket is gone: the next bucket.
                self.evicting = None;
                continue;
            };
            let bucket = e.bucket;
            if live(slot).map(|(x, _)| x) != Some(at) {
                // Touched or ended since the order was made: make it again.
                self.evicting = None;
                continue;
            }
            if let Some(v) = self.buckets.get_mut(&bucket)
                && let Some(pos) = v.iter().position(|&s| s == slot)
            {
                v.swap_remove(pos);
                if v.is_empty() {
                    self.buckets.remove(&bucket);
                }
            }
            return Some(slot);
        }
    }

    /// Re-files the earliest buckets' slots whose expiry moved later until the earliest
    /// bucket holds a live slot of its own; its live slots in eviction order.
    fn eviction_order<K: Ord>(
        &mut self,
        expires_at: &impl Fn(SlotId) -> Option<Millis>,
        live: &impl Fn(SlotId) -> Option<(Millis, K)>,
    ) -> Option<Evicting> {
        let mut after = 0;
        loop {
            let (&b, _) = self.buckets.range(after..).next()?;
            let slots = self.buckets.remove(&b).unwrap_or_default();
            let (mut kept, mut moved) = (Vec::new(), Vec::new());
            for slot in slots {
                match expires_at(slot) {
                    Some(e) if bucket_of(e) > b => moved.push((slot, e)),
                    Some(_) => kept.push(slot),
                    None => debug_assert!(false, "expiry entry for a free slot"),
                }
            }
            for (slot, e) in moved {
                self.buckets.entry(bucket_of(e)).or_default().push(slot);
            }
            if kept.is_empty() {
                continue;
            }
            let mut order: Vec<_> = kept
                .iter()
                .filter_map(|&s| live(s).map(|(at, k)| (at, k, s)))
                .collect();
            self.buckets.insert(b, kept);
            if order.is_empty() {
                // Only ended sessions here: they are not bindings.
                after = b + 1;
                continue;
            }
            order.sort_unstable_by(|x, y| (y.0, &y.1).cmp(&(x.0, &x.1)));
            return Some(Evicting {
                bucket: b,
                order: order.into_iter().map(|(at, _, s)| (s, at)).collect(),
            });
        }
    }

    /// Appends to `due` every slot whose expiry is before `now`, re-filing slots whose expiry
    /// moved to a later bucket. `expires_at` gives a slot's current expiry (`None` if free).
    /// The caller must remove the returned slots from the store.
    pub(crate) fn sweep(
        &mut self,
        now: Millis,
        expires_at: impl Fn(SlotId) -> Option<Millis>,
        due: &mut Vec<SlotId>,
    ) {
        if now <= self.swept_at {
            return;
        }
        self.swept_at = now;
        self.evicting = None;
        while let Some(entry) = self.buckets.first_entry() {
            let b = *entry.key();
            if bucket_start(b) >= now {
                break;
            }
            let slots = entry.remove();
            let mut kept = Vec::new();
            for slot in slots {
                let Some(e) = expires_at(slot) else {
                    debug_assert!(false, "expiry entry for a free slot");
                    continue;
                };
                if e < now {
                    due.push(slot);
                } else if bucket_of(e) > b {
                    self.file(slot, e);
                } else {
                    kept.push(slot);
                }
            }
            if !kept.is_empty() {
                // The bucket straddles `now`: everything after it is later still.
                self.buckets.insert(b, kept);
                break;
            }
        }
    }

    /// Every (bucket start, slot) entry, for invariant checks.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (Millis, SlotId)> + '_ {
        self.buckets
            .iter()
            .flat_map(|(&b, v)| v.iter().map(move |&s| (bucket_start(b), s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(ix: &mut ExpiryIndex, now: Millis, exp: &[Option<Millis>]) -> Vec<SlotId> {
        let mut due = Vec::new();
        ix.sweep(now, |s| exp[s as usize], &mut due);
        due.sort_unstable();
        due
    }

    #[test]
    fn expires_strictly_after_expiry_time() {
        let mut ix = ExpiryIndex::default();
        let exp = [Some(1000), Some(1001), Some(5000)];
        for (i, e) in exp.iter().enumerate() {
            ix.file(i as SlotId, e.unwrap());
        }
        assert_eq!(sweep(&mut ix, 1000, &exp), Vec::<SlotId>::new());
        assert_eq!(sweep(&mut ix, 1001, &exp), vec![0]);
        assert_eq!(
            sweep(&mut ix, 1002, &[None, Some(1001), Some(5000)]),
            vec![1]
        );
        assert_eq!(ix.entries().count(), 1);
    }

    #[test]
    fn moved_expiry_is_refiled_not_expired() {
        let mut ix = ExpiryIndex::default();
        ix.file(0, 1000);
        let exp = [Some(9000)];
        assert!(sweep(&mut ix, 2000, &exp).is_empty());
        let filed: Vec<_> = ix.entries().collect();
        assert_eq!(filed, vec![(bucket_start(bucket_of(9000)), 0)]);
        assert_eq!(sweep(&mut ix, 9001, &exp), vec![0]);
        assert_eq!(ix.entries().count(), 0);
    }

    #[test]
    fn same_clock_sweeps_once() {
        let mut ix = ExpiryIndex::default();
        ix.file(0, 10);
        assert_eq!(sweep(&mut ix, 11, &[Some(10)]), vec![0]);
        ix.file(0, 5);
        // Not re-swept at the same clock (nothing new can be due at an unchanged clock
        // in the table, which never files an expiry before its clock).
        assert!(sweep(&mut ix, 11, &[Some(5)]).is_empty());
    }

    #[test]
    fn sweep_cost_does_not_grow_with_table_size() {
        use std::cell::Cell;
        let mut ix = ExpiryIndex::default();
        for slot in 0..3 {
            ix.file(slot, 1_000);
        }
        for slot in 3..100_000 {
            ix.file(slot, 10_000_000 + u64::from(slot));
        }
        let looked = Cell::new(0u32);
        let mut due = Vec::new();
        let exp = |s: SlotId| {
            looked.set(looked.get() + 1);
            Some(if s < 3 {
                1_000
            } else {
                10_000_000 + u64::from(s)
            })
        };
        ix.sweep(2_000, exp, &mut due);
        assert_eq!(due.len(), 3);
        assert_eq!(looked.get(), 3, "only the due bucket is looked at");
        ix.sweep(5_000, exp, &mut due);
        assert_eq!(looked.get(), 3, "nothing due, nothing looked at");
    }
}
