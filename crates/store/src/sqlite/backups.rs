//! Backup files (BackupFile, DescribeBackupFiles, DeleteBackupFile, RecoveryFile): created with
//! their batch in one transaction, listed newest first with keyset pages, and settled (status
//! and size) in the transaction that ends their BackupFile task.

use cloudphone_core::resources::Backup;
use cloudphone_core::{TaskStatus, TaskType};
use rusqlite::{Connection, Row};

use super::rows::{page_of, push_after, push_in, push_order, push_substring, total_and_rows};
use super::sql::{Sql, sql, v};
use super::tasks::insert_batch;
use crate::{BackupFilter, Cursor, Listing, NewBatch, Page, Result, StoreError};

const COLUMNS: &str = "SELECT b.id, b.account_id, b.instance_id, b.instance_name, b.group_id, \
     b.oss_path, b.name, b.description, b.source_paths, b.exclude_paths, b.source_apps, \
     b.backup_all, b.upload_endpoint, b.system_version, b.status, b.size, b.task_id, \
     b.created_ms, b.modified_ms FROM backups b";

fn list_json(v: &[String]) -> String {
    serde_json::to_string(v).expect("strings always serialise")
}

fn parse_list(what: &str, s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("backup {what} {s:?}: {e}")))
}

fn backup(row: &Row<'_>) -> Result<Backup> {
    Ok(Backup {
        id: row.get("id")?,
        account_id: row.get("account_id")?,
        instance_id: row.get("instance_id")?,
        instance_name: row.get("instance_name")?,
        group_id: row.get("group_id")?,
        oss_path: row.get("oss_path")?,
        name: row.get("name")?,
        description: row.get("description")?,
        source_paths: parse_list("source paths", row.get_ref("source_paths")?.as_str()?)?,
        exclude_paths: parse_list("exclude paths", row.get_ref("exclude_paths")?.as_str()?)?,
        source_apps: parse_list("source apps", row.get_ref("source_apps")?.as_str()?)?,
        backup_all: row.get::<_, i64>("backup_all")? != 0,
        upload_endpoint: row.get("upload_endpoint")?,
        system_version: row.get("system_version")?,
        status: row.get("status")?,
        size: row.get("size")?,
        task_id: row.get("task_id")?,
        created_ms: row.get("created_ms")?,
        modified_ms: row.get("modified_ms")?,
    })
}

pub(super) fn create_backup_batch(
    conn: &Connection,
    batch: &NewBatch,
    backups: &[Backup],
) -> Result<()> {
    insert_batch(conn, batch)?;
    for b in backups {
        sql(
            "INSERT INTO backups (id, account_id, instance_id, instance_name, group_id, oss_path, \
             name, description, source_paths, exclude_paths, source_apps, backup_all, \
             upload_endpoint, system_version, status, size, task_id, created_ms, modified_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                v(&b.id),
                v(&b.account_id),
                v(&b.instance_id),
                v(&b.instance_name),
                v(&b.group_id),
                v(&b.oss_path),
                v(&b.name),
                v(&b.description),
                v(list_json(&b.source_paths)),
                v(list_json(&b.exclude_paths)),
                v(list_json(&b.source_apps)),
                v(i64::from(b.backup_all)),
                v(&b.upload_endpoint),
                v(&b.system_version),
                v(&b.status),
                v(b.size),
                v(&b.task_id),
                v(b.created_ms),
                v(b.modified_ms),
            ],
        )
        .execute(conn)?;
    }
    Ok(())
}

pub(super) fn list_backups(
    conn: &Connection,
    filter: &BackupFilter,
    page: &Page,
) -> Result<Listing<Backup>> {
    let where_ = |qb: &mut Sql| {
        qb.push(" WHERE b.account_id = ").bind(&filter.account_id);
        if let Some(id) = &filter.id {
            qb.push(" AND b.id = ").bind(id);
        }
        if let Some(id) = &filter.instance_id {
            qb.push(" AND b.instance_id = ").bind(id);
        }
        if let Some(id) = &filter.group_id {
            qb.push(" AND b.group_id = ").bind(id);
        }
        push_substring(qb, "b.instance_name", &filter.instance_name);
        push_substring(qb, "b.name", &filter.name);
        push_substring(qb, "b.description", &filter.description);
        push_in(qb, "b.status", filter.statuses.iter().cloned());
        if let Some(ms) = filter.start_ms {
            qb.push(" AND b.created_ms >= ").bind(ms);
        }
        if let Some(ms) = filter.end_ms {
            qb.push(" AND b.created_ms <= ").bind(ms);
        }
        if let Some(all) = filter.backup_all {
            qb.push(" AND b.backup_all = ").bind(i64::from(all));
        }
    };
    let mut count = Sql::new("SELECT COUNT(*) FROM backups b");
    where_(&mut count);
    let mut list = Sql::new(COLUMNS);
    where_(&mut list);
    push_after(&mut list, "b.created_ms", "b.id", &page.after, false);
    push_order(&mut list, "b.created_ms", "b.id", false, page.limit);

    let (total, items) = total_and_rows(conn, &count, &list, backup)?;
    let (items, next) = page_of(items, page.limit, |b| Cursor {
        ms: b.created_ms,
        id: b.id.clone(),
    });
    Ok(Listing { items, total, next })
}

pub(super) fn backups_by_id(
    conn: &Connection,
    account_id: &str,
    ids: &[String],
) -> Result<Vec<Backup>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = Sql::new(COLUMNS);
    qb.push(" WHERE b.account_id = ").bind(account_id);
    push_in(&mut qb, "b.id", ids.iter().cloned());
    qb.rows(conn, backup)
}

pub(super) fn delete_backups(conn: &Connection, account_id: &str, ids: &[String]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut qb = Sql::new("DELETE FROM backups WHERE account_id = ");
    qb.bind(account_id);
    push_in(&mut qb, "id", ids.iter().cloned());
    qb.execute(conn)
}

/// Settles the backup a BackupFile task makes, inside the transaction that ends the task
/// (whichever way it ends: completion, a refused precondition, the sweeper): AVAILABLE with the
/// archive's size (the result's `FileSize`) when it finished, FAILED otherwise. Any other task
/// type is left alone.
pub(super) fn settle(
    conn: &Connection,
    task_id: &str,
    task_type: TaskType,
    to: TaskStatus,
    result: Option<&str>,
    now_ms: i64,
) -> Result<()> {
    if task_type != TaskType::BackupFile {
        return Ok(());
    }
    let (status, size) = if to == TaskStatus::Finished {
        let size = result
            .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
            .and_then(|v| v.get("FileSize").and_then(serde_json::Value::as_i64))
            .unwrap_or(0);
        (Backup::AVAILABLE, size)
    } else {
        (Backup::FAILED, 0)
    };
    sql(
        "UPDATE backups SET status = ?, size = ?, modified_ms = ? WHERE task_id = ?",
        [v(status), v(size), v(now_ms), v(task_id)],
    )
    .execute(conn)?;
    Ok(())
}
