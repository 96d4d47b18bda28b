//! Backup files (BackupFile, DescribeBackupFiles, DeleteBackupFile, RecoveryFile): created with
//! their batch in one transaction, listed newest first with keyset pages, and settled (status
//! and size) in the transaction that ends their BackupFile task.

use cloudphone_core::resources::Backup;
use cloudphone_core::{TaskStatus, TaskType};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::rows::{page_of, push_after, push_in, push_order, push_substring};
use super::tasks::insert_batch;
use super::{PgStore, notify_work};
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

fn backup(row: &PgRow) -> Result<Backup> {
    Ok(Backup {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        instance_id: row.try_get("instance_id")?,
        instance_name: row.try_get("instance_name")?,
        group_id: row.try_get("group_id")?,
        oss_path: row.try_get("oss_path")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        source_paths: parse_list("source paths", row.try_get("source_paths")?)?,
        exclude_paths: parse_list("exclude paths", row.try_get("exclude_paths")?)?,
        source_apps: parse_list("source apps", row.try_get("source_apps")?)?,
        backup_all: row.try_get("backup_all")?,
        upload_endpoint: row.try_get("upload_endpoint")?,
        system_version: row.try_get("system_version")?,
        status: row.try_get("status")?,
        size: row.try_get("size")?,
        task_id: row.try_get("task_id")?,
        created_ms: row.try_get("created_ms")?,
        modified_ms: row.try_get("modified_ms")?,
    })
}

pub(super) async fn create_backup_batch(
    s: &PgStore,
    batch: &NewBatch,
    backups: &[Backup],
) -> Result<()> {
    let mut tx = s.pool.begin().await?;
    insert_batch(&mut tx, batch).await?;
    for b in backups {
        sqlx::query(
            "INSERT INTO backups (id, account_id, instance_id, instance_name, group_id, oss_path, \
             name, description, source_paths, exclude_paths, source_apps, backup_all, \
             upload_endpoint, system_version, status, size, task_id, created_ms, modified_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19)",
        )
        .bind(&b.id)
        .bind(&b.account_id)
        .bind(&b.instance_id)
        .bind(&b.instance_name)
        .bind(&b.group_id)
        .bind(&b.oss_path)
        .bind(&b.name)
        .bind(&b.description)
        .bind(list_json(&b.source_paths))
        .bind(list_json(&b.exclude_paths))
        .bind(list_json(&b.source_apps))
        .bind(b.backup_all)
        .bind(&b.upload_endpoint)
        .bind(&b.system_version)
        .bind(&b.status)
        .bind(b.size)
        .bind(&b.task_id)
        .bind(b.created_ms)
        .bind(b.modified_ms)
        .execute(&mut *tx)
        .await?;
    }
    notify_work(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn list_backups(
    s: &PgStore,
    filter: &BackupFilter,
    page: &Page,
) -> Result<Listing<Backup>> {
    let where_ = |qb: &mut QueryBuilder<Postgres>| {
        qb.push(" WHERE b.account_id = ")
            .push_bind(filter.account_id.clone());
        if let Some(id) = &filter.id {
            qb.push(" AND b.id = ").push_bind(id.clone());
        }
        if let Some(id) = &filter.instance_id {
            qb.push(" AND b.instance_id = ").push_bind(id.clone());
        }
        if let Some(id) = &filter.group_id {
            qb.push(" AND b.group_id = ").push_bind(id.clone());
        }
        push_substring(qb, "b.instance_name", &filter.instance_name);
        push_substring(qb, "b.name", &filter.name);
        push_substring(qb, "b.description", &filter.description);
        push_in(qb, "b.status", filter.statuses.iter().cloned());
        if let Some(ms) = filter.start_ms {
            qb.push(" AND b.created_ms >= ").push_bind(ms);
        }
        if let Some(ms) = filter.end_ms {
            qb.push(" AND b.created_ms <= ").push_bind(ms);
        }
        if let Some(all) = filter.backup_all {
            qb.push(" AND b.backup_all = ").push_bind(all);
        }
    };
    let mut count = QueryBuilder::<Postgres>::new("SELECT COUNT(*) FROM backups b");
    where_(&mut count);
    let mut list = QueryBuilder::<Postgres>::new(COLUMNS);
    where_(&mut list);
    push_after(&mut list, "b.created_ms", "b.id", &page.after, false);
    push_order(&mut list, "b.created_ms", "b.id", false, page.limit);

    let mut tx = s.read().await?;
    let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
    let fetched = list.build().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    let items = fetched.iter().map(backup).collect::<Result<Vec<_>>>()?;
    let (items, next) = page_of(items, page.limit, |b| Cursor {
        ms: b.created_ms,
        id: b.id.clone(),
    });
    Ok(Listing { items, total, next })
}

pub(super) async fn backups_by_id(
    s: &PgStore,
    account_id: &str,
    ids: &[String],
) -> Result<Vec<Backup>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<Postgres>::new(COLUMNS);
    qb.push(" WHERE b.account_id = ")
        .push_bind(account_id.to_owned());
    push_in(&mut qb, "b.id", ids.iter().cloned());
    let fetched = qb.build().fetch_all(&s.pool).await?;
    fetched.iter().map(backup).collect()
}

pub(super) async fn delete_backups(s: &PgStore, account_id: &str, ids: &[String]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query("DELETE FROM backups WHERE account_id = $1 AND id = ANY($2)")
        .bind(account_id)
        .bind(ids)
        .execute(&s.pool)
        .await?;
    Ok(done.rows_affected())
}

/// Settles the backup a BackupFile task makes, inside the transaction that ends the task
/// (whichever way it ends: completion, a refused precondition, the sweeper): AVAILABLE with the
/// archive's size (the result's `FileSize`) when it finished, FAILED otherwise. Any other task
/// type is left alone.
pub(super) async fn settle(
    conn: &mut PgConnection,
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
    sqlx::query("UPDATE backups SET status = $1, size = $2, modified_ms = $3 WHERE task_id = $4")
        .bind(status)
        .bind(size)
        .bind(now_ms)
        .bind(task_id)
        .execute(conn)
        .await?;
    Ok(())
}
