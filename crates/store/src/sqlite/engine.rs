//! The engine's side of the task table (design.md §5): claiming runnable tasks with their
//! precondition check, leases and heartbeats, fenced completion, the sweeper, and the batch
//! counters every child transition updates in the same transaction.

use cloudphone_core::instance::{self, Plan};
use cloudphone_core::{BatchCounts, InstanceStatus, TaskErrorCode, TaskStatus, TaskType};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::SqliteStore;
use super::fleet::{instance_status, set_instance_status};
use super::rows::{self, parse};
use crate::{Claim, Outcome, Result, StoreError, Swept};

/// Runnable tasks in acceptance order: queued, due, and first among the unfinished tasks of
/// their instance.
const CANDIDATES: &str = "SELECT t.id, t.task_type, t.status, t.instance_id, t.param, \
     t.attempt, t.prev_status, t.parent_id FROM tasks t \
     WHERE t.run_state = 'queued' AND t.not_before_ms <= ? \
     AND NOT EXISTS (SELECT 1 FROM tasks u WHERE u.instance_id = t.instance_id \
                     AND u.run_state != 'done' AND u.seq < t.seq) \
     ORDER BY t.seq LIMIT ?";

/// The columns of a task the engine works with.
struct Work {
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
    "id, task_type, status, instance_id, param, attempt, prev_status, parent_id";

fn work(row: &SqliteRow) -> Result<Work> {
    let prev_status: Option<String> = row.try_get("prev_status")?;
    Ok(Work {
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

pub(super) async fn claim(
    s: &SqliteStore,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<Claim>> {
    let mut claimed = Vec::new();
    if limit == 0 {
        return Ok(claimed);
    }
    let lease_until = now_ms.saturating_add(lease_ms);
    let mut w = s.write().await?;
    loop {
        let want = i64::try_from(limit - claimed.len()).unwrap_or(i64::MAX);
        let candidates = sqlx::query(CANDIDATES)
            .bind(now_ms)
            .bind(want)
            .fetch_all(&mut *w.tx)
            .await?;
        if candidates.is_empty() {
            break;
        }
        // A task that ends at its precondition check lets the next task of its instance run:
        // look again when one did and there is room left.
        let mut settled = false;
        for row in &candidates {
            let t = work(row)?;
            let previous = if t.attempt == 0 {
                let current = match &t.instance_id {
                    Some(id) => instance_status(&mut w.tx, id).await?,
                    None => None,
                };
                match current.map(|c| (c, instance::plan(t.task_type, c))) {
                    Some((current, Plan::Run { during })) => {
                        if during != current {
                            let id = t.instance_id.as_deref().unwrap_or_default();
                            set_instance_status(&mut w.tx, id, during, now_ms).await?;
                        }
                        current
                    }
                    Some((_, Plan::Skip)) => {
                        end(&mut w.tx, &t, TaskStatus::Skipped, None, None, now_ms).await?;
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
                        end(&mut w.tx, &t, TaskStatus::Failed, None, error, now_ms).await?;
                        settled = true;
                        continue;
                    }
                }
            } else {
                // A retry resumes from the status the first attempt left: no new check.
                t.previous()?
            };
            sqlx::query(
                "UPDATE tasks SET status = 'Processing', attempt = attempt + 1, owner = ?, \
                 lease_ms = ?, run_state = 'leased', prev_status = ? WHERE id = ?",
            )
            .bind(owner)
            .bind(lease_until)
            .bind(previous.as_str())
            .bind(&t.id)
            .execute(&mut *w.tx)
            .await?;
            move_child(
                &mut w.tx,
                t.parent_id.as_deref(),
                t.status,
                TaskStatus::Processing,
                now_ms,
            )
            .await?;
            claimed.push(Claim {
                task_id: t.id,
                task_type: t.task_type,
                instance_id: t.instance_id.unwrap_or_default(),
                param: t.param,
                attempt: t.attempt + 1,
                previous_status: previous,
            });
        }
        if !settled || claimed.len() >= limit {
            break;
        }
    }
    w.commit().await?;
    Ok(claimed)
}

pub(super) async fn heartbeat(
    s: &SqliteStore,
    task_id: &str,
    attempt: i64,
    lease_until_ms: i64,
) -> Result<bool> {
    let _turn = s.turn().await;
    let done = sqlx::query(
        "UPDATE tasks SET lease_ms = ? WHERE id = ? AND attempt = ? AND run_state = 'leased'",
    )
    .bind(lease_until_ms)
    .bind(task_id)
    .bind(attempt)
    .execute(&s.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn complete(
    s: &SqliteStore,
    task_id: &str,
    attempt: i64,
    outcome: &Outcome,
    now_ms: i64,
) -> Result<bool> {
    let mut w = s.write().await?;
    let sql = format!(
        "SELECT {WORK_COLUMNS} FROM tasks WHERE id = ? AND attempt = ? AND run_state = 'leased'"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(task_id)
        .bind(attempt)
        .fetch_optional(&mut *w.tx)
        .await?;
    let Some(row) = row else {
        // Not the current attempt (or not running): write nothing.
        return Ok(false);
    };
    let t = work(&row)?;
    let previous = t.previous()?;
    let after = match outcome {
        Outcome::Finished { result } => {
            end(
                &mut w.tx,
                &t,
                TaskStatus::Finished,
                Some(result),
                None,
                now_ms,
            )
            .await?;
            instance::after_success(t.task_type, previous)
        }
        Outcome::Failed { code, message } => {
            let error = Some((*code, message.as_str()));
            end(&mut w.tx, &t, TaskStatus::Failed, None, error, now_ms).await?;
            instance::after_failure(t.task_type, previous)
        }
    };
    if let Some(instance_id) = &t.instance_id {
        settle_instance(&mut w.tx, instance_id, after, now_ms).await?;
        // A phone moved to a new image runs it from now on; in the same transaction as the
        // task's end, so the two never disagree.
        if t.task_type == TaskType::UpdateGroupImage && matches!(outcome, Outcome::Finished { .. })
        {
            sqlx::query(
                "UPDATE instances SET image_id = \
                 (SELECT json_extract(param, '$.ImageId') FROM tasks WHERE id = ?) \
                 WHERE id = ? AND (SELECT json_extract(param, '$.ImageId') FROM tasks WHERE id = ?) \
                 IS NOT NULL",
            )
            .bind(&t.id)
            .bind(instance_id)
            .bind(&t.id)
            .execute(&mut *w.tx)
            .await?;
        }
    }
    w.commit().await?;
    Ok(true)
}

pub(super) async fn sweep_expired(
    s: &SqliteStore,
    now_ms: i64,
    max_attempts: i64,
    retry_delay_ms: i64,
) -> Result<Vec<Swept>> {
    let mut w = s.write().await?;
    let sql = format!(
        "SELECT {WORK_COLUMNS} FROM tasks WHERE seq IN \
         (SELECT seq FROM tasks WHERE run_state = 'leased' AND lease_ms < ?) ORDER BY seq"
    );
    let expired = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now_ms)
        .fetch_all(&mut *w.tx)
        .await?;
    let mut swept = Vec::with_capacity(expired.len());
    for row in &expired {
        let t = work(row)?;
        if t.task_type.is_idempotent() && t.attempt < max_attempts {
            sqlx::query(
                "UPDATE tasks SET run_state = 'queued', not_before_ms = ?, owner = NULL, \
                 lease_ms = NULL WHERE id = ?",
            )
            .bind(now_ms.saturating_add(retry_delay_ms))
            .bind(&t.id)
            .execute(&mut *w.tx)
            .await?;
            swept.push(Swept::Requeued {
                task_id: t.id,
                attempt: t.attempt,
            });
        } else {
            let code = if t.task_type.is_idempotent() {
                TaskErrorCode::AttemptsExhausted
            } else {
                TaskErrorCode::InstanceUnreachable
            };
            let error = Some((code, code.default_message()));
            end(&mut w.tx, &t, TaskStatus::Failed, None, error, now_ms).await?;
            if let Some(instance_id) = &t.instance_id {
                let after = instance::after_failure(t.task_type, t.previous()?);
                settle_instance(&mut w.tx, instance_id, after, now_ms).await?;
            }
            swept.push(Swept::Failed {
                task_id: t.id,
                code,
            });
        }
    }
    w.commit().await?;
    Ok(swept)
}

pub(super) async fn expire_all_leases(s: &SqliteStore) -> Result<u64> {
    let _turn = s.turn().await;
    let done = sqlx::query("UPDATE tasks SET lease_ms = 0 WHERE run_state = 'leased'")
        .execute(&s.pool)
        .await?;
    Ok(done.rows_affected())
}

/// Ends a task in terminal status `to` and updates its batch.
async fn end(
    conn: &mut SqliteConnection,
    t: &Work,
    to: TaskStatus,
    result: Option<&str>,
    error: Option<(TaskErrorCode, &str)>,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE tasks SET status = ?, result = ?, error_code = ?, error_msg = ?, finish_ms = ?, \
         run_state = 'done', lease_ms = NULL WHERE id = ?",
    )
    .bind(to.as_str())
    .bind(result)
    .bind(error.map(|(code, _)| code.as_str()))
    .bind(error.map(|(_, msg)| msg))
    .bind(now_ms)
    .bind(&t.id)
    .execute(&mut *conn)
    .await?;
    super::backups::settle(conn, &t.id, t.task_type, to, result, now_ms).await?;
    move_child(conn, t.parent_id.as_deref(), t.status, to, now_ms).await
}

/// Moves an instance to where a finished attempt leaves it (no write when it is there already).
async fn settle_instance(
    conn: &mut SqliteConnection,
    instance_id: &str,
    status: InstanceStatus,
    now_ms: i64,
) -> Result<()> {
    sqlx::query("UPDATE instances SET status = ?, modified_ms = ? WHERE id = ? AND status != ?")
        .bind(status.as_str())
        .bind(now_ms)
        .bind(instance_id)
        .bind(status.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// Applies one child's move from `from` to `to` to its batch: counters, status, and the finish
/// time once the batch is terminal.
async fn move_child(
    conn: &mut SqliteConnection,
    parent_id: Option<&str>,
    from: TaskStatus,
    to: TaskStatus,
    now_ms: i64,
) -> Result<()> {
    let Some(parent_id) = parent_id else {
        return Ok(());
    };
    if from == to {
        return Ok(());
    }
    let row = sqlx::query(
        "SELECT c_waiting, c_processing, c_finished, c_failed, c_skipped FROM tasks \
         WHERE id = ? AND level = 1",
    )
    .bind(parent_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Err(StoreError::Corrupt(format!("batch {parent_id} is missing")));
    };
    let counts = rows::batch_counts(&row)?.add(&BatchCounts::delta(from, to));
    let status = counts.status();
    sqlx::query(
        "UPDATE tasks SET c_waiting = ?, c_processing = ?, c_finished = ?, c_failed = ?, \
         c_skipped = ?, status = ?, \
         finish_ms = CASE WHEN ? THEN COALESCE(finish_ms, ?) ELSE NULL END WHERE id = ?",
    )
    .bind(counts.waiting)
    .bind(counts.processing)
    .bind(counts.finished)
    .bind(counts.failed)
    .bind(counts.skipped)
    .bind(status.as_str())
    .bind(status.is_terminal())
    .bind(now_ms)
    .bind(parent_id)
    .execute(conn)
    .await?;
    Ok(())
}
