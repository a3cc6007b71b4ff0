//! Connections per client address (`limits max-connections-per-address=`), shared by the
//! workers.
//!
//! A direct client is counted when it is accepted. A client behind a trusted load balancer
//! (PROXY protocol) is counted when the session has read the header naming it, through a
//! [`Lease`] the session holds: the balancer's own address is never counted, or one busy
//! balancer would use up the limit of every client behind it.
//!
//! What this module must never do: lose count (an admitted connection is released once,
//! a lease when dropped), or admit past the limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct AddressCounts {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl AddressCounts {
    /// One more connection from `ip`, unless it holds `max` already (or the lock is
    /// poisoned: refuse rather than count wrongly).
    pub fn admit(&self, ip: IpAddr, max: usize) -> bool {
        let Ok(mut m) = self.counts.lock() else {
            return false;
        };
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection from `ip` admitted with [`AddressCounts::admit`] ended.
    pub fn release(&self, ip: IpAddr) {
        if let Ok(mut m) = self.counts.lock()
            && let Some(n) = m.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }

    /// [`AddressCounts::admit`], released when the lease is dropped.
    pub fn lease(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Lease> {
        self.admit(ip, max).then(|| Lease {
            counts: Arc::clone(self),
            ip,
        })
    }

    /// Connections counted from `ip` now.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.counts
            .lock()
            .map_or(0, |m| m.get(&ip).copied().unwrap_or(0))
    }
}

/// A counted connection from one address.
#[derive(Debug)]
pub struct Lease {
    counts: Arc<AddressCounts>,
    ip: IpAddr,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.counts.release(self.ip);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_to_the_limit_and_back_down() {
        let c = Arc::new(AddressCounts::default());
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let a = c.lease(ip, 2).unwrap();
        assert!(c.admit(ip, 2));
        assert!(c.lease(ip, 2).is_none());
        drop(a);
        assert_eq!(c.count(ip), 1);
        c.release(ip);
        assert_eq!(c.count(ip), 0);
        assert!(c.counts.lock().unwrap().is_empty());
    }
}
