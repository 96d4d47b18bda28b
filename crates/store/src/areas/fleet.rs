//! Instance groups and instances: creation with their provisioning tasks, listings (with the
//! group status derived from the group's instances and its latest image update), lookups,
//! changes, deletion, and what the watcher and device discovery record.

use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::{Group, GroupSummary, Instance};

use super::placing::{self, Ask};
use super::{rows, tasks};
use crate::sql::conn::{Conn, Lock, Row, parse};
use crate::sql::{Dialect, Sql, page_of, v};
use crate::{
    Cursor, GroupFilter, InstanceChange, InstanceFilter, Listing, NewBatch, NewTask, Page,
    PlacementAsk, Result, StoreError,
};

area! {
    /// Groups and instances.
    pub trait FleetStore {
        /// Creates groups, their instances and the internal tasks that provision them, in one
        /// transaction. With `instance_quota`, fails with
        /// [`StoreError::QuotaExceeded`](crate::StoreError::QuotaExceeded) (creating nothing)
        /// when the account of `instances` would then have more than that many instances not
        /// DELETED; concurrent calls for one account are serialized, so two cannot both pass.
        /// With `placement`, then places every instance on a host of the farm (and a port on
        /// a host-network host), or fails with [`StoreError::NoStock`](crate::StoreError::NoStock)
        /// creating nothing; without it, instances have no host (ADB devices, and callers
        /// that do not place yet).
        fn create_groups(
            &self,
            groups: &[Group],
            instances: &[Instance],
            tasks: &[NewTask],
            instance_quota: Option<u64>,
            placement: Option<PlacementAsk>,
        ) -> () = write (|c| create_groups(c, groups, instances, tasks, instance_quota, placement));
        /// Adds instances to an existing group of `account_id` (UpgradeAndroidInstanceGroup),
        /// with their tasks, quota and placement as [`FleetStore::create_groups`]:
        /// [`StoreError::NotFound`](crate::StoreError::NotFound) when the group is not the
        /// account's, [`StoreError::IncorrectStatus`](crate::StoreError::IncorrectStatus) when
        /// it is being deleted.
        fn upgrade_group(
            &self,
            account_id: &str,
            group_id: &str,
            instances: &[Instance],
            tasks: &[NewTask],
            instance_quota: Option<u64>,
            placement: Option<PlacementAsk>,
        ) -> () = write (|c| upgrade_group(
            c, account_id, group_id, instances, tasks, instance_quota, placement));
        /// Queues the DeleteInstance tasks of named instances of a group
        /// (DowngradeAndroidInstanceGroup), after what is queued on them; fails
        /// [`StoreError::NotFound`](crate::StoreError::NotFound), changing nothing, when the
        /// group is not the account's or any id is not an instance of it.
        fn downgrade_group(
            &self,
            account_id: &str,
            group_id: &str,
            ids: &[String],
            tasks: &[NewTask],
        ) -> () = write (|c| downgrade_group(c, account_id, group_id, ids, tasks));
        /// Groups of an account, with their instances summed up; keyset-paginated.
        fn list_groups(&self, filter: &GroupFilter, page: &Page) -> Listing<GroupSummary> =
            snapshot (|c| list_groups(c, filter, page));
        /// Instances of an account (with `group_name` filled); keyset-paginated.
        fn list_instances(&self, filter: &InstanceFilter, page: &Page) -> Listing<Instance> =
            snapshot (|c| list_instances(c, filter, page));
        /// The instances among `ids` that belong to `account_id` and are not DELETED, in any
        /// order.
        fn instances_by_id(&self, account_id: &str, ids: &[String]) -> Vec<Instance> =
            read (|c| instances_by_id(c, account_id, ids));
        /// Changes name and bandwidth limits of instances of `account_id` (`None` leaves a
        /// field alone); returns how many rows changed.
        fn modify_instances(&self, account_id: &str, ids: &[String], change: &InstanceChange)
            -> u64 = autocommit (|c| modify_instances(c, account_id, ids, change));
        /// Marks groups as deleting and queues the internal tasks that delete their instances,
        /// in one transaction.
        fn delete_groups(&self, account_id: &str, group_ids: &[String], tasks: &[NewTask])
            -> () = write (|c| delete_groups(c, account_id, group_ids, tasks));
        /// Moves groups of `account_id` to `image_id`: every batch names its group in
        /// `resource_id`; the group's image and its latest image-update batch change as the
        /// batch is created, in one transaction.
        fn update_group_images(
            &self,
            account_id: &str,
            image_id: &str,
            batches: &[NewBatch],
            now_ms: i64,
        ) -> () = write (|c| update_group_images(c, account_id, image_id, batches, now_ms));
        /// The instance's data needed to run a claimed task.
        fn instance(&self, instance_id: &str) -> Option<Instance> =
            read (|c| instance(c, instance_id));
        /// The RUNNING instances, of every account, whose image is one of `image_ids`: what
        /// the instance watcher asks their backends about.
        fn running_instances_on(&self, image_ids: &[String]) -> Vec<Instance> =
            read (|c| running_instances_on(c, image_ids));
        /// Moves the instance from `from` to `to` if it is still in `from` with the
        /// `modified_ms` its watcher saw (so a task that moved it meanwhile wins); returns
        /// whether it did. The watcher marks dead phones UNAVAILABLE, device discovery
        /// returning ones RUNNING.
        fn mark_instance(
            &self,
            instance_id: &str,
            from: InstanceStatus,
            to: InstanceStatus,
            seen_modified_ms: i64,
            now_ms: i64,
        ) -> bool = autocommit (|c| mark_instance(c, instance_id, from, to, seen_modified_ms, now_ms));
        /// Records a group and instances found outside any call (the devices of an ADB
        /// server): the group if it is new, and each instance that is not stored yet (one
        /// stored, DELETED included, is left as it is); a group being deleted takes none.
        /// Returns how many instances were new.
        fn adopt_instances(&self, group: &Group, instances: &[Instance]) -> u64 =
            write (|c| adopt_instances(c, group, instances));
    }
}

