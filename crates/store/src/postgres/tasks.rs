//! Task creation (batches and their children, internal tasks), DescribeTasks, single-task reads
//! and the retention purge.

use cloudphone_core::resources::Task;
use cloudphone_core::{BatchCounts, BatchLimits, TaskStatus};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::PgStore;
use super::rows::{self, push_after, push_in, push_order, push_substring};
use crate::{Cursor, Listing, NewBatch, NewTask, Page, Result, TaskFilter};

/// How a task row starts out.
struct Initial<'a> {
    parent_id: Option<&'a str>,
    status: TaskStatus,
    counts: Option<BatchCounts>,
    run_state: &'static str,
    finish_ms: Option<i64>,
    limits: BatchLimits,
}

async fn insert(conn: &mut PgConnection, t: &NewTask, init: Initial<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO tasks (id, account_id, invoke_id, parent_id, level, task_type, status, \
         resource_id, instance_id, instance_name, param, operator, start_ms, finish_ms, \
         c_waiting, c_processing, c_finished, c_failed, c_skipped, run_state, not_before_ms, \
         max_concurrency, max_errors) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21, $22, $23)",
    )
    .bind(&t.id)
    .bind(&t.account_id)
    .bind(&t.invoke_id)
    .bind(init.parent_id)
    .bind(rows::level_value(t.level))
    .bind(t.task_type.as_str())
    .bind(init.status.as_str())
    .bind(&t.resource_id)
    .bind(&t.instance_id)
    .bind(&t.instance_name)
    .bind(&t.param)
    .bind(&t.operator)
    .bind(t.start_ms)
    .bind(init.finish_ms)
    .bind(init.counts.map(|c| c.waiting))
    .bind(init.counts.map(|c| c.processing))
    .bind(init.counts.map(|c| c.finished))
    .bind(init.counts.map(|c| c.failed))
    .bind(init.counts.map(|c| c.skipped))
    .bind(init.run_state)
    .bind(t.start_ms)
    .bind(init.limits.max_concurrency)
    .bind(init.limits.max_errors)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts a task to run: Waiting, queued, runnable from its start time.
pub(super) async fn insert_queued(
    conn: &mut PgConnection,
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
    insert(conn, t, init).await
}

