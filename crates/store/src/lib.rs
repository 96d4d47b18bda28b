//! Persistence for cloudphone: the [`Store`] trait the engine and the API speak to, and its two
//! implementations, [`SqliteStore`] (one process, one file) and [`PgStore`] (several nodes over
//! one PostgreSQL database). The conformance suite (`tests/conformance.rs`) is written against
//! the trait and runs on both.

mod filters;
mod moves;
mod postgres;
mod sqlite;
mod webhooks;

pub use filters::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use webhooks::*;

use async_trait::async_trait;
use cloudphone_core::resources::{AccessKey, App, Group, GroupSummary, Instance, Task, TaskRef};
use cloudphone_core::{InstanceStatus, TaskErrorCode, TaskType};

/// A storage failure. The API turns every one of these into `InternalError` and logs the cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store was closed; nothing more can run on it.
    #[error("the store is closed")]
    Closed,
    /// A store operation panicked; its transaction was rolled back.
    #[error("a store operation panicked")]
    Panicked,
    #[error("starting a database thread failed: {0}")]
    Thread(std::io::Error),
    #[error("syncing the nonce file failed: {0}")]
    Sync(std::io::Error),
    /// A failure shared by several operations (a group commit that failed), as text.
    #[error("{message}")]
    Shared { message: String, unavailable: bool },
    /// Creating the instances would take the account past its quota; `used` is how many it
    /// has (not DELETED).
    #[error("the account's instance quota is used: {used} instances")]
    QuotaExceeded { used: u64 },
    /// A claim raced another node's for the same batch and would take it past its
    /// `MaxConcurrency`; it was rolled back (the store tries again itself).
    #[error("another node filled the batch's MaxConcurrency at the same time")]
    Overbooked,
}

