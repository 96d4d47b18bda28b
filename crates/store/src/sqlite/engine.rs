//! The engine's side of the task table (docs/design.md §5): claiming runnable tasks with their
//! precondition check, leases and heartbeats, fenced completion, the sweeper, and the batch
//! counters every child transition updates in the same transaction.

use cloudphone_core::instance::{self, Plan};
use cloudphone_core::{BatchLimits, InstanceStatus, TaskErrorCode, TaskStatus, TaskType};
use rusqlite::{Connection, Row};

use super::conn::{Lite, Run, now, query, sql};
use super::rows;
use crate::areas::backups;
use crate::areas::engine::{ShareCount, expired_end, move_to_new_image};
use crate::moves::BatchMoves;
use crate::sql::conn::parse;
use crate::sql::v;
use crate::{
    AccountShares, CancelOutcome, Claim, Completion, Outcome, Phone, Result, StoreError, Swept,
};

/// The candidate query with `$passing_over` inserted among its conditions (see [`CANDIDATES`]).
macro_rules! candidates {
    ($passing_over:literal) => {
        concat!(
            "SELECT t.id, t.task_type, t.status, t.instance_id, t.param, \
             t.attempt, t.prev_status, t.parent_id, i.status AS instance_status, \
             i.account_id AS phone_account, i.name AS phone_name, i.image_id AS phone_image, \
             i.spec AS phone_spec, p.max_concurrency, p.c_processing, t.account_id, \
             i.host AS phone_host, i.moving_to AS phone_moving_to, \
             (SELECT hp.port FROM host_ports hp WHERE hp.instance_id = i.id AND hp.host = i.host) \
             AS phone_port, \
             (SELECT hp.port FROM host_ports hp \
              WHERE hp.instance_id = i.id AND hp.host = i.moving_to) AS phone_moving_port \
             FROM tasks t \
             LEFT JOIN instances i ON i.id = t.instance_id \
             LEFT JOIN tasks p ON p.id = t.parent_id \
             WHERE t.run_state = 'queued' AND t.not_before_ms <= ? \
             AND NOT EXISTS (SELECT 1 FROM tasks u WHERE u.instance_id = t.instance_id \
                             AND u.run_state != 'done' AND u.seq < t.seq) \
             AND (p.max_concurrency IS NULL OR t.status != 'Waiting' \
                  OR p.c_processing < p.max_concurrency) \
             AND (p.max_errors IS NULL OR t.status != 'Waiting' OR p.c_failed <= p.max_errors) ",
            $passing_over,
            "ORDER BY t.seq LIMIT ?"
        )
    };
}

/// Runnable tasks in acceptance order: queued, due, and first among the unfinished tasks of
/// their instance (so no two candidates share an instance), with their instance's status (NULL
/// when the instance is gone or the task has none).
const CANDIDATES: &str = candidates!("");

/// [`CANDIDATES`] passing over the tasks of the accounts in a JSON array (those at their share
/// of the node's slots, docs/design.md §5.10). A statement of its own, so that the claim of a
/// node where no account is at its share runs the very statement (and plan) it always did.
const CANDIDATES_PASSING_OVER: &str =
    candidates!("AND t.account_id NOT IN (SELECT value FROM json_each(?)) ");

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

