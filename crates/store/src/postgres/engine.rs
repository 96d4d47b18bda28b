//! The engine's side of the task table (docs/design.md §5), for several nodes sharing the database
//! at READ COMMITTED: claiming runnable tasks with their precondition check, leases and
//! heartbeats, fenced completion, the sweeper, and the batch counters every child transition
//! updates in the same transaction.
//!
//! Locks, always taken in this order so that two transactions never wait on each other in a
//! circle: task rows first (`FOR UPDATE`, `SKIP LOCKED` where another node may hold them), then
//! instance rows, then batch rows, sorted by id and only at the end of the transaction
//! ([`apply_moves`]).
//!
//! The one-running-task-per-instance rule: a transaction leases a task of an instance only
//! while it holds the instance's row lock, and only after checking, in a statement begun after
//! the lock was granted (so its snapshot holds every committed lease), that no other task of
//! the instance is leased or earlier in line. The unique index
//! `tasks_one_leased_per_instance` backs this up; under this discipline it never fires, so a
//! claim needs no savepoint to survive it.

use cloudphone_core::instance::{self, Plan};
use cloudphone_core::{BatchLimits, InstanceStatus, TaskErrorCode, TaskStatus, TaskType};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{Pg, PgStore, notify_work};
use crate::areas::engine::{ShareCount, expired_end, move_to_new_image};
use crate::areas::{backups, rows};
use crate::moves::BatchMoves;
use crate::sql::conn::parse;
use crate::{AccountShares, CancelOutcome, Claim, Outcome, Phone, Result, StoreError, Swept};

/// The candidate query with `$passing_over` inserted among its conditions (see [`CANDIDATES`]).
macro_rules! candidates {
    ($passing_over:literal) => {
        concat!(
            "SELECT t.seq, t.id, t.task_type, t.status, t.instance_id, t.param, \
             t.attempt, t.prev_status, t.parent_id, p.max_concurrency, p.c_processing, \
             t.account_id FROM tasks t \
             LEFT JOIN tasks p ON p.id = t.parent_id \
             WHERE t.run_state = 'queued' AND t.not_before_ms <= $1 AND t.id <> ALL($2) \
             AND NOT EXISTS (SELECT 1 FROM tasks u WHERE u.instance_id = t.instance_id \
                             AND u.run_state <> 'done' AND u.seq < t.seq) \
             AND (p.max_concurrency IS NULL OR t.status <> 'Waiting' \
                  OR (p.c_processing < p.max_concurrency AND p.id <> ALL($4))) \
             AND (p.max_errors IS NULL OR t.status <> 'Waiting' OR p.c_failed <= p.max_errors) ",
            $passing_over,
            "ORDER BY t.seq LIMIT $3 FOR UPDATE OF t SKIP LOCKED"
        )
    };
}

/// Runnable tasks in acceptance order: queued, due, and first among the unfinished tasks of
/// their instance; `$2` lists the candidates this claim already found blocked. Rows another
/// claim holds are skipped, not waited for; a row another node changed since this statement's
/// snapshot is re-checked against `run_state` and dropped if no longer queued.
///
/// A Waiting child of a batch at its `MaxConcurrency` (by the counters of this statement's
/// snapshot, or listed in `$4` as filled by this claim) is no candidate; the counters read under
/// the batch's lock at the end ([`apply_moves`]) settle a race between nodes.
const CANDIDATES: &str = candidates!("");

/// [`CANDIDATES`] passing over the tasks of the accounts in `$5` (those at their share of the
/// node's slots, docs/design.md §5.10). A statement of its own, so that the claim of a node
/// where no account is at its share runs the very statement (and plan) it always did.
const CANDIDATES_PASSING_OVER: &str = candidates!("AND t.account_id <> ALL($5) ");

/// Whether another task of the instance runs or comes first. Run under the instance's lock, as a
/// statement of its own: the candidate query's snapshot may predate another node's lease, or a
/// task accepted earlier (a lower `seq`) whose transaction committed late.
const BLOCKED: &str = "SELECT EXISTS (SELECT 1 FROM tasks u WHERE u.instance_id = $1 \
     AND u.id <> $2 AND u.run_state <> 'done' AND (u.run_state = 'leased' OR u.seq < $3))";