impl StoreError {
    /// True when the database cannot be reached at the moment (connection refused or lost, the
    /// server shutting down or starting up, no connection free in time): the caller should
    /// retry later. The API answers these with 503 `ServiceUnavailable` instead of a 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                // SQLSTATE class 08 (connection exception), 57P01-57P03 (admin shutdown, crash
                // shutdown, cannot connect now), 53300 (too many connections), and the
                // transient conflicts of concurrent nodes that a retry resolves: 40001
                // (serialization failure) and 40P01 (deadlock detected, the other transaction
                // went on).
                sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                    c.starts_with("08")
                        || matches!(
                            &*c,
                            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                        )
                }),
                _ => false,
            },
            StoreError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            StoreError::Closed => true,
            StoreError::Shared { unavailable, .. } => *unavailable,
            StoreError::Overbooked => true,
            _ => false,
        }
    }

    /// A copy to hand to each of several operations that one failure ended.
    pub(crate) fn shared(&self) -> StoreError {
        StoreError::Shared {
            message: self.to_string(),
            unavailable: self.is_unavailable(),
        }
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(e: rusqlite::types::FromSqlError) -> StoreError {
        StoreError::Corrupt(format!("unexpected stored value: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// An account as the admin sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: String,
    pub name: String,
    pub disabled: bool,
    pub created_ms: i64,
    pub keys: u64,
    pub instances: u64,
}

/// An access key as the admin sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub key: AccessKey,
    pub disabled: bool,
    pub account_disabled: bool,
    pub created_ms: i64,
}

/// What [`Store::delete_account`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountDeletion {
    Deleted,
    NotFound,
    /// Nothing deleted: the account still has this many instances not DELETED.
    HasInstances(u64),
}

/// One mutating call, as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Assigned by the store, increasing; 0 in an entry to append.
    pub id: i64,
    pub at_ms: i64,
    pub account_id: String,
    pub user_name: String,
    pub key_id: String,
    pub action: String,
    pub resource_ids: Vec<String>,
    pub request_id: String,
    /// The caller's address.
    pub source: String,
    /// `Success`, or the error Code of the answer.
    pub outcome: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub account_id: Option<String>,
    pub action: Option<String>,
    pub after_id: i64,
    pub limit: usize,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- accounts and keys ----

    /// Creates the account if it does not exist yet (idempotent).
    async fn ensure_account(&self, account_id: &str, name: &str) -> Result<()>;
    /// Inserts or replaces an access key (enabled).
    async fn put_access_key(&self, key: &AccessKey) -> Result<()>;
    /// The key `key_id` if it may act: enabled, of an enabled account. A disabled key is as
    /// absent as an unknown one.
    async fn access_key(&self, key_id: &str) -> Result<Option<AccessKey>>;
    /// Every account, in id order, with its counts of keys and of instances not DELETED.
    async fn list_accounts(&self) -> Result<Vec<AccountRecord>>;
    /// Disables or enables an account (all its keys with it); false when there is none.
    async fn set_account_disabled(&self, account_id: &str, disabled: bool) -> Result<bool>;
    /// Deletes an account and its keys, unless it still has instances not DELETED.
    async fn delete_account(&self, account_id: &str) -> Result<AccountDeletion>;
    /// Access keys (secrets included), of one account or all, in key id order.
    async fn list_access_keys(&self, account_id: Option<&str>) -> Result<Vec<KeyRecord>>;
    /// Disables or enables a key; false when there is none.
    async fn set_access_key_disabled(&self, key_id: &str, disabled: bool) -> Result<bool>;
    /// Deletes a key; false when there is none.
    async fn delete_access_key(&self, key_id: &str) -> Result<bool>;
    /// Appends entries to the audit log.
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()>;
    /// Audit entries in the order they were written, after `filter.after_id`.
    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;
    /// Records a signature nonce for `key`, provided `key` is still stored exactly as given
    /// (same secret, account and user): the caller may have checked the signature against a
    /// copy it kept, and this is where a key deleted or changed since is seen, in the same
    /// write. Nothing is recorded unless the answer is [`Nonce::Fresh`].
    async fn remember_nonce(&self, key: &AccessKey, nonce: &str, expires_ms: i64) -> Result<Nonce>;
    /// Forgets nonces that expired before `now_ms`; returns how many.
    async fn purge_nonces(&self, now_ms: i64) -> Result<u64>;
    /// Returns the value stored under `name`, storing `init` first if there is none. Used for
    /// secrets every node must share (the pagination-token key).
    async fn setting_or_init(&self, name: &str, init: &str) -> Result<String>;

    // ---- bucket owners of the single-namespace object layout (design.md §7) ----
    //
    // Bucket names were once one namespace, a bucket belonging to its first writer; they are
    // per account now. The owners recorded then tell where each old bucket moves at start
    // (`cloudphone_objects`' layout migration); nothing records new ones.

    /// Makes `account_id` the owner of `bucket` if it has none, atomically; returns the owner
    /// (`account_id`, or the account that claimed it first). Only tests that build an old layout
    /// call it now.
    async fn claim_bucket(&self, bucket: &str, account_id: &str) -> Result<String>;
    /// The account recorded as the owner of `bucket`, if any.
    async fn bucket_owner(&self, bucket: &str) -> Result<Option<String>>;

    // ---- groups and instances ----

    /// Creates groups, their instances and the internal tasks that provision them, in one
    /// transaction. With `instance_quota`, fails with [`StoreError::QuotaExceeded`] (creating
    /// nothing) when the account of `instances` would then have more than that many instances
    /// not DELETED; concurrent calls for one account are serialized, so two cannot both pass.
    async fn create_groups(
        &self,
        groups: &[Group],
        instances: &[Instance],
        tasks: &[NewTask],
        instance_quota: Option<u64>,
    ) -> Result<()>;
    /// Groups of an account, with their instances summed up; keyset-paginated.
    async fn list_groups(&self, filter: &GroupFilter, page: &Page)
    -> Result<Listing<GroupSummary>>;
    /// Instances of an account (with `group_name` filled); keyset-paginated.
    async fn list_instances(
        &self,
        filter: &InstanceFilter,
        page: &Page,
    ) -> Result<Listing<Instance>>;
    /// The instances among `ids` that belong to `account_id` and are not DELETED, in any order.
    async fn instances_by_id(&self, account_id: &str, ids: &[String]) -> Result<Vec<Instance>>;
    /// Changes name and bandwidth limits of instances of `account_id` (`None` leaves a field
    /// alone); returns how many rows changed.
    async fn modify_instances(
        &self,
        account_id: &str,
        ids: &[String],
        change: &InstanceChange,
    ) -> Result<u64>;
    /// Marks groups as deleting and queues the internal tasks that delete their instances, in
    /// one transaction.
    async fn delete_groups(
        &self,
        account_id: &str,
        group_ids: &[String],
        tasks: &[NewTask],
    ) -> Result<()>;

    /// Moves groups of `account_id` to `image_id`: every batch names its group in `resource_id`;
    /// the group's image and its latest image-update batch change as the batch is created, in
    /// one transaction.
    async fn update_group_images(
        &self,
        account_id: &str,
        image_id: &str,
        batches: &[NewBatch],
        now_ms: i64,
    ) -> Result<()>;

    // ---- apps ----

    /// Registers an app; returns its new id.
    async fn create_app(&self, app: &App) -> Result<i64>;
    /// Apps of an account, newest first; keyset on the id (`Cursor.ms` holds the last id).
    async fn list_apps(&self, filter: &AppFilter, page: &Page) -> Result<Listing<App>>;
    /// Deletes the account's apps among `ids`; returns how many.
    async fn delete_apps(&self, account_id: &str, ids: &[i64]) -> Result<u64>;
    /// Creates an InstallApp or UninstallApp batch and records it as the latest over `app_ids`
    /// (`install` says which), in one transaction.
    async fn create_app_batch(
        &self,
        batch: &NewBatch,
        app_ids: &[i64],
        install: bool,
    ) -> Result<()>;

    // ---- backup files ----

    /// Creates a BackupFile batch and its backups (each naming its child task in `task_id`),
    /// in one transaction.
    async fn create_backup_batch(
        &self,
        batch: &NewBatch,
        backups: &[cloudphone_core::resources::Backup],
    ) -> Result<()>;
    /// DescribeBackupFiles: backups matching `filter`, newest first (creation time, then id,
    /// descending), after `page.after`; `total` counts every match.
    async fn list_backups(
        &self,
        filter: &BackupFilter,
        page: &Page,
    ) -> Result<Listing<cloudphone_core::resources::Backup>>;
    /// The backups among `ids` that belong to `account_id`, in any order.
    async fn backups_by_id(
        &self,
        account_id: &str,
        ids: &[String],
    ) -> Result<Vec<cloudphone_core::resources::Backup>>;
    /// Deletes the account's backups among `ids`; returns how many. (The BackupFile task's
    /// completion, inside [`Store::complete`] and the sweeper, sets a backup's status and size.)
    async fn delete_backups(&self, account_id: &str, ids: &[String]) -> Result<u64>;

    // ---- tasks: creation and queries ----

    /// Creates a batch and its children in one transaction. Children start Waiting and queued.
    async fn create_batch(&self, batch: &NewBatch) -> Result<()>;
    /// DescribeTasks: tasks of Level 1 and 2 matching `filter`, newest first (start time, then
    /// id, descending), after `page.after`; `total` counts every match.
    async fn describe_tasks(&self, filter: &TaskFilter, page: &Page) -> Result<Listing<Task>>;
    /// [`Store::describe_tasks`] written out as it is read: `render` writes each task of the
    /// page, in order, after the bytes of `head`, on the store's own thread, straight from the
    /// row (no task is copied out of the database's buffers). The default reads the page, then
    /// writes it.
    async fn describe_tasks_rendered(
        &self,
        filter: &TaskFilter,
        page: &Page,
        head: Vec<u8>,
        render: TaskRender,
    ) -> Result<Rendered> {
        let listing = self.describe_tasks(filter, page).await?;
        let mut bytes = head;
        for (n, task) in listing.items.iter().enumerate() {
            render(&mut bytes, n, &task.view());
        }
        Ok(Rendered {
            bytes,
            count: listing.items.len(),
            total: listing.total,
            next: listing.next,
        })
    }
    async fn task(&self, account_id: &str, task_id: &str) -> Result<Option<Task>>;
    /// Deletes terminal tasks that finished before `before_ms`; returns how many.
    async fn purge_tasks(&self, before_ms: i64) -> Result<u64>;

    /// CancelTasks: every id must be a batch or instance task of `account_id`, else nothing is
    /// written and [`CancelOutcome::unknown`] names the others. A batch stands for all its
    /// children. A Waiting child becomes Skipped with `Cancelled` at once; a Processing one
    /// whose type can be interrupted ([`TaskType::is_interruptible`]) is asked to stop (its
    /// worker ends it Failed with `Cancelled`); any other runs to its end. One transaction.
    async fn cancel_tasks(
        &self,
        account_id: &str,
        task_ids: &[String],
        now_ms: i64,
    ) -> Result<CancelOutcome>;

    // ---- the task event log (the watch stream) ----

    /// Events matching `filter` strictly after `after`, in the log's order, at most `limit`.
    /// Only events whose transaction has ended and that no earlier-placed event can still
    /// join are returned, so a reader that resumes after the last position it saw misses
    /// nothing and sees nothing twice.
    async fn task_events(
        &self,
        filter: &EventFilter,
        after: EventPosition,
        limit: usize,
    ) -> Result<Vec<TaskEvent>>;
    /// Where a watch that wants only what happens from now on starts: every event
    /// [`Store::task_events`] returns after it is new (or was not yet readable).
    async fn event_tail(&self, account_id: &str) -> Result<EventPosition>;
    /// Forgets events logged before `before_ms`; returns how many.
    async fn purge_task_events(&self, before_ms: i64) -> Result<u64>;

    // ---- webhooks ----

    /// Registers a webhook unless the account has `max` already (then `false`, nothing
    /// stored).
    async fn create_webhook(&self, webhook: &Webhook, max: usize) -> Result<bool>;
    /// The account's webhooks, oldest first.
    async fn list_webhooks(&self, account_id: &str) -> Result<Vec<Webhook>>;
    /// Deletes a webhook of the account and its deliveries; false when there is none.
    async fn delete_webhook(&self, account_id: &str, webhook_id: &str) -> Result<bool>;
    /// Leases up to `limit` due deliveries (pending, their time come, no live lease), oldest
    /// first, counting an attempt each. Several nodes may call this: none gets a delivery
    /// another holds.
    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>>;
    /// Records how attempt `attempt` of delivery `seq` ended; fenced: false (nothing written)
    /// when that attempt is no longer the current one (its lease expired and another took it).
    async fn end_delivery(
        &self,
        seq: i64,
        attempt: i64,
        end: &DeliveryEnd,
        now_ms: i64,
    ) -> Result<bool>;
    /// The account's deliveries, newest first, of one webhook and/or one batch if given.
    async fn list_deliveries(
        &self,
        account_id: &str,
        webhook_id: Option<&str>,
        task_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>>;

    // ---- ClientToken idempotency ----

    /// Reserves `token` of `account_id` for a call with `fingerprint`, or tells what an earlier
    /// call with it left: its answer, another fingerprint, or a call still running. A
    /// reservation older than `stale_before_ms` (a node died with it) is taken over.
    async fn begin_idempotent(
        &self,
        account_id: &str,
        token: &str,
        fingerprint: &str,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<Idempotent>;
    /// Ends the reservation made at `reserved_ms` (the `now_ms` given to
    /// [`Store::begin_idempotent`]): keeps the call's answer (`Some(body)`), or frees the token
    /// (`None`, the call failed and created nothing). Fenced: a reservation taken over since
    /// (it had gone stale) is another call's, and is left alone.
    async fn finish_idempotent(
        &self,
        account_id: &str,
        token: &str,
        reserved_ms: i64,
        body: Option<&str>,
    ) -> Result<()>;
    /// Forgets tokens made before `before_ms`; returns how many.
    async fn purge_idempotency(&self, before_ms: i64) -> Result<u64>;

    // ---- tasks: the engine's side (design.md §5) ----

    /// Claims up to `limit` runnable tasks, in acceptance order. A task is runnable when it is
    /// queued, its `not_before` has passed and no earlier task of the same instance is still
    /// unfinished (one task per instance at a time, in order).
    ///
    /// At a task's first attempt the precondition is checked in the same transaction
    /// ([`cloudphone_core::instance::plan`]): `Skip` ends it Skipped, `Reject` ends it Failed
    /// with `IncorrectInstanceStatus` (neither is returned); `Run` sets the instance to the
    /// `during` status and remembers the previous one. A later attempt resumes without a new
    /// check. A claimed task becomes Processing with `attempt + 1`, owner and lease.
    async fn claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claim>>;
    /// Extends the lease of an attempt; [`Lease::Lost`] if the attempt is no longer the current
    /// one, [`Lease::CancelRequested`] (lease extended) once `CancelTasks` asked it to stop.
    async fn heartbeat(&self, task_id: &str, attempt: i64, lease_until_ms: i64) -> Result<Lease>;
    /// Ends an attempt: the task becomes Finished or Failed, the instance moves to its
    /// after-success or after-failure status, the batch counters and status follow, all in one
    /// transaction. Fenced: false (and nothing written) if `attempt` is not the current attempt
    /// or the task is not leased.
    async fn complete(
        &self,
        task_id: &str,
        attempt: i64,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<bool>;
    /// Ends several attempts, each exactly as [`Store::complete`] would (fenced: `false` for
    /// an attempt that is no longer current); returns one answer per item, in order. A store
    /// may write them all in one transaction (group commit), so that the cost of a commit is
    /// shared by many tasks; if it fails, none was written.
    async fn complete_many(&self, items: &[Completion]) -> Result<Vec<bool>> {
        let mut done = Vec::with_capacity(items.len());
        for item in items {
            done.push(
                self.complete(&item.task_id, item.attempt, &item.outcome, item.now_ms)
                    .await?,
            );
        }
        Ok(done)
    }
    /// The sweeper: every leased task whose lease expired before `now_ms` is re-queued with
    /// `not_before = now_ms + retry_delay_ms` when its type is idempotent and it has had fewer
    /// than `max_attempts` attempts; otherwise it fails (`InstanceUnreachable` for a
    /// non-idempotent type, `AttemptsExhausted` otherwise) with the instance in its
    /// after-failure status. Returns what it did.
    async fn sweep_expired(
        &self,
        now_ms: i64,
        max_attempts: i64,
        retry_delay_ms: i64,
    ) -> Result<Vec<Swept>>;
    /// Ends every lease at once (sets its expiry to 0), so the next sweep takes over the work.
    /// Only for a store that one process owns (SQLite under a data-dir lock), at start-up:
    /// never on a store that several nodes share, where other nodes' leases are alive.
    async fn expire_all_leases(&self) -> Result<u64>;
    /// True when several processes may share this store (PostgreSQL): leases of other
    /// processes may be alive, and work queued elsewhere arrives through
    /// [`Store::forward_work_signals`].
    fn shared(&self) -> bool;
    /// Forwards "work may be ready" signals from every process sharing this store (new tasks
    /// queued, a task ended so its instance's next one may start, a task re-queued) to `wake`,
    /// until the returned future is dropped or the connection fails (then `Err`; the caller
    /// retries, with polling as the fallback meanwhile). A store that one process owns has
    /// nothing to forward and never returns.
    async fn forward_work_signals(&self, wake: std::sync::Arc<tokio::sync::Notify>) -> Result<()>;
    /// The instance's data needed to run a claimed task.
    async fn instance(&self, instance_id: &str) -> Result<Option<Instance>>;
    /// How many tasks there are of each type, level and status, over every account (for
    /// `/metrics`). Reads every task: callers cache it.
    async fn task_counts(&self) -> Result<Vec<TaskCount>>;
    /// The RUNNING instances, of every account, whose image is one of `image_ids`: what the
    /// instance watcher asks their backends about.
    async fn running_instances_on(&self, image_ids: &[String]) -> Result<Vec<Instance>>;
    /// Moves the instance from `from` to `to` if it is still in `from` with the `modified_ms`
    /// its watcher saw (so a task that moved it meanwhile wins); returns whether it did. The
    /// watcher marks dead phones UNAVAILABLE, device discovery returning ones RUNNING.
    async fn mark_instance(
        &self,
        instance_id: &str,
        from: InstanceStatus,
        to: InstanceStatus,
        seen_modified_ms: i64,
        now_ms: i64,
    ) -> Result<bool>;
    /// Records a group and instances found outside any call (the devices of an ADB server):
    /// the group if it is new, and each instance that is not stored yet (one stored, DELETED
    /// included, is left as it is); a group being deleted takes none. Returns how many
    /// instances were new.
    async fn adopt_instances(&self, group: &Group, instances: &[Instance]) -> Result<u64>;
}

/// What [`Store::heartbeat`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    /// Still this attempt's, extended.
    Held,
    /// Extended, but `CancelTasks` asked the attempt to stop.
    CancelRequested,
    /// No longer this attempt's: write nothing.
    Lost,
}

/// What [`Store::cancel_tasks`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CancelOutcome {
    /// Ids that are no task of the account (then nothing was done).
    pub unknown: Vec<String>,
    /// Waiting children now Skipped with `Cancelled`.
    pub skipped: u64,
    /// Processing children asked to stop.
    pub interrupting: u64,
    /// Their ids, so that the workers of this node can be told at once.
    pub interrupted: Vec<String>,
    /// Processing children that cannot be interrupted and run to their end.
    pub finishing: u64,
    /// Children that had ended already.
    pub ended: u64,
}

/// What [`Store::begin_idempotent`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Idempotent {
    /// Reserved for this call: run it, then [`Store::finish_idempotent`].
    Fresh,
    /// An earlier call with the same token and parameters answered this body.
    Replay(String),
    /// The token was used with other parameters.
    Mismatch,
    /// A call with the token is still running.
    InFlight,
}

