//! Placement: which host of the farm each new phone goes to (docs/design.md §10). A pure
//! function over the hosts' rooms, run by the store inside the transaction that inserts the
//! phones, so that two creations never place into the same room.
//!
//! A phone of a spec takes one phone, `cpu × 1000` milli-CPUs and its memory from its host; a
//! host limits any of the three (or none). Its utilisation is the largest share it has used of
//! the limits it sets. Spread puts each phone where the utilisation *after* adding it is lowest,
//! so equal hosts fill evenly and unequal ones in proportion; bin-pack puts it on the fullest
//! host that still fits, so hosts fill one after the other. Either way a group that does not
//! fit as a whole is placed nowhere ([`NoRoom`]).

use std::cmp::Ordering;

use crate::resources::Spec;

/// How new phones are spread over the hosts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// The least used host first: phones spread evenly (the default).
    #[default]
    Spread,
    /// The most used host that still fits first: hosts fill one after the other.
    BinPack,
}

impl std::str::FromStr for Strategy {
    type Err = ();
    fn from_str(s: &str) -> Result<Strategy, ()> {
        match s {
            "spread" => Ok(Strategy::Spread),
            "binpack" => Ok(Strategy::BinPack),
            _ => Err(()),
        }
    }
}

/// What a host may hold; `None` does not limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub phones: Option<u64>,
    pub cpu_milli: Option<u64>,
    pub memory_mib: Option<u64>,
}

/// What a host's phones take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub phones: u64,
    pub cpu_milli: u64,
    pub memory_mib: u64,
}

impl Usage {
    /// The usage with one more phone of `spec`.
    pub fn plus(self, spec: &Spec) -> Usage {
        Usage {
            phones: self.phones + 1,
            cpu_milli: self.cpu_milli + spec.cpu_milli(),
            memory_mib: self.memory_mib + u64::from(spec.memory_mib),
        }
    }

    /// The usage of `spec`'s phones, `n` of them.
    pub fn of(spec: &Spec, n: u64) -> Usage {
        Usage {
            phones: n,
            cpu_milli: spec.cpu_milli() * n,
            memory_mib: u64::from(spec.memory_mib) * n,
        }
    }
}

/// One host as placement sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Room {
    pub name: String,
    pub limits: Limits,
    pub used: Usage,
    /// ADB ports still free on a host-network host; `None` when its phones need none.
    pub free_ports: Option<u32>,
    /// Healthy, fresh, not cordoned, not draining, running the image: may take phones at all.
    pub schedulable: bool,
}

impl Room {
    /// Whether one more phone of `spec` fits.
    pub fn fits(&self, spec: &Spec) -> bool {
        let after = self.used.plus(spec);
        let within = |limit: Option<u64>, used: u64| limit.is_none_or(|l| used <= l);
        self.schedulable
            && self.free_ports.is_none_or(|p| p > 0)
            && within(self.limits.phones, after.phones)
            && within(self.limits.cpu_milli, after.cpu_milli)
            && within(self.limits.memory_mib, after.memory_mib)
    }

    /// The share used of the limits set with `used` (0 for a host without limits).
    pub fn utilisation(&self, used: Usage) -> Share {
        [
            (used.phones, self.limits.phones),
            (used.cpu_milli, self.limits.cpu_milli),
            (used.memory_mib, self.limits.memory_mib),
        ]
        .into_iter()
        .filter_map(|(n, limit)| limit.map(|d| Share { n, d }))
        .fold(Share { n: 0, d: 1 }, Share::max)
    }

    fn take(&mut self, spec: &Spec) {
        self.used = self.used.plus(spec);
        if let Some(p) = &mut self.free_ports {
            *p -= 1;
        }
    }
}

/// A fraction `n / d`, compared exactly (no rounding decides where a phone goes).
#[derive(Clone, Copy, Debug)]
pub struct Share {
    n: u64,
    d: u64,
}

impl Share {
    fn key(self, other: Share) -> (u128, u128) {
        // A limit of 0 holds nothing: full whatever is in it.
        let d = |s: Share| u128::from(s.d.max(1));
        (u128::from(self.n) * d(other), u128::from(other.n) * d(self))
    }
    fn max(self, other: Share) -> Share {
        if self.cmp(&other) == Ordering::Less {
            other
        } else {
            self
        }
    }
}