const DELETED: &str = "DELETED";

pub(crate) async fn create_groups(
    c: &mut impl Conn,
    groups: &[Group],
    instances: &[Instance],
    new_tasks: &[NewTask],
    instance_quota: Option<u64>,
    placement: Option<PlacementAsk>,
) -> Result<()> {
    let hosts = admit(c, instances, instance_quota, placement).await?;
    for g in groups {
        insert_group(c, g).await?;
    }
    insert_placed(c, instances, &hosts).await?;
    queue(c, new_tasks).await
}

/// The quota check (under the account's lock), then placement (under the placement lock): the
/// host and port of each instance, all `None` without `placement`.
async fn admit(
    c: &mut impl Conn,
    instances: &[Instance],
    instance_quota: Option<u64>,
    placement: Option<PlacementAsk>,
) -> Result<Vec<Option<placing::Spot>>> {
    let Some(first) = instances.first() else {
        return Ok(Vec::new());
    };
    c.lock(Lock::Account(&first.account_id)).await?;
    if let Some(quota) = instance_quota {
        let q = c.with(
            "SELECT COUNT(*) FROM instances WHERE account_id = ? AND status != ?",
            [v(&first.account_id), v(DELETED)],
        );
        let used = c.int(&q).await?;
        if used as u64 + instances.len() as u64 > quota {
            return Err(StoreError::QuotaExceeded { used: used as u64 });
        }
    }
    let Some(ask) = placement else {
        return Ok(vec![None; instances.len()]);
    };
    let asks: Vec<Ask<'_>> = instances
        .iter()
        .map(|i| Ask {
            image: &i.image_id,
            spec: &i.spec,
        })
        .collect();
    let spots = placing::place(c, &asks, ask.kind, ask.strategy, None, ask.now_ms).await?;
    Ok(spots.into_iter().map(Some).collect())
}

async fn insert_placed(
    c: &mut impl Conn,
    instances: &[Instance],
    hosts: &[Option<placing::Spot>],
) -> Result<()> {
    for (i, spot) in instances.iter().zip(hosts) {
        insert_instance(c, i, spot.as_ref().map(|s| s.host.as_str())).await?;
        if let Some(spot) = spot {
            placing::hold_ports(c, &[i.id.as_str()], std::slice::from_ref(spot)).await?;
        }
    }
    Ok(())
}

