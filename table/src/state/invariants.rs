//! Whole-table consistency checks for tests: recounting bindings per server and checking
//! that slab, hash index, expiry index, counts and the draining set all agree. O(table).

use std::collections::{BTreeMap, HashMap};

use super::StickTable;
use crate::model::AdminState;

impl StickTable {
    /// Live bindings per (backend, server), recounted from the bindings themselves.
    /// Costs a pass over the whole table: for tests.
    #[doc(hidden)]
    pub fn recount(&self) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        let horizon = self.horizon();
        for (_, s) in self.store.frozen().iter() {
            if s.expires_at() >= horizon {
                let server = self.registry.server(s.server());
                let backend = &self.registry.backend(server.backend).name;
                *out.entry((backend.to_string(), server.name.to_string()))
                    .or_insert(0) += 1;
            }
        }
        out
    }

    /// Checks every internal invariant; returns what is wrong. Costs a pass over the whole
    /// table: for tests.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        self.store.check()?;
        let recount = self.recount();
        for id in self.registry.servers_by_name() {
            let s = self.registry.server(id);
            let b = &self.registry.backend(s.backend).name;
            let counted = recount
                .get(&(b.to_string(), s.name.to_string()))
                .copied()
                .unwrap_or(0);
            if counted != s.count {
                return Err(format!(
                    "{b}/{}: count {} but {counted} live",
                    s.name, s.count
                ));
            }
            let draining = matches!(s.state, AdminState::Drain { .. });
            if draining != self.registry.draining().contains(&id) {
                return Err(format!("{b}/{}: draining set out of step", s.name));
            }
        }
        let mut filed: HashMap<u32, u32> = HashMap::new();
        for (start, slot) in self.expiry.entries() {
            let Some(s) = self.store.get(slot) else {
                return Err(format!("expiry entry for free slot {slot}"));
            };
            if start > s.expires_at() {
                return Err(format!("slot {slot} filed after its expiry"));
            }
            *filed.entry(slot).or_insert(0) += 1;
        }
        for (id, s) in self.store.frozen().iter() {
            if s.expires_at() < self.horizon() {
                return Err(format!("slot {id} is dead but still held"));
            }
            if filed.get(&id) != Some(&1) {
                return Err(format!("slot {id} filed {:?} times", filed.get(&id)));
            }
            if self.registry.server(s.server()).backend != s.backend() {
                return Err(format!("slot {id} bound to another backend's server"));
            }
        }
        if !self.reported.keys().eq(self.members.iter()) {
            return Err("reported applied indexes are not exactly the members".into());
        }
        if !self.watermarks.keys().eq(self.members.iter()) {
            return Err("watermarks are not exactly the members".into());
        }
        Ok(())
    }
}