impl PartialEq for Share {
    fn eq(&self, other: &Share) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Share {}
impl PartialOrd for Share {
    fn partial_cmp(&self, other: &Share) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Share {
    fn cmp(&self, other: &Share) -> Ordering {
        let (a, b) = self.key(*other);
        a.cmp(&b)
    }
}

/// The ask does not fit: only `fits` of the phones asked would.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the farm has room for {fits} more phones of this spec")]
pub struct NoRoom {
    pub fits: u64,
}

/// Places `n` phones of `spec`: the index in `rooms` of each phone's host, in order, with
/// `rooms` updated to hold them; or, when they do not all fit, [`NoRoom`] with `rooms` left as
/// they were. Deterministic: ties go to the host with fewer phones (bin-pack: more), then to the
/// first name.
pub fn place(
    rooms: &mut [Room],
    spec: &Spec,
    n: usize,
    strategy: Strategy,
) -> Result<Vec<usize>, NoRoom> {
    let mut trial = rooms.to_vec();
    let mut out = Vec::with_capacity(n);
    for placed in 0..n {
        let Some(best) = pick(&trial, spec, strategy) else {
            return Err(NoRoom {
                fits: placed as u64,
            });
        };
        trial[best].take(spec);
        out.push(best);
    }
    rooms.clone_from_slice(&trial);
    Ok(out)
}

/// How many more phones of `spec` the rooms hold in all (`u64::MAX` when some host is not
/// limited): what DescribeSpec shows, and the `fits` of a refusal.
pub fn room_for(rooms: &[Room], spec: &Spec) -> u64 {
    rooms
        .iter()
        .map(|r| room_on(r, spec))
        .fold(0u64, u64::saturating_add)
}

/// How many more phones of `spec` one room holds.
fn room_on(room: &Room, spec: &Spec) -> u64 {
    if !room.schedulable {
        return 0;
    }
    let per = Usage::of(spec, 1);
    let left = |limit: Option<u64>, used: u64, each: u64| match limit {
        None => u64::MAX,
        Some(_) if each == 0 => u64::MAX,
        Some(l) => l.saturating_sub(used) / each,
    };
    [
        left(room.limits.phones, room.used.phones, per.phones),
        left(room.limits.cpu_milli, room.used.cpu_milli, per.cpu_milli),
        left(room.limits.memory_mib, room.used.memory_mib, per.memory_mib),
        room.free_ports.map_or(u64::MAX, u64::from),
    ]
    .into_iter()
    .min()
    .unwrap_or(u64::MAX)
}

/// The host the next phone goes to, if any fits.
fn pick(rooms: &[Room], spec: &Spec, strategy: Strategy) -> Option<usize> {
    let candidates = rooms.iter().enumerate().filter(|(_, r)| r.fits(spec));
    match strategy {
        Strategy::Spread => candidates
            .min_by(|(_, a), (_, b)| {
                a.utilisation(a.used.plus(spec))
                    .cmp(&b.utilisation(b.used.plus(spec)))
                    .then(a.used.phones.cmp(&b.used.phones))
                    .then(a.name.cmp(&b.name))
            })
            .map(|(i, _)| i),
        Strategy::BinPack => candidates
            .min_by(|(_, a), (_, b)| {
                b.utilisation(b.used)
                    .cmp(&a.utilisation(a.used))
                    .then(b.used.phones.cmp(&a.used.phones))
                    .then(a.name.cmp(&b.name))
            })
            .map(|(i, _)| i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::spec;

    fn small() -> &'static Spec {
        spec("acp.basic.small").unwrap()
    }

    pub(crate) fn host(name: &str, max_phones: u64) -> Room {
        Room {
            name: name.into(),
            limits: Limits {
                phones: Some(max_phones),
                ..Limits::default()
            },
            used: Usage::default(),
            free_ports: None,
            schedulable: true,
        }
    }

    fn counts(rooms: &[Room]) -> Vec<u64> {
        rooms.iter().map(|r| r.used.phones).collect()
    }

    #[test]
    fn thirty_phones_on_three_equal_hosts_land_ten_ten_ten() {
        let mut rooms = vec![host("a", 20), host("b", 20), host("c", 20)];
        let at = place(&mut rooms, small(), 30, Strategy::Spread).unwrap();
        assert_eq!(counts(&rooms), [10, 10, 10]);
        // Round robin in name order: the ties go to the first name.
        assert_eq!(&at[..4], &[0, 1, 2, 0]);
    }

    #[test]
    fn unequal_hosts_fill_in_proportion() {
        let mut rooms = vec![host("a", 10), host("b", 30)];
        place(&mut rooms, small(), 20, Strategy::Spread).unwrap();
        assert_eq!(counts(&rooms), [5, 15]);
    }

    #[test]
    fn bin_pack_fills_one_host_after_the_other() {
        let mut rooms = vec![host("b", 4), host("a", 4), host("c", 4)];
        place(&mut rooms, small(), 6, Strategy::BinPack).unwrap();
        assert_eq!(counts(&rooms), [2, 4, 0]);
    }

    #[test]
    fn cpu_and_memory_limit_by_spec() {
        let perf = spec("acp.perf.large").unwrap();
        let mut room = host("a", 100);
        room.limits.cpu_milli = Some(20_000);
        room.limits.memory_mib = Some(64 * 1024);
        let mut rooms = vec![room];
        assert_eq!(room_for(&rooms, perf), 2);
        assert_eq!(room_for(&rooms, small()), 10);
        assert_eq!(
            place(&mut rooms, perf, 3, Strategy::Spread),
            Err(NoRoom { fits: 2 })
        );
        assert_eq!(counts(&rooms), [0], "nothing placed");
    }

    #[test]
    fn unschedulable_hosts_and_hosts_without_ports_take_nothing() {
        let mut off = host("a", 10);
        off.schedulable = false;
        let mut portless = host("b", 10);
        portless.free_ports = Some(1);
        let mut rooms = vec![off, portless, host("c", 1)];
        assert_eq!(room_for(&rooms, small()), 2);
        assert_eq!(
            place(&mut rooms, small(), 2, Strategy::Spread),
            Ok(vec![1, 2])
        );
        assert_eq!(rooms[1].free_ports, Some(0));
        assert_eq!(
            place(&mut rooms, small(), 1, Strategy::Spread),
            Err(NoRoom { fits: 0 })
        );
    }

    #[test]
    fn an_unlimited_host_takes_everything() {
        let mut sim = host("sim", 0);
        sim.limits = Limits::default();
        let mut rooms = vec![sim];
        assert_eq!(room_for(&rooms, small()), u64::MAX);
        assert_eq!(
            place(&mut rooms, small(), 500, Strategy::BinPack).map(|v| v.len()),
            Ok(500)
        );
    }

    #[test]
    fn strategies_are_named_as_in_the_backends_file() {
        assert_eq!("spread".parse(), Ok(Strategy::Spread));
        assert_eq!("binpack".parse(), Ok(Strategy::BinPack));
        assert_eq!("pack".parse::<Strategy>(), Err(()));
    }
}