async fn queue(c: &mut impl Conn, new_tasks: &[NewTask]) -> Result<()> {
    for t in new_tasks {
        tasks::insert_queued(c, t, None).await?;
    }
    if !new_tasks.is_empty() {
        c.wake_workers().await?;
    }
    Ok(())
}

/// Whether `group_id` is `account_id`'s and not being deleted.
async fn check_group(c: &mut impl Conn, account_id: &str, group_id: &str) -> Result<bool> {
    let q = c.with(
        "SELECT deleting FROM instance_groups WHERE id = ? AND account_id = ?",
        [v(group_id), v(account_id)],
    );
    c.row(&q, |r| r.flag("deleting"))
        .await?
        .map(|deleting| !deleting)
        .ok_or_else(|| StoreError::NotFound {
            what: "group",
            id: group_id.to_owned(),
        })
}

async fn upgrade_group(
    c: &mut impl Conn,
    account_id: &str,
    group_id: &str,
    instances: &[Instance],
    new_tasks: &[NewTask],
    instance_quota: Option<u64>,
    placement: Option<PlacementAsk>,
) -> Result<()> {
    // The account's lock first (as a creation takes it), then the group's state under it: a
    // deletion of the group cannot slip in between.
    c.lock(Lock::Account(account_id)).await?;
    if !check_group(c, account_id, group_id).await? {
        return Err(StoreError::IncorrectStatus {
            what: "group",
            id: group_id.to_owned(),
        });
    }
    let hosts = admit(c, instances, instance_quota, placement).await?;
    insert_placed(c, instances, &hosts).await?;
    queue(c, new_tasks).await
}

async fn downgrade_group(
    c: &mut impl Conn,
    account_id: &str,
    group_id: &str,
    ids: &[String],
    new_tasks: &[NewTask],
) -> Result<()> {
    check_group(c, account_id, group_id).await?;
    let mut wanted: Vec<&String> = ids.iter().collect();
    wanted.sort();
    wanted.dedup();
    let mut q = c.sql("SELECT id FROM instances WHERE group_id = ");
    q.bind(group_id)
        .push(" AND account_id = ")
        .bind(account_id)
        .and_in("id", wanted.iter().map(|s| s.to_string()));
    let found = c.rows(&q, |r| r.text("id")).await?;
    if let Some(missing) = wanted.iter().find(|id| !found.contains(id)) {
        return Err(StoreError::NotFound {
            what: "instance",
            id: missing.to_string(),
        });
    }
    queue(c, new_tasks).await
}

async fn insert_group(c: &mut impl Conn, g: &Group) -> Result<()> {
    let q = c.with(
        "INSERT INTO instance_groups (id, account_id, name, region_id, image_id, spec, \
         charge_type, tags, created_ms, modified_ms, deleting) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            v(&g.id),
            v(&g.account_id),
            v(&g.name),
            v(&g.region_id),
            v(&g.image_id),
            v(&g.spec),
            v(&g.charge_type),
            v(rows::encode_tags(&g.tags)),
            v(g.created_ms),
            v(g.modified_ms),
            v(g.deleting),
        ],
    );
    c.execute(&q).await.map(drop)
}

async fn insert_instance(c: &mut impl Conn, i: &Instance, host: Option<&str>) -> Result<()> {
    let q = c.with(
        "INSERT INTO instances (id, account_id, group_id, name, status, image_id, spec, \
         region_id, up_bw, down_bw, created_ms, modified_ms, host) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            v(&i.id),
            v(&i.account_id),
            v(&i.group_id),
            v(&i.name),
            v(i.status.as_str()),
            v(&i.image_id),
            v(&i.spec),
            v(&i.region_id),
            v(i.up_bandwidth_limit),
            v(i.down_bandwidth_limit),
            v(i.created_ms),
            v(i.modified_ms),
            v(host),
        ],
    );
    c.execute(&q).await.map(drop)
}

/// Instances of the group not DELETED exist.
const LIVE: &str =
    "EXISTS (SELECT 1 FROM instances x WHERE x.group_id = g.id AND x.status != 'DELETED')";
