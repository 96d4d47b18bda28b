//! Webhooks and their deliveries ([`crate::Store::create_webhook`] and the rest); the
//! deliveries are queued by the trigger of migration 0006. Nodes claim deliveries with
//! `SKIP LOCKED`, so no two post the same attempt.

use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::PgStore;
use crate::{Delivery, DeliveryEnd, DeliveryRecord, Result, Webhook};

pub(super) async fn create(s: &PgStore, w: &Webhook, max: usize) -> Result<bool> {
    let mut tx = s.pool.begin().await?;
    // Two creations for one account at once are serialized here, so both cannot pass the count.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('webhooks:' || $1))")
        .bind(&w.account_id)
        .execute(&mut *tx)
        .await?;
    let have: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE account_id = $1")
        .bind(&w.account_id)
        .fetch_one(&mut *tx)
        .await?;
    if usize::try_from(have).unwrap_or(usize::MAX) >= max {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO webhooks (id, account_id, url, secret, created_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&w.id)
    .bind(&w.account_id)
    .bind(&w.url)
    .bind(&w.secret)
    .bind(w.created_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn list(s: &PgStore, account_id: &str) -> Result<Vec<Webhook>> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, account_id, url, secret, created_ms FROM webhooks WHERE account_id = $1 \
         ORDER BY created_ms, id",
    )
    .bind(account_id)
    .fetch_all(&s.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, account_id, url, secret, created_ms)| Webhook {
            id,
            account_id,
            url,
            secret,
            created_ms,
        })
        .collect())
}

pub(super) async fn delete(s: &PgStore, account_id: &str, id: &str) -> Result<bool> {
    let mut tx = s.pool.begin().await?;
    let gone = sqlx::query("DELETE FROM webhooks WHERE account_id = $1 AND id = $2")
        .bind(account_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM webhook_deliveries WHERE account_id = $1 AND webhook_id = $2")
        .bind(account_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(gone.rows_affected() == 1)
}

pub(super) async fn claim(
    s: &PgStore,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<Delivery>> {
    // A delivery queued while its webhook was being deleted has nowhere to go.
    sqlx::query(
        "UPDATE webhook_deliveries d SET state = 'failed', \
         last_error = 'The webhook was deleted.', done_ms = $1, lease_ms = NULL \
         WHERE d.state = 'pending' AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id)",
    )
    .bind(now_ms)
    .execute(&s.pool)
    .await?;
    let rows = sqlx::query(
        "UPDATE webhook_deliveries d SET attempts = d.attempts + 1, lease_ms = $2 \
         FROM webhooks w WHERE w.id = d.webhook_id AND d.seq IN ( \
             SELECT seq FROM webhook_deliveries WHERE state = 'pending' AND not_before_ms <= $1 \
             AND (lease_ms IS NULL OR lease_ms < $1) ORDER BY seq LIMIT $3 \
             FOR UPDATE SKIP LOCKED) \
         RETURNING d.seq, d.webhook_id, w.url, w.secret, d.body, d.attempts",
    )
    .bind(now_ms)
    .bind(now_ms.saturating_add(lease_ms))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&s.pool)
    .await?;
    let mut due = rows
        .iter()
        .map(|r| {
            Ok(Delivery {
                seq: r.try_get("seq")?,
                webhook_id: r.try_get("webhook_id")?,
                url: r.try_get("url")?,
                secret: r.try_get("secret")?,
                body: r.try_get("body")?,
                attempt: r.try_get("attempts")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    due.sort_by_key(|d| d.seq);
    Ok(due)
}

pub(super) async fn end(
    s: &PgStore,
    seq: i64,
    attempt: i64,
    end: &DeliveryEnd,
    now_ms: i64,
) -> Result<bool> {
    let c = end.columns(now_ms);
    let n = sqlx::query(
        "UPDATE webhook_deliveries SET state = $1, last_status = $2, last_error = $3, \
         not_before_ms = $4, done_ms = $5, lease_ms = NULL \
         WHERE seq = $6 AND attempts = $7 AND state = 'pending'",
    )
    .bind(c.state)
    .bind(c.status)
    .bind(c.error)
    .bind(c.next_ms)
    .bind(c.done_ms)
    .bind(seq)
    .bind(attempt)
    .execute(&s.pool)
    .await?;
    Ok(n.rows_affected() == 1)
}

fn record(r: &PgRow) -> Result<DeliveryRecord> {
    let state: String = r.try_get("state")?;
    let next: i64 = r.try_get("not_before_ms")?;
    Ok(DeliveryRecord {
        seq: r.try_get("seq")?,
        webhook_id: r.try_get("webhook_id")?,
        task_id: r.try_get("task_id")?,
        next_ms: (state == "pending").then_some(next),
        state,
        attempts: r.try_get("attempts")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        created_ms: r.try_get("created_ms")?,
        done_ms: r.try_get("done_ms")?,
    })
}

pub(super) async fn list_deliveries(
    s: &PgStore,
    account_id: &str,
    webhook_id: Option<&str>,
    task_id: Option<&str>,
    limit: usize,
) -> Result<Vec<DeliveryRecord>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT seq, webhook_id, task_id, state, attempts, last_status, last_error, created_ms, \
         done_ms, not_before_ms FROM webhook_deliveries WHERE account_id = ",
    );
    qb.push_bind(account_id.to_string());
    if let Some(w) = webhook_id {
        qb.push(" AND webhook_id = ").push_bind(w.to_string());
    }
    if let Some(t) = task_id {
        qb.push(" AND task_id = ").push_bind(t.to_string());
    }
    qb.push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
    let rows = qb.build().fetch_all(&s.pool).await?;
    rows.iter().map(record).collect()
}