/// The columns of a task the engine works with.
struct Work {
    seq: i64,
    id: String,
    task_type: TaskType,
    status: TaskStatus,
    instance_id: Option<String>,
    param: String,
    attempt: i64,
    prev_status: Option<InstanceStatus>,
    parent_id: Option<String>,
}

const WORK_COLUMNS: &str =
    "seq, id, task_type, status, instance_id, param, attempt, prev_status, parent_id";

fn work(row: &PgRow) -> Result<Work> {
    let prev_status: Option<String> = row.try_get("prev_status")?;
    Ok(Work {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        task_type: parse("task type", row.try_get("task_type")?)?,
        status: parse("task status", row.try_get("status")?)?,
        instance_id: row.try_get("instance_id")?,
        param: row.try_get("param")?,
        attempt: row.try_get("attempt")?,
        prev_status: prev_status
            .map(|s| parse("previous instance status", &s))
            .transpose()?,
        parent_id: row.try_get("parent_id")?,
    })
}

impl Work {
    /// The instance status before the first attempt, which every leased task has.
    fn previous(&self) -> Result<InstanceStatus> {
        self.prev_status.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "task {} started without a previous status",
                self.id
            ))
        })
    }
}

/// How often a claim is tried again after another node filled the same limited batch at the
/// same moment.
const CLAIM_TRIES: usize = 3;

pub(super) async fn claim(
    s: &PgStore,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
    shares: &AccountShares,
) -> Result<Vec<Claim>> {
    for _ in 0..CLAIM_TRIES {
        match claim_once(s, owner, now_ms, lease_ms, limit, shares).await {
            Err(StoreError::Overbooked) => continue,
            other => return other,
        }
    }
    // Still racing: nothing this time; the next claim looks again.
    Ok(Vec::new())
}

