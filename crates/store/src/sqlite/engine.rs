//! The engine's side of the task table (design.md §5): claiming runnable tasks with their
//! precondition check, leases and heartbeats, fenced completion, the sweeper, and the batch
//! counters every child transition updates in the same transaction.

use cloudphone_core::instance::{self, Plan};
use cloudphone_core::{InstanceStatus, TaskErrorCode, TaskStatus, TaskType};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::SqliteStore;
use super::rows::{self, parse};
use crate::moves::BatchMoves;
use crate::{Claim, Completion, Outcome, Phone, Result, StoreError, Swept};

/// Runnable tasks in acceptance order: queued, due, and first among the unfinished tasks of
/// their instance (so no two candidates share an instance), with their instance's status (NULL
/// when the instance is gone or the task has none).
const CANDIDATES: &str = "SELECT t.id, t.task_type, t.status, t.instance_id, t.param, \
     t.attempt, t.prev_status, t.parent_id, i.status AS instance_status, \
     i.account_id AS phone_account, i.name AS phone_name, i.image_id AS phone_image, \
     i.spec AS phone_spec FROM tasks t \
     LEFT JOIN instances i ON i.id = t.instance_id \
     WHERE t.run_state = 'queued' AND t.not_before_ms <= ? \
     AND NOT EXISTS (SELECT 1 FROM tasks u WHERE u.instance_id = t.instance_id \
                     AND u.run_state != 'done' AND u.seq < t.seq) \
     ORDER BY t.seq LIMIT ?";

/// Rows per set-based UPDATE (a few parameters a row, far below SQLite's limit).
const ROWS_PER_UPDATE: usize = 500;

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
    let mut moves = BatchMoves::default();
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
        // Decided here, written below in a few set-based statements: a statement per task
        // would cost a round trip to the database thread each, which dominates under load.
        let mut leases: Vec<(String, InstanceStatus)> = Vec::new();
        let mut phones: Vec<(String, InstanceStatus, i64)> = Vec::new();
        // A task that ends at its precondition check lets the next task of its instance run:
        // look again when one did and there is room left.
        let mut settled = false;
        for row in &candidates {
            let t = work(row)?;
            let previous = if t.attempt == 0 {
                let current: Option<String> = row.try_get("instance_status")?;
                let current = current
                    .map(|c| parse::<InstanceStatus>("instance status", &c))
                    .transpose()?
                    .filter(|_| t.instance_id.is_some());
                match current.map(|c| (c, instance::plan(t.task_type, c))) {
                    Some((current, Plan::Run { during })) => {
                        if during != current {
                            let id = t.instance_id.clone().unwrap_or_default();
                            phones.push((id, during, now_ms));
                        }
                        current
                    }
                    Some((_, Plan::Skip)) => {
                        let to = TaskStatus::Skipped;
                        end(&mut w.tx, &mut moves, &t, to, None, None, now_ms).await?;
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
                        let to = TaskStatus::Failed;
                        end(&mut w.tx, &mut moves, &t, to, None, error, now_ms).await?;
                        settled = true;
                        continue;
                    }
                }
            } else {
                // A retry resumes from the status the first attempt left: no new check.
                t.previous()?
            };
            leases.push((t.id.clone(), previous));
            moves.record(
                t.parent_id.as_deref(),
                t.status,
                TaskStatus::Processing,
                now_ms,
            );
            claimed.push(Claim {
                task_id: t.id,
                task_type: t.task_type,
                instance_id: t.instance_id.unwrap_or_default(),
                param: t.param,
                attempt: t.attempt + 1,
                previous_status: previous,
                phone: phone(row)?,
            });
        }
        lease_tasks(&mut w.tx, &leases, owner, lease_until).await?;
        set_instance_statuses(&mut w.tx, &phones).await?;
        if !settled || claimed.len() >= limit {
            break;
        }
    }
    apply_moves(moves, &mut w.tx).await?;
    w.commit().await?;
    Ok(claimed)
}

/// The phone columns of a candidate row (NULL when the instance is gone).
fn phone(row: &SqliteRow) -> Result<Option<Phone>> {
    let Some(account_id) = row.try_get::<Option<String>, _>("phone_account")? else {
        return Ok(None);
    };
    Ok(Some(Phone {
        account_id,
        name: row.try_get("phone_name")?,
        image_id: row.try_get("phone_image")?,
        spec: row.try_get("phone_spec")?,
    }))
}

/// Leases tasks (id, the instance status before the first attempt) to `owner`.
async fn lease_tasks(
    conn: &mut SqliteConnection,
    leases: &[(String, InstanceStatus)],
    owner: &str,
    lease_until: i64,
) -> Result<()> {
    for chunk in leases.chunks(ROWS_PER_UPDATE) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "UPDATE tasks SET status = 'Processing', attempt = attempt + 1, run_state = 'leased', \
             owner = ",
        );
        qb.push_bind(owner)
            .push(", lease_ms = ")
            .push_bind(lease_until)
            .push(", prev_status = v.column2 FROM (");
        qb.push_values(chunk, |mut row, (id, previous)| {
            row.push_bind(id).push_bind(previous.as_str());
        });
        qb.push(") AS v WHERE tasks.id = v.column1");
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Moves instances (id, status, when) to their new status, skipping any already there.
async fn set_instance_statuses(
    conn: &mut SqliteConnection,
    phones: &[(String, InstanceStatus, i64)],
) -> Result<()> {
    for chunk in phones.chunks(ROWS_PER_UPDATE) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "UPDATE instances SET status = v.column2, modified_ms = v.column3 FROM (",
        );
        qb.push_values(chunk, |mut row, (id, status, at)| {
            row.push_bind(id).push_bind(status.as_str()).push_bind(*at);
        });
        qb.push(") AS v WHERE instances.id = v.column1 AND instances.status != v.column2");
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
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

