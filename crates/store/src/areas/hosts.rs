//! The farm's hosts (issue 24): what the nodes' backends files configure, who watches each host
//! (a lease fenced by an epoch), its health (an unhealthy host's RUNNING phones turn
//! UNAVAILABLE in one statement), the nodes alive, the phones on a host, and drains: phones
//! moved to other hosts by MigrateInstance tasks, with room and ports held on both hosts until
//! the move commits or is abandoned (fenced on the task's attempt).

use cloudphone_core::Level;
use cloudphone_core::TaskType;
use cloudphone_core::task_params::{MigrateMode, MigrateParam, to_json};

use super::placing::{self, Ask, Spot};
use super::tasks;
use crate::hosts_types::{
    DrainPlan, DrainProgress, Health, HostConfig, HostHealth, HostKind, HostRow, NewDrain,
    NodeInfo, NodeRow, PhoneOnHost, PlannedMove,
};
use crate::sql::conn::{Conn, parse};
use crate::sql::v;
use crate::{NewTask, Result, StoreError};

area! {
    /// Hosts, their leases and health, nodes, and drains.
    pub trait HostStore {
        /// Upserts the hosts of `node`'s backends file (their configuration, `seen_ms = now`)
        /// and the node's row; each host adopts the unplaced phones of its `adopt_images`.
        /// Returns how many phones were adopted. A host is never deleted for leaving a file.
        fn sync_hosts(&self, node: &NodeInfo, hosts: &[HostConfig], now_ms: i64) -> u64 =
            write (|c| sync_hosts(c, node, hosts, now_ms));
        /// Every host with its state and what its phones take, by name.
        fn list_hosts(&self) -> Vec<HostRow> = snapshot (|c| placing::read_hosts(c));
        /// Cordons or uncordons a host; false when there is no such host.
        fn set_cordon(&self, name: &str, cordoned: bool) -> bool =
            autocommit (|c| set_cordon(c, name, cordoned));
        /// Extends the leases `node` holds to `now + ttl`, and confirms the health of those
        /// that are healthy at `now`; returns each host kept, with its epoch.
        fn renew_host_leases(&self, node: &str, now_ms: i64, ttl_ms: i64) -> Vec<(String, i64)> =
            autocommit (|c| renew_host_leases(c, node, now_ms, ttl_ms));
        /// Takes the lease of docker host `name` for `node` if nobody holds it or its holder's
        /// expired; returns the new epoch (bumped by every take), `None` when it is held.
        fn take_host_lease(&self, node: &str, name: &str, now_ms: i64, ttl_ms: i64) -> Option<i64> =
            autocommit (|c| take_host_lease(c, node, name, now_ms, ttl_ms));
        /// Gives up every lease of `node` (it stops); returns how many.
        fn release_host_leases(&self, node: &str) -> u64 =
            autocommit (|c| release_host_leases(c, node));
        /// Gives up the lease of host `name` if `node` holds it at `epoch` (a node above its
        /// share hands a host to a node that joined); false otherwise.
        fn release_host_lease(&self, node: &str, name: &str, epoch: i64) -> bool =
            autocommit (|c| release_host_lease(c, node, name, epoch));
        /// Records that `node` is alive at `now`; false when it has no row (sync first).
        fn node_heartbeat(&self, node: &str, now_ms: i64) -> bool =
            autocommit (|c| node_heartbeat(c, node, now_ms));
        /// The nodes whose heartbeat is younger than `ttl_ms`, by id.
        fn live_nodes(&self, now_ms: i64, ttl_ms: i64) -> Vec<NodeRow> =
            read (|c| live_nodes(c, now_ms, ttl_ms));
        /// Writes the health of host `name` as its owner of lease `epoch` saw it (`None`: the
        /// epoch is not the host's any more, nothing written). Unhealthy or missing, the host's
        /// RUNNING phones turn UNAVAILABLE in the same transaction: returns how many.
        fn set_host_health(&self, name: &str, epoch: i64, health: &HostHealth, now_ms: i64)
            -> Option<u64> = write (|c| set_host_health(c, name, epoch, health, now_ms));
        /// Docker hosts no node has recorded since `now - within` (they left every node's
        /// file, or every node that had them is gone) become `missing`, their RUNNING phones
        /// UNAVAILABLE. Returns each host newly missing with how many phones it marked.
        fn mark_missing_hosts(&self, now_ms: i64, within_ms: i64) -> Vec<(String, u64)> =
            write (|c| mark_missing_hosts(c, now_ms, within_ms));
        /// The phones not DELETED on host `name` or moving to it, with their ports there.
        fn host_phones(&self, name: &str) -> Vec<PhoneOnHost> = read (|c| host_phones(c, name));
        /// Moves every phone of a host elsewhere: cordons it, places each phone with the
        /// normal placement on the other hosts of its kind, holds room and a port there
        /// (`moving_to`), queues one MigrateInstance task per phone (InvokeId = the drain's
        /// id, queued after the phone's other tasks), records the drain. When not every phone
        /// fits, fails [`StoreError::NoStock`] and changes nothing, unless `partial`.
        fn start_drain(&self, drain: &NewDrain) -> DrainPlan = write (|c| start_drain(c, drain));
        /// The move of `instance` reached its point of no return: the phone now lives on its
        /// target (the source port is freed). Fenced: false unless attempt `attempt` of task
        /// `task_id` holds its lease and the phone is moving.
        fn commit_move(&self, instance: &str, task_id: &str, attempt: i64) -> bool =
            write (|c| commit_move(c, instance, task_id, attempt));
        /// The move of `instance` is given up: the room and port held on its target are
        /// freed. Fenced as [`HostStore::commit_move`].
        fn abandon_move(&self, instance: &str, task_id: &str, attempt: i64) -> bool =
            write (|c| abandon_move(c, instance, task_id, attempt));
        /// Places `instance` again, away from its host (a Reset of a phone whose host is
        /// gone): its new host and port, its old port freed. `None` when fenced out (as
        /// [`HostStore::commit_move`]); [`StoreError::NoStock`] when no other host has room.
        fn relocate(&self, instance: &str, task_id: &str, attempt: i64, image: &str, now_ms: i64)
            -> Option<(String, Option<u16>)> =
            write (|c| relocate(c, instance, task_id, attempt, image, now_ms));
        /// Ends drain `id` once none of its moves waits or runs: `finished_ms` set, and its
        /// host no longer marked as draining (it stays cordoned), so it can be uncordoned and
        /// placed on again. False while moves remain, or when there is no such drain.
        fn end_drain(&self, id: &str, now_ms: i64) -> bool = write (|c| end_drain(c, id, now_ms));
        /// The tasks of drain `id`, by status (`None`: no such drain).
        fn drain_progress(&self, id: &str) -> Option<DrainProgress> =
            snapshot (|c| drain_progress(c, id));
    }
}

