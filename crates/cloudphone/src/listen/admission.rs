//! Which connections a listener keeps: at most `max_total` open at once (kept below the
//! process's open-file limit, see [`super::fds`]) and at most `max_per_ip` from one address.
//! A connection over either cap takes the place of the oldest *idle* connection in its way
//! (one with no request in flight: still in its TLS handshake, waiting for its first request,
//! or kept alive between requests), which is closed at once; when every connection in its way
//! is busy, the new one is closed instead. So silent or slow connections, however many, cannot
//! keep a caller that sends a request out, and they cannot exhaust the file descriptors the
//! store and the object files need.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

/// The open connections of one listener.
pub(crate) struct Table {
    max_total: usize,
    /// 0: no cap per address.
    max_per_ip: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// Orders idle connections: each becomes idle with the next number.
    next_seq: u64,
    per_ip: HashMap<IpAddr, usize>,
    /// Idle connections by the time they became idle (oldest first): seq → id.
    idle: BTreeMap<u64, u64>,
    idle_by_ip: HashMap<IpAddr, BTreeMap<u64, u64>>,
    conns: HashMap<u64, Entry>,
}

struct Entry {
    ip: IpAddr,
    /// `Some(seq)` while idle.
    idle: Option<u64>,
    /// Cancelled when the connection is shed: its task closes it.
    shed: CancellationToken,
}

/// A connection the table admitted.
pub(crate) struct Admitted {
    pub id: u64,
    /// Cancelled when the connection must close to make room for another.
    pub shed: CancellationToken,
}

impl Table {
    pub fn new(max_total: usize, max_per_ip: usize) -> Table {
        Table {
            max_total: max_total.max(1),
            max_per_ip,
            inner: Mutex::default(),
        }
    }

    /// Admits a connection from `ip` (idle until its first request), shedding an idle one in
    /// its way if a cap is reached; `None`: every connection in its way is busy, and this one
    /// is to be closed.
    pub fn admit(&self, ip: IpAddr) -> Option<Admitted> {
        let mut inner = self.inner.lock().expect("the connection table lock");
        if self.max_per_ip > 0 && inner.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            let victim = inner
                .idle_by_ip
                .get(&ip)
                .and_then(|idle| idle.values().next().copied());
            match victim {
                Some(id) => inner.shed(id, "address"),
                None => {
                    metrics::counter!("cloudphone_connections_refused_total", "cap" => "address")
                        .increment(1);
                    return None;
                }
            }
        }
        if inner.conns.len() >= self.max_total {
            match inner.idle.values().next().copied() {
                Some(id) => inner.shed(id, "total"),
                None => {
                    metrics::counter!("cloudphone_connections_refused_total", "cap" => "total")
                        .increment(1);
                    return None;
                }
            }
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let shed = CancellationToken::new();
        inner.conns.insert(
            id,
            Entry {
                ip,
                idle: None,
                shed: shed.clone(),
            },
        );
        *inner.per_ip.entry(ip).or_default() += 1;
        inner.set_idle(id);
        metrics::gauge!("cloudphone_connections").set(inner.conns.len() as f64);
        Some(Admitted { id, shed })
    }

    /// Closes the oldest idle connection (the process ran out of file descriptors); false when
    /// none is idle.
    pub fn shed_oldest_idle(&self) -> bool {
        let mut inner = self.inner.lock().expect("the connection table lock");
        match inner.idle.values().next().copied() {
            Some(id) => {
                inner.shed(id, "descriptors");
                true
            }
            None => false,
        }
    }

    /// A request of connection `id` is in flight: it may not be shed.
    pub fn busy(&self, id: u64) {
        let mut inner = self.inner.lock().expect("the connection table lock");
        inner.unset_idle(id);
    }

    /// Connection `id` has no request in flight any more.
    pub fn idle(&self, id: u64) {
        let mut inner = self.inner.lock().expect("the connection table lock");
        if inner.conns.contains_key(&id) {
            inner.set_idle(id);
        }
    }

    /// Connection `id` closed (if it was shed, it is gone already).
    pub fn remove(&self, id: u64) {
        let mut inner = self.inner.lock().expect("the connection table lock");
        inner.forget(id);
        metrics::gauge!("cloudphone_connections").set(inner.conns.len() as f64);
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.inner.lock().unwrap().conns.len()
    }
}

impl Inner {
    fn set_idle(&mut self, id: u64) {
        self.unset_idle(id);
        self.next_seq += 1;
        let seq = self.next_seq;
        let Some(entry) = self.conns.get_mut(&id) else {
            return;
        };
        entry.idle = Some(seq);
        let ip = entry.ip;
        self.idle.insert(seq, id);
        self.idle_by_ip.entry(ip).or_default().insert(seq, id);
    }

    fn unset_idle(&mut self, id: u64) {
        let Some(entry) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(seq) = entry.idle.take() else {
            return;
        };
        let ip = entry.ip;
        self.idle.remove(&seq);
        if let Some(by_ip) = self.idle_by_ip.get_mut(&ip) {
            by_ip.remove(&seq);
            if by_ip.is_empty() {
                self.idle_by_ip.remove(&ip);
            }
        }
    }

    /// Takes `id` out of the table; returns its entry.
    fn forget(&mut self, id: u64) -> Option<Entry> {
        self.unset_idle(id);
        let entry = self.conns.remove(&id)?;
        if let Some(n) = self.per_ip.get_mut(&entry.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&entry.ip);
            }
        }
        Some(entry)
    }

    /// Closes `id` to make room: it leaves the table now, its task closes the socket.
    fn shed(&mut self, id: u64, cap: &'static str) {
        if let Some(entry) = self.forget(id) {
            entry.shed.cancel();
            metrics::counter!("cloudphone_connections_shed_total", "cap" => cap).increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn an_address_over_its_cap_sheds_its_own_oldest_idle_connection() {
        let t = Table::new(100, 2);
        let a = t.admit(ip(1)).unwrap();
        let b = t.admit(ip(1)).unwrap();
        let other = t.admit(ip(2)).unwrap();
        t.busy(b.id);
        let c = t.admit(ip(1)).unwrap();
        assert!(a.shed.is_cancelled(), "the oldest idle one of that address");
        assert!(!b.shed.is_cancelled() && !other.shed.is_cancelled());
        // Both of ip 1 busy now: a newcomer of that address is refused, another is not.
        t.busy(c.id);
        assert!(t.admit(ip(1)).is_none());
        assert!(t.admit(ip(3)).is_some());
        // A shed connection's own removal changes nothing.
        t.remove(a.id);
        assert_eq!(t.open(), 4);
    }

    #[test]
    fn the_total_cap_sheds_the_oldest_idle_connection_of_any_address() {
        let t = Table::new(3, 0);
        let a = t.admit(ip(1)).unwrap();
        let b = t.admit(ip(2)).unwrap();
        let c = t.admit(ip(3)).unwrap();
        t.busy(a.id);
        t.busy(c.id);
        t.idle(c.id);
        // b has been idle the longest; c became idle again after a request.
        let d = t.admit(ip(4)).unwrap();
        assert!(b.shed.is_cancelled() && !c.shed.is_cancelled() && !a.shed.is_cancelled());
        t.busy(c.id);
        t.busy(d.id);
        assert!(t.admit(ip(5)).is_none(), "all busy: the newcomer is closed");
        assert!(!t.shed_oldest_idle());
        t.remove(d.id);
        assert!(t.admit(ip(5)).is_some());
    }
}
