//! Accounts, access keys, signature nonces and node-wide settings. Every insert-if-absent is an
//! `INSERT ... ON CONFLICT DO NOTHING`: of two nodes racing, the second waits for the first's
//! commit and then does nothing, so exactly one value wins.

use cloudphone_core::resources::AccessKey;
use sqlx::Row;

use super::PgStore;
use crate::{Nonce, Result};

pub(super) async fn ensure_account(s: &PgStore, account_id: &str, name: &str) -> Result<()> {
    sqlx::query("INSERT INTO accounts (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(account_id)
        .bind(name)
        .execute(&s.pool)
        .await?;
    Ok(())
}

pub(super) async fn put_access_key(s: &PgStore, key: &AccessKey) -> Result<()> {
    sqlx::query(
        "INSERT INTO access_keys (key_id, secret, account_id, user_name) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key_id) DO UPDATE SET secret = EXCLUDED.secret, \
         account_id = EXCLUDED.account_id, user_name = EXCLUDED.user_name",
    )
    .bind(&key.key_id)
    .bind(&key.secret)
    .bind(&key.account_id)
    .bind(&key.user_name)
    .execute(&s.pool)
    .await?;
    Ok(())
}

pub(super) async fn access_key(s: &PgStore, key_id: &str) -> Result<Option<AccessKey>> {
    let row = sqlx::query(
        "SELECT key_id, secret, account_id, user_name FROM access_keys WHERE key_id = $1",
    )
    .bind(key_id)
    .fetch_optional(&s.pool)
    .await?;
    row.map(|r| {
        Ok(AccessKey {
            key_id: r.try_get("key_id")?,
            secret: r.try_get("secret")?,
            account_id: r.try_get("account_id")?,
            user_name: r.try_get("user_name")?,
        })
    })
    .transpose()
}

/// A nonce is accepted once, by whichever node sees it first: until [`purge_nonces`] forgets
/// it, it is a replay. One statement checks that the key is still stored as given and records
/// the nonce only then, so a key deleted or changed on any node is seen in the same round trip.
pub(super) async fn remember_nonce(
    s: &PgStore,
    key: &AccessKey,
    nonce: &str,
    expires_ms: i64,
) -> Result<Nonce> {
    let row = sqlx::query(
        "WITH k AS (SELECT 1 FROM access_keys WHERE key_id = $1 AND secret = $4 \
                    AND account_id = $5 AND user_name = $6), \
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
    .fetch_one(&s.pool)
    .await?;
    let key_ok: bool = row.try_get("key_ok")?;
    let inserted: bool = row.try_get("inserted")?;
    Ok(match (key_ok, inserted) {
        (false, _) => Nonce::KeyChanged,
        (true, true) => Nonce::Fresh,
        (true, false) => Nonce::Replay,
    })
}

pub(super) async fn purge_nonces(s: &PgStore, now_ms: i64) -> Result<u64> {
    let done = sqlx::query("DELETE FROM nonces WHERE expires_ms < $1")
        .bind(now_ms)
        .execute(&s.pool)
        .await?;
    Ok(done.rows_affected())
}

/// The read-back is a statement of its own: at READ COMMITTED it sees the row of a node whose
/// insert won the race, which a single `INSERT ... RETURNING` statement's snapshot would not.
pub(super) async fn setting_or_init(s: &PgStore, name: &str, init: &str) -> Result<String> {
    const READ: &str = "SELECT value FROM settings WHERE name = $1";
    if let Some(value) = sqlx::query_scalar(READ)
        .bind(name)
        .fetch_optional(&s.pool)
        .await?
    {
        return Ok(value);
    }
    sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(init)
        .execute(&s.pool)
        .await?;
    Ok(sqlx::query_scalar(READ)
        .bind(name)
        .fetch_one(&s.pool)
        .await?)
}
