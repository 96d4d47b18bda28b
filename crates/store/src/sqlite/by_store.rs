//! The operations whose SQLite side is its own (declared `by_store` in `crate::areas`): the
//! engine's claim, group-committed completions, sweep and cancel ([`super::engine`]), nonces in
//! their own file, DescribeTasks written straight from the rows on the reader thread, the
//! webhook claim (one writer: no row locks to skip), and the work signals, which one process
//! never needs from others.

use std::sync::Arc;

use cloudphone_core::resources::AccessKey;
use tokio::sync::Notify;

use super::conn::{Lite, Run, now, sql};
use super::{SqliteStore, engine, rows};
use crate::areas::{accounts, idempotency, tasks, webhooks};
use crate::sql::{Dialect, page_size, v};
use crate::{
    AccountShares, CancelOutcome, Claim, Completion, Cursor, Delivery, Idempotent, Nonce, Outcome,
    Page, Rendered, Result, Swept, TaskFilter, TaskRender,
};

/// DescribeTasks written by `render` row by row as SQLite steps, from the row's own buffers:
/// no task is decoded into owned strings, and nothing is freed on another thread.
pub(crate) async fn describe_tasks_rendered(
    s: &SqliteStore,
    filter: &TaskFilter,
    page: &Page,
    head: Vec<u8>,
    render: TaskRender,
) -> Result<Rendered> {
    let (count, list) = tasks::describe_statements(Dialect::Sqlite, filter, page);
    let limit = page_size(page.limit);
    s.db()
        .read(move |conn| {
            super::snapshot(conn, |conn| {
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
        })
        .await
}

pub(crate) async fn cancel_tasks(
    s: &SqliteStore,
    account_id: &str,
    task_ids: &[String],
    now_ms: i64,
) -> Result<CancelOutcome> {
    let (account_id, task_ids) = (account_id.to_owned(), task_ids.to_vec());
    s.db()
        .write(move |c| engine::cancel_tasks(c, &account_id, &task_ids, now_ms))
        .await
}

/// A nonce is accepted once: until [`purge_nonces`] forgets it, it is a replay. The key is read
/// in the same job, so a key deleted or changed before this write is seen here. The nonces live
/// in a file of their own, which the writer attaches (`db`); concurrent calls' nonces share
/// its group commits.
pub(crate) async fn remember_nonce(
    s: &SqliteStore,
    key: &AccessKey,
    nonce: &str,
    expires_ms: i64,
) -> Result<Nonce> {
    let (key, nonce) = (key.clone(), nonce.to_owned());
    s.db()
        .write_nonce(move |c| record_nonce(c, &key, &nonce, expires_ms))
        .await
}

/// The nonce job of [`remember_nonce`], on the writer's connection.
pub(super) fn record_nonce(
    c: &rusqlite::Connection,
    key: &AccessKey,
    nonce: &str,
    expires_ms: i64,
) -> Result<Nonce> {
    let stored = now(accounts::access_key(&mut Lite::new(c), &key.key_id))?;
    if stored.as_ref() != Some(key) {
        return Ok(accounts::nonce_answer(false, false));
    }
    let inserted = sql(
        "INSERT INTO nonce_store.nonces (key_id, nonce, expires_ms) VALUES (?, ?, ?) \
         ON CONFLICT (key_id, nonce) DO NOTHING",
        [v(&key.key_id), v(nonce), v(expires_ms)],
    )
    .execute(c)?;
    Ok(accounts::nonce_answer(true, inserted == 1))
}

pub(crate) async fn purge_nonces(s: &SqliteStore, now_ms: i64) -> Result<u64> {
    s.db()
        .write_nonce(move |c| {
            sql(
                "DELETE FROM nonce_store.nonces WHERE expires_ms < ?",
                [v(now_ms)],
            )
            .execute(c)
        })
        .await
}

/// The writer runs every claim alone: the due deliveries are read, then leased one by one.
pub(crate) async fn claim_deliveries(
    s: &SqliteStore,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<Delivery>> {
    s.db()
        .write(move |c| {
            now(webhooks::fail_orphans(&mut Lite::new(c), now_ms))?;
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
            .rows(c, |r| {
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
                .execute(c)?;
            }
            Ok(due)
        })
        .await
}

pub(crate) async fn begin_idempotent(
    s: &SqliteStore,
    account_id: &str,
    token: &str,
    fingerprint: &str,
    now_ms: i64,
    stale_before_ms: i64,
) -> Result<Idempotent> {
    let (account_id, token, fingerprint) = (
        account_id.to_owned(),
        token.to_owned(),
        fingerprint.to_owned(),
    );
    s.db()
        .write(move |c| {
            loop {
                // The one writer sees the row it ran into: the first try decides.
                let found = now(idempotency::try_begin(
                    &mut Lite::new(c),
                    &account_id,
                    &token,
                    &fingerprint,
                    now_ms,
                    stale_before_ms,
                ))?;
                if let Some(found) = found {
                    return Ok(found);
                }
            }
        })
        .await
}

pub(crate) async fn claim(
    s: &SqliteStore,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<Claim>> {
    claim_fair(s, owner, now_ms, lease_ms, limit, &AccountShares::default()).await
}

pub(crate) async fn claim_fair(
    s: &SqliteStore,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
    shares: &AccountShares,
) -> Result<Vec<Claim>> {
    let (owner, shares) = (owner.to_owned(), shares.clone());
    s.db()
        .write(move |c| engine::claim(c, &owner, now_ms, lease_ms, limit, &shares))
        .await
}

pub(crate) async fn complete(
    s: &SqliteStore,
    task_id: &str,
    attempt: i64,
    outcome: &Outcome,
    now_ms: i64,
) -> Result<bool> {
    let item = Completion {
        task_id: task_id.to_string(),
        attempt,
        outcome: outcome.clone(),
        now_ms,
    };
    let done = complete_many(s, std::slice::from_ref(&item)).await?;
    Ok(done[0])
}

pub(crate) async fn complete_many(s: &SqliteStore, items: &[Completion]) -> Result<Vec<bool>> {
    let items = items.to_vec();
    s.db()
        .write(move |c| engine::complete_many(c, &items))
        .await
}

pub(crate) async fn sweep_expired(
    s: &SqliteStore,
    now_ms: i64,
    max_attempts: i64,
    retry_delay_ms: i64,
) -> Result<Vec<Swept>> {
    s.db()
        .write(move |c| engine::sweep_expired(c, now_ms, max_attempts, retry_delay_ms))
        .await
}

/// One process owns the file: its own API wakes its engine in-process, so this never returns.
pub(crate) async fn forward_work_signals(_s: &SqliteStore, _wake: Arc<Notify>) -> Result<()> {
    std::future::pending().await
}