/// One line of [`Store::task_counts`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskCount {
    pub task_type: TaskType,
    pub level: cloudphone_core::Level,
    pub status: cloudphone_core::TaskStatus,
    pub count: i64,
}

/// Writes task number `n` (from 0) of a page into the page's bytes; see
/// [`Store::describe_tasks_rendered`].
pub type TaskRender = std::sync::Arc<dyn Fn(&mut Vec<u8>, usize, &TaskRef<'_>) + Send + Sync>;

/// A page of tasks as [`Store::describe_tasks_rendered`] wrote it.
#[derive(Debug)]
pub struct Rendered {
    /// The head given, then every task of the page as written.
    pub bytes: Vec<u8>,
    /// Tasks on the page.
    pub count: usize,
    /// Tasks matching the filter over all pages.
    pub total: i64,
    /// The cursor of the page's last task when more follow.
    pub next: Option<Cursor>,
}

/// What [`Store::remember_nonce`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonce {
    /// Not seen before: now recorded.
    Fresh,
    /// Recorded already: the call is a replay.
    Replay,
    /// The key is no longer stored as given (deleted, or its secret, account or user changed).
    KeyChanged,
}

/// A task that the engine claimed and must now run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub task_id: String,
    pub task_type: TaskType,
    pub instance_id: String,
    pub param: String,
    pub attempt: i64,
    /// The instance status before the task started (for after-failure).
    pub previous_status: InstanceStatus,
    /// The phone the task runs on, read in the claim's transaction (`None` when it no longer
    /// exists), so that a worker needs no read of its own.
    pub phone: Option<Phone>,
}

/// What a worker needs to know of the phone a claimed task runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phone {
    pub account_id: String,
    pub name: String,
    pub image_id: String,
    pub spec: String,
}

/// One attempt's end, for [`Store::complete_many`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub task_id: String,
    pub attempt: i64,
    pub outcome: Outcome,
    /// When the attempt ended.
    pub now_ms: i64,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `result` is compact JSON.
    Finished { result: String },
    Failed {
        code: TaskErrorCode,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Swept {
    Requeued {
        task_id: String,
        attempt: i64,
    },
    Failed {
        task_id: String,
        code: TaskErrorCode,
    },
}