async fn sync_hosts(
    c: &mut impl Conn,
    node: &NodeInfo,
    hosts: &[HostConfig],
    now_ms: i64,
) -> Result<u64> {
    let mut adopted = 0;
    for h in hosts {
        let limit = |n: Option<u64>| n.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let (low, high) = match h.ports {
            Some((l, h)) => (Some(i64::from(l)), Some(i64::from(h))),
            None => (None, None),
        };
        let q = c.with(
            "INSERT INTO hosts (name, kind, address, max_phones, cpu_milli, memory_mib, images, \
             port_low, port_high, config_digest, seen_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, address = excluded.address, \
             max_phones = excluded.max_phones, cpu_milli = excluded.cpu_milli, \
             memory_mib = excluded.memory_mib, images = excluded.images, \
             port_low = excluded.port_low, port_high = excluded.port_high, \
             config_digest = excluded.config_digest, seen_ms = excluded.seen_ms",
            [
                v(&h.name),
                v(h.kind.as_str()),
                v(&h.address),
                v(limit(h.limits.phones)),
                v(limit(h.limits.cpu_milli)),
                v(limit(h.limits.memory_mib)),
                v(serde_json::Value::from(h.images.clone()).to_string()),
                v(low),
                v(high),
                v(&h.digest),
                v(now_ms),
            ],
        );
        c.execute(&q).await?;
        if !h.adopt_images.is_empty() {
            let mut q = c.sql("UPDATE instances SET host = ");
            q.bind(&h.name)
                .push(" WHERE host IS NULL AND status != 'DELETED'")
                .and_in("image_id", h.adopt_images.iter().cloned());
            adopted += c.execute(&q).await?;
        }
    }
    let digests: serde_json::Map<String, serde_json::Value> = hosts
        .iter()
        .map(|h| (h.name.clone(), h.digest.clone().into()))
        .collect();
    let q = c.with(
        "INSERT INTO nodes (id, started_ms, heartbeat_ms, version, hosts) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET started_ms = excluded.started_ms, \
         heartbeat_ms = excluded.heartbeat_ms, version = excluded.version, hosts = excluded.hosts",
        [
            v(&node.id),
            v(node.started_ms),
            v(now_ms),
            v(&node.version),
            v(serde_json::Value::Object(digests).to_string()),
        ],
    );
    c.execute(&q).await?;
    Ok(adopted)
}

