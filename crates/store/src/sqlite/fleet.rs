//! Instance groups and instances: creation with their provisioning tasks, listings, lookups,
//! changes and deletion.

use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::{Group, GroupSummary, Instance};
use rusqlite::Connection;

use super::rows::{self, push_after, push_in, push_order, push_substring};
use super::sql::{Sql, sql, v};
use super::tasks;
use crate::{
    Cursor, GroupFilter, InstanceChange, InstanceFilter, Listing, NewBatch, NewTask, Page, Result,
};

const DELETED: &str = "DELETED";

pub(super) fn create_groups(
    conn: &Connection,
    groups: &[Group],
    instances: &[Instance],
    new_tasks: &[NewTask],
    instance_quota: Option<u64>,
) -> Result<()> {
    // One writer runs every write, so the count and the inserts cannot interleave with another
    // creation.
    if let (Some(quota), Some(first)) = (instance_quota, instances.first()) {
        let used: i64 = conn.query_row(
            "SELECT COUNT(*) FROM instances WHERE account_id = ? AND status != ?",
            rusqlite::params![first.account_id, DELETED],
            |r| r.get(0),
        )?;
        if used as u64 + instances.len() as u64 > quota {
            return Err(crate::StoreError::QuotaExceeded { used: used as u64 });
        }
    }
    for g in groups {
        sql(
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
        )
        .execute(conn)?;
    }
    for i in instances {
        insert_instance(conn, i)?;
    }
    for t in new_tasks {
        tasks::insert_queued(conn, t, None)?;
    }
    Ok(())
}

fn insert_instance(conn: &Connection, i: &Instance) -> Result<()> {
    sql(
        "INSERT INTO instances (id, account_id, group_id, name, status, image_id, spec, \
         region_id, up_bw, down_bw, created_ms, modified_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        ],
    )
    .execute(conn)?;
    Ok(())
}

/// `instances` counts every instance of the group, DELETED ones included; `creating` and
/// `deleted` those in CREATING and DELETED.
pub(super) fn list_groups(
    conn: &Connection,
    filter: &GroupFilter,
    page: &Page,
) -> Result<Listing<GroupSummary>> {
    let where_ = |qb: &mut Sql| {
        qb.push(" FROM instance_groups g WHERE g.account_id = ")
            .bind(&filter.account_id);
        push_in(qb, "g.id", filter.ids.iter().cloned());
        push_substring(qb, "g.name", &filter.name);
        const LIVE: &str =
            "EXISTS (SELECT 1 FROM instances x WHERE x.group_id = g.id AND x.status != 'DELETED')";
        const UPDATE: &str = "(SELECT u.status FROM tasks u WHERE u.id = g.image_task_id)";
        const CREATING: &str =
            "EXISTS (SELECT 1 FROM instances x WHERE x.group_id = g.id AND x.status = 'CREATING')";
        match filter.status.as_deref() {
            None if !filter.include_deleted => {
                qb.push(format!(" AND NOT (g.deleting != 0 AND NOT {LIVE})"));
            }
            None => {}
            Some("DELETED") => {
                qb.push(format!(" AND g.deleting != 0 AND NOT {LIVE}"));
            }
            Some("DELETING") => {
                qb.push(format!(" AND g.deleting != 0 AND {LIVE}"));
            }
            Some("CREATING") => {
                qb.push(format!(" AND g.deleting = 0 AND {CREATING}"));
            }
            Some("RUNNING") => {
                qb.push(format!(
                    " AND g.deleting = 0 AND NOT {CREATING} AND COALESCE({UPDATE}, 'Finished') \
                     IN ('Finished', 'Skipped')"
                ));
            }
            Some("UPDATING") => {
                qb.push(format!(
                    " AND g.deleting = 0 AND NOT {CREATING} AND {UPDATE} IN ('Waiting', 'Processing')"
                ));
            }
            Some("UPDATING_FAILED") => {
                qb.push(format!(
                    " AND g.deleting = 0 AND NOT {CREATING} AND {UPDATE} IN ('Failed', 'PartFinished')"
                ));
            }
            Some(_) => {
                qb.push(" AND 0");
            }
        }
        if let Some(c) = &filter.charge_type {
            qb.push(" AND g.charge_type = ").bind(c);
        }
        for (key, value) in &filter.tags {
            qb.push(" AND EXISTS (SELECT 1 FROM json_each(g.tags) t WHERE json_extract(t.value, '$[0]') = ")
                .bind(key);
            if let Some(v) = value {
                qb.push(" AND json_extract(t.value, '$[1]') = ").bind(v);
            }
            qb.push(")");
        }
    };

    let mut count = Sql::new("SELECT COUNT(*)");
    where_(&mut count);
    let mut list = Sql::new("SELECT ");
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

    let (total, items) = rows::total_and_rows(conn, &count, &list, group_summary)?;

    let (items, next) = rows::page_of(items, page.limit, |g| Cursor {
        ms: g.group.created_ms,
        id: g.group.id.clone(),
    });
    Ok(Listing { items, total, next })
}

