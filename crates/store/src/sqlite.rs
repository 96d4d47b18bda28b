//! The SQLite implementation of [`Store`]: one database file in WAL mode, a small connection
//! pool for readers, and one writer at a time.
//!
//! Writers are serialised twice: in-process by a fair [`tokio::sync::Mutex`] (so concurrent
//! tokio tasks queue up instead of spinning in SQLite's busy handler), and in the database by
//! `BEGIN IMMEDIATE`, which takes the write lock before the first read of a read-then-write
//! transaction (so two writers never deadlock on a lock upgrade). Readers never block.
//!
//! The SQL lives in the submodules, one per area of the trait:
//! [`accounts`] (keys, nonces, settings), [`nonces`] (nonces written in groups), [`buckets`] (object-store buckets), [`fleet`] (groups
//! and instances), [`tasks`] (creation and DescribeTasks), [`engine`] (claim, leases, completion,
//! sweep) and [`rows`] (decoding rows into domain types).

mod accounts;
mod apps;
mod backups;
mod buckets;
mod engine;
mod fleet;
mod nonces;
mod rows;
mod tasks;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudphone_core::resources::{AccessKey, App, Group, GroupSummary, Instance, Task};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use crate::{
    AppFilter, Claim, Completion, GroupFilter, InstanceChange, InstanceFilter, Listing, NewBatch,
    NewTask, Outcome, Page, Result, Store, Swept, TaskFilter,
};

/// How long a connection waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections in the pool (readers; writers use one at a time).
const POOL_SIZE: u32 = 6;

/// A [`Store`] on one SQLite database file. Cheap to share behind an `Arc`; every method may be
/// called from many tasks at once.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Held for the whole of every write, in-process.
    writer: Arc<Mutex<()>>,
    nonces: nonces::NonceWriter,
}

/// A write transaction (`BEGIN IMMEDIATE`) and this process's writer turn. Dropping it without
/// [`WriteTx::commit`] rolls back.
struct WriteTx<'a> {
    // Fields drop in order: the transaction ends before the turn passes on.
    tx: Transaction<'static, Sqlite>,
    _turn: MutexGuard<'a, ()>,
}