pub(super) async fn create_batch(s: &PgStore, batch: &NewBatch) -> Result<()> {
    let mut tx = s.pool.begin().await?;
    insert_batch(&mut tx, batch).await?;
    super::notify_work(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Inserts a batch and its queued children within the caller's transaction.
pub(super) async fn insert_batch(conn: &mut PgConnection, batch: &NewBatch) -> Result<()> {
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
    insert(conn, &batch.batch, init).await?;
    insert_children(conn, &batch.children, &batch.batch.id).await
}

/// Children per INSERT statement: a statement per child costs a round trip to the server
/// each, which dominates a large batch; 15 parameters a row stays far below PostgreSQL's
/// limit of 65,535 per statement.
const ROWS_PER_INSERT: usize = 1000;

/// Inserts the queued children of batch `parent_id`, many rows per statement.
async fn insert_children(
    conn: &mut PgConnection,
    children: &[NewTask],
    parent_id: &str,
) -> Result<()> {
    for chunk in children.chunks(ROWS_PER_INSERT) {
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO tasks (id, account_id, invoke_id, parent_id, level, task_type, status, \
             resource_id, instance_id, instance_name, param, operator, start_ms, run_state, \
             not_before_ms) ",
        );
        qb.push_values(chunk, |mut row, t| {
            row.push_bind(&t.id)
                .push_bind(&t.account_id)
                .push_bind(&t.invoke_id)
                .push_bind(parent_id)
                .push_bind(rows::level_value(t.level))
                .push_bind(t.task_type.as_str())
                .push_bind(TaskStatus::Waiting.as_str())
                .push_bind(&t.resource_id)
                .push_bind(&t.instance_id)
                .push_bind(&t.instance_name)
                .push_bind(&t.param)
                .push_bind(&t.operator)
                .push_bind(t.start_ms)
                .push_bind("queued")
                .push_bind(t.start_ms);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

fn push_filter(qb: &mut QueryBuilder<Postgres>, f: &TaskFilter) {
    qb.push(" WHERE t.account_id = ")
        .push_bind(f.account_id.clone());
    match f.level {
        None => qb.push(" AND t.level IN (1, 2)"),
        Some(level) => qb
            .push(" AND t.level = ")
            .push_bind(rows::level_value(level)),
    };
    if let Some(invoke_id) = &f.invoke_id {
        qb.push(" AND t.invoke_id = ").push_bind(invoke_id.clone());
    }
    push_in(qb, "t.resource_id", f.resource_ids.iter().cloned());
    push_in(qb, "t.id", f.task_ids.iter().cloned());
    if let Some(parent) = &f.parent_task_id {
        qb.push(" AND t.parent_id = ").push_bind(parent.clone());
    }
    push_in(qb, "t.task_type", f.task_types.iter().map(|t| t.as_str()));
    push_in(qb, "t.status", f.statuses.iter().map(|s| s.as_str()));
    if let Some(instance_id) = &f.instance_id {
        qb.push(" AND t.level = 2 AND t.instance_id = ")
            .push_bind(instance_id.clone());
    }
    push_substring(qb, "t.instance_name", &f.instance_name);
    push_substring(qb, "t.param", &f.param);
}

pub(super) async fn describe_tasks(
    s: &PgStore,
    filter: &TaskFilter,
    page: &Page,
) -> Result<Listing<Task>> {
    let mut count = QueryBuilder::<Postgres>::new("SELECT COUNT(*) FROM tasks t");
    push_filter(&mut count, filter);
    let mut list = QueryBuilder::<Postgres>::new(rows::TASK_COLUMNS);
    list.push(rows::TASK_FROM);
    push_filter(&mut list, filter);
    push_after(&mut list, "t.start_ms", "t.id", &page.after, false);
    push_order(&mut list, "t.start_ms", "t.id", false, page.limit);

    let mut tx = s.read().await?;
    let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
    let fetched = list.build().fetch_all(&mut *tx).await?;
    tx.commit().await?;

    let items = fetched.iter().map(rows::task).collect::<Result<Vec<_>>>()?;
    let (items, next) = rows::page_of(items, page.limit, |t| Cursor {
        ms: t.start_ms,
        id: t.id.clone(),
    });
    Ok(Listing { items, total, next })
}

/// A task of any level, if it belongs to `account_id`.
pub(super) async fn task(s: &PgStore, account_id: &str, task_id: &str) -> Result<Option<Task>> {
    let mut qb = QueryBuilder::<Postgres>::new(rows::TASK_COLUMNS);
    qb.push(rows::TASK_FROM)
        .push(" WHERE t.id = ")
        .push_bind(task_id.to_owned())
        .push(" AND t.account_id = ")
        .push_bind(account_id.to_owned());
    let row = qb.build().fetch_optional(&s.pool).await?;
    row.as_ref().map(rows::task).transpose()
}

/// Deletes terminal tasks finished before `before_ms`; a batch only once none of its children
/// is unfinished (which its own terminal status already implies; checked all the same).
pub(super) async fn purge_tasks(s: &PgStore, before_ms: i64) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM tasks WHERE finish_ms < $1 \
         AND status IN ('Finished', 'PartFinished', 'Failed', 'Skipped') \
         AND NOT (level = 1 AND EXISTS (SELECT 1 FROM tasks c WHERE c.parent_id = tasks.id \
                  AND c.status IN ('Waiting', 'Processing')))",
    )
    .bind(before_ms)
    .execute(&s.pool)
    .await?;
    Ok(done.rows_affected())
}

pub(super) async fn task_counts(s: &PgStore) -> Result<Vec<crate::TaskCount>> {
    let rows = sqlx::query(
        "SELECT task_type, level, status, COUNT(*) FROM tasks GROUP BY task_type, level, status",
    )
    .fetch_all(&s.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(crate::TaskCount {
                task_type: rows::parse("task type", r.try_get::<&str, _>(0)?)?,
                level: rows::level(r.try_get(1)?)?,
                status: rows::parse("task status", r.try_get::<&str, _>(2)?)?,
                count: r.try_get(3)?,
            })
        })
        .collect()
}
