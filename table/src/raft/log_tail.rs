//! The newest Raft log entries, kept in memory as they are made durable: the leader
//! replicates them and every node applies them moments after the append, and reading
//! them back from redb meant a read transaction and a decode per entry, per follower.

use std::collections::VecDeque;

use crate::raft::types::Entry;

/// A contiguous run of the newest log entries, their encoded sizes adding up to at most
/// `budget` bytes. Invariant: when not empty, its last entry is the log's last entry.
pub struct LogTail {
    /// Entries with their encoded sizes, oldest first.
    entries: VecDeque<(Entry, usize)>,
    held: usize,
    budget: usize,
}

impl LogTail {
    /// An empty tail that holds entries of up to `budget` encoded bytes in all.
    pub fn new(budget: usize) -> LogTail {
        LogTail {
            entries: VecDeque::new(),
            held: 0,
            budget,
        }
    }

    /// Adds entries just made durable, in log order, with their encoded sizes. An entry
    /// that does not follow the last one held (after a restart, or a gap) starts the run
    /// over; the oldest go when the budget is spent.
    pub fn push(&mut self, entries: impl IntoIterator<Item = (Entry, usize)>) {
        for (entry, size) in entries {
            let follows = self
                .last_index()
                .is_none_or(|last| last + 1 == entry.log_id.index);
            if !follows {
                self.entries.clear();
                self.held = 0;
            }
            self.entries.push_back((entry, size));
            self.held += size;
            while self.held > self.budget {
                self.pop_front();
            }
        }
    }

    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.log_id.index)
    }

    fn pop_front(&mut self) {
        if let Some((_, size)) = self.entries.pop_front() {
            self.held -= size;
        }
    }

    /// Forgets the entries from index `since` on (the log was truncated there).
    pub fn truncate(&mut self, since: u64) {
        while self.last_index().is_some_and(|i| i >= since) {
            if let Some((_, size)) = self.entries.pop_back() {
                self.held -= size;
            }
        }
    }

    /// Forgets the entries up to index `upto` (the log was purged up to there).
    pub fn purge(&mut self, upto: u64) {
        while self.first_index().is_some_and(|i| i <= upto) {
            self.pop_front();
        }
    }

    /// Copies of the entries from `start` to `end` (exclusive; `None`: to the last), if
    /// this tail holds every one of them.
    pub fn get(&self, start: u64, end: Option<u64>) -> Option<Vec<Entry>> {
        let (first, last) = (self.first_index()?, self.last_index()?);
        let end = end.unwrap_or(last + 1);
        if end <= start {
            return Some(Vec::new());
        }
        if start < first || end > last + 1 {
            return None;
        }
        let from = (start - first) as usize;
        let to = (end - first) as usize;
        Some(
            self.entries
                .range(from..to)
                .map(|(e, _)| e.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::LogId;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(got: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        got.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn serves_only_ranges_it_holds_whole() {
        // Entries of 10 bytes, 40 bytes held.
        let mut tail = LogTail::new(40);
        assert_eq!(indexes(tail.get(1, None)), None);
        tail.push((1..=6).map(|i| (entry(i), 10)));
        // The four newest are held.
        assert_eq!(indexes(tail.get(3, None)), Some(vec![3, 4, 5, 6]));
        assert_eq!(indexes(tail.get(4, Some(6))), Some(vec![4, 5]));
        assert_eq!(indexes(tail.get(2, Some(4))), None);
        assert_eq!(indexes(tail.get(5, Some(8))), None);
        assert_eq!(indexes(tail.get(5, Some(5))), Some(vec![]));
    }

    #[test]
    fn follows_truncation_purge_and_gaps() {
        let mut tail = LogTail::new(1000);
        tail.push((1..=5).map(|i| (entry(i), 10)));
        tail.truncate(4);
        assert_eq!(indexes(tail.get(1, None)), Some(vec![1, 2, 3]));
        tail.push([(entry(4), 10)]);
        tail.purge(2);
        assert_eq!(indexes(tail.get(3, None)), Some(vec![3, 4]));
        assert_eq!(indexes(tail.get(2, None)), None);
        // A gap: what came before is not the log's any more.
        tail.push([(entry(9), 10)]);
        assert_eq!(indexes(tail.get(3, None)), None);
        assert_eq!(indexes(tail.get(9, None)), Some(vec![9]));
    }
}