async fn set_cordon(c: &mut impl Conn, name: &str, cordoned: bool) -> Result<bool> {
    let mut q = c.sql("UPDATE hosts SET cordoned = ");
    q.truth(cordoned).push(" WHERE name = ").bind(name);
    Ok(c.execute(&q).await? == 1)
}

async fn renew_host_leases(
    c: &mut impl Conn,
    node: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Vec<(String, i64)>> {
    // A healthy host's health is confirmed with its lease: its owner's watcher turns it
    // unhealthy within seconds of the engine going quiet, and placement trusts health only
    // for `HEALTH_TRUST_MS`, so this spares a write per ping.
    let q = c.with(
        "UPDATE hosts SET lease_until_ms = ?, \
         health_ms = CASE WHEN health = 'healthy' THEN ? ELSE health_ms END \
         WHERE owner_node = ? RETURNING name, lease_epoch",
        [v(now_ms + ttl_ms), v(now_ms), v(node)],
    );
    let mut kept = c
        .rows(&q, |r| Ok((r.text("name")?, r.int("lease_epoch")?)))
        .await?;
    kept.sort();
    Ok(kept)
}

async fn take_host_lease(
    c: &mut impl Conn,
    node: &str,
    name: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Option<i64>> {
    let q = c.with(
        "UPDATE hosts SET owner_node = ?, lease_until_ms = ?, lease_epoch = lease_epoch + 1 \
         WHERE name = ? AND kind = 'docker' AND (owner_node IS NULL OR lease_until_ms < ?) \
         RETURNING lease_epoch",
        [v(node), v(now_ms + ttl_ms), v(name), v(now_ms)],
    );
    c.row(&q, |r| r.int("lease_epoch")).await
}

async fn release_host_leases(c: &mut impl Conn, node: &str) -> Result<u64> {
    let q = c.with(
        "UPDATE hosts SET owner_node = NULL, lease_until_ms = 0 WHERE owner_node = ?",
        [v(node)],
    );
    c.execute(&q).await
}

async fn release_host_lease(c: &mut impl Conn, node: &str, name: &str, epoch: i64) -> Result<bool> {
    let q = c.with(
        "UPDATE hosts SET owner_node = NULL, lease_until_ms = 0 \
         WHERE name = ? AND owner_node = ? AND lease_epoch = ?",
        [v(name), v(node), v(epoch)],
    );
    Ok(c.execute(&q).await? == 1)
}

async fn node_heartbeat(c: &mut impl Conn, node: &str, now_ms: i64) -> Result<bool> {
    let q = c.with(
        "UPDATE nodes SET heartbeat_ms = ? WHERE id = ?",
        [v(now_ms), v(node)],
    );
    Ok(c.execute(&q).await? == 1)
}

async fn live_nodes(c: &mut impl Conn, now_ms: i64, ttl_ms: i64) -> Result<Vec<NodeRow>> {
    let q = c.with(
        "SELECT id, started_ms, heartbeat_ms, version, hosts FROM nodes \
         WHERE heartbeat_ms > ? ORDER BY id",
        [v(now_ms - ttl_ms)],
    );
    c.rows(&q, |r| {
        let hosts = r.text("hosts")?;
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&hosts)
            .map_err(|_| StoreError::Corrupt(format!("node hosts: unexpected value {hosts:?}")))?;
        Ok(NodeRow {
            id: r.text("id")?,
            started_ms: r.int("started_ms")?,
            heartbeat_ms: r.int("heartbeat_ms")?,
            version: r.text("version")?,
            hosts: map
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                .collect(),
        })
    })
    .await
}

async fn set_host_health(
    c: &mut impl Conn,
    name: &str,
    epoch: i64,
    health: &HostHealth,
    now_ms: i64,
) -> Result<Option<u64>> {
    let q = c.with(
        "UPDATE hosts SET health = ?, health_reason = ?, health_ms = ?, \
         engine_version = COALESCE(?, engine_version), api_version = COALESCE(?, api_version) \
         WHERE name = ? AND lease_epoch = ? AND owner_node IS NOT NULL",
        [
            v(health.health.as_str()),
            v(&health.reason),
            v(now_ms),
            v(health.engine_version.clone()),
            v(health.api_version.clone()),
            v(name),
            v(epoch),
        ],
    );
    if c.execute(&q).await? == 0 {
        return Ok(None);
    }
    if !matches!(health.health, Health::Unhealthy | Health::Missing) {
        return Ok(Some(0));
    }
    let q = c.with(
        "UPDATE instances SET status = 'UNAVAILABLE', modified_ms = ? \
         WHERE host = ? AND status = 'RUNNING'",
        [v(now_ms), v(name)],
    );
    c.execute(&q).await.map(Some)
}

async fn mark_missing_hosts(
    c: &mut impl Conn,
    now_ms: i64,
    within_ms: i64,
) -> Result<Vec<(String, u64)>> {
    let q = c.with(
        "UPDATE hosts SET health = 'missing', health_reason = 'in no live node''s backends file', \
         health_ms = ? WHERE kind = 'docker' AND seen_ms < ? AND health != 'missing' \
         RETURNING name",
        [v(now_ms), v(now_ms - within_ms)],
    );
    let mut names = c.rows(&q, |r| r.text("name")).await?;
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let q = c.with(
            "UPDATE instances SET status = 'UNAVAILABLE', modified_ms = ? \
             WHERE host = ? AND status = 'RUNNING'",
            [v(now_ms), v(&name)],
        );
        let marked = c.execute(&q).await?;
        out.push((name, marked));
    }
    Ok(out)
}

