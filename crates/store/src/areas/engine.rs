//! The engine's side of the task table (docs/design.md §5): claiming runnable tasks with their
//! precondition check, leases and heartbeats, fenced completion, the sweeper, and the wake-ups
//! of other nodes. Claims and completions are written per database (`sqlite/engine.rs`: one
//! writer, set-based group commits; `postgres/engine.rs`: row locks in a fixed order and
//! `SKIP LOCKED` for several nodes); heartbeats and the start-up lease reset are the same SQL.

use std::collections::HashMap;
use std::sync::Arc;

use cloudphone_core::task_params::TaskParam;
use cloudphone_core::{TaskErrorCode, TaskType};
use tokio::sync::Notify;

use crate::sql::conn::Conn;
use crate::sql::v;
use crate::{AccountShares, Claim, Completion, Lease, Outcome, Result, Swept};

area! {
    /// The engine's side of the task table.
    pub trait EngineStore {
        /// Claims up to `limit` runnable tasks, in acceptance order. A task is runnable when it
        /// is queued, its `not_before` has passed and no earlier task of the same instance is
        /// still unfinished (one task per instance at a time, in order).
        ///
        /// At a task's first attempt the precondition is checked in the same transaction
        /// ([`cloudphone_core::instance::plan`]): `Skip` ends it Skipped, `Reject` ends it
        /// Failed with `IncorrectInstanceStatus` (neither is returned); `Run` sets the instance
        /// to the `during` status and remembers the previous one. A later attempt resumes
        /// without a new check. A claimed task becomes Processing with `attempt + 1`, owner and
        /// lease.
        fn claim(&self, owner: &str, now_ms: i64, lease_ms: i64, limit: usize) -> Vec<Claim> =
            by_store ();
        /// [`EngineStore::claim`] within the accounts' shares of the node's slots
        /// (docs/design.md §5.10): the tasks of an account that may start no more are passed
        /// over (left queued, in their place), and no claim starts more tasks of an account
        /// than [`AccountShares::left`] allows. Per-instance order, `MaxConcurrency` and
        /// `MaxErrors` hold as in `claim`.
        fn claim_fair(
            &self,
            owner: &str,
            now_ms: i64,
            lease_ms: i64,
            limit: usize,
            shares: &AccountShares,
        ) -> Vec<Claim> = by_store ();
        /// Extends the lease of an attempt; [`Lease::Lost`] if the attempt is no longer the
        /// current one, [`Lease::CancelRequested`] (lease extended) once `CancelTasks` asked it
        /// to stop.
        fn heartbeat(&self, task_id: &str, attempt: i64, lease_until_ms: i64) -> Lease =
            autocommit (|c| heartbeat(c, task_id, attempt, lease_until_ms));
        /// Ends an attempt: the task becomes Finished or Failed, the instance moves to its
        /// after-success or after-failure status, the batch counters and status follow, all in
        /// one transaction. Fenced: false (and nothing written) if `attempt` is not the current
        /// attempt or the task is not leased.
        fn complete(&self, task_id: &str, attempt: i64, outcome: &Outcome, now_ms: i64) -> bool =
            by_store ();
        /// Ends several attempts, each exactly as [`EngineStore::complete`] would (fenced:
        /// `false` for an attempt that is no longer current); returns one answer per item, in
        /// order. SQLite writes them all in one transaction (group commit), so that the cost of
        /// a commit is shared by many tasks; if it fails, none was written.
        fn complete_many(&self, items: &[Completion]) -> Vec<bool> = by_store ();
        /// The sweeper: every leased task whose lease expired before `now_ms` is re-queued with
        /// `not_before = now_ms + retry_delay_ms` when its type is idempotent and it has had
        /// fewer than `max_attempts` attempts; otherwise it fails (`InstanceUnreachable` for a
        /// non-idempotent type, `AttemptsExhausted` otherwise) with the instance in its
        /// after-failure status. Returns what it did.
        fn sweep_expired(&self, now_ms: i64, max_attempts: i64, retry_delay_ms: i64)
            -> Vec<Swept> = by_store ();
        /// Ends every lease at once (sets its expiry to 0), so the next sweep takes over the
        /// work. Only for a store that one process owns (SQLite under a data-dir lock), at
        /// start-up: never on a store that several nodes share, where other nodes' leases are
        /// alive.
        fn expire_all_leases(&self) -> u64 = autocommit (|c| expire_all_leases(c));
        /// Forwards "work may be ready" signals from every process sharing this store (new
        /// tasks queued, a task ended so its instance's next one may start, a task re-queued)
        /// to `wake`, until the returned future is dropped or the connection fails (then
        /// `Err`; the caller retries, with polling as the fallback meanwhile). A store that
        /// one process owns has nothing to forward and never returns.
        fn forward_work_signals(&self, wake: Arc<Notify>) -> () = by_store ();
    }
}

