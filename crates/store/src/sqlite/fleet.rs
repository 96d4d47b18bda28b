//! Instance groups and instances: creation with their provisioning tasks, listings, lookups,
//! changes and deletion.

use cloudphone_core::resources::{Group, GroupSummary, Instance};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::rows::{self, push_after, push_in, push_order, push_substring};
use super::{SqliteStore, tasks};
use crate::{
    Cursor, GroupFilter, InstanceChange, InstanceFilter, Listing, NewBatch, NewTask, Page, Result,
};

const DELETED: &str = "DELETED";

pub(super) async fn create_groups(
    s: &SqliteStore,
    groups: &[Group],
    instances: &[Instance],
    new_tasks: &[NewTask],
) -> Result<()> {
    let mut w = s.write().await?;
    for g in groups {
        sqlx::query(
            "INSERT INTO instance_groups (id, account_id, name, region_id, image_id, spec, \
             charge_type, tags, created_ms, modified_ms, deleting) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(i64::from(g.deleting))
        .execute(&mut *w.tx)
        .await?;
    }
    for i in instances {
        insert_instance(&mut w.tx, i).await?;
    }
    for t in new_tasks {
        tasks::insert_queued(&mut w.tx, t, None).await?;
    }
    w.commit().await
}

async fn insert_instance(conn: &mut SqliteConnection, i: &Instance) -> Result<()> {
    sqlx::query(
        "INSERT INTO instances (id, account_id, group_id, name, status, image_id, spec, \
         region_id, up_bw, down_bw, created_ms, modified_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    s: &SqliteStore,
    filter: &GroupFilter,
    page: &Page,
) -> Result<Listing<GroupSummary>> {
    let where_ = |qb: &mut QueryBuilder<Sqlite>| {
        qb.push(" FROM instance_groups g WHERE g.account_id = ")
            .push_bind(filter.account_id.clone());
        push_in(qb, "g.id", filter.ids.iter().cloned());
        push_substring(qb, "g.name", &filter.name);
        const LIVE: &str =
            "EXISTS (SELECT 1 FROM instances x WHERE x.group_id = g.id AND x.status != 'DELETED')";
        const UPDATE: &str = "(SELECT u.status FROM tasks u WHERE u.id = g.image_task_id)";
        const CREATING: &str =
            "EXISTS (SELECT 1 FROM instances x WHERE x.group_id = g.id AND x.status = 'CREATING')";
        match filter.status.as_deref() {
            None if !filter.include_deleted => {
                qb.push(format_args!(" AND NOT (g.deleting != 0 AND NOT {LIVE})"));
            }
            None => {}
            Some("DELETED") => {
                qb.push(format_args!(" AND g.deleting != 0 AND NOT {LIVE}"));
            }
            Some("DELETING") => {
                qb.push(format_args!(" AND g.deleting != 0 AND {LIVE}"));
            }
            Some("CREATING") => {
                qb.push(format_args!(" AND g.deleting = 0 AND {CREATING}"));
            }
            Some("RUNNING") => {
                qb.push(format_args!(
                    " AND g.deleting = 0 AND NOT {CREATING} AND COALESCE({UPDATE}, 'Finished') \
                     IN ('Finished', 'Skipped')"
                ));
            }
            Some("UPDATING") => {
                qb.push(format_args!(
                    " AND g.deleting = 0 AND NOT {CREATING} AND {UPDATE} IN ('Waiting', 'Processing')"
                ));
            }
            Some("UPDATING_FAILED") => {
                qb.push(format_args!(
                    " AND g.deleting = 0 AND NOT {CREATING} AND {UPDATE} IN ('Failed', 'PartFinished')"
                ));
            }
            Some(_) => {
                qb.push(" AND 0");
            }
        }
        if let Some(c) = &filter.charge_type {
            qb.push(" AND g.charge_type = ").push_bind(c.clone());
        }
        for (key, value) in &filter.tags {
            qb.push(" AND EXISTS (SELECT 1 FROM json_each(g.tags) t WHERE json_extract(t.value, '$[0]') = ")
                .push_bind(key.clone());
            if let Some(v) = value {
                qb.push(" AND json_extract(t.value, '$[1]') = ")
                    .push_bind(v.clone());
            }
            qb.push(")");
        }
    };

    let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*)");
    where_(&mut count);
    let mut list = QueryBuilder::<Sqlite>::new("SELECT ");
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

    let mut tx = s.pool.begin().await?;
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
    s: &SqliteStore,
    filter: &InstanceFilter,
    page: &Page,
) -> Result<Listing<Instance>> {
    let where_ = |qb: &mut QueryBuilder<Sqlite>| {
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
                qb.push(" AND i.status != 'DELETED'");
            }
        }
    };

    let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*)");
    where_(&mut count);
    let mut list = QueryBuilder::<Sqlite>::new(rows::INSTANCE_COLUMNS);
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

    let mut tx = s.pool.begin().await?;
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
    s: &SqliteStore,
    account_id: &str,
    ids: &[String],
) -> Result<Vec<Instance>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<Sqlite>::new(rows::INSTANCE_COLUMNS);
    qb.push(rows::INSTANCE_FROM)
        .push(" WHERE i.account_id = ")
        .push_bind(account_id.to_owned())
        .push(" AND i.status != ")
        .push_bind(DELETED);
    push_in(&mut qb, "i.id", ids.iter().cloned());
    let fetched = qb.build().fetch_all(&s.pool).await?;
    fetched.iter().map(rows::instance).collect()
}

