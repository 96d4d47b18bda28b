//! The task event log ([`crate::Store::task_events`]): rows written by the trigger of migration
//! 0005. A position is (transaction id, row id); only rows of transactions older than every
//! transaction still running are read, so none can later appear behind a reader's position.

use cloudphone_core::BatchCounts;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::PgStore;
use super::rows::{self, parse, push_in};
use crate::{EventFilter, EventPosition, Result, TaskEvent};

const COLUMNS: &str = "SELECT txid::text::BIGINT AS major, id, task_id, parent_id, invoke_id, \
     level, task_type, status, instance_id, error_code, c_waiting, c_processing, c_finished, \
     c_failed, c_skipped, at_ms FROM task_events";

/// Rows of ended transactions only (see the module's doc).
const SETTLED: &str = " AND txid < pg_snapshot_xmin(pg_current_snapshot())";

fn event(row: &PgRow) -> Result<TaskEvent> {
    let counts = match row.try_get::<Option<i64>, _>("c_waiting")? {
        Some(waiting) => {
            let get =
                |c: &str| -> Result<i64> { Ok(row.try_get::<Option<i64>, _>(c)?.unwrap_or(0)) };
            Some(BatchCounts {
                waiting,
                processing: get("c_processing")?,
                finished: get("c_finished")?,
                failed: get("c_failed")?,
                skipped: get("c_skipped")?,
            })
        }
        None => None,
    };
    Ok(TaskEvent {
        position: EventPosition {
            major: row.try_get("major")?,
            minor: row.try_get("id")?,
        },
        task_id: row.try_get("task_id")?,
        parent_id: row.try_get("parent_id")?,
        invoke_id: row.try_get("invoke_id")?,
        level: rows::level(row.try_get("level")?)?,
        task_type: parse("task type", row.try_get("task_type")?)?,
        status: parse("task status", row.try_get("status")?)?,
        instance_id: row.try_get("instance_id")?,
        error_code: row.try_get("error_code")?,
        counts,
        at_ms: row.try_get("at_ms")?,
    })
}

pub(super) async fn task_events(
    s: &PgStore,
    f: &EventFilter,
    after: EventPosition,
    limit: usize,
) -> Result<Vec<TaskEvent>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(COLUMNS);
    let major = after.major.to_string();
    qb.push(" WHERE account_id = ")
        .push_bind(f.account_id.clone())
        .push(" AND (txid > ")
        .push_bind(major.clone())
        .push("::xid8 OR (txid = ")
        .push_bind(major)
        .push("::xid8 AND id > ")
        .push_bind(after.minor)
        .push("))")
        .push(SETTLED);
    if let Some(level) = f.level {
        qb.push(" AND level = ").push_bind(rows::level_value(level));
    }
    if let Some(invoke_id) = &f.invoke_id {
        qb.push(" AND invoke_id = ").push_bind(invoke_id.clone());
    }
    push_in(&mut qb, "task_id", f.task_ids.iter().cloned());
    if let Some(parent) = &f.parent_task_id {
        qb.push(" AND parent_id = ").push_bind(parent.clone());
    }
    push_in(
        &mut qb,
        "task_type",
        f.task_types.iter().map(|t| t.as_str()),
    );
    push_in(&mut qb, "status", f.statuses.iter().map(|s| s.as_str()));
    if let Some(instance_id) = &f.instance_id {
        qb.push(" AND instance_id = ")
            .push_bind(instance_id.clone());
    }
    qb.push(" ORDER BY txid, id LIMIT ")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
    let found = qb.build().fetch_all(&s.pool).await?;
    found.iter().map(event).collect()
}

pub(super) async fn event_tail(s: &PgStore, account_id: &str) -> Result<EventPosition> {
    let sql = format!(
        "SELECT txid::text::BIGINT, id FROM task_events WHERE account_id = $1{SETTLED} \
         ORDER BY txid DESC, id DESC LIMIT 1"
    );
    let last: Option<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(account_id)
        .fetch_optional(&s.pool)
        .await?;
    Ok(
        last.map_or(EventPosition::default(), |(major, minor)| EventPosition {
            major,
            minor,
        }),
    )
}

pub(super) async fn purge(s: &PgStore, before_ms: i64) -> Result<u64> {
    let done = sqlx::query("DELETE FROM task_events WHERE at_ms < $1")
        .bind(before_ms)
        .execute(&s.pool)
        .await?;
    Ok(done.rows_affected())
}