/// A row whose first columns are [`WORK_COLUMNS`], in that order.
fn work(row: &Row<'_>) -> Result<Work> {
    let prev_status = row.get_ref(6)?.as_str_or_null()?;
    Ok(Work {
        id: row.get(0)?,
        task_type: parse("task type", row.get_ref(1)?.as_str()?)?,
        status: parse("task status", row.get_ref(2)?.as_str()?)?,
        instance_id: row.get(3)?,
        param: row.get(4)?,
        attempt: row.get(5)?,
        prev_status: prev_status
            .map(|s| parse("previous instance status", s))
            .transpose()?,
        parent_id: row.get(7)?,
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

/// A candidate row: the task, its instance's status, the phone's columns, its batch's
/// `MaxConcurrency` with the batch's Processing count, and its account.
struct Candidate {
    work: Work,
    /// The account the task belongs to (as its phone does).
    account: String,
    instance_status: Option<String>,
    phone: Option<Phone>,
    concurrency: Option<(i64, i64)>,
}

/// A stored port (ports are 1..=65535; anything else is none).
fn port(p: Option<i64>) -> Option<u16> {
    p.and_then(|p| u16::try_from(p).ok())
}

fn candidate(row: &Row<'_>) -> Result<Candidate> {
    let phone = match row.get::<_, Option<String>>(9)? {
        None => None,
        Some(account_id) => Some(Phone {
            account_id,
            name: row.get(10)?,
            image_id: row.get(11)?,
            spec: row.get(12)?,
            host: row.get(16)?,
            adb_port: port(row.get(18)?),
            moving_to: row.get(17)?,
            moving_port: port(row.get(19)?),
        }),
    };
    let concurrency = match row.get::<_, Option<i64>>(13)? {
        Some(limit) => Some((limit, row.get::<_, Option<i64>>(14)?.unwrap_or(0))),
        None => None,
    };
    Ok(Candidate {
        work: work(row)?,
        account: row.get(15)?,
        instance_status: row.get(8)?,
        phone,
        concurrency,
    })
}

pub(super) fn claim(
    conn: &Connection,
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
    let mut started = ShareCount::default();
    loop {
        let want = i64::try_from(limit - claimed.len()).unwrap_or(i64::MAX);
        let passing_over = started.passed_over(shares);
        let candidates = if passing_over.is_empty() {
            sql(CANDIDATES, [v(now_ms), v(want)]).rows(conn, candidate)?
        } else {
            let accounts = serde_json::to_string(&passing_over)
                .map_err(|e| StoreError::Corrupt(format!("account list: {e}")))?;
            sql(CANDIDATES_PASSING_OVER, [v(now_ms), v(accounts), v(want)]).rows(conn, candidate)?
        };
        if candidates.is_empty() {
            break;
        }
        let mut moves = BatchMoves::default();
        // A task that ends at its precondition check lets the next task of its instance run,
        // and a batch that reaches its MaxConcurrency here leaves room to others: look again
        // when either happened and there is room left (the counters are written first, so the
        // next look sees them).
        let mut settled = false;
        // Whether an account filled its share of the node's slots in this claim.
        let mut filled = false;
        // Per batch with a MaxConcurrency: its limit and its children Processing so far.
        let mut running: std::collections::HashMap<String, (i64, i64)> =
            std::collections::HashMap::new();
        for c in candidates {
            let t = c.work;
            let account = c.account;
            if !started.allows(shares, &account) {
                // Its account filled its share in this claim: the next look passes over it.
                filled = true;
                continue;
            }
            let limited = match (&t.parent_id, c.concurrency) {
                (Some(parent), Some(start)) if t.status == TaskStatus::Waiting => {
                    let (limit, now) = *running.entry(parent.clone()).or_insert(start);
                    if now >= limit {
                        settled = true;
                        continue;
                    }
                    Some(parent.clone())
                }
                _ => None,
            };
            let previous = if t.attempt == 0 {
                let current = c
                    .instance_status
                    .map(|c| parse::<InstanceStatus>("instance status", &c))
                    .transpose()?
                    .filter(|_| t.instance_id.is_some());
                match current.map(|c| (c, instance::plan(t.task_type, c))) {
                    Some((current, Plan::Run { during })) => {
                        if during != current {
                            let id = t.instance_id.as_deref().unwrap_or_default();
                            settle_instance(conn, id, during, now_ms)?;
                        }
                        current
                    }
                    Some((_, Plan::Skip)) => {
                        end(
                            conn,
                            &mut moves,
                            &t,
                            TaskStatus::Skipped,
                            None,
                            None,
                            now_ms,
                        )?;
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
                        fail(conn, &mut moves, &t, error, now_ms)?;
                        settled = true;
                        continue;
                    }
                }
            } else {
                // A retry resumes from the status the first attempt left: no new check.
                t.previous()?
            };
            sql(
                "UPDATE tasks SET status = 'Processing', attempt = attempt + 1, \
                 run_state = 'leased', owner = ?, lease_ms = ?, prev_status = ? WHERE id = ?",
                [v(owner), v(lease_until), v(previous.as_str()), v(&t.id)],
            )
            .execute(conn)?;
            moves.record(
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
                phone: c.phone,
            });
        }
        apply_moves(conn, moves)?;
        let look_again = settled || (filled && started.passed_over(shares) != passing_over);
        if !look_again || claimed.len() >= limit {
            break;
        }
    }
    Ok(claimed)
}

/// CancelTasks ([`crate::TaskStore::cancel_tasks`]).
pub(super) fn cancel_tasks(
    conn: &Connection,
    account_id: &str,
    task_ids: &[String],
    now_ms: i64,
) -> Result<CancelOutcome> {
    let mut out = CancelOutcome::default();
    let mut qb = query("SELECT id, level FROM tasks WHERE level IN (1, 2) AND account_id = ");
    qb.bind(account_id);
    qb.and_in("id", task_ids.iter().cloned());
    let levels: std::collections::HashMap<String, i64> = qb
        .rows(conn, |r| Ok((r.get(0)?, r.get(1)?)))?
        .into_iter()
        .collect();
    out.unknown = task_ids
        .iter()
        .filter(|id| !levels.contains_key(*id))
        .cloned()
        .collect();
    if !out.unknown.is_empty() {
        return Ok(out);
    }
    let (batches, children): (Vec<&String>, Vec<&String>) =
        levels.keys().partition(|id| levels[*id] == 1);
    // Both lists are non-empty or filter nothing: an empty list matches no row here.
    let mut qb = query(format!(
        "SELECT {WORK_COLUMNS} FROM tasks WHERE parent_id IN ("
    ));
    qb.list(batches.into_iter().cloned())
        .push(") OR id IN (")
        .list(children.into_iter().cloned())
        .push(") ORDER BY seq");
    let found = qb.rows(conn, work)?;
    let mut moves = BatchMoves::default();
    let code = TaskErrorCode::Cancelled;
    let skipped_msg = format!("{} It had not started.", code.default_message());
    for t in found {
        match t.status {
            TaskStatus::Waiting => {
                let error = Some((code, skipped_msg.as_str()));
                end(
                    conn,
                    &mut moves,
                    &t,
                    TaskStatus::Skipped,
                    None,
                    error,
                    now_ms,
                )?;
                out.skipped += 1;
            }
            TaskStatus::Processing if t.task_type.is_interruptible() => {
                sql(
                    "UPDATE tasks SET cancel_requested = 1 WHERE id = ?",
                    [v(&t.id)],
                )
                .execute(conn)?;
                out.interrupting += 1;
                out.interrupted.push(t.id.clone());
            }
            TaskStatus::Processing => out.finishing += 1,
            _ => out.ended += 1,
        }
    }
    apply_moves(conn, moves)?;
    Ok(out)
}

/// Ends every attempt of `items` in one transaction (group commit): each exactly as a single
/// completion would, fenced by its attempt; the rows are written by a few set-based statements
/// and each batch row once.
pub(super) fn complete_many(conn: &Connection, items: &[Completion]) -> Result<Vec<bool>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let current = leased_rows(conn, items)?;
    let mut moves = BatchMoves::default();
    let mut done = Vec::with_capacity(items.len());
    // Ids already ending in this group: a repeated item is refused like any stale one.
    let mut ending = std::collections::HashSet::new();
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
        let (to, after, result, error) = match &item.outcome {
            Outcome::Finished { result } => (
                TaskStatus::Finished,
                instance::after_success(t.task_type, previous),
                Some(result.as_str()),
                None,
            ),
            Outcome::Failed { code, message } => (
                TaskStatus::Failed,
                instance::after_failed(t.task_type, previous, *code),
                None,
                Some((code.as_str(), message.as_str())),
            ),
        };
        sql(
            "UPDATE tasks SET status = ?, result = ?, error_code = ?, error_msg = ?, \
             finish_ms = ?, run_state = 'done', lease_ms = NULL WHERE id = ?",
            [
                v(to.as_str()),
                v(result),
                v(error.map(|(code, _)| code)),
                v(error.map(|(_, msg)| msg)),
                v(item.now_ms),
                v(&t.id),
            ],
        )
        .execute(conn)?;
        now(backups::settle(
            &mut Lite::new(conn),
            &t.id,
            t.task_type,
            to,
            result,
            item.now_ms,
        ))?;
        moves.record(t.parent_id.as_deref(), t.status, to, item.now_ms);
        if let Some(instance_id) = &t.instance_id {
            if to == TaskStatus::Finished {
                now(move_to_new_image(
                    &mut Lite::new(conn),
                    t.task_type,
                    &t.param,
                    instance_id,
                ))?;
            }
            if instance::moves_status(t.task_type) {
                settle_instance(conn, instance_id, after, item.now_ms)?;
            }
        }
        done.push(true);
    }
    apply_moves(conn, moves)?;
    Ok(done)
}

