//! ClientToken reservations and the answers they keep. Two nodes given the same new token race
//! on the primary key: one inserts, the other reads the row under its lock and sees the call in
//! flight.

use crate::sql::conn::Conn;
use crate::sql::v;
use crate::{Idempotent, Result};

area! {
    /// ClientToken idempotency.
    pub trait IdempotencyStore {
        /// Reserves `token` of `account_id` for a call with `fingerprint`, or tells what an
        /// earlier call with it left: its answer, another fingerprint, or a call still
        /// running. A reservation older than `stale_before_ms` (a node died with it) is taken
        /// over.
        fn begin_idempotent(
            &self,
            account_id: &str,
            token: &str,
            fingerprint: &str,
            now_ms: i64,
            stale_before_ms: i64,
        ) -> Idempotent = by_store ();
        /// Ends the reservation made at `reserved_ms` (the `now_ms` given to
        /// [`IdempotencyStore::begin_idempotent`]): keeps the call's answer (`Some(body)`), or
        /// frees the token (`None`, the call failed and created nothing). Fenced: a
        /// reservation taken over since (it had gone stale) is another call's, and is left
        /// alone.
        fn finish_idempotent(
            &self,
            account_id: &str,
            token: &str,
            reserved_ms: i64,
            body: Option<&str>,
        ) -> () = autocommit (|c| finish(c, account_id, token, reserved_ms, body));
        /// Forgets tokens made before `before_ms`; returns how many.
        fn purge_idempotency(&self, before_ms: i64) -> u64 = autocommit (|c| purge(c, before_ms));
    }
}

/// One try at a reservation, in the caller's transaction; `None` when the row an insert ran
/// into was gone by the time it was read (a failed call freed it, or the purge ran): then the
/// caller tries again.
pub(crate) async fn try_begin(
    c: &mut impl Conn,
    account_id: &str,
    token: &str,
    fingerprint: &str,
    now_ms: i64,
    stale_before_ms: i64,
) -> Result<Option<Idempotent>> {
    let q = c.with(
        "INSERT INTO idempotency (account_id, token, fingerprint, state, created_ms) \
         VALUES (?, ?, ?, 'pending', ?) ON CONFLICT DO NOTHING",
        [v(account_id), v(token), v(fingerprint), v(now_ms)],
    );
    if c.execute(&q).await? == 1 {
        return Ok(Some(Idempotent::Fresh));
    }
    let mut q = c.with(
        "SELECT fingerprint, state, body, created_ms FROM idempotency \
         WHERE account_id = ? AND token = ?",
        [v(account_id), v(token)],
    );
    q.for_update();
    let found = c
        .row(&q, |r| {
            Ok((
                r.text("fingerprint")?,
                r.text("state")?,
                r.text_opt("body")?,
                r.int("created_ms")?,
            ))
        })
        .await?;
    let Some((stored, state, body, created)) = found else {
        return Ok(None);
    };
    Ok(Some(if stored != fingerprint {
        Idempotent::Mismatch
    } else if let (true, Some(body)) = (state == "done", body) {
        Idempotent::Replay(body)
    } else if created >= stale_before_ms {
        Idempotent::InFlight
    } else {
        let q = c.with(
            "UPDATE idempotency SET state = 'pending', body = NULL, created_ms = ? \
             WHERE account_id = ? AND token = ?",
            [v(now_ms), v(account_id), v(token)],
        );
        c.execute(&q).await?;
        Idempotent::Fresh
    }))
}

async fn finish(
    c: &mut impl Conn,
    account_id: &str,
    token: &str,
    reserved_ms: i64,
    body: Option<&str>,
) -> Result<()> {
    let q = match body {
        Some(body) => c.with(
            "UPDATE idempotency SET state = 'done', body = ? WHERE account_id = ? AND token = ? \
             AND state = 'pending' AND created_ms = ?",
            [v(body), v(account_id), v(token), v(reserved_ms)],
        ),
        None => c.with(
            "DELETE FROM idempotency WHERE account_id = ? AND token = ? AND state = 'pending' \
             AND created_ms = ?",
            [v(account_id), v(token), v(reserved_ms)],
        ),
    };
    c.execute(&q).await.map(drop)
}

async fn purge(c: &mut impl Conn, before_ms: i64) -> Result<u64> {
    let q = c.with(
        "DELETE FROM idempotency WHERE created_ms < ?",
        [v(before_ms)],
    );
    c.execute(&q).await
}
