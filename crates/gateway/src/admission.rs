//! The connection caps: so many open at once on this node, so many from one address. A
//! connection over a cap is closed at once, before anything is read or looked up; a permit
//! held for a connection's life frees its place when dropped.
//!
//! **Why** refuse the newcomer (the API's listeners shed the oldest idle connection instead):
//! an ADB connection has no idle state to tell apart, since a client keeps its transport open
//! for as long as the device is listed, and unauthenticated ones are bounded by the handshake
//! deadline already. The cap per address keeps one client from taking every place.
//!
//! "One address" is an IPv4 address, or an IPv6 /64 (an IPv4-mapped IPv6 address, as a
//! dual-stack listener reports IPv4 clients, counts as its IPv4 address). **Why** the /64: it is
//! what one IPv6 host or site is given, and a host picks any address inside it at will (privacy
//! addresses, or simply binding more), so a cap on whole IPv6 addresses would cap nothing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
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

/// What the cap per address counts `ip` as: itself for IPv4 (and IPv4-mapped IPv6), its /64
/// for IPv6.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// A connection's place, given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    /// What the cap per address counted it as.
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
        let ip = source_of(ip);
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

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a = Admission::new(100, 2);
        // Two addresses of one /64 share its places.
        let _p1 = a.admit(ip("2001:db8:1:2::1")).unwrap();
        let _p2 = a.admit(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8:1:2:1234::9")).unwrap_err(),
            Refused::PerIp
        );
        // The next /64 has its own.
        let _p3 = a.admit(ip("2001:db8:1:3::1")).unwrap();
        // An IPv4 client seen through a dual-stack listener is its IPv4 address.
        let _p4 = a.admit(ip("10.0.0.7")).unwrap();
        let _p5 = a.admit(ip("::ffff:10.0.0.7")).unwrap();
        assert_eq!(a.admit(ip("10.0.0.7")).unwrap_err(), Refused::PerIp);
        assert_eq!(a.admit(ip("::ffff:10.0.0.7")).unwrap_err(), Refused::PerIp);
        assert_eq!(source_of(ip("::1")), ip("::"));
        assert_eq!(source_of(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
        drop((_p1, _p2, _p3, _p4, _p5));
        assert!(a.counts.lock().unwrap().per_ip.is_empty());
    }
}