/// The leased tasks among those `items` name, by id: one prepared statement run per item
/// (an `IN` list would be a new statement text for every group size).
fn leased_rows(
    conn: &Connection,
    items: &[Completion],
) -> Result<std::collections::HashMap<String, Work>> {
    let sql = format!("SELECT {WORK_COLUMNS} FROM tasks WHERE id = ? AND run_state = 'leased'");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut found = std::collections::HashMap::with_capacity(items.len());
    for item in items {
        let mut rows = stmt.query([&item.task_id])?;
        if let Some(row) = rows.next()? {
            let t = work(row)?;
            found.insert(t.id.clone(), t);
        }
    }
    Ok(found)
}

pub(super) fn sweep_expired(
    conn: &Connection,
    now_ms: i64,
    max_attempts: i64,
    retry_delay_ms: i64,
) -> Result<Vec<Swept>> {
    let expired = sql(
        &format!(
            "SELECT {WORK_COLUMNS}, cancel_requested FROM tasks WHERE seq IN \
             (SELECT seq FROM tasks WHERE run_state = 'leased' AND lease_ms < ?) ORDER BY seq"
        ),
        [v(now_ms)],
    )
    .rows(conn, |r| Ok((work(r)?, r.get::<_, bool>(8)?)))?;
    let mut moves = BatchMoves::default();
    let mut swept = Vec::with_capacity(expired.len());
    for (t, cancel_requested) in expired {
        match expired_end(t.task_type, t.attempt, max_attempts, cancel_requested) {
            None => {
                sql(
                    "UPDATE tasks SET run_state = 'queued', not_before_ms = ?, owner = NULL, \
                     lease_ms = NULL WHERE id = ?",
                    [v(now_ms.saturating_add(retry_delay_ms)), v(&t.id)],
                )
                .execute(conn)?;
                swept.push(Swept::Requeued {
                    task_id: t.id,
                    attempt: t.attempt,
                });
            }
            Some((code, message)) => {
                let error = Some((code, message.as_str()));
                fail(conn, &mut moves, &t, error, now_ms)?;
                if let Some(instance_id) = &t.instance_id
                    && instance::moves_status(t.task_type)
                {
                    let after = instance::after_failure(t.task_type, t.previous()?);
                    settle_instance(conn, instance_id, after, now_ms)?;
                }
                swept.push(Swept::Failed {
                    task_id: t.id,
                    code,
                });
            }
        }
    }
    apply_moves(conn, moves)?;
    Ok(swept)
}