pub(super) async fn instance(s: &SqliteStore, instance_id: &str) -> Result<Option<Instance>> {
    let mut qb = QueryBuilder::<Sqlite>::new(rows::INSTANCE_COLUMNS);
    qb.push(rows::INSTANCE_FROM)
        .push(" WHERE i.id = ")
        .push_bind(instance_id.to_owned());
    let row = qb.build().fetch_optional(&s.pool).await?;
    row.as_ref().map(rows::instance).transpose()
}

/// Changes the instances of `account_id` among `ids` that are not DELETED. The trait gives no
/// time, so `modified_ms` is left as it is.
pub(super) async fn modify_instances(
    s: &SqliteStore,
    account_id: &str,
    ids: &[String],
    change: &InstanceChange,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut qb = QueryBuilder::<Sqlite>::new("UPDATE instances SET name = COALESCE(");
    qb.push_bind(change.name.clone())
        .push(", name), up_bw = COALESCE(")
        .push_bind(change.up_bandwidth_limit)
        .push(", up_bw), down_bw = COALESCE(")
        .push_bind(change.down_bandwidth_limit)
        .push(", down_bw) WHERE account_id = ")
        .push_bind(account_id.to_owned())
        .push(" AND status != ")
        .push_bind(DELETED);
    push_in(&mut qb, "id", ids.iter().cloned());
    let _turn = s.turn().await;
    let done = qb.build().execute(&s.pool).await?;
    Ok(done.rows_affected())
}

pub(super) async fn delete_groups(
    s: &SqliteStore,
    account_id: &str,
    group_ids: &[String],
    new_tasks: &[NewTask],
) -> Result<()> {
    let mut w = s.write().await?;
    if !group_ids.is_empty() {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "UPDATE instance_groups SET deleting = 1 WHERE account_id = ",
        );
        qb.push_bind(account_id.to_owned());
        push_in(&mut qb, "id", group_ids.iter().cloned());
        qb.build().execute(&mut *w.tx).await?;
    }
    for t in new_tasks {
        tasks::insert_queued(&mut w.tx, t, None).await?;
    }
    w.commit().await
}

/// Moves groups to a new image: each batch's `resource_id` names its group, whose image and
/// latest image-update batch change with the batch's insertion, in one transaction.
pub(super) async fn update_group_images(
    s: &SqliteStore,
    account_id: &str,
    image_id: &str,
    batches: &[NewBatch],
    now_ms: i64,
) -> Result<()> {
    let mut w = s.write().await?;
    for batch in batches {
        sqlx::query(
            "UPDATE instance_groups SET image_id = ?, image_task_id = ?, modified_ms = ? \
             WHERE id = ? AND account_id = ?",
        )
        .bind(image_id)
        .bind(&batch.batch.id)
        .bind(now_ms)
        .bind(&batch.batch.resource_id)
        .bind(account_id)
        .execute(&mut *w.tx)
        .await?;
        tasks::insert_batch(&mut w.tx, batch).await?;
    }
    w.commit().await
}