async fn host_phones(c: &mut impl Conn, name: &str) -> Result<Vec<PhoneOnHost>> {
    let q = c.with(
        "SELECT i.id, i.status, i.modified_ms, i.image_id, i.host, i.moving_to, \
         (SELECT p.port FROM host_ports p WHERE p.instance_id = i.id AND p.host = ?) AS port \
         FROM instances i WHERE (i.host = ? OR i.moving_to = ?) AND i.status != 'DELETED' \
         ORDER BY i.id",
        [v(name), v(name), v(name)],
    );
    c.rows(&q, |r| {
        Ok(PhoneOnHost {
            id: r.text("id")?,
            status: parse("instance status", &r.text("status")?)?,
            modified_ms: r.int("modified_ms")?,
            image_id: r.text("image_id")?,
            host: r.text("host")?,
            port: r.int_opt("port")?.and_then(|p| u16::try_from(p).ok()),
            moving_to: r.text_opt("moving_to")?,
        })
    })
    .await
}

/// The phone of a drain as it is read for planning.
struct Movable {
    id: String,
    account_id: String,
    name: String,
    image_id: String,
    spec: String,
}

async fn start_drain(c: &mut impl Conn, d: &NewDrain) -> Result<DrainPlan> {
    let q = c.with("SELECT kind FROM hosts WHERE name = ?", [v(&d.host)]);
    let Some(kind) = c.row(&q, |r| r.text("kind")).await? else {
        return Err(StoreError::NotFound {
            what: "host",
            id: d.host.clone(),
        });
    };
    let kind = HostKind::parse(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("host kind: unexpected value {kind:?}")))?;
    let q = c.with(
        "SELECT id, account_id, name, image_id, spec FROM instances \
         WHERE host = ? AND moving_to IS NULL AND status != 'DELETED' ORDER BY id",
        [v(&d.host)],
    );
    let phones = c
        .rows(&q, |r| {
            Ok(Movable {
                id: r.text("id")?,
                account_id: r.text("account_id")?,
                name: r.text("name")?,
                image_id: r.text("image_id")?,
                spec: r.text("spec")?,
            })
        })
        .await?;
    let asks: Vec<Ask<'_>> = phones
        .iter()
        .map(|p| Ask {
            image: &p.image_id,
            spec: &p.spec,
        })
        .collect();
    // All or nothing, or (partial) the longest head of the phones that fits.
    let mut take = phones.len();
    let spots = loop {
        if take == 0 {
            break Vec::new();
        }
        match placing::place(c, &asks[..take], kind, d.strategy, Some(&d.host), d.now_ms).await {
            Ok(spots) => break spots,
            Err(StoreError::NoStock { .. }) if d.partial && take > 1 => take -= 1,
            Err(StoreError::NoStock { .. }) if d.partial => break Vec::new(),
            Err(e) => return Err(e),
        }
    };
    let moved = &phones[..spots.len()];
    let ids: Vec<&str> = moved.iter().map(|p| p.id.as_str()).collect();
    placing::hold_ports(c, &ids, &spots).await?;
    let mut moves = Vec::with_capacity(moved.len());
    for (p, Spot { host, port }) in moved.iter().zip(spots) {
        let q = c.with(
            "UPDATE instances SET moving_to = ? WHERE id = ?",
            [v(&host), v(&p.id)],
        );
        c.execute(&q).await?;
        let task_id = cloudphone_core::ids::new_id("t-");
        let param = MigrateParam {
            drain: Some(d.id.clone()),
            from: d.host.clone(),
            mode: d.mode,
            to: host.clone(),
        };
        let task = NewTask {
            id: task_id.clone(),
            account_id: p.account_id.clone(),
            invoke_id: d.id.clone(),
            level: Level::Internal,
            task_type: TaskType::MigrateInstance,
            resource_id: p.id.clone(),
            instance_id: Some(p.id.clone()),
            instance_name: Some(p.name.clone()),
            param: to_json(&param),
            operator: d.operator.clone(),
            start_ms: d.now_ms,
        };
        tasks::insert_queued(c, &task, None).await?;
        moves.push(PlannedMove {
            instance_id: p.id.clone(),
            account_id: p.account_id.clone(),
            task_id,
            to: host,
            port,
        });
    }
    let mode = match d.mode {
        MigrateMode::Copy => "copy",
        MigrateMode::Recreate => "recreate",
    };
    let q = c.with(
        "INSERT INTO host_drains (id, host, mode, phones, started_ms) VALUES (?, ?, ?, ?, ?)",
        [
            v(&d.id),
            v(&d.host),
            v(mode),
            v(moves.len() as i64),
            v(d.now_ms),
        ],
    );
    c.execute(&q).await?;
    let mut q = c.sql("UPDATE hosts SET cordoned = ");
    q.truth(true)
        .push(", drain_id = ")
        .bind(&d.id)
        .push(" WHERE name = ")
        .bind(&d.host);
    c.execute(&q).await?;
    if !moves.is_empty() {
        c.wake_workers().await?;
    }
    Ok(DrainPlan {
        id: d.id.clone(),
        left: (phones.len() - moves.len()) as u64,
        moves,
    })
}

