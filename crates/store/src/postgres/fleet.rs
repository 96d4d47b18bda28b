//! Instance groups and instances: creation with their provisioning tasks, listings, lookups,
//! changes and deletion, and the instance row lock the engine takes before it reads or moves
//! an instance's status.

use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::{Group, GroupSummary, Instance};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::rows::{self, push_after, push_in, push_order, push_substring};
use super::{PgStore, notify_work, tasks};
use crate::{
    Cursor, GroupFilter, InstanceChange, InstanceFilter, Listing, NewBatch, NewTask, Page, Phone,
    Result,
};

const DELETED: &str = "DELETED";

pub(super) async fn create_groups(
    s: &PgStore,
    groups: &[Group],
    instances: &[Instance],
    new_tasks: &[NewTask],
    instance_quota: Option<u64>,
) -> Result<()> {
    let mut tx = s.pool.begin().await?;
    if let Some(first) = instances.first() {
        // Creations for one account (and its deletion) queue on this lock until the holder
        // commits, so a quota count is not overtaken by another node's insert, and no instance
        // is added to an account being deleted.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(&first.account_id)
            .execute(&mut *tx)
            .await?;
    }
    if let (Some(quota), Some(first)) = (instance_quota, instances.first()) {
        let used: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM instances WHERE account_id = $1 AND status != $2",
        )
        .bind(&first.account_id)
        .bind(DELETED)
        .fetch_one(&mut *tx)
        .await?;
        if used as u64 + instances.len() as u64 > quota {
            return Err(crate::StoreError::QuotaExceeded { used: used as u64 });
        }
    }
    for g in groups {
        insert_group(&mut tx, g).await?;
    }
    for i in instances {
        insert_instance(&mut tx, i).await?;
    }
    for t in new_tasks {
        tasks::insert_queued(&mut tx, t, None).await?;
    }
    if !new_tasks.is_empty() {
        notify_work(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn insert_group(conn: &mut PgConnection, g: &Group) -> Result<()> {
    sqlx::query(
        "INSERT INTO instance_groups (id, account_id, name, region_id, image_id, spec, \
         charge_type, tags, created_ms, modified_ms, deleting) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&g.id)
    .bind(&g.account_id)
    .bind(&g.name)
    .bind(&g.region_id)
    .bind(&g.image_id)
    .bind(&g.spec)
    .bind(&g.charge_type)
    .bind(rows::encode_tags(&g.tags))
    .bind(g.created_ms)
    .bind(g.modified_ms)
    .bind(g.deleting)
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_instance(conn: &mut PgConnection, i: &Instance) -> Result<()> {
    sqlx::query(
        "INSERT INTO instances (id, account_id, group_id, name, status, image_id, spec, \
         region_id, up_bw, down_bw, created_ms, modified_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&i.id)
    .bind(&i.account_id)
    .bind(&i.group_id)
    .bind(&i.name)
    .bind(i.status.as_str())
    .bind(&i.image_id)
    .bind(&i.spec)
    .bind(&i.region_id)
    .bind(i.up_bandwidth_limit)
    .bind(i.down_bandwidth_limit)
    .bind(i.created_ms)
    .bind(i.modified_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// `instances` counts every instance of the group, DELETED ones included; `creating` and
/// `deleted` those in CREATING and DELETED.
pub(super) async fn list_groups(
    s: &PgStore,
    filter: &GroupFilter,
    page: &Page,
) -> Result<Listing<GroupSummary>> {
    let where_ = |qb: &mut QueryBuilder<Postgres>| {
        qb.push(" FROM instance_groups g WHERE g.account_id = ")
            .push_bind(filter.account_id.clone());
        push_in(qb, "g.id", filter.ids.iter().cloned());
        push_substring(qb, "g.name", &filter.name);
        const LIVE: &str =
            "EXISTS (SELECT 1 FROM instances x WHERE x.group_id = g.id AND x.status <> 'DELETED')";
        const UPDATE: &str = "(SELECT u.status FROM tasks u WHERE u.id = g.image_task_id)";
        const CREATING: &str =
            "EXISTS (SELECT 1 FROM instances x WHERE x.group_id = g.id AND x.status = 'CREATING')";
        match filter.status.as_deref() {
            None if !filter.include_deleted => {
                qb.push(format_args!(" AND NOT (g.deleting AND NOT {LIVE})"));
            }
            None => {}
            Some("DELETED") => {
                qb.push(format_args!(" AND g.deleting AND NOT {LIVE}"));
            }
            Some("DELETING") => {
                qb.push(format_args!(" AND g.deleting AND {LIVE}"));
            }
            Some("CREATING") => {
                qb.push(format_args!(" AND NOT g.deleting AND {CREATING}"));
            }
            Some("RUNNING") => {
                qb.push(format_args!(
                    " AND NOT g.deleting AND NOT {CREATING} AND COALESCE({UPDATE}, 'Finished') \
                     IN ('Finished', 'Skipped')"
                ));
            }
            Some("UPDATING") => {
                qb.push(format_args!(
                    " AND NOT g.deleting AND NOT {CREATING} AND {UPDATE} IN ('Waiting', 'Processing')"
                ));
            }
            Some("UPDATING_FAILED") => {
                qb.push(format_args!(
                    " AND NOT g.deleting AND NOT {CREATING} AND {UPDATE} IN ('Failed', 'PartFinished')"
                ));
            }
            Some(_) => {
                qb.push(" AND FALSE");
            }
        }
        if let Some(c) = &filter.charge_type {
            qb.push(" AND g.charge_type = ").push_bind(c.clone());
        }
        for (key, value) in &filter.tags {
            qb.push(
                " AND EXISTS (SELECT 1 FROM jsonb_array_elements(g.tags::jsonb) AS t(value) \
                 WHERE t.value ->> 0 = ",
            )
            .push_bind(key.clone());
            if let Some(v) = value {
                qb.push(" AND t.value ->> 1 = ").push_bind(v.clone());
            }
            qb.push(")");
        }
    };

    let mut count = QueryBuilder::<Postgres>::new("SELECT COUNT(*)");
    where_(&mut count);
    let mut list = QueryBuilder::<Postgres>::new("SELECT ");
    list.push(rows::GROUP_COLUMNS).push(
        ", (SELECT COUNT(*) FROM instances x WHERE x.group_id = g.id) AS n_instances, \
         (SELECT COUNT(*) FROM instances x WHERE x.group_id = g.id AND x.status = 'CREATING') \
         AS n_creating, \
         (SELECT COUNT(*) FROM instances x WHERE x.group_id = g.id AND x.status = 'DELETED') \
         AS n_deleted, \
         (SELECT u.status FROM tasks u WHERE u.id = g.image_task_id) AS image_task_status",
    );
    where_(&mut list);
    push_after(
        &mut list,
        "g.created_ms",
        "g.id",
        &page.after,
        filter.ascending,
    );
    push_order(
        &mut list,
        "g.created_ms",
        "g.id",
        filter.ascending,
        page.limit,
    );

    let mut tx = s.read().await?;
    let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
    let fetched = list.build().fetch_all(&mut *tx).await?;
    tx.commit().await?;

    let items = fetched
        .iter()
        .map(|r| {
            Ok(GroupSummary {
                group: rows::group(r)?,
                instances: r.try_get("n_instances")?,
                creating: r.try_get("n_creating")?,
                deleted: r.try_get("n_deleted")?,
                image_update: r
                    .try_get::<Option<String>, _>("image_task_status")?
                    .map(|s| rows::parse("task status", &s))
                    .transpose()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let (items, next) = rows::page_of(items, page.limit, |g| Cursor {
        ms: g.group.created_ms,
        id: g.group.id.clone(),
    });
    Ok(Listing { items, total, next })
}

pub(super) async fn list_instances(
    s: &PgStore,
    filter: &InstanceFilter,
    page: &Page,
) -> Result<Listing<Instance>> {
    let where_ = |qb: &mut QueryBuilder<Postgres>| {
        qb.push(rows::INSTANCE_FROM)
            .push(" WHERE i.account_id = ")
            .push_bind(filter.account_id.clone());
        push_in(qb, "i.id", filter.ids.iter().cloned());
        push_substring(qb, "i.name", &filter.name);
        push_in(qb, "i.group_id", filter.group_ids.iter().cloned());
        push_substring(qb, "g.name", &filter.group_name);
        if let Some(c) = &filter.charge_type {
            qb.push(" AND g.charge_type = ").push_bind(c.clone());
        }
        match filter.status {
            Some(status) => {
                qb.push(" AND i.status = ").push_bind(status.as_str());
            }
            None => {
                qb.push(" AND i.status <> 'DELETED'");
            }
        }
    };

    let mut count = QueryBuilder::<Postgres>::new("SELECT COUNT(*)");
    where_(&mut count);
    let mut list = QueryBuilder::<Postgres>::new(rows::INSTANCE_COLUMNS);
    where_(&mut list);
    push_after(
        &mut list,
        "i.created_ms",
        "i.id",
        &page.after,
        filter.ascending,
    );
    push_order(
        &mut list,
        "i.created_ms",
        "i.id",
        filter.ascending,
        page.limit,
    );

    let mut tx = s.read().await?;
    let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
    let fetched = list.build().fetch_all(&mut *tx).await?;
    tx.commit().await?;

    let items = fetched
        .iter()
        .map(rows::instance)
        .collect::<Result<Vec<_>>>()?;
    let (items, next) = rows::page_of(items, page.limit, |i| Cursor {
        ms: i.created_ms,
        id: i.id.clone(),
    });
    Ok(Listing { items, total, next })
}

pub(super) async fn instances_by_id(
    s: &PgStore,
    account_id: &str,
    ids: &[String],
) -> Result<Vec<Instance>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<Postgres>::new(rows::INSTANCE_COLUMNS);
    qb.push(rows::INSTANCE_FROM)
        .push(" WHERE i.account_id = ")
        .push_bind(account_id.to_owned())
        .push(" AND i.status <> ")
        .push_bind(DELETED);
    push_in(&mut qb, "i.id", ids.iter().cloned());
    let fetched = qb.build().fetch_all(&s.pool).await?;
    fetched.iter().map(rows::instance).collect()
}

pub(super) async fn instance(s: &PgStore, instance_id: &str) -> Result<Option<Instance>> {
    let mut qb = QueryBuilder::<Postgres>::new(rows::INSTANCE_COLUMNS);
    qb.push(rows::INSTANCE_FROM)
        .push(" WHERE i.id = ")
        .push_bind(instance_id.to_owned());
    let row = qb.build().fetch_optional(&s.pool).await?;
    row.as_ref().map(rows::instance).transpose()
}

pub(super) async fn running_instances_on(
    s: &PgStore,
    image_ids: &[String],
) -> Result<Vec<Instance>> {
    if image_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<Postgres>::new(rows::INSTANCE_COLUMNS);
    qb.push(rows::INSTANCE_FROM)
        .push(" WHERE i.status = ")
        .push_bind(InstanceStatus::Running.as_str());
    push_in(&mut qb, "i.image_id", image_ids.iter().cloned());
    let rows = qb.build().fetch_all(&s.pool).await?;
    rows.iter().map(rows::instance).collect()
}

pub(super) async fn mark_instance(
    s: &PgStore,
    instance_id: &str,
    from: InstanceStatus,
    to: InstanceStatus,
    seen_modified_ms: i64,
    now_ms: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE instances SET status = $1, modified_ms = $2 \
         WHERE id = $3 AND status = $4 AND modified_ms = $5",
    )
    .bind(to.as_str())
    .bind(now_ms)
    .bind(instance_id)
    .bind(from.as_str())
    .bind(seen_modified_ms)
    .execute(&s.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn adopt_instances(
    s: &PgStore,
    group: &Group,
    instances: &[Instance],
) -> Result<u64> {
    let mut tx = s.pool.begin().await?;
    // One discoverer at a time per group, also across nodes: the group row is the lock.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(&group.id)
        .execute(&mut *tx)
        .await?;
    let deleting: Option<bool> =
        sqlx::query_scalar("SELECT deleting FROM instance_groups WHERE id = $1")
            .bind(&group.id)
            .fetch_optional(&mut *tx)
            .await?;
    if deleting == Some(true) {
        // A group being deleted takes no new members.
        return Ok(0);
    }
    if deleting.is_none() {
        insert_group(&mut tx, group).await?;
    }
    let mut added = 0;
    for i in instances {
        let stored = sqlx::query("SELECT 1 FROM instances WHERE id = $1")
            .bind(&i.id)
            .fetch_optional(&mut *tx)
            .await?;
        if stored.is_none() {
            insert_instance(&mut tx, i).await?;
            added += 1;
        }
    }
    tx.commit().await?;
    Ok(added)
}

/// Changes the instances of `account_id` among `ids` that are not DELETED. The trait gives no
/// time, so `modified_ms` is left as it is.
pub(super) async fn modify_instances(
    s: &PgStore,
    account_id: &str,
    ids: &[String],
    change: &InstanceChange,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut qb = QueryBuilder::<Postgres>::new("UPDATE instances SET name = COALESCE(");
    qb.push_bind(change.name.clone())
        .push(", name), up_bw = COALESCE(")
        .push_bind(change.up_bandwidth_limit)
        .push(", up_bw), down_bw = COALESCE(")
        .push_bind(change.down_bandwidth_limit)
        .push(", down_bw) WHERE account_id = ")
        .push_bind(account_id.to_owned())
        .push(" AND status <> ")
        .push_bind(DELETED);
    push_in(&mut qb, "id", ids.iter().cloned());
    let done = qb.build().execute(&s.pool).await?;
    Ok(done.rows_affected())
}

pub(super) async fn delete_groups(
    s: &PgStore,
    account_id: &str,
    group_ids: &[String],
    new_tasks: &[NewTask],
) -> Result<()> {
    let mut tx = s.pool.begin().await?;
    if !group_ids.is_empty() {
        let mut qb = QueryBuilder::<Postgres>::new(
            "UPDATE instance_groups SET deleting = TRUE WHERE account_id = ",
        );
        qb.push_bind(account_id.to_owned());
        push_in(&mut qb, "id", group_ids.iter().cloned());
        qb.build().execute(&mut *tx).await?;
    }
    for t in new_tasks {
        tasks::insert_queued(&mut tx, t, None).await?;
    }
    if !new_tasks.is_empty() {
        notify_work(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Moves groups to a new image: each batch's `resource_id` names its group, whose image and
/// latest image-update batch change with the batch's insertion, in one transaction.
pub(super) async fn update_group_images(
    s: &PgStore,
    account_id: &str,
    image_id: &str,
    batches: &[NewBatch],
    now_ms: i64,
) -> Result<()> {
    let mut tx = s.pool.begin().await?;
    for batch in batches {
        sqlx::query(
            "UPDATE instance_groups SET image_id = $1, image_task_id = $2, modified_ms = $3 \
             WHERE id = $4 AND account_id = $5",
        )
        .bind(image_id)
        .bind(&batch.batch.id)
        .bind(now_ms)
        .bind(&batch.batch.resource_id)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        tasks::insert_batch(&mut tx, batch).await?;
    }
    if !batches.is_empty() {
        notify_work(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Locks the instance's row until the transaction ends and returns its status, `None` if there
/// is no such instance. Every transaction that leases a task of the instance or moves its
/// status takes this lock first, so the holder reads the latest committed status and, in its
/// next statements, every committed lease.
pub(super) async fn lock_instance(
    conn: &mut PgConnection,
    instance_id: &str,
) -> Result<Option<(InstanceStatus, Phone)>> {
    let row = sqlx::query(
        "SELECT status, account_id, name, image_id, spec FROM instances WHERE id = $1 FOR UPDATE",
    )
    .bind(instance_id)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let status: String = row.try_get("status")?;
    let phone = Phone {
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        image_id: row.try_get("image_id")?,
        spec: row.try_get("spec")?,
    };
    Ok(Some((rows::parse("instance status", &status)?, phone)))
}

/// Moves an instance to `status` at `now_ms`.
pub(super) async fn set_instance_status(
    conn: &mut PgConnection,
    instance_id: &str,
    status: InstanceStatus,
    now_ms: i64,
) -> Result<()> {
    sqlx::query("UPDATE instances SET status = $1, modified_ms = $2 WHERE id = $3")
        .bind(status.as_str())
        .bind(now_ms)
        .bind(instance_id)
        .execute(conn)
        .await?;
    Ok(())
}
