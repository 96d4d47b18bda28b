//! Tasks: creating batches and their children (and the internal tasks of groups),
//! DescribeTasks, single-task reads, cancelling, the retention purge and the counts `/metrics`
//! shows.

use cloudphone_core::resources::Task;
use cloudphone_core::{BatchCounts, BatchLimits, TaskStatus};

use super::rows;
use crate::sql::conn::{Conn, level, parse};
use crate::sql::{Dialect, Sql, v};
use crate::{
    CancelOutcome, Cursor, Listing, NewBatch, NewTask, Page, Rendered, Result, TaskCount,
    TaskFilter, TaskRender,
};

area! {
    /// Tasks as the API sees them.
    pub trait TaskStore {
        /// Creates a batch and its children in one transaction. Children start Waiting and
        /// queued.
        fn create_batch(&self, batch: &NewBatch) -> () = write (|c| create_batch(c, batch));
        /// DescribeTasks: tasks of Level 1 and 2 matching `filter`, newest first (start time,
        /// then id, descending), after `page.after`; `total` counts every match.
        fn describe_tasks(&self, filter: &TaskFilter, page: &Page) -> Listing<Task> =
            snapshot (|c| describe_tasks(c, filter, page));
        /// [`TaskStore::describe_tasks`] written out as it is read: `render` writes each task
        /// of the page, in order, after the bytes of `head`. SQLite writes it on the store's
        /// own thread, straight from the row (no task is copied out of the database's
        /// buffers); PostgreSQL reads the page, then writes it.
        fn describe_tasks_rendered(
            &self,
            filter: &TaskFilter,
            page: &Page,
            head: Vec<u8>,
            render: TaskRender,
        ) -> Rendered = by_store ();
        /// A task of any level, if it belongs to `account_id`.
        fn task(&self, account_id: &str, task_id: &str) -> Option<Task> =
            read (|c| task(c, account_id, task_id));
        /// Deletes at most `limit` terminal tasks that finished before `before_ms`, the oldest
        /// first; returns how many. The caller deletes in small batches, so that a retention
        /// window passing over many tasks at once never holds the writer long.
        fn purge_tasks(&self, before_ms: i64, limit: u64) -> u64 =
            autocommit (|c| purge_tasks(c, before_ms, limit));
        /// CancelTasks: every id must be a batch or instance task of `account_id`, else
        /// nothing is written and [`CancelOutcome::unknown`] names the others. A batch stands
        /// for all its children. A Waiting child becomes Skipped with `Cancelled` at once; a
        /// Processing one whose type can be interrupted
        /// ([`cloudphone_core::TaskType::is_interruptible`]) is asked to stop (its worker ends
        /// it Failed with `Cancelled`); any other runs to its end. One transaction.
        fn cancel_tasks(&self, account_id: &str, task_ids: &[String], now_ms: i64)
            -> CancelOutcome = by_store ();
        /// How many tasks there are of each type, level and status, over every account (for
        /// `/metrics`). Reads every task: callers cache it.
        fn task_counts(&self) -> Vec<TaskCount> = read (|c| task_counts(c));
    }
}

/// How a task row starts out.
struct Initial<'a> {
    parent_id: Option<&'a str>,
    status: TaskStatus,
    counts: Option<BatchCounts>,
    run_state: &'static str,
    finish_ms: Option<i64>,
    limits: BatchLimits,
}

async fn insert(c: &mut impl Conn, t: &NewTask, init: Initial<'_>) -> Result<()> {
    let counts = init.counts;
    let q = c.with(
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
            v(t.level),
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
    );
    c.execute(&q).await?;
    Ok(())
}

/// Inserts a task to run: Waiting, queued, runnable from its start time.
pub(crate) async fn insert_queued(
    c: &mut impl Conn,
    t: &NewTask,
    parent_id: Option<&str>,
) -> Result<()> {
    let init = Initial {
        parent_id,
        status: TaskStatus::Waiting,
        counts: None,
        run_state: "queued",
        finish_ms: None,
        limits: BatchLimits::default(),
    };
    insert(c, t, init).await
}

async fn create_batch(c: &mut impl Conn, batch: &NewBatch) -> Result<()> {
    insert_batch(c, batch).await?;
    c.wake_workers().await
}

/// Inserts a batch and its queued children within the caller's transaction.
pub(crate) async fn insert_batch(c: &mut impl Conn, batch: &NewBatch) -> Result<()> {
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
    insert(c, &batch.batch, init).await?;
    insert_children(c, &batch.children, &batch.batch.id).await
}

/// Children per INSERT statement: a statement per child costs a round trip to PostgreSQL and
/// a step through SQLite each, which dominates a large batch; 15 parameters a row stays far
/// below both limits (32,766 for SQLite, 65,535 for PostgreSQL). SQLite measured best at 500.
fn rows_per_insert(dialect: Dialect) -> usize {
    match dialect {
        Dialect::Sqlite => 500,
        Dialect::Postgres => 1000,
    }
}