async fn claim_once(
    s: &PgStore,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
    shares: &AccountShares,
) -> Result<Vec<Claim>> {
    let mut claimed = Vec::new();
    if limit == 0 {
        return Ok(claimed);
    }
    let lease_until = now_ms.saturating_add(lease_ms);
    let mut tx = s.pool.begin().await?;
    let mut batches = BatchMoves::default();
    let mut blocked: Vec<String> = Vec::new();
    // Batches at their MaxConcurrency with this claim's own leases, and per limited batch its
    // limit and its children Processing so far.
    let mut full: Vec<String> = Vec::new();
    let mut running: std::collections::HashMap<String, (i64, i64)> =
        std::collections::HashMap::new();
    let mut settled_any = false;
    let mut started = ShareCount::default();
    loop {
        let want = i64::try_from(limit - claimed.len()).unwrap_or(i64::MAX);
        let passing_over = started.passed_over(shares);
        let statement = if passing_over.is_empty() {
            sqlx::query(CANDIDATES)
        } else {
            sqlx::query(CANDIDATES_PASSING_OVER)
        };
        let statement = statement.bind(now_ms).bind(&blocked).bind(want).bind(&full);
        let statement = if passing_over.is_empty() {
            statement
        } else {
            statement.bind(&passing_over)
        };
        let candidates = statement.fetch_all(&mut *tx).await?;
        if candidates.is_empty() {
            break;
        }
        // A task that ends at its precondition check lets the next task of its instance run,
        // and a batch filled here leaves room to others: look again when either happened and
        // there is room left.
        let mut settled = false;
        // Whether an account filled its share of the node's slots in this claim.
        let mut filled = false;
        for row in &candidates {
            let t = work(row)?;
            let account: String = row.try_get("account_id")?;
            if !started.allows(shares, &account) {
                // Its account filled its share in this claim: the next look passes over it.
                filled = true;
                continue;
            }
            let max: Option<i64> = row.try_get("max_concurrency")?;
            let limited = match (&t.parent_id, max) {
                (Some(parent), Some(max)) if t.status == TaskStatus::Waiting => {
                    let seen: Option<i64> = row.try_get("c_processing")?;
                    let (max, now) = *running
                        .entry(parent.clone())
                        .or_insert((max, seen.unwrap_or(0)));
                    if now >= max {
                        if !full.contains(parent) {
                            full.push(parent.clone());
                        }
                        settled = true;
                        continue;
                    }
                    Some(parent.clone())
                }
                _ => None,
            };
            let (current, phone) = match &t.instance_id {
                Some(id) => match lock_instance(&mut tx, id).await? {
                    Some(_) if is_blocked(&mut tx, id, &t).await? => {
                        blocked.push(t.id);
                        continue;
                    }
                    Some((status, phone)) => (Some(status), Some(phone)),
                    None => (None, None),
                },
                None => (None, None),
            };
            let previous = if t.attempt == 0 {
                match current.map(|c| (c, instance::plan(t.task_type, c))) {
                    Some((current, Plan::Run { during })) => {
                        if during != current {
                            let id = t.instance_id.as_deref().unwrap_or_default();
                            set_instance_status(&mut tx, id, during, now_ms).await?;
                        }
                        current
                    }
                    Some((_, Plan::Skip)) => {
                        end(
                            &mut tx,
                            &mut batches,
                            &t,
                            TaskStatus::Skipped,
                            None,
                            None,
                            now_ms,
                        )
                        .await?;
                        settled = true;
                        continue;
                    }
                    Some((_, Plan::Reject)) | None => {
                        let code = TaskErrorCode::IncorrectInstanceStatus;
                        let msg = match current {
                            Some(c) => format!("{} Current status: {c}.", code.default_message()),
                            None => {
                                format!("{} The instance does not exist.", code.default_message())
                            }
                        };
                        let error = Some((code, msg.as_str()));
                        end(
                            &mut tx,
                            &mut batches,
                            &t,
                            TaskStatus::Failed,
                            None,
                            error,
                            now_ms,
                        )
                        .await?;
                        settled = true;
                        continue;
                    }
                }
            } else {
                // A retry resumes from the status the first attempt left: no new check.
                t.previous()?
            };
            sqlx::query(
                "UPDATE tasks SET status = 'Processing', attempt = attempt + 1, owner = $1, \
                 lease_ms = $2, run_state = 'leased', prev_status = $3 WHERE id = $4",
            )
            .bind(owner)
            .bind(lease_until)
            .bind(previous.as_str())
            .bind(&t.id)
            .execute(&mut *tx)
            .await?;
            batches.record(
                t.parent_id.as_deref(),
                t.status,
                TaskStatus::Processing,
                now_ms,
            );
            if let Some(slot) = limited.and_then(|p| running.get_mut(&p)) {
                slot.1 += 1;
            }
            started.count(&account);
            claimed.push(Claim {
                task_id: t.id,
                task_type: t.task_type,
                instance_id: t.instance_id.unwrap_or_default(),
                param: t.param,
                attempt: t.attempt + 1,
                previous_status: previous,
                phone,
            });
        }
        settled_any |= settled;
        let look_again = settled || (filled && started.passed_over(shares) != passing_over);
        if !look_again || claimed.len() >= limit {
            break;
        }
    }
    apply_moves(batches, &mut tx).await?;
    // A task that ended here may have been the one holding up its instance's next task, which
    // another node may be the one to claim.
    if settled_any {
        notify_work(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(claimed)
}

async fn is_blocked(conn: &mut PgConnection, instance_id: &str, t: &Work) -> Result<bool> {
    Ok(sqlx::query_scalar(BLOCKED)
        .bind(instance_id)
        .bind(&t.id)
        .bind(t.seq)
        .fetch_one(conn)
        .await?)
}

/// CancelTasks ([`crate::TaskStore::cancel_tasks`]). The children's rows are locked first (waiting
/// for a claim that holds them, which then has leased them), their batches at the end.
pub(super) async fn cancel_tasks(
    s: &PgStore,
    account_id: &str,
    task_ids: &[String],
    now_ms: i64,
) -> Result<CancelOutcome> {
    let mut tx = s.pool.begin().await?;
    let mut out = CancelOutcome::default();
    let levels: Vec<(String, i64)> = sqlx::query_as(
        "SELECT id, level::BIGINT FROM tasks WHERE id = ANY($1) AND account_id = $2 \
         AND level IN (1, 2)",
    )
    .bind(task_ids)
    .bind(account_id)
    .fetch_all(&mut *tx)
    .await?;
    let level_of: std::collections::HashMap<&str, i64> =
        levels.iter().map(|(id, l)| (id.as_str(), *l)).collect();
    out.unknown = task_ids
        .iter()
        .filter(|id| !level_of.contains_key(id.as_str()))
        .cloned()
        .collect();
    if !out.unknown.is_empty() {
        return Ok(out);
    }
    let (batches, children): (Vec<String>, Vec<String>) = {
        let (b, c): (Vec<_>, Vec<_>) = levels.iter().partition(|(_, l)| *l == 1);
        (
            b.into_iter().map(|(id, _)| id.clone()).collect(),
            c.into_iter().map(|(id, _)| id.clone()).collect(),
        )
    };
    let sql = format!(
        "SELECT {WORK_COLUMNS} FROM tasks WHERE parent_id = ANY($1) OR id = ANY($2) \
         ORDER BY seq FOR UPDATE"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&batches)
        .bind(&children)
        .fetch_all(&mut *tx)
        .await?;
    let code = TaskErrorCode::Cancelled;
    let skipped_msg = format!("{} It had not started.", code.default_message());
    let mut moves = BatchMoves::default();
    for row in &rows {
        let t = work(row)?;
        match t.status {
            TaskStatus::Waiting => {
                let error = Some((code, skipped_msg.as_str()));
                let to = TaskStatus::Skipped;
                end(&mut tx, &mut moves, &t, to, None, error, now_ms).await?;
                out.skipped += 1;
            }
            TaskStatus::Processing if t.task_type.is_interruptible() => {
                sqlx::query("UPDATE tasks SET cancel_requested = TRUE WHERE id = $1")
                    .bind(&t.id)
                    .execute(&mut *tx)
                    .await?;
                out.interrupting += 1;
                out.interrupted.push(t.id.clone());
            }
            TaskStatus::Processing => out.finishing += 1,
            _ => out.ended += 1,
        }
    }
    apply_moves(moves, &mut tx).await?;
    tx.commit().await?;
    Ok(out)
}

pub(super) async fn complete(
    s: &PgStore,
    task_id: &str,
    attempt: i64,
    outcome: &Outcome,
    now_ms: i64,
) -> Result<bool> {
    let mut tx = s.pool.begin().await?;
    // Waits for a sweeper that holds the row; if it re-queued or failed the task meanwhile,
    // the re-check of the condition on the new row version finds nothing.
    let sql = format!(
        "SELECT {WORK_COLUMNS} FROM tasks WHERE id = $1 AND attempt = $2 \
         AND run_state = 'leased' FOR UPDATE"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(task_id)
        .bind(attempt)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        // Not the current attempt (or not running): write nothing.
        return Ok(false);
    };
    let t = work(&row)?;
    let previous = t.previous()?;
    let mut batches = BatchMoves::default();
    let after = match outcome {
        Outcome::Finished { result } => {
            let to = TaskStatus::Finished;
            end(&mut tx, &mut batches, &t, to, Some(result), None, now_ms).await?;
            instance::after_success(t.task_type, previous)
        }
        Outcome::Failed { code, message } => {
            let error = Some((*code, message.as_str()));
            end(
                &mut tx,
                &mut batches,
                &t,
                TaskStatus::Failed,
                None,
                error,
                now_ms,
            )
            .await?;
            instance::after_failed(t.task_type, previous, *code)
        }
    };
    if let Some(instance_id) = &t.instance_id {
        if instance::moves_status(t.task_type) {
            settle_instance(&mut tx, instance_id, after, now_ms).await?;
        }
        if matches!(outcome, Outcome::Finished { .. }) {
            move_to_new_image(&mut Pg::Tx(&mut tx), t.task_type, &t.param, instance_id).await?;
        }
    }
    apply_moves(batches, &mut tx).await?;
    // The instance's next task may start now.
    notify_work(&mut tx).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn sweep_expired(
    s: &PgStore,
    now_ms: i64,
    max_attempts: i64,
    retry_delay_ms: i64,
) -> Result<Vec<Swept>> {
    let mut tx = s.pool.begin().await?;
    // A lease another node's sweeper is handling, or whose worker is completing or
    // heartbeating it right now, is left to that transaction.
    let sql = format!(
        "SELECT {WORK_COLUMNS}, cancel_requested FROM tasks WHERE run_state = 'leased' \
         AND lease_ms < $1 ORDER BY seq FOR UPDATE SKIP LOCKED"
    );
    let expired = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
    let mut batches = BatchMoves::default();
    let mut swept = Vec::with_capacity(expired.len());
    for row in &expired {
        let t = work(row)?;
        let cancel_requested: bool = row.try_get("cancel_requested")?;
        match expired_end(t.task_type, t.attempt, max_attempts, cancel_requested) {
            None => {
                sqlx::query(
                    "UPDATE tasks SET run_state = 'queued', not_before_ms = $1, owner = NULL, \
                     lease_ms = NULL WHERE id = $2",
                )
                .bind(now_ms.saturating_add(retry_delay_ms))
                .bind(&t.id)
                .execute(&mut *tx)
                .await?;
                swept.push(Swept::Requeued {
                    task_id: t.id,
                    attempt: t.attempt,
                });
            }
            Some((code, message)) => {
                let error = Some((code, message.as_str()));
                end(
                    &mut tx,
                    &mut batches,
                    &t,
                    TaskStatus::Failed,
                    None,
                    error,
                    now_ms,
                )
                .await?;
                if let Some(instance_id) = &t.instance_id
                    && instance::moves_status(t.task_type)
                {
                    let after = instance::after_failure(t.task_type, t.previous()?);
                    settle_instance(&mut tx, instance_id, after, now_ms).await?;
                }
                swept.push(Swept::Failed {
                    task_id: t.id,
                    code,
                });
            }
        }
    }
    apply_moves(batches, &mut tx).await?;
    if !swept.is_empty() {
        notify_work(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(swept)
}

/// Ends a task in terminal status `to` and records the move for its batch.
async fn end(
    conn: &mut PgConnection,
    batches: &mut BatchMoves,
    t: &Work,
    to: TaskStatus,
    result: Option<&str>,
    error: Option<(TaskErrorCode, &str)>,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE tasks SET status = $1, result = $2, error_code = $3, error_msg = $4, \
         finish_ms = $5, run_state = 'done', lease_ms = NULL WHERE id = $6",
    )
    .bind(to.as_str())
    .bind(result)
    .bind(error.map(|(code, _)| code.as_str()))
    .bind(error.map(|(_, msg)| msg))
    .bind(now_ms)
    .bind(&t.id)
    .execute(&mut *conn)
    .await?;
    backups::settle(
        &mut Pg::Tx(&mut *conn),
        &t.id,
        t.task_type,
        to,
        result,
        now_ms,
    )
    .await?;
    batches.record(t.parent_id.as_deref(), t.status, to, now_ms);
    Ok(())
}

/// Moves an instance to where a finished attempt leaves it (no write when it is there already).
async fn settle_instance(
    conn: &mut PgConnection,
    instance_id: &str,
    status: InstanceStatus,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE instances SET status = $1, modified_ms = $2 WHERE id = $3 AND status <> $1",
    )
    .bind(status.as_str())
    .bind(now_ms)
    .bind(instance_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Skips the Waiting children of batch `parent_id` with `MaxErrorsExceeded`; returns how many. A
/// child another node is claiming right now is passed over (never waited for: the batch's lock
/// is held); that node's own end of transaction skips what is left.
async fn skip_waiting(conn: &mut PgConnection, parent_id: &str, now_ms: i64) -> Result<i64> {
    let code = TaskErrorCode::MaxErrorsExceeded;
    let skipped: Vec<(String, String)> = sqlx::query_as(
        "UPDATE tasks SET status = 'Skipped', error_code = $1, error_msg = $2, finish_ms = $3, \
         run_state = 'done', lease_ms = NULL WHERE id IN (SELECT id FROM tasks \
         WHERE parent_id = $4 AND status = 'Waiting' AND run_state = 'queued' \
         FOR UPDATE SKIP LOCKED) RETURNING id, task_type",
    )
    .bind(code.as_str())
    .bind(code.default_message())
    .bind(now_ms)
    .bind(parent_id)
    .fetch_all(&mut *conn)
    .await?;
    for (id, task_type) in &skipped {
        let task_type: TaskType = parse("task type", task_type)?;
        let to = TaskStatus::Skipped;
        backups::settle(&mut Pg::Tx(&mut *conn), id, task_type, to, None, now_ms).await?;
    }
    Ok(skipped.len() as i64)
}

/// Applies the children's moves of one transaction at its end: each batch row is locked once,
/// in id order (so two nodes ending children of the same batches queue up instead of
/// deadlocking), and its status is derived from the counters read under that lock, by
/// [`cloudphone_core::BatchCounts::status`] as on SQLite.
///
/// A claim that would take a batch past its `MaxConcurrency` (another node leased children of
/// it at the same moment) fails with [`StoreError::Overbooked`], and is rolled back and tried
/// again. A batch whose failures go past its `MaxErrors` has its Waiting children Skipped with
/// `MaxErrorsExceeded` here, in the same transaction as the failure that went past it.
async fn apply_moves(moves: BatchMoves, conn: &mut PgConnection) -> Result<()> {
    for (parent_id, change) in moves.into_changes() {
        let row = sqlx::query(
            "SELECT c_waiting, c_processing, c_finished, c_failed, c_skipped, max_concurrency, \
             max_errors FROM tasks WHERE id = $1 AND level = 1 FOR UPDATE",
        )
        .bind(&parent_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::Corrupt(format!("batch {parent_id} is missing")));
        };
        let limits = BatchLimits {
            max_concurrency: row.try_get("max_concurrency")?,
            max_errors: row.try_get("max_errors")?,
        };
        let mut counts = rows::batch_counts(&row)?.add(&change.delta);
        if change.delta.processing > 0
            && limits
                .max_concurrency
                .is_some_and(|max| counts.processing > max)
        {
            return Err(StoreError::Overbooked);
        }
        if counts.waiting > 0 && limits.errors_exceeded(counts.failed) {
            let n = skip_waiting(conn, &parent_id, change.at_ms).await?;
            counts.waiting -= n;
            counts.skipped += n;
        }
        let status = counts.status();
        sqlx::query(
            "UPDATE tasks SET c_waiting = $1, c_processing = $2, c_finished = $3, \
             c_failed = $4, c_skipped = $5, status = $6, \
             finish_ms = CASE WHEN $7 THEN COALESCE(finish_ms, $8) ELSE NULL END \
             WHERE id = $9",
        )
        .bind(counts.waiting)
        .bind(counts.processing)
        .bind(counts.finished)
        .bind(counts.failed)
        .bind(counts.skipped)
        .bind(status.as_str())
        .bind(status.is_terminal())
        .bind(change.at_ms)
        .bind(&parent_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Locks the instance's row until the transaction ends and returns its status, `None` if there
/// is no such instance. Every transaction that leases a task of the instance or moves its
/// status takes this lock first, so the holder reads the latest committed status and, in its
/// next statements, every committed lease.
pub(super) async fn lock_instance(
    conn: &mut PgConnection,
    instance_id: &str,
) -> Result<Option<(InstanceStatus, Phone)>> {
    let row = sqlx::query(
        "SELECT i.status, i.account_id, i.name, i.image_id, i.spec, i.host, i.moving_to, \
         (SELECT hp.port FROM host_ports hp WHERE hp.instance_id = i.id AND hp.host = i.host) \
         AS port, \
         (SELECT hp.port FROM host_ports hp WHERE hp.instance_id = i.id AND hp.host = i.moving_to) \
         AS moving_port \
         FROM instances i WHERE i.id = $1 FOR UPDATE OF i",
    )
    .bind(instance_id)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let status: String = row.try_get("status")?;
    let phone = Phone {
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        image_id: row.try_get("image_id")?,
        spec: row.try_get("spec")?,
        host: row.try_get("host")?,
        adb_port: port(row.try_get("port")?),
        moving_to: row.try_get("moving_to")?,
        moving_port: port(row.try_get("moving_port")?),
    };
    Ok(Some((parse("instance status", &status)?, phone)))
}

/// A stored port (ports are 1..=65535; anything else is none).
fn port(p: Option<i32>) -> Option<u16> {
    p.and_then(|p| u16::try_from(p).ok())
}

/// Moves an instance to `status` at `now_ms`.
pub(super) async fn set_instance_status(
    conn: &mut PgConnection,
    instance_id: &str,
    status: InstanceStatus,
    now_ms: i64,
) -> Result<()> {
    sqlx::query("UPDATE instances SET status = $1, modified_ms = $2 WHERE id = $3")
        .bind(status.as_str())
        .bind(now_ms)
        .bind(instance_id)
        .execute(conn)
        .await?;
    Ok(())
}
