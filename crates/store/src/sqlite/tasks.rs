//! Task creation (batches and their children, internal tasks), DescribeTasks, single-task reads
//! and the retention purge.

use cloudphone_core::resources::Task;
use cloudphone_core::{BatchCounts, BatchLimits, TaskStatus};
use rusqlite::Connection;

use super::rows::{self, push_after, push_in, push_order, push_substring};
use super::sql::{Sql, sql, v};
use crate::{Cursor, Listing, NewBatch, NewTask, Page, Rendered, Result, TaskFilter, TaskRender};

/// How a task row starts out.
struct Initial<'a> {
    parent_id: Option<&'a str>,
    status: TaskStatus,
    counts: Option<BatchCounts>,
    run_state: &'static str,
    finish_ms: Option<i64>,
    limits: BatchLimits,
}

fn insert(conn: &Connection, t: &NewTask, init: Initial<'_>) -> Result<()> {
    let counts = init.counts;
    sql(
        "INSERT INTO tasks (id, account_id, invoke_id, parent_id, level, task_type, status, \
         resource_id, instance_id, instance_name, param, operator, start_ms, finish_ms, \
         c_waiting, c_processing, c_finished, c_failed, c_skipped, run_state, not_before_ms, \
         max_concurrency, max_errors) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            v(&t.id),
            v(&t.account_id),
            v(&t.invoke_id),
            v(init.parent_id),
            v(t.level.as_i64()),
            v(t.task_type.as_str()),
            v(init.status.as_str()),
            v(&t.resource_id),
            v(t.instance_id.as_ref()),
            v(t.instance_name.as_ref()),
            v(&t.param),
            v(&t.operator),
            v(t.start_ms),
            v(init.finish_ms),
            v(counts.map(|c| c.waiting)),
            v(counts.map(|c| c.processing)),
            v(counts.map(|c| c.finished)),
            v(counts.map(|c| c.failed)),
            v(counts.map(|c| c.skipped)),
            v(init.run_state),
            v(t.start_ms),
            v(init.limits.max_concurrency),
            v(init.limits.max_errors),
        ],
    )
    .execute(conn)?;
    Ok(())
}

/// Inserts a task to run: Waiting, queued, runnable from its start time.
pub(super) fn insert_queued(conn: &Connection, t: &NewTask, parent_id: Option<&str>) -> Result<()> {
    let init = Initial {
        parent_id,
        status: TaskStatus::Waiting,
        counts: None,
        run_state: "queued",
        finish_ms: None,
        limits: BatchLimits::default(),
    };
    insert(conn, t, init)
}

/// Inserts a batch and its queued children within the caller's transaction.
pub(super) fn insert_batch(tx: &Connection, batch: &NewBatch) -> Result<()> {
    let n = i64::try_from(batch.children.len()).unwrap_or(i64::MAX);
    let counts = BatchCounts::new(n);
    let status = counts.status();
    let init = Initial {
        parent_id: None,
        status,
        counts: Some(counts),
        // A batch is never claimed: its status follows its children.
        run_state: "done",
        finish_ms: status.is_terminal().then_some(batch.batch.start_ms),
        limits: batch.limits,
    };
    insert(tx, &batch.batch, init)?;
    insert_children(tx, &batch.children, &batch.batch.id)
}

/// Children per INSERT statement: fewer statements to step through for a large batch; 15
/// parameters a row stays far below SQLite's limit of 32,766.
const ROWS_PER_INSERT: usize = 500;

/// Inserts the queued children of batch `parent_id`, many rows per statement.
fn insert_children(tx: &Connection, children: &[NewTask], parent_id: &str) -> Result<()> {
    for chunk in children.chunks(ROWS_PER_INSERT) {
        let mut qb = Sql::new(
            "INSERT INTO tasks (id, account_id, invoke_id, parent_id, level, task_type, status, \
             resource_id, instance_id, instance_name, param, operator, start_ms, run_state, \
             not_before_ms) ",
        );
        qb.values(chunk, |row, t| {
            row.bind(&t.id)
                .bind(&t.account_id)
                .bind(&t.invoke_id)
                .bind(parent_id)
                .bind(t.level.as_i64())
                .bind(t.task_type.as_str())
                .bind(TaskStatus::Waiting.as_str())
                .bind(&t.resource_id)
                .bind(t.instance_id.as_ref())
                .bind(t.instance_name.as_ref())
                .bind(&t.param)
                .bind(&t.operator)
                .bind(t.start_ms)
                .bind("queued")
                .bind(t.start_ms);
        });
        qb.execute(tx)?;
    }
    Ok(())
}

fn push_filter(qb: &mut Sql, f: &TaskFilter) {
    qb.push(" WHERE t.account_id = ").bind(&f.account_id);
    match f.level {
        None => qb.push(" AND t.level IN (1, 2)"),
        Some(level) => qb.push(" AND t.level = ").bind(level.as_i64()),
    };
    if let Some(invoke_id) = &f.invoke_id {
        qb.push(" AND t.invoke_id = ").bind(invoke_id);
    }
    push_in(qb, "t.resource_id", f.resource_ids.iter().cloned());
    push_in(qb, "t.id", f.task_ids.iter().cloned());
    if let Some(parent) = &f.parent_task_id {
        qb.push(" AND t.parent_id = ").bind(parent);
    }
    push_in(qb, "t.task_type", f.task_types.iter().map(|t| t.as_str()));
    push_in(qb, "t.status", f.statuses.iter().map(|s| s.as_str()));
    if let Some(instance_id) = &f.instance_id {
        qb.push(" AND t.level = 2 AND t.instance_id = ")
            .bind(instance_id);
    }
    push_substring(qb, "t.instance_name", &f.instance_name);
    push_substring(qb, "t.param", &f.param);
}

