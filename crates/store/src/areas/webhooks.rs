//! Webhooks and their deliveries: the URLs an account registered, and the deliveries the
//! triggers of migrations sqlite/0012 and postgres/0006 queue for them, in the transaction that
//! ends a batch. Nodes lease deliveries (`SKIP LOCKED` on PostgreSQL), so no two post the same
//! attempt.

use crate::Result;
use crate::sql::conn::{Conn, Lock, Row};
use crate::sql::v;

area! {
    /// Webhooks and their deliveries.
    pub trait WebhookStore {
        /// Registers a webhook unless the account has `max` already (then `false`, nothing
        /// stored).
        fn create_webhook(&self, webhook: &Webhook, max: usize) -> bool =
            write (|c| create(c, webhook, max));
        /// The account's webhooks, oldest first.
        fn list_webhooks(&self, account_id: &str) -> Vec<Webhook> = read (|c| list(c, account_id));
        /// Deletes a webhook of the account and its deliveries; false when there is none.
        fn delete_webhook(&self, account_id: &str, webhook_id: &str) -> bool =
            write (|c| delete(c, account_id, webhook_id));
        /// Leases up to `limit` due deliveries (pending, their time come, no live lease),
        /// oldest first, counting an attempt each. Several nodes may call this: none gets a
        /// delivery another holds.
        fn claim_deliveries(&self, now_ms: i64, lease_ms: i64, limit: usize) -> Vec<Delivery> =
            by_store ();
        /// Records how attempt `attempt` of delivery `seq` ended; fenced: false (nothing
        /// written) when that attempt is no longer the current one (its lease expired and
        /// another took it).
        fn end_delivery(&self, seq: i64, attempt: i64, end: &DeliveryEnd, now_ms: i64) -> bool =
            autocommit (|c| end_delivery(c, seq, attempt, end, now_ms));
        /// The account's deliveries, newest first, of one webhook and/or one batch if given.
        fn list_deliveries(
            &self,
            account_id: &str,
            webhook_id: Option<&str>,
            task_id: Option<&str>,
            limit: usize,
        ) -> Vec<DeliveryRecord> = read (|c| list_deliveries(c, account_id, webhook_id, task_id, limit));
    }
}

/// A webhook as stored; the secret never leaves the server except as the signatures it makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub account_id: String,
    pub url: String,
    pub secret: String,
    pub created_ms: i64,
}

/// A delivery a sender leased: what to post where, signed with which secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub seq: i64,
    pub webhook_id: String,
    pub url: String,
    pub secret: String,
    pub body: String,
    /// This attempt, from 1.
    pub attempt: i64,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryEnd {
    /// The receiver answered 2xx.
    Delivered { status: i64 },
    /// Failed; try again at `at_ms`.
    Retry {
        status: Option<i64>,
        error: String,
        at_ms: i64,
    },
    /// Failed, and no attempt is left.
    GaveUp { status: Option<i64>, error: String },
}

/// The columns an attempt's end writes.
pub(crate) struct EndColumns<'a> {
    pub state: &'static str,
    pub status: Option<i64>,
    pub error: Option<&'a str>,
    /// `not_before_ms`: when the next attempt is due (for a pending one).
    pub next_ms: i64,
    pub done_ms: Option<i64>,
}

impl DeliveryEnd {
    pub(crate) fn columns(&self, now_ms: i64) -> EndColumns<'_> {
        match self {
            DeliveryEnd::Delivered { status } => EndColumns {
                state: "delivered",
                status: Some(*status),
                error: None,
                next_ms: now_ms,
                done_ms: Some(now_ms),
            },
            DeliveryEnd::Retry {
                status,
                error,
                at_ms,
            } => EndColumns {
                state: "pending",
                status: *status,
                error: Some(error),
                next_ms: *at_ms,
                done_ms: None,
            },
            DeliveryEnd::GaveUp { status, error } => EndColumns {
                state: "failed",
                status: *status,
                error: Some(error),
                next_ms: now_ms,
                done_ms: Some(now_ms),
            },
        }
    }
}

/// A delivery as its account sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub seq: i64,
    pub webhook_id: String,
    pub task_id: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub done_ms: Option<i64>,
    /// When the next attempt is due (pending only).
    pub next_ms: Option<i64>,
}