pub(super) fn list_instances(
    conn: &Connection,
    filter: &InstanceFilter,
    page: &Page,
) -> Result<Listing<Instance>> {
    let where_ = |qb: &mut Sql| {
        qb.push(rows::INSTANCE_FROM)
            .push(" WHERE i.account_id = ")
            .bind(&filter.account_id);
        push_in(qb, "i.id", filter.ids.iter().cloned());
        push_substring(qb, "i.name", &filter.name);
        push_in(qb, "i.group_id", filter.group_ids.iter().cloned());
        push_substring(qb, "g.name", &filter.group_name);
        if let Some(c) = &filter.charge_type {
            qb.push(" AND g.charge_type = ").bind(c);
        }
        match filter.status {
            Some(status) => {
                qb.push(" AND i.status = ").bind(status.as_str());
            }
            None => {
                qb.push(" AND i.status != 'DELETED'");
            }
        }
    };

    let mut count = Sql::new("SELECT COUNT(*)");
    where_(&mut count);
    let mut list = Sql::new(rows::INSTANCE_COLUMNS);
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

    let (total, items) = rows::total_and_rows(conn, &count, &list, rows::instance)?;

    let (items, next) = rows::page_of(items, page.limit, |i| Cursor {
        ms: i.created_ms,
        id: i.id.clone(),
    });
    Ok(Listing { items, total, next })
}

fn group_summary(r: &rusqlite::Row<'_>) -> Result<GroupSummary> {
    Ok(GroupSummary {
        group: rows::group(r)?,
        instances: r.get("n_instances")?,
        creating: r.get("n_creating")?,
        deleted: r.get("n_deleted")?,
        image_update: r
            .get::<_, Option<String>>("image_task_status")?
            .map(|s| rows::parse("task status", &s))
            .transpose()?,
    })
}

pub(super) fn instances_by_id(
    conn: &Connection,
    account_id: &str,
    ids: &[String],
) -> Result<Vec<Instance>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = Sql::new(rows::INSTANCE_COLUMNS);
    qb.push(rows::INSTANCE_FROM)
        .push(" WHERE i.account_id = ")
        .bind(account_id)
        .push(" AND i.status != ")
        .bind(DELETED);
    push_in(&mut qb, "i.id", ids.iter().cloned());
    qb.rows(conn, rows::instance)
}

pub(super) fn instance(conn: &Connection, instance_id: &str) -> Result<Option<Instance>> {
    let mut qb = Sql::new(rows::INSTANCE_COLUMNS);
    qb.push(rows::INSTANCE_FROM)
        .push(" WHERE i.id = ")
        .bind(instance_id);
    qb.row(conn, rows::instance)
}

pub(super) fn running_instances_on(
    conn: &Connection,
    image_ids: &[String],
) -> Result<Vec<Instance>> {
    if image_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = Sql::new(rows::INSTANCE_COLUMNS);
    qb.push(rows::INSTANCE_FROM)
        .push(" WHERE i.status = ")
        .bind(InstanceStatus::Running.as_str());
    push_in(&mut qb, "i.image_id", image_ids.iter().cloned());
    qb.rows(conn, rows::instance)
}