/// A filter that narrows only by level, type and status: its total is a sum over
/// `task_counts` (migration 0007) instead of a count of every matching row.
fn is_broad(f: &TaskFilter) -> bool {
    f.invoke_id.is_none()
        && f.resource_ids.is_empty()
        && f.task_ids.is_empty()
        && f.parent_task_id.is_none()
        && f.instance_id.is_none()
        && f.instance_name.as_deref().is_none_or(str::is_empty)
        && f.param.as_deref().is_none_or(str::is_empty)
}

/// The total of a broad filter, from the counters the triggers keep.
fn broad_count(f: &TaskFilter) -> Sql {
    let mut qb = Sql::new(
        "SELECT CAST(COALESCE(SUM(n), 0) AS INTEGER) FROM task_counts t WHERE t.account_id = ",
    );
    qb.bind(&f.account_id);
    match f.level {
        None => qb.push(" AND t.level IN (1, 2)"),
        Some(level) => qb.push(" AND t.level = ").bind(level.as_i64()),
    };
    push_in(
        &mut qb,
        "t.task_type",
        f.task_types.iter().map(|t| t.as_str()),
    );
    push_in(&mut qb, "t.status", f.statuses.iter().map(|s| s.as_str()));
    qb
}

/// The statements of a DescribeTasks page: its total, and its rows (one more than the page,
/// to know whether more follow).
fn describe_statements(filter: &TaskFilter, page: &Page) -> (Sql, Sql) {
    let count = if is_broad(filter) {
        broad_count(filter)
    } else {
        let mut count = Sql::new("SELECT COUNT(*) FROM tasks t");
        push_filter(&mut count, filter);
        count
    };
    let mut list = Sql::new(rows::TASK_COLUMNS);
    list.push(rows::TASK_FROM);
    push_filter(&mut list, filter);
    push_after(&mut list, "t.start_ms", "t.id", &page.after, false);
    push_order(&mut list, "t.start_ms", "t.id", false, page.limit);
    (count, list)
}

pub(super) fn describe_tasks(
    conn: &Connection,
    filter: &TaskFilter,
    page: &Page,
) -> Result<Listing<Task>> {
    let (count, list) = describe_statements(filter, page);
    let (total, items) = rows::total_and_rows(conn, &count, &list, rows::task)?;
    let (items, next) = rows::page_of(items, page.limit, |t| Cursor {
        ms: t.start_ms,
        id: t.id.clone(),
    });
    Ok(Listing { items, total, next })
}

/// [`describe_tasks`] written by `render` row by row as SQLite steps, from the row's own
/// buffers: no task is decoded into owned strings, and nothing is freed on another thread.
pub(super) fn describe_tasks_rendered(
    conn: &Connection,
    filter: &TaskFilter,
    page: &Page,
    head: Vec<u8>,
    render: &TaskRender,
) -> Result<Rendered> {
    let (count, list) = describe_statements(filter, page);
    let limit = rows::page_size(page.limit);
    super::db::snapshot(conn, |conn| {
        let total = count.scalar(conn)?;
        let mut bytes = head;
        let mut n = 0;
        let mut last = Cursor {
            ms: 0,
            id: String::new(),
        };
        let mut more = false;
        list.each(conn, |row| {
            if n == limit {
                more = true;
                return Ok(());
            }
            let task = rows::task_ref(row)?;
            render(&mut bytes, n, &task);
            last.ms = task.start_ms;
            last.id.clear();
            last.id.push_str(task.id);
            n += 1;
            Ok(())
        })?;
        Ok(Rendered {
            bytes,
            count: n,
            total,
            next: more.then_some(last),
        })
    })
}

/// A task of any level, if it belongs to `account_id`.
pub(super) fn task(conn: &Connection, account_id: &str, task_id: &str) -> Result<Option<Task>> {
    let mut qb = Sql::new(rows::TASK_COLUMNS);
    qb.push(rows::TASK_FROM)
        .push(" WHERE t.id = ")
        .bind(task_id)
        .push(" AND t.account_id = ")
        .bind(account_id);
    qb.row(conn, rows::task)
}

/// Deletes terminal tasks finished before `before_ms`; a batch only once none of its children
/// is unfinished (which its own terminal status already implies; checked all the same).
pub(super) fn purge_tasks(conn: &Connection, before_ms: i64) -> Result<u64> {
    sql(
        "DELETE FROM tasks WHERE finish_ms < ? \
         AND status IN ('Finished', 'PartFinished', 'Failed', 'Skipped') \
         AND NOT (level = 1 AND EXISTS (SELECT 1 FROM tasks c WHERE c.parent_id = tasks.id \
                  AND c.status IN ('Waiting', 'Processing')))",
        [v(before_ms)],
    )
    .execute(conn)
}

pub(super) fn task_counts(conn: &Connection) -> Result<Vec<crate::TaskCount>> {
    Sql::new(
        "SELECT task_type, level, status, COUNT(*) FROM tasks GROUP BY task_type, level, status",
    )
    .rows(conn, |r| {
        Ok(crate::TaskCount {
            task_type: rows::parse("task type", r.get_ref(0)?.as_str()?)?,
            level: rows::level(r.get(1)?)?,
            status: rows::parse("task status", r.get_ref(2)?.as_str()?)?,
            count: r.get(3)?,
        })
    })
}
