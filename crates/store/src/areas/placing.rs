//! Placement inside a store transaction: the hosts read with their usage, core's `place` run
//! over their rooms, and the ADB ports of host-network hosts handed out. Callers take
//! [`Lock::Placement`] first (after the account's lock), so that two transactions, on any
//! nodes, never place into the same room or hand out the same port.

use std::collections::HashMap;

use cloudphone_core::placement::{self, Strategy, Usage};

use crate::hosts_types::{Health, HostKind, HostRow, spec_of};
use crate::sql::conn::{Conn, Lock, Row};
use crate::sql::v;
use crate::{Result, StoreError};

/// One phone to place: its image and spec.
pub(crate) struct Ask<'a> {
    pub image: &'a str,
    pub spec: &'a str,
}

/// Where a phone went: its host, and its ADB port there on a host-network host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Spot {
    pub host: String,
    pub port: Option<u16>,
}

/// Places `asks` on hosts of `kind` (never on `away_from`), all or nothing: the spot of each,
/// in order, or [`StoreError::NoStock`] with how many of the first (image, spec) that did not
/// fit would have. Ports are chosen but not yet recorded: [`hold_ports`] does.
pub(crate) async fn place(
    c: &mut impl Conn,
    asks: &[Ask<'_>],
    kind: HostKind,
    strategy: Strategy,
    away_from: Option<&str>,
    now_ms: i64,
) -> Result<Vec<Spot>> {
    c.lock(Lock::Placement).await?;
    let mut hosts = read_hosts(c).await?;
    let mut out: Vec<Option<String>> = vec![None; asks.len()];
    // Phones of one image and spec are placed together, in the order they first appear.
    let mut order: Vec<(&str, &str)> = Vec::new();
    for a in asks {
        if !order.contains(&(a.image, a.spec)) {
            order.push((a.image, a.spec));
        }
    }
    for (image, spec_name) in order {
        let spec = spec_of(spec_name);
        let which: Vec<usize> = (0..asks.len())
            .filter(|&i| asks[i].image == image && asks[i].spec == spec_name)
            .collect();
        let mut rooms: Vec<_> = hosts
            .iter()
            .map(|h| {
                let mut room = h.room(kind, image, now_ms);
                room.schedulable &= Some(h.name.as_str()) != away_from;
                room
            })
            .collect();
        let at = placement::place(&mut rooms, spec, which.len(), strategy)
            .map_err(|e| StoreError::NoStock { fits: e.fits })?;
        for (i, h) in which.into_iter().zip(at) {
            out[i] = Some(hosts[h].name.clone());
        }
        for (host, room) in hosts.iter_mut().zip(rooms) {
            host.ports_used += host.free_ports().unwrap_or(0) - room.free_ports.unwrap_or(0);
            host.used = room.used;
        }
    }
    let ranges: HashMap<&str, Option<(u16, u16)>> =
        hosts.iter().map(|h| (h.name.as_str(), h.ports)).collect();
    let mut free: HashMap<String, Vec<u16>> = HashMap::new();
    let mut spots = Vec::with_capacity(asks.len());
    for host in out.into_iter().flatten() {
        let port = match ranges.get(host.as_str()).copied().flatten() {
            None => None,
            Some(range) => {
                if !free.contains_key(&host) {
                    let ports = free_ports(c, &host, range).await?;
                    free.insert(host.clone(), ports);
                }
                let ports = free.get_mut(&host).expect("just filled");
                // Placement counted the free ports: there is one.
                Some(ports.remove(0))
            }
        };
        spots.push(Spot { host, port });
    }
    Ok(spots)
}

/// Records the ports of `spots` as held by the instances of `ids`.
pub(crate) async fn hold_ports(c: &mut impl Conn, ids: &[&str], spots: &[Spot]) -> Result<()> {
    for (id, spot) in ids.iter().zip(spots) {
        if let Some(port) = spot.port {
            let q = c.with(
                "INSERT INTO host_ports (host, port, instance_id) VALUES (?, ?, ?)",
                [v(&spot.host), v(i64::from(port)), v(*id)],
            );
            c.execute(&q).await?;
        }
    }
    Ok(())
}

/// The ports of `range` no phone holds on `host`, lowest first.
async fn free_ports(c: &mut impl Conn, host: &str, (low, high): (u16, u16)) -> Result<Vec<u16>> {
    let q = c.with(
        "SELECT port FROM host_ports WHERE host = ? ORDER BY port",
        [v(host)],
    );
    let held: std::collections::HashSet<i64> =
        c.rows(&q, |r| r.int("port")).await?.into_iter().collect();
    Ok((low..=high)
        .filter(|p| !held.contains(&i64::from(*p)))
        .collect())
}

/// Every host, with what its phones take.
pub(crate) async fn read_hosts(c: &mut impl Conn) -> Result<Vec<HostRow>> {
    let q = c.sql(
        "SELECT name, kind, address, max_phones, cpu_milli, memory_mib, images, port_low, \
         port_high, config_digest, seen_ms, cordoned, drain_id, health, health_reason, \
         health_ms, engine_version, api_version, owner_node, lease_until_ms, lease_epoch \
         FROM hosts ORDER BY name",
    );
    let mut hosts = c.rows(&q, host_row).await?;

    let q = c.sql(
        "SELECT h, spec, COUNT(*) AS n FROM (\
         SELECT host AS h, spec FROM instances WHERE host IS NOT NULL AND status != 'DELETED' \
         UNION ALL \
         SELECT moving_to AS h, spec FROM instances \
         WHERE moving_to IS NOT NULL AND status != 'DELETED') x GROUP BY h, spec",
    );
    let usage = c
        .rows(&q, |r| Ok((r.text("h")?, r.text("spec")?, r.int("n")?)))
        .await?;
    let q = c.sql(
        "SELECT host, moving_to FROM instances \
         WHERE moving_to IS NOT NULL AND status != 'DELETED'",
    );
    let moves = c
        .rows(&q, |r| Ok((r.text_opt("host")?, r.text("moving_to")?)))
        .await?;
    let q = c.sql("SELECT host, COUNT(*) AS n FROM host_ports GROUP BY host");
    let ports = c.rows(&q, |r| Ok((r.text("host")?, r.int("n")?))).await?;

    let index: HashMap<String, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.clone(), i))
        .collect();
    let mut at = |name: &str| index.get(name).copied();
    for (host, spec, n) in usage {
        if let Some(i) = at(&host) {
            let add = Usage::of(spec_of(&spec), n as u64);
            let u = &mut hosts[i].used;
            u.phones += add.phones;
            u.cpu_milli += add.cpu_milli;
            u.memory_mib += add.memory_mib;
        }
    }
    for (from, to) in moves {
        if let Some(i) = at(&to) {
            hosts[i].moving_in += 1;
        }
        if let Some(i) = from.as_deref().and_then(&mut at) {
            hosts[i].moving_out += 1;
        }
    }
    for (host, n) in ports {
        if let Some(i) = at(&host) {
            hosts[i].ports_used = u32::try_from(n).unwrap_or(u32::MAX);
        }
    }
    Ok(hosts)
}