/// Ends a task in terminal status `to` and records the move for its batch.
fn end(
    conn: &Connection,
    moves: &mut BatchMoves,
    t: &Work,
    to: TaskStatus,
    result: Option<&str>,
    error: Option<(TaskErrorCode, &str)>,
    now_ms: i64,
) -> Result<()> {
    sql(
        "UPDATE tasks SET status = ?, result = ?, error_code = ?, error_msg = ?, finish_ms = ?, \
         run_state = 'done', lease_ms = NULL WHERE id = ?",
        [
            v(to.as_str()),
            v(result),
            v(error.map(|(code, _)| code.as_str())),
            v(error.map(|(_, msg)| msg)),
            v(now_ms),
            v(&t.id),
        ],
    )
    .execute(conn)?;
    now(backups::settle(
        &mut Lite::new(conn),
        &t.id,
        t.task_type,
        to,
        result,
        now_ms,
    ))?;
    moves.record(t.parent_id.as_deref(), t.status, to, now_ms);
    Ok(())
}

/// Ends a task Failed with `error`.
fn fail(
    conn: &Connection,
    moves: &mut BatchMoves,
    t: &Work,
    error: Option<(TaskErrorCode, &str)>,
    now_ms: i64,
) -> Result<()> {
    end(conn, moves, t, TaskStatus::Failed, None, error, now_ms)
}

