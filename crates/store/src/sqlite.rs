//! The SQLite implementation of [`Store`]: one database file in WAL mode, read by a few
//! reader threads and written by one writer thread that commits in groups ([`db`]).
//!
//! Each operation runs whole on one of those threads: the async methods below hand the
//! operation (with owned copies of its arguments) to [`db::Db`] and await its answer. Writes of
//! other processes on the same file (a `keys create` while the server runs, say) wait on
//! SQLite's lock: the writer's transactions are `BEGIN IMMEDIATE`, with a busy timeout.
//!
//! The SQL lives in the submodules, one per area of the trait:
//! [`accounts`] (keys, nonces, settings), [`buckets`] (object-store buckets), [`fleet`] (groups
//! and instances), [`tasks`] (creation and DescribeTasks), [`engine`] (claim, leases, completion,
//! sweep), [`apps`], [`backups`], and [`rows`] (decoding rows into domain types) on [`sql`] (a
//! statement builder).

mod accounts;
mod apps;
mod backups;
mod buckets;
mod db;
mod engine;
mod events;
mod fleet;
mod idempotency;
mod rows;
mod sql;
mod tasks;
mod webhooks;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::{AccessKey, App, Backup, Group, GroupSummary, Instance, Task};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{
    AccountDeletion, AccountRecord, AppFilter, AuditEntry, AuditFilter, BackupFilter,
    CancelOutcome, Claim, Completion, EventFilter, EventPosition, GroupFilter, Idempotent,
    InstanceChange, InstanceFilter, KeyRecord, Lease, Listing, NewBatch, NewTask, Nonce, Outcome,
    Page, Rendered, Result, Store, Swept, TaskCount, TaskEvent, TaskFilter, TaskRender,
};
use crate::{Delivery, DeliveryEnd, DeliveryRecord, Webhook};

/// How long a connection waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`] on one SQLite database file. Cheap to share behind an `Arc`; every method may be
/// called from many tasks at once.
#[derive(Debug)]
pub struct SqliteStore {
    db: db::Db,
    /// sqlx's pool on the same file: it runs the migrations, and serves diagnostics and the
    /// benchmarks' own statements; the store's operations never use it.
    pool: SqlitePool,
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
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .min_connections(0)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let path = path.to_owned();
        let db = tokio::task::spawn_blocking(move || db::Db::open(&path))
            .await
            .map_err(|_| crate::StoreError::Panicked)??;
        Ok(SqliteStore { db, pool })
    }

    /// sqlx's pool on the same file, for diagnostics and benchmarks.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Finishes the operations queued, then closes every connection (the last one
    /// checkpoints the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
        self.db.close();
    }
}

/// Owned copies of borrowed arguments, moved into a database thread's job.
macro_rules! on_reader {
    ($s:expr, |$c:ident| $body:expr, $($arg:ident),*) => {{
        $(let $arg = $arg.to_owned();)*
        $s.db.read(move |$c| { $(let $arg = &$arg;)* $body }).await
    }};
}
macro_rules! on_writer {
    ($s:expr, |$c:ident| $body:expr, $($arg:ident),*) => {{
        $(let $arg = $arg.to_owned();)*
        $s.db.write(move |$c| { $(let $arg = &$arg;)* $body }).await
    }};
}

#[async_trait]
impl Store for SqliteStore {
    async fn ensure_account(&self, account_id: &str, name: &str) -> Result<()> {
        on_writer!(
            self,
            |c| accounts::ensure_account(c, account_id, name),
            account_id,
            name
        )
    }

    async fn put_access_key(&self, key: &AccessKey) -> Result<()> {
        on_writer!(self, |c| accounts::put_access_key(c, key), key)
    }

    async fn access_key(&self, key_id: &str) -> Result<Option<AccessKey>> {
        on_reader!(self, |c| accounts::access_key(c, key_id), key_id)
    }

    async fn list_accounts(&self) -> Result<Vec<AccountRecord>> {
        self.db.read(accounts::list_accounts).await
    }

    async fn set_account_disabled(&self, account_id: &str, disabled: bool) -> Result<bool> {
        on_writer!(
            self,
            |c| accounts::set_account_disabled(c, account_id, disabled),
            account_id
        )
    }

    async fn delete_account(&self, account_id: &str) -> Result<AccountDeletion> {
        on_writer!(
            self,
            |c| accounts::delete_account(c, account_id),
            account_id
        )
    }