/// Inserts the queued children of batch `parent_id`, many rows per statement.
async fn insert_children(c: &mut impl Conn, children: &[NewTask], parent_id: &str) -> Result<()> {
    for chunk in children.chunks(rows_per_insert(c.dialect())) {
        let mut q = c.sql(
            "INSERT INTO tasks (id, account_id, invoke_id, parent_id, level, task_type, status, \
             resource_id, instance_id, instance_name, param, operator, start_ms, run_state, \
             not_before_ms) ",
        );
        q.values(chunk, |row, t| {
            row.bind(&t.id)
                .bind(&t.account_id)
                .bind(&t.invoke_id)
                .bind(parent_id)
                .bind(t.level)
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
        c.execute(&q).await?;
    }
    Ok(())
}

fn push_filter(q: &mut Sql, f: &TaskFilter) {
    q.push(" WHERE t.account_id = ").bind(&f.account_id);
    match f.level {
        None => q.push(" AND t.level IN (1, 2)"),
        Some(level) => q.push(" AND t.level = ").bind(level),
    };
    if let Some(invoke_id) = &f.invoke_id {
        q.push(" AND t.invoke_id = ").bind(invoke_id);
    }
    q.and_in("t.resource_id", f.resource_ids.iter().cloned())
        .and_in("t.id", f.task_ids.iter().cloned());
    if let Some(parent) = &f.parent_task_id {
        q.push(" AND t.parent_id = ").bind(parent);
    }
    q.and_in("t.task_type", f.task_types.iter().map(|t| t.as_str()))
        .and_in("t.status", f.statuses.iter().map(|s| s.as_str()));
    if let Some(instance_id) = &f.instance_id {
        q.push(" AND t.level = 2 AND t.instance_id = ")
            .bind(instance_id);
    }
    q.and_contains("t.instance_name", &f.instance_name)
        .and_contains("t.param", &f.param);
}

/// A filter that narrows only by level, type and status: on SQLite its total is a sum over
/// `task_counts` (kept by triggers, migration 0007) instead of a count of every matching row.
fn is_broad(f: &TaskFilter) -> bool {
    f.invoke_id.is_none()
        && f.resource_ids.is_empty()
        && f.task_ids.is_empty()
        && f.parent_task_id.is_none()
        && f.instance_id.is_none()
        && f.instance_name.as_deref().is_none_or(str::is_empty)
        && f.param.as_deref().is_none_or(str::is_empty)
}

/// The total of a broad filter, from the counters SQLite's triggers keep.
fn broad_count(f: &TaskFilter) -> Sql {
    let mut q = Sql::new(
        Dialect::Sqlite,
        "SELECT CAST(COALESCE(SUM(n), 0) AS INTEGER) FROM task_counts t WHERE t.account_id = ",
    );
    q.bind(&f.account_id);
    match f.level {
        None => q.push(" AND t.level IN (1, 2)"),
        Some(level) => q.push(" AND t.level = ").bind(level),
    };
    q.and_in("t.task_type", f.task_types.iter().map(|t| t.as_str()))
        .and_in("t.status", f.statuses.iter().map(|s| s.as_str()));
    q
}

/// The statements of a DescribeTasks page: its total, and its rows (one more than the page,
/// to know whether more follow), in the columns of [`rows::TASK_COLUMNS`].
pub fn describe_statements(dialect: Dialect, filter: &TaskFilter, page: &Page) -> (Sql, Sql) {
    let count = if dialect == Dialect::Sqlite && is_broad(filter) {
        broad_count(filter)
    } else {
        let mut count = Sql::new(dialect, "SELECT COUNT(*) FROM tasks t");
        push_filter(&mut count, filter);
        count
    };
    let mut list = Sql::new(dialect, rows::TASK_COLUMNS);
    list.push(rows::TASK_FROM);
    push_filter(&mut list, filter);
    list.and_after("t.start_ms", "t.id", &page.after, false)
        .order_page("t.start_ms", "t.id", false, page.limit);
    (count, list)
}

async fn describe_tasks(
    c: &mut impl Conn,
    filter: &TaskFilter,
    page: &Page,
) -> Result<Listing<Task>> {
    let (count, list) = describe_statements(c.dialect(), filter, page);
    let total = c.int(&count).await?;
    let items = c.rows(&list, rows::task).await?;
    let (items, next) = crate::sql::page_of(items, page.limit, |t| Cursor {
        ms: t.start_ms,
        id: t.id.clone(),
    });
    Ok(Listing { items, total, next })
}

async fn task(c: &mut impl Conn, account_id: &str, task_id: &str) -> Result<Option<Task>> {
    let mut q = c.sql(rows::TASK_COLUMNS);
    q.push(rows::TASK_FROM)
        .push(" WHERE t.id = ")
        .bind(task_id)
        .push(" AND t.account_id = ")
        .bind(account_id);
    c.row(&q, rows::task).await
}

/// A batch is deleted only once none of its children is unfinished (which its own terminal
/// status already implies; checked all the same).
async fn purge_tasks(c: &mut impl Conn, before_ms: i64, limit: u64) -> Result<u64> {
    // Through `tasks_finished` (finish_ms), oldest first.
    let q = c.with(
        "DELETE FROM tasks WHERE id IN (SELECT t.id FROM tasks t WHERE t.finish_ms < ? \
         AND t.status IN ('Finished', 'PartFinished', 'Failed', 'Skipped') \
         AND NOT (t.level = 1 AND EXISTS (SELECT 1 FROM tasks c WHERE c.parent_id = t.id \
                  AND c.status IN ('Waiting', 'Processing'))) \
         ORDER BY t.finish_ms LIMIT ?)",
        [v(before_ms), v(i64::try_from(limit).unwrap_or(i64::MAX))],
    );
    c.execute(&q).await
}

async fn task_counts(c: &mut impl Conn) -> Result<Vec<TaskCount>> {
    let q = c.sql(
        "SELECT task_type, level, status, COUNT(*) AS n FROM tasks \
         GROUP BY task_type, level, status",
    );
    c.rows(&q, |r| {
        Ok(TaskCount {
            task_type: parse("task type", &r.text("task_type")?)?,
            level: level(r.int("level")?)?,
            status: parse("task status", &r.text("status")?)?,
            count: r.int("n")?,
        })
    })
    .await
}