/// The status of the group's latest image update (NULL when there was none).
const UPDATE: &str = "(SELECT u.status FROM tasks u WHERE u.id = g.image_task_id)";
/// Instances of the group are being created.
const CREATING: &str =
    "EXISTS (SELECT 1 FROM instances x WHERE x.group_id = g.id AND x.status = 'CREATING')";

/// The condition that a group's listed status (core's `GroupSummary::status`) is `status`:
/// DELETED once it is deleting and has no live instance left, DELETING before that, CREATING
/// while an instance is, then the latest image update's RUNNING, UPDATING or UPDATING_FAILED.
fn push_group_status(q: &mut Sql, status: Option<&str>, include_deleted: bool) {
    match status {
        None if !include_deleted => {
            q.push(" AND NOT (").is("g.deleting", true);
            q.push(format!(" AND NOT {LIVE})"));
        }
        None => {}
        Some("DELETED") => {
            q.push(" AND ").is("g.deleting", true);
            q.push(format!(" AND NOT {LIVE}"));
        }
        Some("DELETING") => {
            q.push(" AND ").is("g.deleting", true);
            q.push(format!(" AND {LIVE}"));
        }
        Some("CREATING") => {
            q.push(" AND ").is("g.deleting", false);
            q.push(format!(" AND {CREATING}"));
        }
        Some("RUNNING") => {
            q.push(" AND ").is("g.deleting", false);
            q.push(format!(
                " AND NOT {CREATING} AND COALESCE({UPDATE}, 'Finished') IN ('Finished', 'Skipped')"
            ));
        }
        Some("UPDATING") => {
            q.push(" AND ").is("g.deleting", false);
            q.push(format!(
                " AND NOT {CREATING} AND {UPDATE} IN ('Waiting', 'Processing')"
            ));
        }
        Some("UPDATING_FAILED") => {
            q.push(" AND ").is("g.deleting", false);
            q.push(format!(
                " AND NOT {CREATING} AND {UPDATE} IN ('Failed', 'PartFinished')"
            ));
        }
        Some(_) => {
            q.push(" AND ").truth(false);
        }
    }
}

/// Every (key, value) pair must be among the group's tags (stored as a JSON array of pairs).
fn push_tags(q: &mut Sql, tags: &[(String, Option<String>)]) {
    let (each, key, value) = match q.dialect() {
        Dialect::Sqlite => (
            " AND EXISTS (SELECT 1 FROM json_each(g.tags) t WHERE json_extract(t.value, '$[0]') = ",
            "",
            " AND json_extract(t.value, '$[1]') = ",
        ),
        Dialect::Postgres => (
            " AND EXISTS (SELECT 1 FROM jsonb_array_elements(g.tags::jsonb) AS t(value) \
             WHERE t.value ->> 0 = ",
            "",
            " AND t.value ->> 1 = ",
        ),
    };
    for (k, val) in tags {
        q.push(each).push(key).bind(k);
        if let Some(val) = val {
            q.push(value).bind(val);
        }
        q.push(")");
    }
}

/// `instances` counts every instance of the group, DELETED ones included; `creating` and
/// `deleted` those in CREATING and DELETED.
async fn list_groups(
    c: &mut impl Conn,
    filter: &GroupFilter,
    page: &Page,
) -> Result<Listing<GroupSummary>> {
    let where_ = |q: &mut Sql| {
        q.push(" FROM instance_groups g WHERE g.account_id = ")
            .bind(&filter.account_id)
            .and_in("g.id", filter.ids.iter().cloned())
            .and_contains("g.name", &filter.name);
        push_group_status(q, filter.status.as_deref(), filter.include_deleted);
        if let Some(charge) = &filter.charge_type {
            q.push(" AND g.charge_type = ").bind(charge);
        }
        push_tags(q, &filter.tags);
        if let Some(key) = &filter.key_pair_id {
            q.push(
                " AND EXISTS (SELECT 1 FROM instances x JOIN instance_adb a \
                 ON a.instance_id = x.id WHERE x.group_id = g.id AND x.status != 'DELETED' \
                 AND a.key_pair_id = ",
            )
            .bind(key)
            .push(")");
        }
    };

    let mut count = c.sql("SELECT COUNT(*)");
    where_(&mut count);
    let mut list = c.sql("SELECT ");
    list.push(rows::GROUP_COLUMNS).push(
        ", (SELECT COUNT(*) FROM instances x WHERE x.group_id = g.id) AS n_instances, \
         (SELECT COUNT(*) FROM instances x WHERE x.group_id = g.id AND x.status = 'CREATING') \
         AS n_creating, \
         (SELECT COUNT(*) FROM instances x WHERE x.group_id = g.id AND x.status = 'DELETED') \
         AS n_deleted, \
         (SELECT u.status FROM tasks u WHERE u.id = g.image_task_id) AS image_task_status",
    );
    where_(&mut list);
    list.and_after("g.created_ms", "g.id", &page.after, filter.ascending)
        .order_page("g.created_ms", "g.id", filter.ascending, page.limit);

    let total = c.int(&count).await?;
    let items = c.rows(&list, group_summary).await?;
    let (items, next) = page_of(items, page.limit, |g| Cursor {
        ms: g.group.created_ms,
        id: g.group.id.clone(),
    });
    Ok(Listing { items, total, next })
}

