//! The PostgreSQL implementation of [`Store`], for several nodes (processes) sharing one
//! database. Every transaction runs at READ COMMITTED; where a read decides a write, the rows
//! are locked (`FOR UPDATE`, `SKIP LOCKED` for the engine's queues) or the write is an
//! `INSERT ... ON CONFLICT`. Listings read in one REPEATABLE READ, READ ONLY transaction so
//! that the total and the page come from one snapshot.
//!
//! Nodes wake each other through LISTEN/NOTIFY: every transaction that queues work or may
//! unblock it (new tasks, a task ended so its instance's next one may start, a task re-queued)
//! sends a notification on [`WORK_CHANNEL`], which PostgreSQL delivers at commit, and
//! [`Store::forward_work_signals`] turns those into wake-ups of the local engine.
//!
//! The SQL lives in the submodules, one per area of the trait, as for SQLite:
//! [`accounts`] (keys, nonces, settings), [`buckets`] (object-store buckets), [`fleet`] (groups
//! and instances), [`apps`], [`backups`], [`tasks`] (creation and DescribeTasks), [`engine`]
//! (claim, leases, completion, sweep; its doc has the locking rules) and [`rows`] (decoding rows
//! into domain types). The schema is `migrations/postgres`.

mod accounts;
mod apps;
mod backups;
mod buckets;
mod engine;
mod events;
mod fleet;
mod idempotency;
mod rows;
mod tasks;
mod webhooks;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::{AccessKey, App, Group, GroupSummary, Instance, Task};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::Notify;

use crate::{
    AccountDeletion, AccountRecord, AppFilter, AuditEntry, AuditFilter, CancelOutcome, Claim,
    EventFilter, EventPosition, GroupFilter, Idempotent, InstanceChange, InstanceFilter, KeyRecord,
    Lease, Listing, NewBatch, NewTask, Nonce, Outcome, Page, Result, Store, Swept, TaskCount,
    TaskEvent, TaskFilter,
};
use crate::{Delivery, DeliveryEnd, DeliveryRecord, Webhook};

/// Connections per node. One is held by the work-signal listener.
const POOL_SIZE: u32 = 16;
/// How long a call waits for a connection, including connecting: an unreachable database gives
/// an error within this time instead of a hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The LISTEN/NOTIFY channel of "work may be ready" signals.
const WORK_CHANNEL: &str = "cloudphone_work";

/// A [`Store`] on one PostgreSQL database, which several nodes may share. Cheap to share behind
/// an `Arc`; every method may be called from many tasks at once.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://...`) and brings its schema up to date
    /// (nodes starting together take turns: the migrator holds an advisory lock).
    pub async fn connect(url: &str) -> Result<PgStore> {
        // sqlx has no connect timeout of its own: the acquire timeout bounds connecting.
        // A statement stuck behind a lock or a stalled server ends with an error instead of
        // holding the caller (and a pooled connection) forever.
        let options = PgConnectOptions::from_str(url)?
            .application_name("cloudphone")
            .options([("statement_timeout", "60s")]);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A connection that died while idle (the server restarted) is dropped at its next
            // checkout instead of failing the call that drew it.
            .test_before_acquire(true)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// The connection pool, for diagnostics and benchmarks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection, waiting for those in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A read-only transaction on one snapshot, for a listing's total and page.
    async fn read(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?)
    }
}

