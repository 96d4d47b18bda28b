//! Backup files (BackupFile, DescribeBackupFiles, DeleteBackupFile, RecoveryFile): created with
//! their batch in one transaction, listed newest first with keyset pages, and settled (status
//! and size) in the transaction that ends their BackupFile task.

use cloudphone_core::resources::Backup;
use cloudphone_core::{TaskStatus, TaskType};

use super::tasks::insert_batch;
use crate::sql::conn::{Conn, Row};
use crate::sql::{Sql, page_of, v};
use crate::{BackupFilter, Cursor, Listing, NewBatch, Page, Result, StoreError};

area! {
    /// Backup files.
    pub trait BackupStore {
        /// Creates a BackupFile batch and its backups (each naming its child task in
        /// `task_id`), in one transaction.
        fn create_backup_batch(&self, batch: &NewBatch, backups: &[Backup]) -> () =
            write (|c| create_backup_batch(c, batch, backups));
        /// DescribeBackupFiles: backups matching `filter`, newest first (creation time, then
        /// id, descending), after `page.after`; `total` counts every match.
        fn list_backups(&self, filter: &BackupFilter, page: &Page) -> Listing<Backup> =
            snapshot (|c| list_backups(c, filter, page));
        /// The backups among `ids` that belong to `account_id`, in any order.
        fn backups_by_id(&self, account_id: &str, ids: &[String]) -> Vec<Backup> =
            read (|c| backups_by_id(c, account_id, ids));
        /// Deletes the account's backups among `ids`; returns how many. (The BackupFile task's
        /// completion, inside the engine's completion and the sweeper, sets a backup's status
        /// and size: `settle`.)
        fn delete_backups(&self, account_id: &str, ids: &[String]) -> u64 =
            autocommit (|c| delete_backups(c, account_id, ids));
    }
}

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

fn backup(row: &dyn Row) -> Result<Backup> {
    Ok(Backup {
        id: row.text("id")?,
        account_id: row.text("account_id")?,
        instance_id: row.text("instance_id")?,
        instance_name: row.text("instance_name")?,
        group_id: row.text("group_id")?,
        oss_path: row.text("oss_path")?,
        name: row.text("name")?,
        description: row.text("description")?,
        source_paths: parse_list("source paths", &row.text("source_paths")?)?,
        exclude_paths: parse_list("exclude paths", &row.text("exclude_paths")?)?,
        source_apps: parse_list("source apps", &row.text("source_apps")?)?,
        backup_all: row.flag("backup_all")?,
        upload_endpoint: row.text("upload_endpoint")?,
        system_version: row.text("system_version")?,
        status: row.text("status")?,
        size: row.int("size")?,
        task_id: row.text("task_id")?,
        created_ms: row.int("created_ms")?,
        modified_ms: row.int("modified_ms")?,
    })
}

async fn create_backup_batch(
    c: &mut impl Conn,
    batch: &NewBatch,
    backups: &[Backup],
) -> Result<()> {
    insert_batch(c, batch).await?;
    for b in backups {
        let q = c.with(
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
                v(b.backup_all),
                v(&b.upload_endpoint),
                v(&b.system_version),
                v(&b.status),
                v(b.size),
                v(&b.task_id),
                v(b.created_ms),
                v(b.modified_ms),
            ],
        );
        c.execute(&q).await?;
    }
    c.wake_workers().await
}

async fn list_backups(
    c: &mut impl Conn,
    filter: &BackupFilter,
    page: &Page,
) -> Result<Listing<Backup>> {
    let where_ = |q: &mut Sql| {
        q.push(" WHERE b.account_id = ").bind(&filter.account_id);
        if let Some(id) = &filter.id {
            q.push(" AND b.id = ").bind(id);
        }
        if let Some(id) = &filter.instance_id {
            q.push(" AND b.instance_id = ").bind(id);
        }
        if let Some(id) = &filter.group_id {
            q.push(" AND b.group_id = ").bind(id);
        }
        q.and_contains("b.instance_name", &filter.instance_name)
            .and_contains("b.name", &filter.name)
            .and_contains("b.description", &filter.description)
            .and_in("b.status", filter.statuses.iter().cloned());
        if let Some(ms) = filter.start_ms {
            q.push(" AND b.created_ms >= ").bind(ms);
        }
        if let Some(ms) = filter.end_ms {
            q.push(" AND b.created_ms <= ").bind(ms);
        }
        if let Some(all) = filter.backup_all {
            q.push(" AND ").is("b.backup_all", all);
        }
    };
    let mut count = c.sql("SELECT COUNT(*) FROM backups b");
    where_(&mut count);
    let mut list = c.sql(COLUMNS);
    where_(&mut list);
    list.and_after("b.created_ms", "b.id", &page.after, false)
        .order_page("b.created_ms", "b.id", false, page.limit);

    let total = c.int(&count).await?;
    let items = c.rows(&list, backup).await?;
    let (items, next) = page_of(items, page.limit, |b| Cursor {
        ms: b.created_ms,
        id: b.id.clone(),
    });
    Ok(Listing { items, total, next })
}

async fn backups_by_id(c: &mut impl Conn, account_id: &str, ids: &[String]) -> Result<Vec<Backup>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = c.sql(COLUMNS);
    q.push(" WHERE b.account_id = ")
        .bind(account_id)
        .and_in("b.id", ids.iter().cloned());
    c.rows(&q, backup).await
}

async fn delete_backups(c: &mut impl Conn, account_id: &str, ids: &[String]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut q = c.sql("DELETE FROM backups WHERE account_id = ");
    q.bind(account_id).and_in("id", ids.iter().cloned());
    c.execute(&q).await
}

/// Settles the backup a BackupFile task makes, inside the transaction that ends the task
/// (whichever way it ends: completion, a refused precondition, the sweeper): AVAILABLE with the
/// archive's size (the result's `FileSize`) when it finished, FAILED otherwise. Any other task
/// type is left alone.
pub(crate) async fn settle(
    c: &mut impl Conn,
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
    let q = c.with(
        "UPDATE backups SET status = ?, size = ?, modified_ms = ? WHERE task_id = ?",
        [v(status), v(size), v(now_ms), v(task_id)],
    );
    c.execute(&q).await.map(drop)
}