    async fn list_access_keys(&self, account_id: Option<&str>) -> Result<Vec<KeyRecord>> {
        let account_id = account_id.map(str::to_owned);
        self.db
            .read(move |c| accounts::list_access_keys(c, account_id.as_deref()))
            .await
    }

    async fn set_access_key_disabled(&self, key_id: &str, disabled: bool) -> Result<bool> {
        on_writer!(
            self,
            |c| accounts::set_access_key_disabled(c, key_id, disabled),
            key_id
        )
    }

    async fn delete_access_key(&self, key_id: &str) -> Result<bool> {
        on_writer!(self, |c| accounts::delete_access_key(c, key_id), key_id)
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        let entries = entries.to_vec();
        self.db
            .write(move |c| accounts::append_audit(c, &entries))
            .await
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        on_reader!(self, |c| accounts::audit(c, filter), filter)
    }

    async fn remember_nonce(&self, key: &AccessKey, nonce: &str, expires_ms: i64) -> Result<Nonce> {
        let (key, nonce) = (key.clone(), nonce.to_owned());
        self.db
            .write_nonce(move |c| accounts::remember_nonce(c, &key, &nonce, expires_ms))
            .await
    }

    async fn purge_nonces(&self, now_ms: i64) -> Result<u64> {
        self.db
            .write_nonce(move |c| accounts::purge_nonces(c, now_ms))
            .await
    }

    async fn setting_or_init(&self, name: &str, init: &str) -> Result<String> {
        if let Some(value) = on_reader!(self, |c| accounts::setting(c, name), name)? {
            return Ok(value);
        }
        on_writer!(
            self,
            |c| accounts::setting_or_init(c, name, init),
            name,
            init
        )
    }

    async fn create_app(&self, app: &App) -> Result<i64> {
        on_writer!(self, |c| apps::create_app(c, app), app)
    }

    async fn list_apps(&self, filter: &AppFilter, page: &Page) -> Result<Listing<App>> {
        on_reader!(self, |c| apps::list_apps(c, filter, page), filter, page)
    }

    async fn delete_apps(&self, account_id: &str, ids: &[i64]) -> Result<u64> {
        on_writer!(
            self,
            |c| apps::delete_apps(c, account_id, ids),
            account_id,
            ids
        )
    }

    async fn create_app_batch(
        &self,
        batch: &NewBatch,
        app_ids: &[i64],
        install: bool,
    ) -> Result<()> {
        on_writer!(
            self,
            |c| apps::create_app_batch(c, batch, app_ids, install),
            batch,
            app_ids
        )
    }

    async fn claim_bucket(&self, bucket: &str, account_id: &str) -> Result<String> {
        if let Some(owner) = on_reader!(self, |c| buckets::bucket_owner(c, bucket), bucket)? {
            return Ok(owner);
        }
        on_writer!(
            self,
            |c| buckets::claim_bucket(c, bucket, account_id),
            bucket,
            account_id
        )
    }

    async fn bucket_owner(&self, bucket: &str) -> Result<Option<String>> {
        on_reader!(self, |c| buckets::bucket_owner(c, bucket), bucket)
    }

    async fn create_backup_batch(&self, batch: &NewBatch, backups: &[Backup]) -> Result<()> {
        on_writer!(
            self,
            |c| backups::create_backup_batch(c, batch, backups),
            batch,
            backups
        )
    }

    async fn list_backups(&self, filter: &BackupFilter, page: &Page) -> Result<Listing<Backup>> {
        on_reader!(
            self,
            |c| backups::list_backups(c, filter, page),
            filter,
            page
        )
    }

    async fn backups_by_id(&self, account_id: &str, ids: &[String]) -> Result<Vec<Backup>> {
        on_reader!(
            self,
            |c| backups::backups_by_id(c, account_id, ids),
            account_id,
            ids
        )
    }

    async fn delete_backups(&self, account_id: &str, ids: &[String]) -> Result<u64> {
        on_writer!(
            self,
            |c| backups::delete_backups(c, account_id, ids),
            account_id,
            ids
        )
    }

    async fn create_groups(
        &self,
        groups: &[Group],
        instances: &[Instance],
        tasks: &[NewTask],
        instance_quota: Option<u64>,
    ) -> Result<()> {
        on_writer!(
            self,
            |c| fleet::create_groups(c, groups, instances, tasks, instance_quota),
            groups,
            instances,
            tasks
        )
    }