/// The phone's host and target if attempt `attempt` of `task_id` holds its lease on it.
async fn fenced(
    c: &mut impl Conn,
    instance: &str,
    task_id: &str,
    attempt: i64,
) -> Result<Option<(Option<String>, Option<String>)>> {
    let mut q = c.sql("SELECT i.host, i.moving_to FROM instances i JOIN tasks t ON t.instance_id = i.id WHERE i.id = ");
    q.bind(instance)
        .push(" AND t.id = ")
        .bind(task_id)
        .push(" AND t.attempt = ")
        .bind(attempt)
        .push(" AND t.run_state = 'leased'")
        .for_update();
    c.row(&q, |r| Ok((r.text_opt("host")?, r.text_opt("moving_to")?)))
        .await
}

async fn commit_move(
    c: &mut impl Conn,
    instance: &str,
    task_id: &str,
    attempt: i64,
) -> Result<bool> {
    let Some((from, Some(to))) = fenced(c, instance, task_id, attempt).await? else {
        return Ok(false);
    };
    if let Some(from) = from {
        let q = c.with(
            "DELETE FROM host_ports WHERE instance_id = ? AND host = ?",
            [v(instance), v(from)],
        );
        c.execute(&q).await?;
    }
    let q = c.with(
        "UPDATE instances SET host = ?, moving_to = NULL WHERE id = ?",
        [v(to), v(instance)],
    );
    c.execute(&q).await?;
    Ok(true)
}