/// Signals "work may be ready" to every node, when the caller's transaction commits (nothing if
/// it rolls back; several in one transaction are delivered as one).
async fn notify_work(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WORK_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn ensure_account(&self, account_id: &str, name: &str) -> Result<()> {
        accounts::ensure_account(self, account_id, name).await
    }

    async fn put_access_key(&self, key: &AccessKey) -> Result<()> {
        accounts::put_access_key(self, key).await
    }

    async fn access_key(&self, key_id: &str) -> Result<Option<AccessKey>> {
        accounts::access_key(self, key_id).await
    }

    async fn list_accounts(&self) -> Result<Vec<AccountRecord>> {
        accounts::list_accounts(self).await
    }

    async fn set_account_disabled(&self, account_id: &str, disabled: bool) -> Result<bool> {
        accounts::set_account_disabled(self, account_id, disabled).await
    }

    async fn delete_account(&self, account_id: &str) -> Result<AccountDeletion> {
        accounts::delete_account(self, account_id).await
    }

    async fn list_access_keys(&self, account_id: Option<&str>) -> Result<Vec<KeyRecord>> {
        accounts::list_access_keys(self, account_id).await
    }

    async fn set_access_key_disabled(&self, key_id: &str, disabled: bool) -> Result<bool> {
        accounts::set_access_key_disabled(self, key_id, disabled).await
    }

    async fn delete_access_key(&self, key_id: &str) -> Result<bool> {
        accounts::delete_access_key(self, key_id).await
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        accounts::append_audit(self, entries).await
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        accounts::audit(self, filter).await
    }

    async fn remember_nonce(&self, key: &AccessKey, nonce: &str, expires_ms: i64) -> Result<Nonce> {
        accounts::remember_nonce(self, key, nonce, expires_ms).await
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
        instance_quota: Option<u64>,
    ) -> Result<()> {
        fleet::create_groups(self, groups, instances, tasks, instance_quota).await
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

    async fn heartbeat(&self, task_id: &str, attempt: i64, lease_until_ms: i64) -> Result<Lease> {
        engine::heartbeat(self, task_id, attempt, lease_until_ms).await
    }

    async fn cancel_tasks(
        &self,
        account_id: &str,
        task_ids: &[String],
        now_ms: i64,
    ) -> Result<CancelOutcome> {
        engine::cancel_tasks(self, account_id, task_ids, now_ms).await
    }

    async fn task_events(
        &self,
        filter: &EventFilter,
        after: EventPosition,
        limit: usize,
    ) -> Result<Vec<TaskEvent>> {
        events::task_events(self, filter, after, limit).await
    }

    async fn event_tail(&self, account_id: &str) -> Result<EventPosition> {
        events::event_tail(self, account_id).await
    }

    async fn purge_task_events(&self, before_ms: i64) -> Result<u64> {
        events::purge(self, before_ms).await
    }

    async fn create_webhook(&self, webhook: &Webhook, max: usize) -> Result<bool> {
        webhooks::create(self, webhook, max).await
    }

    async fn list_webhooks(&self, account_id: &str) -> Result<Vec<Webhook>> {
        webhooks::list(self, account_id).await
    }

    async fn delete_webhook(&self, account_id: &str, webhook_id: &str) -> Result<bool> {
        webhooks::delete(self, account_id, webhook_id).await
    }

    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        webhooks::claim(self, now_ms, lease_ms, limit).await
    }

    async fn end_delivery(
        &self,
        seq: i64,
        attempt: i64,
        end: &DeliveryEnd,
        now_ms: i64,
    ) -> Result<bool> {
        webhooks::end(self, seq, attempt, end, now_ms).await
    }

    async fn list_deliveries(
        &self,
        account_id: &str,
        webhook_id: Option<&str>,
        task_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>> {
        webhooks::list_deliveries(self, account_id, webhook_id, task_id, limit).await
    }

    async fn begin_idempotent(
        &self,
        account_id: &str,
        token: &str,
        fingerprint: &str,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<Idempotent> {
        idempotency::begin(
            self,
            account_id,
            token,
            fingerprint,
            now_ms,
            stale_before_ms,
        )
        .await
    }

    async fn finish_idempotent(
        &self,
        account_id: &str,
        token: &str,
        reserved_ms: i64,
        body: Option<&str>,
    ) -> Result<()> {
        idempotency::finish(self, account_id, token, reserved_ms, body).await
    }

    async fn purge_idempotency(&self, before_ms: i64) -> Result<u64> {
        idempotency::purge(self, before_ms).await
    }

    async fn complete(
        &self,
        task_id: &str,
        attempt: i64,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<bool> {
        engine::complete(self, task_id, attempt, outcome, now_ms).await
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

    async fn task_counts(&self) -> Result<Vec<TaskCount>> {
        tasks::task_counts(self).await
    }

    async fn running_instances_on(&self, image_ids: &[String]) -> Result<Vec<Instance>> {
        fleet::running_instances_on(self, image_ids).await
    }

    async fn mark_instance(
        &self,
        instance_id: &str,
        from: InstanceStatus,
        to: InstanceStatus,
        seen_modified_ms: i64,
        now_ms: i64,
    ) -> Result<bool> {
        fleet::mark_instance(self, instance_id, from, to, seen_modified_ms, now_ms).await
    }

    async fn adopt_instances(&self, group: &Group, instances: &[Instance]) -> Result<u64> {
        fleet::adopt_instances(self, group, instances).await
    }

    fn shared(&self) -> bool {
        true
    }

    async fn forward_work_signals(&self, wake: Arc<Notify>) -> Result<()> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(WORK_CHANNEL).await?;
        loop {
            // `None` means the connection was lost (the listener reconnects and listens again
            // on the next call): a notification may have been missed meanwhile, so wake all the
            // same. An error (the database still unreachable, the pool closed) ends the
            // forwarding; the caller retries and polls meanwhile.
            let _notification = listener.try_recv().await?;
            wake.notify_one();
        }
    }
}
