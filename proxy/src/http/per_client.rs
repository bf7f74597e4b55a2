//! Connections per client address: `limits.max_connections_per_client` keeps one client
//! (one address opening thousands of idle keep-alive connections) from taking every
//! connection slot of the node. Counted by the peer's address, as nginx's `limit_conn`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// Open connections by client address.
#[derive(Default)]
pub struct PerClient {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; its count goes when it is dropped.
pub struct ClientSlot {
    set: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    /// Admits a connection from `ip` unless it already has `limit` open (0: no limit).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<ClientSlot> {
        let mut open = self.open.lock();
        let n = open.entry(ip).or_insert(0);
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            set: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.set.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_limit_and_no_more() {
        let set = Arc::new(PerClient::default());
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = set.admit(a, 2).expect("first");
        let _second = set.admit(a, 2).expect("second");
        assert!(set.admit(a, 2).is_none(), "third refused");
        assert!(set.admit(b, 2).is_some(), "another client is not affected");
        drop(first);
        assert!(set.admit(a, 2).is_some(), "a slot freed is usable again");
        assert!((0..100).all(|_| set.admit(a, 0).is_some()), "0: no limit");
    }
}
