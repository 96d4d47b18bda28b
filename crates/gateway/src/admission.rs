//! The connection caps: so many open at once on this node, so many from one address. A
//! connection over a cap is closed at once, before anything is read or looked up; a permit
//! held for a connection's life frees its place when dropped.
//!
//! **Why** refuse the newcomer (the API's listeners shed the oldest idle connection instead):
//! an ADB connection has no idle state to tell apart, since a client keeps its transport open
//! for as long as the device is listed, and unauthenticated ones are bounded by the handshake
//! deadline already. The cap per address keeps one client from taking every place.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_ip: usize,
    counts: Arc<Mutex<Counts>>,
}

/// Which cap refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    Total,
    PerIp,
}

impl Refused {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refused::Total => "TooManyConnections",
            Refused::PerIp => "TooManyConnectionsFromAddress",
        }
    }
}

/// A connection's place, given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    ip: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Admission {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Admission {
        Admission {
            max_total,
            max_per_ip,
            counts: Arc::default(),
        }
    }

    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Permit, Refused> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.max_total {
            return Err(Refused::Total);
        }
        let from_ip = c.per_ip.get(&ip).copied().unwrap_or(0);
        if self.max_per_ip > 0 && from_ip >= self.max_per_ip {
            return Err(Refused::PerIp);
        }
        c.total += 1;
        c.per_ip.insert(ip, from_ip + 1);
        Ok(Permit {
            ip,
            counts: self.counts.clone(),
        })
    }

    /// Connections admitted and not yet ended.
    pub(crate) fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_all_and_per_address_and_places_come_back() {
        let a = Admission::new(3, 2);
        let one: IpAddr = [10, 0, 0, 1].into();
        let two: IpAddr = [10, 0, 0, 2].into();
        let p1 = a.admit(one).unwrap();
        let p2 = a.admit(one).unwrap();
        assert_eq!(a.admit(one).unwrap_err(), Refused::PerIp);
        let p3 = a.admit(two).unwrap();
        assert_eq!(a.admit(two).unwrap_err(), Refused::Total);
        assert_eq!(a.open(), 3);
        drop(p1);
        let p4 = a.admit(one).unwrap();
        drop((p2, p3, p4));
        assert_eq!(a.open(), 0);
        assert!(a.counts.lock().unwrap().per_ip.is_empty());
        // No cap per address.
        let b = Admission::new(2, 0);
        let _x = (b.admit(one).unwrap(), b.admit(one).unwrap());
        assert_eq!(b.admit(two).unwrap_err(), Refused::Total);
    }
}