async fn heartbeat(
    c: &mut impl Conn,
    task_id: &str,
    attempt: i64,
    lease_until_ms: i64,
) -> Result<Lease> {
    let q = c.with(
        "UPDATE tasks SET lease_ms = ? WHERE id = ? AND attempt = ? AND run_state = 'leased' \
         RETURNING cancel_requested",
        [v(lease_until_ms), v(task_id), v(attempt)],
    );
    Ok(match c.row(&q, |r| r.flag("cancel_requested")).await? {
        None => Lease::Lost,
        Some(false) => Lease::Held,
        Some(true) => Lease::CancelRequested,
    })
}

async fn expire_all_leases(c: &mut impl Conn) -> Result<u64> {
    let q = c.sql("UPDATE tasks SET lease_ms = 0 WHERE run_state = 'leased'");
    c.execute(&q).await
}

/// A phone an UpdateGroupImage task reset onto a new image runs that image from now on: written
/// in the transaction of the task's end, so the two never disagree. The image is the task's
/// typed Param's (an unreadable Param never ran: its task failed before touching the phone).
pub(crate) async fn move_to_new_image(
    c: &mut impl Conn,
    task_type: TaskType,
    param: &str,
    instance_id: &str,
) -> Result<()> {
    if task_type != TaskType::UpdateGroupImage {
        return Ok(());
    }
    if let Ok(TaskParam::UpdateGroupImage(p)) = TaskParam::parse(task_type, param) {
        let q = c.with(
            "UPDATE instances SET image_id = ? WHERE id = ?",
            [v(p.image_id), v(instance_id)],
        );
        c.execute(&q).await?;
    }
    Ok(())
}

/// What the sweeper does with an attempt whose lease expired (docs/design.md §5.4): `None`
/// re-queues it; otherwise the code and message it fails with. A task CancelTasks asked to stop
/// is not tried again: it ends `Cancelled`, as its worker would have ended it.
pub(crate) fn expired_end(
    task_type: TaskType,
    attempt: i64,
    max_attempts: i64,
    cancel_requested: bool,
) -> Option<(TaskErrorCode, String)> {
    let code = if cancel_requested {
        let code = TaskErrorCode::Cancelled;
        return Some((
            code,
            format!("{} It was stopped while it ran.", code.default_message()),
        ));
    } else if !task_type.is_idempotent() {
        TaskErrorCode::InstanceUnreachable
    } else if attempt >= max_attempts {
        TaskErrorCode::AttemptsExhausted
    } else {
        return None;
    };
    Some((code, code.default_message().to_string()))
}

/// The accounts one claim has started tasks for, against their [`AccountShares`].
#[derive(Debug, Default)]
pub(crate) struct ShareCount {
    started: HashMap<String, usize>,
}

impl ShareCount {
    /// Whether a task of `account` may still start in this claim.
    pub(crate) fn allows(&self, shares: &AccountShares, account: &str) -> bool {
        self.started.get(account).copied().unwrap_or(0) < shares.left(account)
    }

    /// Counts a task of `account` this claim started.
    pub(crate) fn count(&mut self, account: &str) {
        *self.started.entry(account.to_string()).or_insert(0) += 1;
    }

    /// The accounts whose tasks the claim's statement must pass over now: those saturated
    /// before it began and those it filled itself; sorted, so the list is stable.
    pub(crate) fn passed_over(&self, shares: &AccountShares) -> Vec<String> {
        let mut full = shares.saturated();
        for (account, started) in &self.started {
            if *started >= shares.left(account) && !full.contains(account) {
                full.push(account.clone());
            }
        }
        full.sort();
        full
    }
}