fn group_summary(r: &dyn Row) -> Result<GroupSummary> {
    Ok(GroupSummary {
        group: rows::group(r)?,
        instances: r.int("n_instances")?,
        creating: r.int("n_creating")?,
        deleted: r.int("n_deleted")?,
        image_update: r
            .text_opt("image_task_status")?
            .map(|s| parse("task status", &s))
            .transpose()?,
    })
}

async fn list_instances(
    c: &mut impl Conn,
    filter: &InstanceFilter,
    page: &Page,
) -> Result<Listing<Instance>> {
    let where_ = |q: &mut Sql| {
        q.push(rows::INSTANCE_FROM)
            .push(" WHERE i.account_id = ")
            .bind(&filter.account_id)
            .and_in("i.id", filter.ids.iter().cloned())
            .and_contains("i.name", &filter.name)
            .and_in("i.group_id", filter.group_ids.iter().cloned())
            .and_contains("g.name", &filter.group_name);
        if let Some(charge) = &filter.charge_type {
            q.push(" AND g.charge_type = ").bind(charge);
        }
        if let Some(key) = &filter.key_pair_id {
            q.push(
                " AND EXISTS (SELECT 1 FROM instance_adb a WHERE a.instance_id = i.id \
                 AND a.key_pair_id = ",
            )
            .bind(key)
            .push(")");
        }
        match filter.status {
            Some(status) => q.push(" AND i.status = ").bind(status.as_str()),
            None => q.push(" AND i.status != 'DELETED'"),
        };
    };

    let mut count = c.sql("SELECT COUNT(*)");
    where_(&mut count);
    let mut list = c.sql(rows::INSTANCE_COLUMNS);
    where_(&mut list);
    list.and_after("i.created_ms", "i.id", &page.after, filter.ascending)
        .order_page("i.created_ms", "i.id", filter.ascending, page.limit);

    let total = c.int(&count).await?;
    let items = c.rows(&list, rows::instance).await?;
    let (items, next) = page_of(items, page.limit, |i| Cursor {
        ms: i.created_ms,
        id: i.id.clone(),
    });
    Ok(Listing { items, total, next })
}

async fn instances_by_id(
    c: &mut impl Conn,
    account_id: &str,
    ids: &[String],
) -> Result<Vec<Instance>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = c.sql(rows::INSTANCE_COLUMNS);
    q.push(rows::INSTANCE_FROM)
        .push(" WHERE i.account_id = ")
        .bind(account_id)
        .push(" AND i.status != ")
        .bind(DELETED)
        .and_in("i.id", ids.iter().cloned());
    c.rows(&q, rows::instance).await
}

async fn instance(c: &mut impl Conn, instance_id: &str) -> Result<Option<Instance>> {
    let mut q = c.sql(rows::INSTANCE_COLUMNS);
    q.push(rows::INSTANCE_FROM)
        .push(" WHERE i.id = ")
        .bind(instance_id);
    c.row(&q, rows::instance).await
}

