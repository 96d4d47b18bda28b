//! ClientToken reservations and the answers they keep ([`crate::Store::begin_idempotent`]).

use rusqlite::Connection;

use super::sql::{sql, v};
use crate::{Idempotent, Result};

pub(super) fn begin(
    conn: &Connection,
    account_id: &str,
    token: &str,
    fingerprint: &str,
    now_ms: i64,
    stale_before_ms: i64,
) -> Result<Idempotent> {
    let found = sql(
        "SELECT fingerprint, state, body, created_ms FROM idempotency \
         WHERE account_id = ? AND token = ?",
        [v(account_id), v(token)],
    )
    .row(conn, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    match found {
        Some((stored, _, _, _)) if stored != fingerprint => Ok(Idempotent::Mismatch),
        Some((_, state, Some(body), _)) if state == "done" => Ok(Idempotent::Replay(body)),
        Some((_, _, _, created)) if created >= stale_before_ms => Ok(Idempotent::InFlight),
        Some(_) => {
            sql(
                "UPDATE idempotency SET state = 'pending', body = NULL, created_ms = ? \
                 WHERE account_id = ? AND token = ?",
                [v(now_ms), v(account_id), v(token)],
            )
            .execute(conn)?;
            Ok(Idempotent::Fresh)
        }
        None => {
            sql(
                "INSERT INTO idempotency (account_id, token, fingerprint, state, created_ms) \
                 VALUES (?, ?, ?, 'pending', ?)",
                [v(account_id), v(token), v(fingerprint), v(now_ms)],
            )
            .execute(conn)?;
            Ok(Idempotent::Fresh)
        }
    }
}

pub(super) fn finish(
    conn: &Connection,
    account_id: &str,
    token: &str,
    reserved_ms: i64,
    body: Option<&str>,
) -> Result<()> {
    match body {
        Some(body) => sql(
            "UPDATE idempotency SET state = 'done', body = ? WHERE account_id = ? AND token = ? \
             AND state = 'pending' AND created_ms = ?",
            [v(body), v(account_id), v(token), v(reserved_ms)],
        )
        .execute(conn)?,
        None => sql(
            "DELETE FROM idempotency WHERE account_id = ? AND token = ? AND state = 'pending' \
             AND created_ms = ?",
            [v(account_id), v(token), v(reserved_ms)],
        )
        .execute(conn)?,
    };
    Ok(())
}

pub(super) fn purge(conn: &Connection, before_ms: i64) -> Result<u64> {
    sql(
        "DELETE FROM idempotency WHERE created_ms < ?",
        [v(before_ms)],
    )
    .execute(conn)
}