    async fn list_groups(
        &self,
        filter: &GroupFilter,
        page: &Page,
    ) -> Result<Listing<GroupSummary>> {
        on_reader!(self, |c| fleet::list_groups(c, filter, page), filter, page)
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
        page: &Page,
    ) -> Result<Listing<Instance>> {
        on_reader!(
            self,
            |c| fleet::list_instances(c, filter, page),
            filter,
            page
        )
    }

    async fn instances_by_id(&self, account_id: &str, ids: &[String]) -> Result<Vec<Instance>> {
        on_reader!(
            self,
            |c| fleet::instances_by_id(c, account_id, ids),
            account_id,
            ids
        )
    }

    async fn modify_instances(
        &self,
        account_id: &str,
        ids: &[String],
        change: &InstanceChange,
    ) -> Result<u64> {
        on_writer!(
            self,
            |c| fleet::modify_instances(c, account_id, ids, change),
            account_id,
            ids,
            change
        )
    }

    async fn delete_groups(
        &self,
        account_id: &str,
        group_ids: &[String],
        tasks: &[NewTask],
    ) -> Result<()> {
        on_writer!(
            self,
            |c| fleet::delete_groups(c, account_id, group_ids, tasks),
            account_id,
            group_ids,
            tasks
        )
    }

    async fn update_group_images(
        &self,
        account_id: &str,
        image_id: &str,
        batches: &[NewBatch],
        now_ms: i64,
    ) -> Result<()> {
        on_writer!(
            self,
            |c| fleet::update_group_images(c, account_id, image_id, batches, now_ms),
            account_id,
            image_id,
            batches
        )
    }

    async fn create_batch(&self, batch: &NewBatch) -> Result<()> {
        on_writer!(self, |c| tasks::insert_batch(c, batch), batch)
    }

    async fn describe_tasks(&self, filter: &TaskFilter, page: &Page) -> Result<Listing<Task>> {
        on_reader!(
            self,
            |c| tasks::describe_tasks(c, filter, page),
            filter,
            page
        )
    }

    async fn describe_tasks_rendered(
        &self,
        filter: &TaskFilter,
        page: &Page,
        head: Vec<u8>,
        render: TaskRender,
    ) -> Result<Rendered> {
        let (filter, page) = (filter.clone(), page.clone());
        self.db
            .read(move |c| tasks::describe_tasks_rendered(c, &filter, &page, head, &render))
            .await
    }

    async fn task(&self, account_id: &str, task_id: &str) -> Result<Option<Task>> {
        on_reader!(
            self,
            |c| tasks::task(c, account_id, task_id),
            account_id,
            task_id
        )
    }

    async fn purge_tasks(&self, before_ms: i64) -> Result<u64> {
        on_writer!(self, |c| tasks::purge_tasks(c, before_ms),)
    }

    async fn claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claim>> {
        on_writer!(
            self,
            |c| engine::claim(c, owner, now_ms, lease_ms, limit),
            owner
        )
    }

    async fn heartbeat(&self, task_id: &str, attempt: i64, lease_until_ms: i64) -> Result<Lease> {
        on_writer!(
            self,
            |c| engine::heartbeat(c, task_id, attempt, lease_until_ms),
            task_id
        )
    }

    async fn cancel_tasks(
        &self,
        account_id: &str,
        task_ids: &[String],
        now_ms: i64,
    ) -> Result<CancelOutcome> {
        on_writer!(
            self,
            |c| engine::cancel_tasks(c, account_id, task_ids, now_ms),
            account_id,
            task_ids
        )
    }

    async fn task_events(
        &self,
        filter: &EventFilter,
        after: EventPosition,
        limit: usize,
    ) -> Result<Vec<TaskEvent>> {
        let filter = filter.clone();
        self.db
            .read(move |c| events::task_events(c, &filter, after, limit))
            .await
    }

    async fn event_tail(&self, account_id: &str) -> Result<EventPosition> {
        on_reader!(self, |c| events::event_tail(c, account_id), account_id)
    }

    async fn purge_task_events(&self, before_ms: i64) -> Result<u64> {
        on_writer!(self, |c| events::purge(c, before_ms),)
    }

