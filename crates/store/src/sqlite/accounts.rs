//! Accounts, access keys, signature nonces, node-wide settings and the audit log.

use cloudphone_core::resources::AccessKey;
use cloudphone_core::time::now_ms;
use rusqlite::Connection;

use super::sql::{Sql, sql, v};
use crate::{
    AccountDeletion, AccountRecord, AuditEntry, AuditFilter, KeyRecord, Nonce, Result, StoreError,
};

pub(super) fn ensure_account(conn: &Connection, account_id: &str, name: &str) -> Result<()> {
    sql(
        "INSERT INTO accounts (id, name, created_ms) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
        [v(account_id), v(name), v(now_ms())],
    )
    .execute(conn)?;
    Ok(())
}

pub(super) fn put_access_key(conn: &Connection, key: &AccessKey) -> Result<()> {
    sql(
        "INSERT INTO access_keys (key_id, secret, account_id, user_name, created_ms) \
         VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (key_id) DO UPDATE SET secret = excluded.secret, \
         account_id = excluded.account_id, user_name = excluded.user_name, disabled = 0",
        [
            v(&key.key_id),
            v(&key.secret),
            v(&key.account_id),
            v(&key.user_name),
            v(now_ms()),
        ],
    )
    .execute(conn)?;
    Ok(())
}

pub(super) fn access_key(conn: &Connection, key_id: &str) -> Result<Option<AccessKey>> {
    sql(
        "SELECT k.key_id, k.secret, k.account_id, k.user_name FROM access_keys k \
         JOIN accounts a ON a.id = k.account_id \
         WHERE k.key_id = ? AND k.disabled = 0 AND a.disabled = 0",
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

pub(super) fn list_accounts(conn: &Connection) -> Result<Vec<AccountRecord>> {
    sql(
        "SELECT a.id, a.name, a.disabled, a.created_ms, \
         (SELECT COUNT(*) FROM access_keys k WHERE k.account_id = a.id), \
         (SELECT COUNT(*) FROM instances i WHERE i.account_id = a.id AND i.status != 'DELETED') \
         FROM accounts a ORDER BY a.id",
        [],
    )
    .rows(conn, |r| {
        Ok(AccountRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            disabled: r.get(2)?,
            created_ms: r.get(3)?,
            keys: r.get::<_, i64>(4)? as u64,
            instances: r.get::<_, i64>(5)? as u64,
        })
    })
}

pub(super) fn set_account_disabled(conn: &Connection, id: &str, disabled: bool) -> Result<bool> {
    let n = sql(
        "UPDATE accounts SET disabled = ? WHERE id = ?",
        [v(disabled), v(id)],
    )
    .execute(conn)?;
    Ok(n == 1)
}

pub(super) fn delete_account(conn: &Connection, id: &str) -> Result<AccountDeletion> {
    let exists: Option<i64> =
        sql("SELECT 1 FROM accounts WHERE id = ?", [v(id)]).scalar_opt(conn)?;
    if exists.is_none() {
        return Ok(AccountDeletion::NotFound);
    }
    let live: i64 = sql(
        "SELECT COUNT(*) FROM instances WHERE account_id = ? AND status != 'DELETED'",
        [v(id)],
    )
    .scalar(conn)?;
    if live > 0 {
        return Ok(AccountDeletion::HasInstances(live as u64));
    }
    sql("DELETE FROM access_keys WHERE account_id = ?", [v(id)]).execute(conn)?;
    sql("DELETE FROM accounts WHERE id = ?", [v(id)]).execute(conn)?;
    Ok(AccountDeletion::Deleted)
}

pub(super) fn list_access_keys(conn: &Connection, account: Option<&str>) -> Result<Vec<KeyRecord>> {
    let mut q = Sql::new(
        "SELECT k.key_id, k.secret, k.account_id, k.user_name, k.disabled, a.disabled, k.created_ms \
         FROM access_keys k JOIN accounts a ON a.id = k.account_id",
    );
    if let Some(account) = account {
        q.push(" WHERE k.account_id = ").bind(account);
    }
    q.push(" ORDER BY k.key_id");
    q.rows(conn, |r| {
        Ok(KeyRecord {
            key: AccessKey {
                key_id: r.get(0)?,
                secret: r.get(1)?,
                account_id: r.get(2)?,
                user_name: r.get(3)?,
            },
            disabled: r.get(4)?,
            account_disabled: r.get(5)?,
            created_ms: r.get(6)?,
        })
    })
}

pub(super) fn set_access_key_disabled(
    conn: &Connection,
    key_id: &str,
    disabled: bool,
) -> Result<bool> {
    let n = sql(
        "UPDATE access_keys SET disabled = ? WHERE key_id = ?",
        [v(disabled), v(key_id)],
    )
    .execute(conn)?;
    Ok(n == 1)
}

pub(super) fn delete_access_key(conn: &Connection, key_id: &str) -> Result<bool> {
    let n = sql("DELETE FROM access_keys WHERE key_id = ?", [v(key_id)]).execute(conn)?;
    Ok(n == 1)
}

pub(super) fn append_audit(conn: &Connection, entries: &[AuditEntry]) -> Result<()> {
    for e in entries {
        let ids = serde_json::to_string(&e.resource_ids)
            .map_err(|err| StoreError::Corrupt(format!("audit ids: {err}")))?;
        sql(
            "INSERT INTO audit_log (at_ms, account_id, user_name, key_id, action, resource_ids, \
             request_id, source, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                v(e.at_ms),
                v(&e.account_id),
                v(&e.user_name),
                v(&e.key_id),
                v(&e.action),
                v(ids),
                v(&e.request_id),
                v(&e.source),
                v(&e.outcome),
            ],
        )
        .execute(conn)?;
    }
    Ok(())
}

pub(super) fn audit(conn: &Connection, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
    let mut q = Sql::new(
        "SELECT id, at_ms, account_id, user_name, key_id, action, resource_ids, request_id, \
         source, outcome FROM audit_log WHERE id > ",
    );
    q.bind(f.after_id);
    if let Some(a) = &f.account_id {
        q.push(" AND account_id = ").bind(a.as_str());
    }
    if let Some(a) = &f.action {
        q.push(" AND action = ").bind(a.as_str());
    }
    q.push(" ORDER BY id LIMIT ")
        .bind(f.limit.clamp(1, 10_000) as i64);
    q.rows(conn, |r| {
        let ids: String = r.get(6)?;
        Ok(AuditEntry {
            id: r.get(0)?,
            at_ms: r.get(1)?,
            account_id: r.get(2)?,
            user_name: r.get(3)?,
            key_id: r.get(4)?,
            action: r.get(5)?,
            resource_ids: serde_json::from_str(&ids)
                .map_err(|err| StoreError::Corrupt(format!("audit ids: {err}")))?,
            request_id: r.get(7)?,
            source: r.get(8)?,
            outcome: r.get(9)?,
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