async fn running_instances_on(c: &mut impl Conn, image_ids: &[String]) -> Result<Vec<Instance>> {
    if image_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = c.sql(rows::INSTANCE_COLUMNS);
    q.push(rows::INSTANCE_FROM)
        .push(" WHERE i.status = ")
        .bind(InstanceStatus::Running.as_str())
        .and_in("i.image_id", image_ids.iter().cloned());
    c.rows(&q, rows::instance).await
}

async fn mark_instance(
    c: &mut impl Conn,
    instance_id: &str,
    from: InstanceStatus,
    to: InstanceStatus,
    seen_modified_ms: i64,
    now_ms: i64,
) -> Result<bool> {
    let q = c.with(
        "UPDATE instances SET status = ?, modified_ms = ? \
         WHERE id = ? AND status = ? AND modified_ms = ?",
        [
            v(to.as_str()),
            v(now_ms),
            v(instance_id),
            v(from.as_str()),
            v(seen_modified_ms),
        ],
    );
    Ok(c.execute(&q).await? == 1)
}

async fn adopt_instances(c: &mut impl Conn, group: &Group, instances: &[Instance]) -> Result<u64> {
    // One discoverer at a time per group, also across nodes.
    c.lock(Lock::Group(&group.id)).await?;
    let q = c.with(
        "SELECT deleting FROM instance_groups WHERE id = ?",
        [v(&group.id)],
    );
    match c.row(&q, |r| r.flag("deleting")).await? {
        None => insert_group(c, group).await?,
        // A group being deleted takes no new members.
        Some(true) => return Ok(0),
        Some(false) => {}
    }
    let mut added = 0;
    for i in instances {
        let q = c.with("SELECT 1 AS one FROM instances WHERE id = ?", [v(&i.id)]);
        if c.row(&q, |_| Ok(())).await?.is_none() {
            insert_instance(c, i, None).await?;
            added += 1;
        }
    }
    Ok(added)
}

/// Changes the instances of `account_id` among `ids` that are not DELETED. The trait gives no
/// time, so `modified_ms` is left as it is.
async fn modify_instances(
    c: &mut impl Conn,
    account_id: &str,
    ids: &[String],
    change: &InstanceChange,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut q = c.sql("UPDATE instances SET name = COALESCE(");
    q.bind(change.name.clone())
        .push(", name), up_bw = COALESCE(")
        .bind(change.up_bandwidth_limit)
        .push(", up_bw), down_bw = COALESCE(")
        .bind(change.down_bandwidth_limit)
        .push(", down_bw) WHERE account_id = ")
        .bind(account_id)
        .push(" AND status != ")
        .bind(DELETED)
        .and_in("id", ids.iter().cloned());
    c.execute(&q).await
}

async fn delete_groups(
    c: &mut impl Conn,
    account_id: &str,
    group_ids: &[String],
    new_tasks: &[NewTask],
) -> Result<()> {
    if !group_ids.is_empty() {
        let mut q = c.sql("UPDATE instance_groups SET deleting = ");
        q.truth(true)
            .push(" WHERE account_id = ")
            .bind(account_id)
            .and_in("id", group_ids.iter().cloned());
        c.execute(&q).await?;
    }
    for t in new_tasks {
        tasks::insert_queued(c, t, None).await?;
    }
    if !new_tasks.is_empty() {
        c.wake_workers().await?;
    }
    Ok(())
}

/// Moves groups to a new image: each batch's `resource_id` names its group, whose image and
/// latest image-update batch change with the batch's insertion, in one transaction.
async fn update_group_images(
    c: &mut impl Conn,
    account_id: &str,
    image_id: &str,
    batches: &[NewBatch],
    now_ms: i64,
) -> Result<()> {
    for batch in batches {
        let q = c.with(
            "UPDATE instance_groups SET image_id = ?, image_task_id = ?, modified_ms = ? \
             WHERE id = ? AND account_id = ?",
            [
                v(image_id),
                v(&batch.batch.id),
                v(now_ms),
                v(&batch.batch.resource_id),
                v(account_id),
            ],
        );
        c.execute(&q).await?;
        tasks::insert_batch(c, batch).await?;
    }
    if !batches.is_empty() {
        c.wake_workers().await?;
    }
    Ok(())
}