async fn abandon_move(
    c: &mut impl Conn,
    instance: &str,
    task_id: &str,
    attempt: i64,
) -> Result<bool> {
    let Some((from, Some(to))) = fenced(c, instance, task_id, attempt).await? else {
        return Ok(false);
    };
    // A phone moving back to where it is (never planned so) keeps its port.
    if from.as_deref() != Some(to.as_str()) {
        let q = c.with(
            "DELETE FROM host_ports WHERE instance_id = ? AND host = ?",
            [v(instance), v(&to)],
        );
        c.execute(&q).await?;
    }
    let q = c.with(
        "UPDATE instances SET moving_to = NULL WHERE id = ?",
        [v(instance)],
    );
    c.execute(&q).await?;
    Ok(true)
}

async fn relocate(
    c: &mut impl Conn,
    instance: &str,
    task_id: &str,
    attempt: i64,
    image: &str,
    now_ms: i64,
) -> Result<Option<(String, Option<u16>)>> {
    let Some((Some(from), _)) = fenced(c, instance, task_id, attempt).await? else {
        return Ok(None);
    };
    let q = c.with(
        "SELECT h.kind, i.spec FROM instances i JOIN hosts h ON h.name = i.host WHERE i.id = ?",
        [v(instance)],
    );
    let Some((kind, spec)) = c
        .row(&q, |r| Ok((r.text("kind")?, r.text("spec")?)))
        .await?
    else {
        return Ok(None);
    };
    let kind = HostKind::parse(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("host kind: unexpected value {kind:?}")))?;
    let ask = [Ask { image, spec: &spec }];
    let spots = placing::place(
        c,
        &ask,
        kind,
        cloudphone_core::placement::Strategy::Spread,
        Some(&from),
        now_ms,
    )
    .await?;
    let q = c.with(
        "DELETE FROM host_ports WHERE instance_id = ?",
        [v(instance)],
    );
    c.execute(&q).await?;
    placing::hold_ports(c, &[instance], &spots).await?;
    let spot = spots.into_iter().next().expect("one phone placed");
    let q = c.with(
        "UPDATE instances SET host = ?, moving_to = NULL WHERE id = ?",
        [v(&spot.host), v(instance)],
    );
    c.execute(&q).await?;
    Ok(Some((spot.host, spot.port)))
}

async fn drain_progress(c: &mut impl Conn, id: &str) -> Result<Option<DrainProgress>> {
    let q = c.with("SELECT phones FROM host_drains WHERE id = ?", [v(id)]);
    let Some(phones) = c.row(&q, |r| r.int("phones")).await? else {
        return Ok(None);
    };
    let q = c.with(
        "SELECT status, COUNT(*) AS n FROM tasks WHERE invoke_id = ? AND task_type = ? \
         GROUP BY status",
        [v(id), v(TaskType::MigrateInstance.as_str())],
    );
    let mut p = DrainProgress {
        phones: phones as u64,
        ..DrainProgress::default()
    };
    for (status, n) in c.rows(&q, |r| Ok((r.text("status")?, r.int("n")?))).await? {
        let n = n as u64;
        match status.as_str() {
            "Waiting" => p.waiting += n,
            "Processing" => p.processing += n,
            "Finished" => p.finished += n,
            "Failed" => p.failed += n,
            _ => p.skipped += n,
        }
    }
    Ok(Some(p))
}

async fn end_drain(c: &mut impl Conn, id: &str, now_ms: i64) -> Result<bool> {
    let q = c.with(
        "SELECT COUNT(*) AS n FROM tasks WHERE invoke_id = ? AND task_type = ? \
         AND status IN ('Waiting', 'Processing')",
        [v(id), v(TaskType::MigrateInstance.as_str())],
    );
    if c.row(&q, |r| r.int("n")).await?.unwrap_or(0) > 0 {
        return Ok(false);
    }
    let q = c.with(
        "UPDATE host_drains SET finished_ms = COALESCE(finished_ms, ?) WHERE id = ?",
        [v(now_ms), v(id)],
    );
    if c.execute(&q).await? == 0 {
        return Ok(false);
    }
    let q = c.with(
        "UPDATE hosts SET drain_id = NULL WHERE drain_id = ?",
        [v(id)],
    );
    c.execute(&q).await?;
    Ok(true)
}
