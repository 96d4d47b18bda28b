//! Accounts, access keys, signature nonces and node-wide settings.

use cloudphone_core::resources::AccessKey;
use sqlx::Row;

use super::SqliteStore;
use crate::Result;

pub(super) async fn ensure_account(s: &SqliteStore, account_id: &str, name: &str) -> Result<()> {
    let _turn = s.turn().await;
    sqlx::query("INSERT INTO accounts (id, name) VALUES (?, ?) ON CONFLICT (id) DO NOTHING")
        .bind(account_id)
        .bind(name)
        .execute(&s.pool)
        .await?;
    Ok(())
}

pub(super) async fn put_access_key(s: &SqliteStore, key: &AccessKey) -> Result<()> {
    let _turn = s.turn().await;
    sqlx::query(
        "INSERT INTO access_keys (key_id, secret, account_id, user_name) VALUES (?, ?, ?, ?) \
         ON CONFLICT (key_id) DO UPDATE SET secret = excluded.secret, \
         account_id = excluded.account_id, user_name = excluded.user_name",
    )
    .bind(&key.key_id)
    .bind(&key.secret)
    .bind(&key.account_id)
    .bind(&key.user_name)
    .execute(&s.pool)
    .await?;
    Ok(())
}

pub(super) async fn access_key(s: &SqliteStore, key_id: &str) -> Result<Option<AccessKey>> {
    let row = sqlx::query(
        "SELECT key_id, secret, account_id, user_name FROM access_keys WHERE key_id = ?",
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

/// A nonce is accepted once: until [`purge_nonces`] forgets it, it is a replay. Written in
/// groups with the other calls' nonces ([`super::nonces`]).
pub(super) async fn remember_nonce(
    s: &SqliteStore,
    key_id: &str,
    nonce: &str,
    expires_ms: i64,
) -> Result<bool> {
    s.nonces.remember(key_id, nonce, expires_ms).await
}

pub(super) async fn purge_nonces(s: &SqliteStore, now_ms: i64) -> Result<u64> {
    let _turn = s.turn().await;
    let done = sqlx::query("DELETE FROM nonces WHERE expires_ms < ?")
        .bind(now_ms)
        .execute(&s.pool)
        .await?;
    Ok(done.rows_affected())
}

pub(super) async fn setting_or_init(s: &SqliteStore, name: &str, init: &str) -> Result<String> {
    if let Some(value) = sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
        .bind(name)
        .fetch_optional(&s.pool)
        .await?
    {
        return Ok(value);
    }
    let mut w = s.write().await?;
    sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(init)
        .execute(&mut *w.tx)
        .await?;
    let value: String = sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
        .bind(name)
        .fetch_one(&mut *w.tx)
        .await?;
    w.commit().await?;
    Ok(value)
}
