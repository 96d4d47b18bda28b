//! ClientToken reservations and the answers they keep ([`crate::Store::begin_idempotent`]).
//! Two nodes given the same new token race on the primary key: one inserts, the other reads
//! the row under its lock and sees the call in flight.

use super::PgStore;
use crate::{Idempotent, Result};

pub(super) async fn begin(
    s: &PgStore,
    account_id: &str,
    token: &str,
    fingerprint: &str,
    now_ms: i64,
    stale_before_ms: i64,
) -> Result<Idempotent> {
    // The row an insert found may be gone by the time it is read (a failed call freed it, or
    // the purge ran): then insert again.
    loop {
        if let Some(found) =
            try_begin(s, account_id, token, fingerprint, now_ms, stale_before_ms).await?
        {
            return Ok(found);
        }
    }
}

async fn try_begin(
    s: &PgStore,
    account_id: &str,
    token: &str,
    fingerprint: &str,
    now_ms: i64,
    stale_before_ms: i64,
) -> Result<Option<Idempotent>> {
    let mut tx = s.pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency (account_id, token, fingerprint, state, created_ms) \
         VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT DO NOTHING",
    )
    .bind(account_id)
    .bind(token)
    .bind(fingerprint)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 1 {
        tx.commit().await?;
        return Ok(Some(Idempotent::Fresh));
    }
    let row: Option<(String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT fingerprint, state, body, created_ms FROM idempotency \
         WHERE account_id = $1 AND token = $2 FOR UPDATE",
    )
    .bind(account_id)
    .bind(token)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((stored, state, body, created)) = row else {
        return Ok(None);
    };
    let found = if stored != fingerprint {
        Idempotent::Mismatch
    } else if let (true, Some(body)) = (state == "done", body) {
        Idempotent::Replay(body)
    } else if created >= stale_before_ms {
        Idempotent::InFlight
    } else {
        sqlx::query(
            "UPDATE idempotency SET state = 'pending', body = NULL, created_ms = $1 \
             WHERE account_id = $2 AND token = $3",
        )
        .bind(now_ms)
        .bind(account_id)
        .bind(token)
        .execute(&mut *tx)
        .await?;
        Idempotent::Fresh
    };
    tx.commit().await?;
    Ok(Some(found))
}

pub(super) async fn finish(
    s: &PgStore,
    account_id: &str,
    token: &str,
    reserved_ms: i64,
    body: Option<&str>,
) -> Result<()> {
    match body {
        Some(body) => {
            sqlx::query(
                "UPDATE idempotency SET state = 'done', body = $1 WHERE account_id = $2 \
             AND token = $3 AND state = 'pending' AND created_ms = $4",
            )
            .bind(body)
            .bind(account_id)
            .bind(token)
            .bind(reserved_ms)
            .execute(&s.pool)
            .await?
        }
        None => sqlx::query(
            "DELETE FROM idempotency WHERE account_id = $1 AND token = $2 AND state = 'pending' \
             AND created_ms = $3",
        )
        .bind(account_id)
        .bind(token)
        .bind(reserved_ms)
        .execute(&s.pool)
        .await?,
    };
    Ok(())
}

pub(super) async fn purge(s: &PgStore, before_ms: i64) -> Result<u64> {
    let done = sqlx::query("DELETE FROM idempotency WHERE created_ms < $1")
        .bind(before_ms)
        .execute(&s.pool)
        .await?;
    Ok(done.rows_affected())
}
