//! Accounts, access keys, signature nonces and node-wide settings.

use cloudphone_core::resources::AccessKey;
use rusqlite::Connection;

use super::sql::{sql, v};
use crate::{Nonce, Result};

pub(super) fn ensure_account(conn: &Connection, account_id: &str, name: &str) -> Result<()> {
    sql(
        "INSERT INTO accounts (id, name) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
        [v(account_id), v(name)],
    )
    .execute(conn)?;
    Ok(())
}

pub(super) fn put_access_key(conn: &Connection, key: &AccessKey) -> Result<()> {
    sql(
        "INSERT INTO access_keys (key_id, secret, account_id, user_name) VALUES (?, ?, ?, ?) \
         ON CONFLICT (key_id) DO UPDATE SET secret = excluded.secret, \
         account_id = excluded.account_id, user_name = excluded.user_name",
        [
            v(&key.key_id),
            v(&key.secret),
            v(&key.account_id),
            v(&key.user_name),
        ],
    )
    .execute(conn)?;
    Ok(())
}

pub(super) fn access_key(conn: &Connection, key_id: &str) -> Result<Option<AccessKey>> {
    sql(
        "SELECT key_id, secret, account_id, user_name FROM access_keys WHERE key_id = ?",
        [v(key_id)],
    )
    .row(conn, |r| {
        Ok(AccessKey {
            key_id: r.get(0)?,
            secret: r.get(1)?,
            account_id: r.get(2)?,
            user_name: r.get(3)?,
        })
    })
}

/// A nonce is accepted once: until [`purge_nonces`] forgets it, it is a replay. The key is read
/// in the same job, so a key deleted or changed before this write is seen here. Concurrent
/// calls' nonces share the writer's group commit (`db`).
pub(super) fn remember_nonce(
    conn: &Connection,
    key: &AccessKey,
    nonce: &str,
    expires_ms: i64,
) -> Result<Nonce> {
    let stored = access_key(conn, &key.key_id)?;
    if stored.as_ref() != Some(key) {
        return Ok(Nonce::KeyChanged);
    }
    let inserted = sql(
        "INSERT INTO nonce_store.nonces (key_id, nonce, expires_ms) VALUES (?, ?, ?) \
         ON CONFLICT (key_id, nonce) DO NOTHING",
        [v(&key.key_id), v(nonce), v(expires_ms)],
    )
    .execute(conn)?;
    Ok(if inserted == 1 {
        Nonce::Fresh
    } else {
        Nonce::Replay
    })
}

pub(super) fn purge_nonces(conn: &Connection, now_ms: i64) -> Result<u64> {
    sql(
        "DELETE FROM nonce_store.nonces WHERE expires_ms < ?",
        [v(now_ms)],
    )
    .execute(conn)
}

/// The setting `name`, if stored.
pub(super) fn setting(conn: &Connection, name: &str) -> Result<Option<String>> {
    sql("SELECT value FROM settings WHERE name = ?", [v(name)]).scalar_opt(conn)
}

/// Stores `init` under `name` unless a value is there; returns the stored value.
pub(super) fn setting_or_init(conn: &Connection, name: &str, init: &str) -> Result<String> {
    sql(
        "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        [v(name), v(init)],
    )
    .execute(conn)?;
    sql("SELECT value FROM settings WHERE name = ?", [v(name)]).scalar(conn)
}