async fn create(c: &mut impl Conn, w: &Webhook, max: usize) -> Result<bool> {
    // Two creations for one account at once are serialized here, so both cannot pass the count.
    c.lock(Lock::Webhooks(&w.account_id)).await?;
    let q = c.with(
        "SELECT COUNT(*) FROM webhooks WHERE account_id = ?",
        [v(&w.account_id)],
    );
    let have = c.int(&q).await?;
    if usize::try_from(have).unwrap_or(usize::MAX) >= max {
        return Ok(false);
    }
    let q = c.with(
        "INSERT INTO webhooks (id, account_id, url, secret, created_ms) VALUES (?, ?, ?, ?, ?)",
        [
            v(&w.id),
            v(&w.account_id),
            v(&w.url),
            v(&w.secret),
            v(w.created_ms),
        ],
    );
    c.execute(&q).await?;
    Ok(true)
}

async fn list(c: &mut impl Conn, account_id: &str) -> Result<Vec<Webhook>> {
    let q = c.with(
        "SELECT id, account_id, url, secret, created_ms FROM webhooks WHERE account_id = ? \
         ORDER BY created_ms, id",
        [v(account_id)],
    );
    c.rows(&q, |r| {
        Ok(Webhook {
            id: r.text("id")?,
            account_id: r.text("account_id")?,
            url: r.text("url")?,
            secret: r.text("secret")?,
            created_ms: r.int("created_ms")?,
        })
    })
    .await
}

async fn delete(c: &mut impl Conn, account_id: &str, id: &str) -> Result<bool> {
    let q = c.with(
        "DELETE FROM webhooks WHERE account_id = ? AND id = ?",
        [v(account_id), v(id)],
    );
    let gone = c.execute(&q).await?;
    let q = c.with(
        "DELETE FROM webhook_deliveries WHERE account_id = ? AND webhook_id = ?",
        [v(account_id), v(id)],
    );
    c.execute(&q).await?;
    Ok(gone == 1)
}

/// Fails the pending deliveries whose webhook is gone (queued while it was being deleted):
/// they have nowhere to go. The first step of every claim.
pub(crate) async fn fail_orphans(c: &mut impl Conn, now_ms: i64) -> Result<()> {
    let q = c.with(
        "UPDATE webhook_deliveries SET state = 'failed', last_error = 'The webhook was deleted.', \
         done_ms = ?, lease_ms = NULL WHERE state = 'pending' \
         AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = webhook_deliveries.webhook_id)",
        [v(now_ms)],
    );
    c.execute(&q).await.map(drop)
}

async fn end_delivery(
    c: &mut impl Conn,
    seq: i64,
    attempt: i64,
    end: &DeliveryEnd,
    now_ms: i64,
) -> Result<bool> {
    let e = end.columns(now_ms);
    let q = c.with(
        "UPDATE webhook_deliveries SET state = ?, last_status = ?, last_error = ?, \
         not_before_ms = ?, done_ms = ?, lease_ms = NULL \
         WHERE seq = ? AND attempts = ? AND state = 'pending'",
        [
            v(e.state),
            v(e.status),
            v(e.error),
            v(e.next_ms),
            v(e.done_ms),
            v(seq),
            v(attempt),
        ],
    );
    Ok(c.execute(&q).await? == 1)
}

fn record(r: &dyn Row) -> Result<DeliveryRecord> {
    let state = r.text("state")?;
    let next = r.int("not_before_ms")?;
    Ok(DeliveryRecord {
        seq: r.int("seq")?,
        webhook_id: r.text("webhook_id")?,
        task_id: r.text("task_id")?,
        next_ms: (state == "pending").then_some(next),
        state,
        attempts: r.int("attempts")?,
        last_status: r.int_opt("last_status")?,
        last_error: r.text_opt("last_error")?,
        created_ms: r.int("created_ms")?,
        done_ms: r.int_opt("done_ms")?,
    })
}

async fn list_deliveries(
    c: &mut impl Conn,
    account_id: &str,
    webhook_id: Option<&str>,
    task_id: Option<&str>,
    limit: usize,
) -> Result<Vec<DeliveryRecord>> {
    let mut q = c.sql(
        "SELECT seq, webhook_id, task_id, state, attempts, last_status, last_error, created_ms, \
         done_ms, not_before_ms FROM webhook_deliveries WHERE account_id = ",
    );
    q.bind(account_id);
    if let Some(w) = webhook_id {
        q.push(" AND webhook_id = ").bind(w);
    }
    if let Some(t) = task_id {
        q.push(" AND task_id = ").bind(t);
    }
    q.push(" ORDER BY seq DESC LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    c.rows(&q, record).await
}