    async fn create_webhook(&self, webhook: &Webhook, max: usize) -> Result<bool> {
        on_writer!(self, |c| webhooks::create(c, webhook, max), webhook)
    }

    async fn list_webhooks(&self, account_id: &str) -> Result<Vec<Webhook>> {
        on_reader!(self, |c| webhooks::list(c, account_id), account_id)
    }

    async fn delete_webhook(&self, account_id: &str, webhook_id: &str) -> Result<bool> {
        on_writer!(
            self,
            |c| webhooks::delete(c, account_id, webhook_id),
            account_id,
            webhook_id
        )
    }

    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        on_writer!(self, |c| webhooks::claim(c, now_ms, lease_ms, limit),)
    }

    async fn end_delivery(
        &self,
        seq: i64,
        attempt: i64,
        end: &DeliveryEnd,
        now_ms: i64,
    ) -> Result<bool> {
        on_writer!(self, |c| webhooks::end(c, seq, attempt, end, now_ms), end)
    }

    async fn list_deliveries(
        &self,
        account_id: &str,
        webhook_id: Option<&str>,
        task_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>> {
        let (webhook_id, task_id) = (webhook_id.map(str::to_owned), task_id.map(str::to_owned));
        on_reader!(
            self,
            |c| webhooks::list_deliveries(
                c,
                account_id,
                webhook_id.as_deref(),
                task_id.as_deref(),
                limit
            ),
            account_id
        )
    }

    async fn begin_idempotent(
        &self,
        account_id: &str,
        token: &str,
        fingerprint: &str,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<Idempotent> {
        on_writer!(
            self,
            |c| idempotency::begin(c, account_id, token, fingerprint, now_ms, stale_before_ms),
            account_id,
            token,
            fingerprint
        )
    }

    async fn finish_idempotent(
        &self,
        account_id: &str,
        token: &str,
        reserved_ms: i64,
        body: Option<&str>,
    ) -> Result<()> {
        let body = body.map(str::to_owned);
        on_writer!(
            self,
            |c| idempotency::finish(c, account_id, token, reserved_ms, body.as_deref()),
            account_id,
            token
        )
    }

    async fn purge_idempotency(&self, before_ms: i64) -> Result<u64> {
        on_writer!(self, |c| idempotency::purge(c, before_ms),)
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
        let done = self.complete_many(std::slice::from_ref(&item)).await?;
        Ok(done[0])
    }

    async fn complete_many(&self, items: &[Completion]) -> Result<Vec<bool>> {
        on_writer!(self, |c| engine::complete_many(c, items), items)
    }

    async fn sweep_expired(
        &self,
        now_ms: i64,
        max_attempts: i64,
        retry_delay_ms: i64,
    ) -> Result<Vec<Swept>> {
        on_writer!(self, |c| engine::sweep_expired(
            c,
            now_ms,
            max_attempts,
            retry_delay_ms
        ),)
    }

    async fn expire_all_leases(&self) -> Result<u64> {
        on_writer!(self, |c| engine::expire_all_leases(c),)
    }

    async fn instance(&self, instance_id: &str) -> Result<Option<Instance>> {
        on_reader!(self, |c| fleet::instance(c, instance_id), instance_id)
    }

    async fn task_counts(&self) -> Result<Vec<TaskCount>> {
        self.db.read(tasks::task_counts).await
    }

    async fn running_instances_on(&self, image_ids: &[String]) -> Result<Vec<Instance>> {
        on_reader!(
            self,
            |c| fleet::running_instances_on(c, image_ids),
            image_ids
        )
    }

    async fn mark_instance(
        &self,
        instance_id: &str,
        from: InstanceStatus,
        to: InstanceStatus,
        seen_modified_ms: i64,
        now_ms: i64,
    ) -> Result<bool> {
        on_writer!(
            self,
            |c| fleet::mark_instance(c, instance_id, from, to, seen_modified_ms, now_ms),
            instance_id
        )
    }

    async fn adopt_instances(&self, group: &Group, instances: &[Instance]) -> Result<u64> {
        on_writer!(
            self,
            |c| fleet::adopt_instances(c, group, instances),
            group,
            instances
        )
    }

    fn shared(&self) -> bool {
        false
    }

    async fn forward_work_signals(&self, _wake: std::sync::Arc<tokio::sync::Notify>) -> Result<()> {
        // One process owns the file: its own API wakes its engine in-process.
        std::future::pending().await
    }
}