pub(super) fn mark_instance(
    conn: &Connection,
    instance_id: &str,
    from: InstanceStatus,
    to: InstanceStatus,
    seen_modified_ms: i64,
    now_ms: i64,
) -> Result<bool> {
    let mut qb = Sql::new("UPDATE instances SET status = ");
    qb.bind(to.as_str())
        .push(", modified_ms = ")
        .bind(now_ms)
        .push(" WHERE id = ")
        .bind(instance_id)
        .push(" AND status = ")
        .bind(from.as_str())
        .push(" AND modified_ms = ")
        .bind(seen_modified_ms);
    Ok(qb.execute(conn)? == 1)
}

pub(super) fn adopt_instances(
    conn: &Connection,
    group: &Group,
    instances: &[Instance],
) -> Result<u64> {
    let stored = |table: &str, id: &str| {
        sql(&format!("SELECT 1 FROM {table} WHERE id = ?"), [v(id)]).row(conn, |_| Ok(()))
    };
    let deleting = sql(
        "SELECT deleting FROM instance_groups WHERE id = ?",
        [v(&group.id)],
    )
    .row(conn, |r| Ok(r.get::<_, bool>(0)?))?;
    match deleting {
        None => create_groups(conn, std::slice::from_ref(group), &[], &[], None)?,
        // A group being deleted takes no new members.
        Some(true) => return Ok(0),
        Some(false) => {}
    }
    let mut added = 0;
    for i in instances {
        if stored("instances", &i.id)?.is_none() {
            insert_instance(conn, i)?;
            added += 1;
        }
    }
    Ok(added)
}

/// Changes the instances of `account_id` among `ids` that are not DELETED. The trait gives no
/// time, so `modified_ms` is left as it is.
pub(super) fn modify_instances(
    conn: &Connection,
    account_id: &str,
    ids: &[String],
    change: &InstanceChange,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut qb = Sql::new("UPDATE instances SET name = COALESCE(");
    qb.bind(change.name.clone())
        .push(", name), up_bw = COALESCE(")
        .bind(change.up_bandwidth_limit)
        .push(", up_bw), down_bw = COALESCE(")
        .bind(change.down_bandwidth_limit)
        .push(", down_bw) WHERE account_id = ")
        .bind(account_id)
        .push(" AND status != ")
        .bind(DELETED);
    push_in(&mut qb, "id", ids.iter().cloned());
    qb.execute(conn)
}

pub(super) fn delete_groups(
    conn: &Connection,
    account_id: &str,
    group_ids: &[String],
    new_tasks: &[NewTask],
) -> Result<()> {
    if !group_ids.is_empty() {
        let mut qb = Sql::new("UPDATE instance_groups SET deleting = 1 WHERE account_id = ");
        qb.bind(account_id);
        push_in(&mut qb, "id", group_ids.iter().cloned());
        qb.execute(conn)?;
    }
    for t in new_tasks {
        tasks::insert_queued(conn, t, None)?;
    }
    Ok(())
}

/// Moves groups to a new image: each batch's `resource_id` names its group, whose image and
/// latest image-update batch change with the batch's insertion, in one transaction.
pub(super) fn update_group_images(
    conn: &Connection,
    account_id: &str,
    image_id: &str,
    batches: &[NewBatch],
    now_ms: i64,
) -> Result<()> {
    for batch in batches {
        sql(
            "UPDATE instance_groups SET image_id = ?, image_task_id = ?, modified_ms = ? \
             WHERE id = ? AND account_id = ?",
            [
                v(image_id),
                v(&batch.batch.id),
                v(now_ms),
                v(&batch.batch.resource_id),
                v(account_id),
            ],
        )
        .execute(conn)?;
        tasks::insert_batch(conn, batch)?;
    }
    Ok(())
}