/// Moves an instance to `status` (no write when it is there already).
fn settle_instance(
    conn: &Connection,
    instance_id: &str,
    status: InstanceStatus,
    now_ms: i64,
) -> Result<()> {
    sql(
        "UPDATE instances SET status = ?, modified_ms = ? WHERE id = ? AND status != ?",
        [
            v(status.as_str()),
            v(now_ms),
            v(instance_id),
            v(status.as_str()),
        ],
    )
    .execute(conn)?;
    Ok(())
}

/// Skips every Waiting child of batch `parent_id` with `MaxErrorsExceeded`; returns how many.
fn skip_waiting(conn: &Connection, parent_id: &str, now_ms: i64) -> Result<i64> {
    let code = TaskErrorCode::MaxErrorsExceeded;
    let skipped = sql(
        "UPDATE tasks SET status = 'Skipped', error_code = ?, error_msg = ?, finish_ms = ?, \
         run_state = 'done', lease_ms = NULL \
         WHERE parent_id = ? AND status = 'Waiting' AND run_state = 'queued' \
         RETURNING id, task_type",
        [
            v(code.as_str()),
            v(code.default_message()),
            v(now_ms),
            v(parent_id),
        ],
    )
    .rows(conn, |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for (id, task_type) in &skipped {
        let task_type: TaskType = parse("task type", task_type)?;
        now(backups::settle(
            &mut Lite::new(conn),
            id,
            task_type,
            TaskStatus::Skipped,
            None,
            now_ms,
        ))?;
    }
    Ok(skipped.len() as i64)
}

/// Applies the children's moves of one transaction to their batches: counters, status, and
/// the finish time once a batch is terminal; one read and one write per batch.
///
/// A batch whose failures go past its `MaxErrors` has its Waiting children Skipped with
/// `MaxErrorsExceeded` here, in the same transaction as the failure that went past it.
fn apply_moves(conn: &Connection, moves: BatchMoves) -> Result<()> {
    for (parent_id, change) in moves.into_changes() {
        let row = sql(
            "SELECT c_waiting, c_processing, c_finished, c_failed, c_skipped, max_errors \
             FROM tasks WHERE id = ? AND level = 1",
            [v(&parent_id)],
        )
        .row(conn, |r| {
            Ok((rows::batch_counts_at(r, 0)?, r.get::<_, Option<i64>>(5)?))
        })?;
        let Some((counts, max_errors)) = row else {
            return Err(StoreError::Corrupt(format!("batch {parent_id} is missing")));
        };
        let mut counts = counts.add(&change.delta);
        let limits = BatchLimits {
            max_errors,
            ..BatchLimits::default()
        };
        if counts.waiting > 0 && limits.errors_exceeded(counts.failed) {
            let n = skip_waiting(conn, &parent_id, change.at_ms)?;
            counts.waiting -= n;
            counts.skipped += n;
        }
        let status = counts.status();
        sql(
            "UPDATE tasks SET c_waiting = ?, c_processing = ?, c_finished = ?, c_failed = ?, \
             c_skipped = ?, status = ?, \
             finish_ms = CASE WHEN ? THEN COALESCE(finish_ms, ?) ELSE NULL END WHERE id = ?",
            [
                v(counts.waiting),
                v(counts.processing),
                v(counts.finished),
                v(counts.failed),
                v(counts.skipped),
                v(status.as_str()),
                v(status.is_terminal()),
                v(change.at_ms),
                v(&parent_id),
            ],
        )
        .execute(conn)?;
    }
    Ok(())
}
