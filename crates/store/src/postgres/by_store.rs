//! The operations whose PostgreSQL side is its own (declared `by_store` in `crate::areas`): the
//! engine's claim, completion, sweep and cancel with their locking rules ([`super::engine`]),
//! the nonce check in one statement, the webhook claim with `SKIP LOCKED`, ClientToken
//! reservations retried when their row vanished, and the work signals of other nodes.

use std::sync::Arc;

use cloudphone_core::resources::AccessKey;
use sqlx::Row as _;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use super::{Pg, PgStore, WORK_CHANNEL, engine};
use crate::areas::{idempotency, webhooks};
use crate::{
    AccountShares, CancelOutcome, Claim, Completion, Delivery, Idempotent, Nonce, Outcome, Page,
    Rendered, Result, Swept, TaskFilter, TaskRender, TaskStore,
};

/// The page is read, then written: sqlx decodes every row into owned values anyway.
pub(crate) async fn describe_tasks_rendered(
    s: &PgStore,
    filter: &TaskFilter,
    page: &Page,
    head: Vec<u8>,
    render: TaskRender,
) -> Result<Rendered> {
    let listing = s.describe_tasks(filter, page).await?;
    let mut bytes = head;
    for (n, task) in listing.items.iter().enumerate() {
        render(&mut bytes, n, &task.view());
    }
    Ok(Rendered {
        bytes,
        count: listing.items.len(),
        total: listing.total,
        next: listing.next,
    })
}

pub(crate) async fn cancel_tasks(
    s: &PgStore,
    account_id: &str,
    task_ids: &[String],
    now_ms: i64,
) -> Result<CancelOutcome> {
    engine::cancel_tasks(s, account_id, task_ids, now_ms).await
}

/// A nonce is accepted once, by whichever node sees it first: until [`purge_nonces`] forgets
/// it, it is a replay. One statement checks that the key is still stored as given and records
/// the nonce only then, so a key deleted or changed on any node is seen in the same round trip.
pub(crate) async fn remember_nonce(
    s: &PgStore,
    key: &AccessKey,
    nonce: &str,
    expires_ms: i64,
) -> Result<Nonce> {
    let row = sqlx::query(
        "WITH k AS (SELECT 1 FROM access_keys k JOIN accounts a ON a.id = k.account_id \
                    WHERE k.key_id = $1 AND k.secret = $4 AND k.account_id = $5 \
                    AND k.user_name = $6 AND NOT k.disabled AND NOT a.disabled), \
              ins AS (INSERT INTO nonces (key_id, nonce, expires_ms) \
                      SELECT $1, $2, $3 FROM k ON CONFLICT (key_id, nonce) DO NOTHING \
                      RETURNING 1) \
         SELECT EXISTS (SELECT 1 FROM k) AS key_ok, EXISTS (SELECT 1 FROM ins) AS inserted",
    )
    .bind(&key.key_id)
    .bind(nonce)
    .bind(expires_ms)
    .bind(&key.secret)
    .bind(&key.account_id)
    .bind(&key.user_name)
    .fetch_one(s.pool())
    .await?;
    Ok(crate::areas::accounts::nonce_answer(
        row.try_get("key_ok")?,
        row.try_get("inserted")?,
    ))
}

pub(crate) async fn purge_nonces(s: &PgStore, now_ms: i64) -> Result<u64> {
    let done = sqlx::query("DELETE FROM nonces WHERE expires_ms < $1")
        .bind(now_ms)
        .execute(s.pool())
        .await?;
    Ok(done.rows_affected())
}

/// Due deliveries are leased in one statement; rows another node is leasing are passed over.
pub(crate) async fn claim_deliveries(
    s: &PgStore,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<Delivery>> {
    webhooks::fail_orphans(&mut Pg::Pool(s.pool()), now_ms).await?;
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
    .fetch_all(s.pool())
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

/// Each try runs in a transaction of its own; the row an insert ran into may be gone by the
/// time it is read (a failed call freed it, or the purge ran): then the next try inserts.
pub(crate) async fn begin_idempotent(
    s: &PgStore,
    account_id: &str,
    token: &str,
    fingerprint: &str,
    now_ms: i64,
    stale_before_ms: i64,
) -> Result<Idempotent> {
    loop {
        let mut tx = s.pool().begin().await?;
        let found = idempotency::try_begin(
            &mut Pg::Tx(&mut tx),
            account_id,
            token,
            fingerprint,
            now_ms,
            stale_before_ms,
        )
        .await?;
        if let Some(found) = found {
            tx.commit().await?;
            return Ok(found);
        }
    }
}

pub(crate) async fn claim(
    s: &PgStore,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<Claim>> {
    engine::claim(s, owner, now_ms, lease_ms, limit, &AccountShares::default()).await
}

pub(crate) async fn claim_fair(
    s: &PgStore,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
    shares: &AccountShares,
) -> Result<Vec<Claim>> {
    engine::claim(s, owner, now_ms, lease_ms, limit, shares).await
}

pub(crate) async fn complete(
    s: &PgStore,
    task_id: &str,
    attempt: i64,
    outcome: &Outcome,
    now_ms: i64,
) -> Result<bool> {
    engine::complete(s, task_id, attempt, outcome, now_ms).await
}

/// One transaction per completion: nodes lock batch rows in id order at the end of each.
pub(crate) async fn complete_many(s: &PgStore, items: &[Completion]) -> Result<Vec<bool>> {
    let mut done = Vec::with_capacity(items.len());
    for item in items {
        done.push(
            engine::complete(s, &item.task_id, item.attempt, &item.outcome, item.now_ms).await?,
        );
    }
    Ok(done)
}

pub(crate) async fn sweep_expired(
    s: &PgStore,
    now_ms: i64,
    max_attempts: i64,
    retry_delay_ms: i64,
) -> Result<Vec<Swept>> {
    engine::sweep_expired(s, now_ms, max_attempts, retry_delay_ms).await
}

pub(crate) async fn forward_work_signals(s: &PgStore, wake: Arc<Notify>) -> Result<()> {
    let mut listener = PgListener::connect_with(s.pool()).await?;
    listener.listen(WORK_CHANNEL).await?;
    loop {
        // `None` means the connection was lost (the listener reconnects and listens again on
        // the next call): a notification may have been missed meanwhile, so wake all the same.
        // An error (the database still unreachable, the pool closed) ends the forwarding; the
        // caller retries and polls meanwhile.
        let _notification = listener.try_recv().await?;
        wake.notify_one();
    }
}