/// Ends every attempt of `items` in one transaction (group commit): each exactly as a single
/// completion would, fenced by its attempt; the rows are written by a few set-based statements
/// and each batch row once.
pub(super) async fn complete_many(s: &SqliteStore, items: &[Completion]) -> Result<Vec<bool>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let mut w = s.write().await?;
    let current = leased_rows(&mut w.tx, items).await?;
    let mut moves = BatchMoves::default();
    let mut done = Vec::with_capacity(items.len());
    let mut ends: Vec<Ending> = Vec::new();
    // Ids already ending in this group: a repeated item is refused like any stale one.
    let mut ending = std::collections::HashSet::new();
    let mut phones: Vec<(String, InstanceStatus, i64)> = Vec::new();
    for item in items {
        // Fenced: only the current attempt of a running task, and only once.
        let Some(t) = current
            .get(&item.task_id)
            .filter(|t| t.attempt == item.attempt)
            .filter(|t| ending.insert(t.id.clone()))
        else {
            done.push(false);
            continue;
        };
        let previous = t.previous()?;
        let (to, after) = match &item.outcome {
            Outcome::Finished { .. } => (
                TaskStatus::Finished,
                instance::after_success(t.task_type, previous),
            ),
            Outcome::Failed { .. } => (
                TaskStatus::Failed,
                instance::after_failure(t.task_type, previous),
            ),
        };
        moves.record(t.parent_id.as_deref(), t.status, to, item.now_ms);
        if let Some(instance_id) = &t.instance_id {
            phones.push((instance_id.clone(), after, item.now_ms));
        }
        ends.push(Ending {
            id: t.id.clone(),
            to,
            item,
        });
        done.push(true);
    }
    end_tasks(&mut w.tx, &ends).await?;
    for e in &ends {
        let t = &current[&e.id];
        let result = match &e.item.outcome {
            Outcome::Finished { result } => Some(result.as_str()),
            Outcome::Failed { .. } => None,
        };
        super::backups::settle(&mut w.tx, &t.id, t.task_type, e.to, result, e.item.now_ms).await?;
        // A phone moved to a new image runs it from now on; in the same transaction as the
        // task's end, so the two never disagree.
        if let (TaskType::UpdateGroupImage, TaskStatus::Finished, Some(instance_id)) =
            (t.task_type, e.to, &t.instance_id)
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
    set_instance_statuses(&mut w.tx, &phones).await?;
    apply_moves(moves, &mut w.tx).await?;
    w.commit().await?;
    Ok(done)
}

/// A task to end, and how.
struct Ending<'a> {
    id: String,
    to: TaskStatus,
    item: &'a Completion,
}

/// The leased tasks among those `items` name, by id.
async fn leased_rows(
    conn: &mut SqliteConnection,
    items: &[Completion],
) -> Result<std::collections::HashMap<String, Work>> {
    let mut found = std::collections::HashMap::with_capacity(items.len());
    for chunk in items.chunks(ROWS_PER_UPDATE) {
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {WORK_COLUMNS} FROM tasks WHERE run_state = 'leased' AND id IN ("
        ));
        let mut ids = qb.separated(", ");
        for item in chunk {
            ids.push_bind(&item.task_id);
        }
        qb.push(")");
        for row in qb.build().fetch_all(&mut *conn).await? {
            let t = work(&row)?;
            found.insert(t.id.clone(), t);
        }
    }
    Ok(found)
}

/// Writes the terminal status, result or error, and finish time of each ending task.
async fn end_tasks(conn: &mut SqliteConnection, ends: &[Ending<'_>]) -> Result<()> {
    for chunk in ends.chunks(ROWS_PER_UPDATE) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "UPDATE tasks SET status = v.column2, result = v.column3, error_code = v.column4, \
             error_msg = v.column5, finish_ms = v.column6, run_state = 'done', lease_ms = NULL \
             FROM (",
        );
        qb.push_values(chunk, |mut row, e| {
            let (result, code, message) = match &e.item.outcome {
                Outcome::Finished { result } => (Some(result.as_str()), None, None),
                Outcome::Failed { code, message } => {
                    (None, Some(code.as_str()), Some(message.as_str()))
                }
            };
            row.push_bind(&e.id)
                .push_bind(e.to.as_str())
                .push_bind(result)
                .push_bind(code)
                .push_bind(message)
                .push_bind(e.item.now_ms);
        });
        qb.push(") AS v WHERE tasks.id = v.column1");
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
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
    let mut moves = BatchMoves::default();
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
            let to = TaskStatus::Failed;
            end(&mut w.tx, &mut moves, &t, to, None, error, now_ms).await?;
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
    apply_moves(moves, &mut w.tx).await?;
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

/// Ends a task in terminal status `to` and records the move for its batch.
async fn end(
    conn: &mut SqliteConnection,
    moves: &mut BatchMoves,
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
    moves.record(t.parent_id.as_deref(), t.status, to, now_ms);
    Ok(())
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

/// Applies the children's moves of one transaction to their batches: counters, status, and
/// the finish time once a batch is terminal; one read and one write per batch.
async fn apply_moves(moves: BatchMoves, conn: &mut SqliteConnection) -> Result<()> {
    for (parent_id, change) in moves.into_changes() {
        let row = sqlx::query(
            "SELECT c_waiting, c_processing, c_finished, c_failed, c_skipped FROM tasks \
             WHERE id = ? AND level = 1",
        )
        .bind(&parent_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::Corrupt(format!("batch {parent_id} is missing")));
        };
        let counts = rows::batch_counts(&row)?.add(&change.delta);
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
        .bind(change.at_ms)
        .bind(&parent_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
