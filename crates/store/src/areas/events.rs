//! The task event log behind the watch stream: rows written by triggers on `tasks` in the
//! statement of every change (migrations sqlite/0011, postgres/0005). On SQLite the one
//! writer numbers them in commit order, so a position is the row id. On PostgreSQL a position
//! is (transaction id, row id), and only rows of transactions older than every transaction
//! still running are read, so none can later appear behind a reader's position.

use cloudphone_core::BatchCounts;

use crate::sql::conn::{Conn, Row, level, parse};
use crate::sql::{Dialect, Sql, v};
use crate::{EventFilter, EventPosition, Result, TaskEvent};

area! {
    /// The task event log.
    pub trait EventStore {
        /// Events matching `filter` strictly after `after`, in the log's order, at most
        /// `limit`. Only events whose transaction has ended and that no earlier-placed event
        /// can still join are returned, so a reader that resumes after the last position it
        /// saw misses nothing and sees nothing twice.
        fn task_events(&self, filter: &EventFilter, after: EventPosition, limit: usize)
            -> Vec<TaskEvent> = read (|c| task_events(c, filter, after, limit));
        /// Where a watch that wants only what happens from now on starts: every event
        /// [`EventStore::task_events`] returns after it is new (or was not yet readable).
        fn event_tail(&self, account_id: &str) -> EventPosition = read (|c| event_tail(c, account_id));
        /// Forgets events logged before `before_ms`; returns how many.
        fn purge_task_events(&self, before_ms: i64) -> u64 = autocommit (|c| purge(c, before_ms));
    }
}

/// The columns of an event; `major` is the transaction id on PostgreSQL, 0 on SQLite.
fn columns(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "SELECT 0 AS major, id, task_id, parent_id, invoke_id, level, task_type, status, \
             instance_id, error_code, c_waiting, c_processing, c_finished, c_failed, c_skipped, \
             at_ms FROM task_events"
        }
        Dialect::Postgres => {
            "SELECT txid::text::BIGINT AS major, id, task_id, parent_id, invoke_id, level, \
             task_type, status, instance_id, error_code, c_waiting, c_processing, c_finished, \
             c_failed, c_skipped, at_ms FROM task_events"
        }
    }
}

/// PostgreSQL: rows of ended transactions only (see the module's doc).
const SETTLED: &str = " AND txid < pg_snapshot_xmin(pg_current_snapshot())";

fn event(row: &dyn Row) -> Result<TaskEvent> {
    let counts = match row.int_opt("c_waiting")? {
        Some(waiting) => {
            let get = |c: &str| -> Result<i64> { Ok(row.int_opt(c)?.unwrap_or(0)) };
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
            major: row.int("major")?,
            minor: row.int("id")?,
        },
        task_id: row.text("task_id")?,
        parent_id: row.text_opt("parent_id")?,
        invoke_id: row.text("invoke_id")?,
        level: level(row.int("level")?)?,
        task_type: parse("task type", &row.text("task_type")?)?,
        status: parse("task status", &row.text("status")?)?,
        instance_id: row.text_opt("instance_id")?,
        error_code: row.text_opt("error_code")?,
        counts,
        at_ms: row.int("at_ms")?,
    })
}

async fn task_events(
    c: &mut impl Conn,
    f: &EventFilter,
    after: EventPosition,
    limit: usize,
) -> Result<Vec<TaskEvent>> {
    let mut q = c.sql(columns(c.dialect()));
    q.push(" WHERE account_id = ").bind(&f.account_id);
    let order = match c.dialect() {
        Dialect::Sqlite => {
            q.push(" AND id > ").bind(after.minor);
            " ORDER BY id LIMIT "
        }
        Dialect::Postgres => {
            let major = after.major.to_string();
            q.push(" AND (txid > ")
                .bind(major.clone())
                .push("::xid8 OR (txid = ")
                .bind(major)
                .push("::xid8 AND id > ")
                .bind(after.minor)
                .push("))")
                .push(SETTLED);
            " ORDER BY txid, id LIMIT "
        }
    };
    push_filter(&mut q, f);
    q.push(order).bind(i64::try_from(limit).unwrap_or(i64::MAX));
    c.rows(&q, event).await
}

fn push_filter(q: &mut Sql, f: &EventFilter) {
    if let Some(level) = f.level {
        q.push(" AND level = ").bind(level);
    }
    if let Some(invoke_id) = &f.invoke_id {
        q.push(" AND invoke_id = ").bind(invoke_id);
    }
    q.and_in("task_id", f.task_ids.iter().cloned());
    if let Some(parent) = &f.parent_task_id {
        q.push(" AND parent_id = ").bind(parent);
    }
    q.and_in("task_type", f.task_types.iter().map(|t| t.as_str()))
        .and_in("status", f.statuses.iter().map(|s| s.as_str()));
    if let Some(instance_id) = &f.instance_id {
        q.push(" AND instance_id = ").bind(instance_id);
    }
}

async fn event_tail(c: &mut impl Conn, account_id: &str) -> Result<EventPosition> {
    let text = match c.dialect() {
        Dialect::Sqlite => {
            "SELECT 0 AS major, COALESCE(MAX(id), 0) AS id FROM task_events WHERE account_id = ?"
                .to_owned()
        }
        Dialect::Postgres => format!(
            "SELECT txid::text::BIGINT AS major, id FROM task_events WHERE account_id = ?{SETTLED} \
             ORDER BY txid DESC, id DESC LIMIT 1"
        ),
    };
    let q = c.with(&text, [v(account_id)]);
    let last = c
        .row(&q, |r| {
            Ok(EventPosition {
                major: r.int("major")?,
                minor: r.int("id")?,
            })
        })
        .await?;
    Ok(last.unwrap_or_default())
}

async fn purge(c: &mut impl Conn, before_ms: i64) -> Result<u64> {
    let q = c.with("DELETE FROM task_events WHERE at_ms < ?", [v(before_ms)]);
    c.execute(&q).await
}
