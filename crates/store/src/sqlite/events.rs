//! The task event log ([`crate::Store::task_events`]): rows written by the triggers of migration
//! 0011, numbered in commit order by the one writer, so a position is just the row id.

use cloudphone_core::BatchCounts;
use rusqlite::{Connection, Row};

use super::rows::{self, parse, push_in};
use super::sql::{Sql, sql, v};
use crate::{EventFilter, EventPosition, Result, TaskEvent};

const COLUMNS: &str = "SELECT id, task_id, parent_id, invoke_id, level, task_type, status, \
     instance_id, error_code, c_waiting, c_processing, c_finished, c_failed, c_skipped, at_ms \
     FROM task_events";

fn event(row: &Row<'_>) -> Result<TaskEvent> {
    let counts = match row.get::<_, Option<i64>>(9)? {
        Some(waiting) => Some(BatchCounts {
            waiting,
            processing: row.get::<_, Option<i64>>(10)?.unwrap_or(0),
            finished: row.get::<_, Option<i64>>(11)?.unwrap_or(0),
            failed: row.get::<_, Option<i64>>(12)?.unwrap_or(0),
            skipped: row.get::<_, Option<i64>>(13)?.unwrap_or(0),
        }),
        None => None,
    };
    Ok(TaskEvent {
        position: EventPosition {
            major: 0,
            minor: row.get(0)?,
        },
        task_id: row.get(1)?,
        parent_id: row.get(2)?,
        invoke_id: row.get(3)?,
        level: rows::level(row.get(4)?)?,
        task_type: parse("task type", row.get_ref(5)?.as_str()?)?,
        status: parse("task status", row.get_ref(6)?.as_str()?)?,
        instance_id: row.get(7)?,
        error_code: row.get(8)?,
        counts,
        at_ms: row.get(14)?,
    })
}

pub(super) fn task_events(
    conn: &Connection,
    f: &EventFilter,
    after: EventPosition,
    limit: usize,
) -> Result<Vec<TaskEvent>> {
    let mut qb = Sql::new(COLUMNS);
    qb.push(" WHERE account_id = ")
        .bind(&f.account_id)
        .push(" AND id > ")
        .bind(after.minor);
    push_filter(&mut qb, f);
    qb.push(" ORDER BY id LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    qb.rows(conn, event)
}

fn push_filter(qb: &mut Sql, f: &EventFilter) {
    if let Some(level) = f.level {
        qb.push(" AND level = ").bind(level.as_i64());
    }
    if let Some(invoke_id) = &f.invoke_id {
        qb.push(" AND invoke_id = ").bind(invoke_id);
    }
    push_in(qb, "task_id", f.task_ids.iter().cloned());
    if let Some(parent) = &f.parent_task_id {
        qb.push(" AND parent_id = ").bind(parent);
    }
    push_in(qb, "task_type", f.task_types.iter().map(|t| t.as_str()));
    push_in(qb, "status", f.statuses.iter().map(|s| s.as_str()));
    if let Some(instance_id) = &f.instance_id {
        qb.push(" AND instance_id = ").bind(instance_id);
    }
}

pub(super) fn event_tail(conn: &Connection, account_id: &str) -> Result<EventPosition> {
    let last: i64 = sql(
        "SELECT COALESCE(MAX(id), 0) FROM task_events WHERE account_id = ?",
        [v(account_id)],
    )
    .scalar(conn)?;
    Ok(EventPosition {
        major: 0,
        minor: last,
    })
}

pub(super) fn purge(conn: &Connection, before_ms: i64) -> Result<u64> {
    sql("DELETE FROM task_events WHERE at_ms < ?", [v(before_ms)]).execute(conn)
}