impl WriteTx<'_> {
    async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // Keeps the planner's statistics fresh for DescribeTasks' many indexes.
            .optimize_on_close(true, 400);
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .min_connections(1)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let writer = Arc::new(Mutex::new(()));
        Ok(SqliteStore {
            nonces: nonces::NonceWriter::start(pool.clone(), writer.clone()),
            pool,
            writer,
        })
    }

    /// The connection pool, for diagnostics and benchmarks.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection (waiting for those in use), checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Waits for this process's writer turn, then begins a write transaction.
    async fn write(&self) -> Result<WriteTx<'_>> {
        let turn = self.writer.lock().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx { tx, _turn: turn })
    }

    /// This process's writer turn, for a single auto-committed statement.
    async fn turn(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ensure_account(&self, account_id: &str, name: &str) -> Result<()> {
        accounts::ensure_account(self, account_id, name).await
    }

    async fn put_access_key(&self, key: &AccessKey) -> Result<()> {
        accounts::put_access_key(self, key).await
    }

    async fn access_key(&self, key_id: &str) -> Result<Option<AccessKey>> {
        accounts::access_key(self, key_id).await
    }

    async fn remember_nonce(&self, key_id: &str, nonce: &str, expires_ms: i64) -> Result<bool> {
        accounts::remember_nonce(self, key_id, nonce, expires_ms).await
    }

    async fn purge_nonces(&self, now_ms: i64) -> Result<u64> {
        accounts::purge_nonces(self, now_ms).await
    }

    async fn setting_or_init(&self, name: &str, init: &str) -> Result<String> {
        accounts::setting_or_init(self, name, init).await
    }

    async fn create_app(&self, app: &App) -> Result<i64> {
        apps::create_app(self, app).await
    }

    async fn list_apps(&self, filter: &AppFilter, page: &Page) -> Result<Listing<App>> {
        apps::list_apps(self, filter, page).await
    }

    async fn delete_apps(&self, account_id: &str, ids: &[i64]) -> Result<u64> {
        apps::delete_apps(self, account_id, ids).await
    }

    async fn create_app_batch(
        &self,
        batch: &NewBatch,
        app_ids: &[i64],
        install: bool,
    ) -> Result<()> {
        apps::create_app_batch(self, batch, app_ids, install).await
    }

    async fn claim_bucket(&self, bucket: &str, account_id: &str) -> Result<String> {
        buckets::claim_bucket(self, bucket, account_id).await
    }

    async fn bucket_owner(&self, bucket: &str) -> Result<Option<String>> {
        buckets::bucket_owner(self, bucket).await
    }

    async fn create_backup_batch(
        &self,
        batch: &NewBatch,
        backups: &[cloudphone_core::resources::Backup],
    ) -> Result<()> {
        backups::create_backup_batch(self, batch, backups).await
    }

    async fn list_backups(
        &self,
        filter: &crate::BackupFilter,
        page: &Page,
    ) -> Result<Listing<cloudphone_core::resources::Backup>> {
        backups::list_backups(self, filter, page).await
    }

    async fn backups_by_id(
        &self,
        account_id: &str,
        ids: &[String],
    ) -> Result<Vec<cloudphone_core::resources::Backup>> {
        backups::backups_by_id(self, account_id, ids).await
    }

    async fn delete_backups(&self, account_id: &str, ids: &[String]) -> Result<u64> {
        backups::delete_backups(self, account_id, ids).await
    }

    async fn create_groups(
        &self,
        groups: &[Group],
        instances: &[Instance],
        tasks: &[NewTask],
    ) -> Result<()> {
        fleet::create_groups(self, groups, instances, tasks).await
    }

    async fn list_groups(
        &self,
        filter: &GroupFilter,
        page: &Page,
    ) -> Result<Listing<GroupSummary>> {
        fleet::list_groups(self, filter, page).await
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
        page: &Page,
    ) -> Result<Listing<Instance>> {
        fleet::list_instances(self, filter, page).await
    }

    async fn instances_by_id(&self, account_id: &str, ids: &[String]) -> Result<Vec<Instance>> {
        fleet::instances_by_id(self, account_id, ids).await
    }

    async fn modify_instances(
        &self,
        account_id: &str,
        ids: &[String],
        change: &InstanceChange,
    ) -> Result<u64> {
        fleet::modify_instances(self, account_id, ids, change).await
    }

    async fn delete_groups(
        &self,
        account_id: &str,
        group_ids: &[String],
        tasks: &[NewTask],
    ) -> Result<()> {
        fleet::delete_groups(self, account_id, group_ids, tasks).await
    }

    async fn update_group_images(
        &self,
        account_id: &str,
        image_id: &str,
        batches: &[NewBatch],
        now_ms: i64,
    ) -> Result<()> {
        fleet::update_group_images(self, account_id, image_id, batches, now_ms).await
    }

    async fn create_batch(&self, batch: &NewBatch) -> Result<()> {
        tasks::create_batch(self, batch).await
    }

    async fn describe_tasks(&self, filter: &TaskFilter, page: &Page) -> Result<Listing<Task>> {
        tasks::describe_tasks(self, filter, page).await
    }

    async fn task(&self, account_id: &str, task_id: &str) -> Result<Option<Task>> {
        tasks::task(self, account_id, task_id).await
    }

    async fn purge_tasks(&self, before_ms: i64) -> Result<u64> {
        tasks::purge_tasks(self, before_ms).await
    }

    async fn claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claim>> {
        engine::claim(self, owner, now_ms, lease_ms, limit).await
    }

    async fn heartbeat(&self, task_id: &str, attempt: i64, lease_until_ms: i64) -> Result<bool> {
        engine::heartbeat(self, task_id, attempt, lease_until_ms).await
    }

    async fn complete(
        &self,
        task_id: &str,
        attempt: i64,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<bool> {
        let item = Completion {
            task_id: task_id.to_string(),
            attempt,
            outcome: outcome.clone(),
            now_ms,
        };
        Ok(engine::complete_many(self, std::slice::from_ref(&item)).await?[0])
    }

    async fn complete_many(&self, items: &[Completion]) -> Result<Vec<bool>> {
        engine::complete_many(self, items).await
    }

    async fn sweep_expired(
        &self,
        now_ms: i64,
        max_attempts: i64,
        retry_delay_ms: i64,
    ) -> Result<Vec<Swept>> {
        engine::sweep_expired(self, now_ms, max_attempts, retry_delay_ms).await
    }

    async fn expire_all_leases(&self) -> Result<u64> {
        engine::expire_all_leases(self).await
    }

    async fn instance(&self, instance_id: &str) -> Result<Option<Instance>> {
        fleet::instance(self, instance_id).await
    }

    fn shared(&self) -> bool {
        false
    }

    async fn forward_work_signals(&self, _wake: std::sync::Arc<tokio::sync::Notify>) -> Result<()> {
        // One process owns the file: its own API wakes its engine in-process.
        std::future::pending().await
    }
}
