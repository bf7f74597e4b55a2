//! The change feed: what happened to bindings and servers since the node-local read view
//! last looked. Not replicated state; never part of a snapshot.

use std::sync::Arc;

use crate::model::Millis;

/// One change to the table, reported to the node-local read view in apply order.
///
/// Backend and server names are `Arc<str>`: they are interned by the table, so reporting
/// a change clones a reference count instead of allocating a string. Use `&*name` (or
/// `name.to_string()`) where a `&str` (or `String`) is wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A binding was created or its server/expiry changed.
    Upsert {
        /// Backend name.
        backend: Arc<str>,
        /// The persistence key.
        key: Vec<u8>,
        /// Server the key is bound to.
        server: Arc<str>,
        /// State-machine time at which the binding expires.
        expires_at: Millis,
    },
    /// A binding was removed (expired).
    Remove {
        /// Backend name.
        backend: Arc<str>,
        /// The persistence key.
        key: Vec<u8>,
    },
    /// A server's admin state or the set of servers changed: re-read [`servers`].
    ///
    /// [`servers`]: super::StickTable::servers
    Servers,
}

/// The buffer of changes not yet taken, with a switch to stop recording them.
#[derive(Clone, Debug)]
pub(crate) struct ChangeLog {
    enabled: bool,
    changes: Vec<Change>,
}

impl Default for ChangeLog {
    fn default() -> Self {
        ChangeLog {
            enabled: true,
            changes: Vec::new(),
        }
    }
}

impl ChangeLog {
    /// A log that records nothing.
    pub(crate) fn disabled() -> Self {
        ChangeLog {
            enabled: false,
            changes: Vec::new(),
        }
    }

    /// Whether changes are being recorded (callers skip building them otherwise).
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Turns recording on or off; turning it off drops what is buffered.
    pub(crate) fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
        if !on {
            self.changes = Vec::new();
        }
    }

    /// Records a change (no-op when disabled).
    pub(crate) fn push(&mut self, change: Change) {
        if self.enabled {
            self.changes.push(change);
        }
    }

    /// Records that the servers changed, once per run of consecutive server changes.
    pub(crate) fn servers_changed(&mut self) {
        if self.enabled && self.changes.last() != Some(&Change::Servers) {
            self.changes.push(Change::Servers);
        }
    }

    /// Takes everything recorded so far.
    pub(crate) fn take(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }
}