fn host_row(r: &dyn Row) -> Result<HostRow> {
    let corrupt =
        |what: &str, s: &str| StoreError::Corrupt(format!("{what}: unexpected value {s:?}"));
    let kind = r.text("kind")?;
    let health = r.text("health")?;
    let images = r.text("images")?;
    let limit = |col: &str| -> Result<Option<u64>> {
        Ok(r.int_opt(col)?.map(|n| u64::try_from(n).unwrap_or(0)))
    };
    let port = |col: &str| -> Result<Option<u16>> {
        Ok(r.int_opt(col)?.and_then(|n| u16::try_from(n).ok()))
    };
    Ok(HostRow {
        name: r.text("name")?,
        kind: HostKind::parse(&kind).ok_or_else(|| corrupt("host kind", &kind))?,
        address: r.text("address")?,
        limits: cloudphone_core::placement::Limits {
            phones: limit("max_phones")?,
            cpu_milli: limit("cpu_milli")?,
            memory_mib: limit("memory_mib")?,
        },
        images: serde_json::from_str(&images).map_err(|_| corrupt("host images", &images))?,
        ports: port("port_low")?.zip(port("port_high")?),
        digest: r.text("config_digest")?,
        seen_ms: r.int("seen_ms")?,
        cordoned: r.flag("cordoned")?,
        drain_id: r.text_opt("drain_id")?,
        health: Health::parse(&health).ok_or_else(|| corrupt("host health", &health))?,
        health_reason: r.text("health_reason")?,
        health_ms: r.int("health_ms")?,
        engine_version: r.text("engine_version")?,
        api_version: r.text("api_version")?,
        owner_node: r.text_opt("owner_node")?,
        lease_until_ms: r.int("lease_until_ms")?,
        lease_epoch: r.int("lease_epoch")?,
        used: Usage::default(),
        moving_in: 0,
        moving_out: 0,
        ports_used: 0,
    })
}
