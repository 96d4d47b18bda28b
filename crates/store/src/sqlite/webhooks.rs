//! Webhooks and their deliveries ([`crate::Store::create_webhook`] and the rest); the
//! deliveries are queued by the trigger of migration 0012.

use rusqlite::{Connection, Row};

use super::sql::{Sql, sql, v};
use crate::{Delivery, DeliveryEnd, DeliveryRecord, Result, Webhook};

pub(super) fn create(conn: &Connection, w: &Webhook, max: usize) -> Result<bool> {
    let have: i64 = sql(
        "SELECT COUNT(*) FROM webhooks WHERE account_id = ?",
        [v(&w.account_id)],
    )
    .scalar(conn)?;
    if usize::try_from(have).unwrap_or(usize::MAX) >= max {
        return Ok(false);
    }
    sql(
        "INSERT INTO webhooks (id, account_id, url, secret, created_ms) VALUES (?, ?, ?, ?, ?)",
        [
            v(&w.id),
            v(&w.account_id),
            v(&w.url),
            v(&w.secret),
            v(w.created_ms),
        ],
    )
    .execute(conn)?;
    Ok(true)
}

pub(super) fn list(conn: &Connection, account_id: &str) -> Result<Vec<Webhook>> {
    sql(
        "SELECT id, account_id, url, secret, created_ms FROM webhooks WHERE account_id = ? \
         ORDER BY created_ms, id",
        [v(account_id)],
    )
    .rows(conn, |r| {
        Ok(Webhook {
            id: r.get(0)?,
            account_id: r.get(1)?,
            url: r.get(2)?,
            secret: r.get(3)?,
            created_ms: r.get(4)?,
        })
    })
}

pub(super) fn delete(conn: &Connection, account_id: &str, id: &str) -> Result<bool> {
    let gone = sql(
        "DELETE FROM webhooks WHERE account_id = ? AND id = ?",
        [v(account_id), v(id)],
    )
    .execute(conn)?;
    sql(
        "DELETE FROM webhook_deliveries WHERE account_id = ? AND webhook_id = ?",
        [v(account_id), v(id)],
    )
    .execute(conn)?;
    Ok(gone == 1)
}

pub(super) fn claim(
    conn: &Connection,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<Delivery>> {
    // A delivery queued while its webhook was being deleted has nowhere to go.
    sql(
        "UPDATE webhook_deliveries SET state = 'failed', last_error = 'The webhook was deleted.', \
         done_ms = ?, lease_ms = NULL WHERE state = 'pending' \
         AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = webhook_deliveries.webhook_id)",
        [v(now_ms)],
    )
    .execute(conn)?;
    let due = sql(
        "SELECT d.seq, d.webhook_id, w.url, w.secret, d.body, d.attempts \
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.state = 'pending' AND d.not_before_ms <= ? \
         AND (d.lease_ms IS NULL OR d.lease_ms < ?) ORDER BY d.seq LIMIT ?",
        [
            v(now_ms),
            v(now_ms),
            v(i64::try_from(limit).unwrap_or(i64::MAX)),
        ],
    )
    .rows(conn, |r| {
        Ok(Delivery {
            seq: r.get(0)?,
            webhook_id: r.get(1)?,
            url: r.get(2)?,
            secret: r.get(3)?,
            body: r.get(4)?,
            attempt: r.get::<_, i64>(5)? + 1,
        })
    })?;
    for d in &due {
        sql(
            "UPDATE webhook_deliveries SET attempts = ?, lease_ms = ? WHERE seq = ?",
            [v(d.attempt), v(now_ms.saturating_add(lease_ms)), v(d.seq)],
        )
        .execute(conn)?;
    }
    Ok(due)
}

pub(super) fn end(
    conn: &Connection,
    seq: i64,
    attempt: i64,
    end: &DeliveryEnd,
    now_ms: i64,
) -> Result<bool> {
    let c = end.columns(now_ms);
    let n = sql(
        "UPDATE webhook_deliveries SET state = ?, last_status = ?, last_error = ?, \
         not_before_ms = ?, done_ms = ?, lease_ms = NULL \
         WHERE seq = ? AND attempts = ? AND state = 'pending'",
        [
            v(c.state),
            v(c.status),
            v(c.error),
            v(c.next_ms),
            v(c.done_ms),
            v(seq),
            v(attempt),
        ],
    )
    .execute(conn)?;
    Ok(n == 1)
}

fn record(r: &Row<'_>) -> Result<DeliveryRecord> {
    let state: String = r.get(3)?;
    let next: i64 = r.get(9)?;
    Ok(DeliveryRecord {
        seq: r.get(0)?,
        webhook_id: r.get(1)?,
        task_id: r.get(2)?,
        next_ms: (state == "pending").then_some(next),
        state,
        attempts: r.get(4)?,
        last_status: r.get(5)?,
        last_error: r.get(6)?,
        created_ms: r.get(7)?,
        done_ms: r.get(8)?,
    })
}

pub(super) fn list_deliveries(
    conn: &Connection,
    account_id: &str,
    webhook_id: Option<&str>,
    task_id: Option<&str>,
    limit: usize,
) -> Result<Vec<DeliveryRecord>> {
    let mut qb = Sql::new(
        "SELECT seq, webhook_id, task_id, state, attempts, last_status, last_error, created_ms, \
         done_ms, not_before_ms FROM webhook_deliveries WHERE account_id = ",
    );
    qb.bind(account_id);
    if let Some(w) = webhook_id {
        qb.push(" AND webhook_id = ").bind(w);
    }
    if let Some(t) = task_id {
        qb.push(" AND task_id = ").bind(t);
    }
    qb.push(" ORDER BY seq DESC LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    qb.rows(conn, record)
}
