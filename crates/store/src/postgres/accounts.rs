//! Accounts, access keys, signature nonces and node-wide settings. Every insert-if-absent is an
//! `INSERT ... ON CONFLICT DO NOTHING`: of two nodes racing, the second waits for the first's
//! commit and then does nothing, so exactly one value wins.

use cloudphone_core::resources::AccessKey;
use cloudphone_core::time::now_ms;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::PgStore;
use crate::{
    AccountDeletion, AccountRecord, AuditEntry, AuditFilter, KeyRecord, Nonce, Result, StoreError,
};

pub(super) async fn ensure_account(s: &PgStore, account_id: &str, name: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO accounts (id, name, created_ms) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
    )
    .bind(account_id)
    .bind(name)
    .bind(now_ms())
    .execute(&s.pool)
    .await?;
    Ok(())
}

pub(super) async fn put_access_key(s: &PgStore, key: &AccessKey) -> Result<()> {
    sqlx::query(
        "INSERT INTO access_keys (key_id, secret, account_id, user_name, created_ms) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (key_id) DO UPDATE SET secret = EXCLUDED.secret, \
         account_id = EXCLUDED.account_id, user_name = EXCLUDED.user_name, disabled = FALSE",
    )
    .bind(&key.key_id)
    .bind(&key.secret)
    .bind(&key.account_id)
    .bind(&key.user_name)
    .bind(now_ms())
    .execute(&s.pool)
    .await?;
    Ok(())
}

pub(super) async fn list_accounts(s: &PgStore) -> Result<Vec<AccountRecord>> {
    let rows = sqlx::query(
        "SELECT a.id, a.name, a.disabled, a.created_ms, \
         (SELECT COUNT(*) FROM access_keys k WHERE k.account_id = a.id) AS keys, \
         (SELECT COUNT(*) FROM instances i WHERE i.account_id = a.id AND i.status != 'DELETED') \
         AS instances FROM accounts a ORDER BY a.id",
    )
    .fetch_all(&s.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AccountRecord {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                disabled: r.try_get("disabled")?,
                created_ms: r.try_get("created_ms")?,
                keys: r.try_get::<i64, _>("keys")? as u64,
                instances: r.try_get::<i64, _>("instances")? as u64,
            })
        })
        .collect()
}

pub(super) async fn set_account_disabled(s: &PgStore, id: &str, disabled: bool) -> Result<bool> {
    let done = sqlx::query("UPDATE accounts SET disabled = $1 WHERE id = $2")
        .bind(disabled)
        .bind(id)
        .execute(&s.pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn delete_account(s: &PgStore, id: &str) -> Result<AccountDeletion> {
    let mut tx = s.pool.begin().await?;
    // The lock creations for the account take (`fleet::create_groups`): none can add an
    // instance between the count and the delete.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    if found.is_none() {
        return Ok(AccountDeletion::NotFound);
    }
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM instances WHERE account_id = $1 AND status != 'DELETED'",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if live > 0 {
        return Ok(AccountDeletion::HasInstances(live as u64));
    }
    sqlx::query("DELETE FROM access_keys WHERE account_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM accounts WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(AccountDeletion::Deleted)
}

fn key_record(r: &PgRow) -> Result<KeyRecord> {
    Ok(KeyRecord {
        key: AccessKey {
            key_id: r.try_get("key_id")?,
            secret: r.try_get("secret")?,
            account_id: r.try_get("account_id")?,
            user_name: r.try_get("user_name")?,
        },
        disabled: r.try_get("disabled")?,
        account_disabled: r.try_get("account_disabled")?,
        created_ms: r.try_get("created_ms")?,
    })
}

pub(super) async fn list_access_keys(s: &PgStore, account: Option<&str>) -> Result<Vec<KeyRecord>> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT k.key_id, k.secret, k.account_id, k.user_name, k.disabled, \
         a.disabled AS account_disabled, k.created_ms \
         FROM access_keys k JOIN accounts a ON a.id = k.account_id",
    );
    if let Some(account) = account {
        q.push(" WHERE k.account_id = ").push_bind(account);
    }
    q.push(" ORDER BY k.key_id");
    let rows = q.build().fetch_all(&s.pool).await?;
    rows.iter().map(key_record).collect()
}

pub(super) async fn set_access_key_disabled(
    s: &PgStore,
    key_id: &str,
    disabled: bool,
) -> Result<bool> {
    let done = sqlx::query("UPDATE access_keys SET disabled = $1 WHERE key_id = $2")
        .bind(disabled)
        .bind(key_id)
        .execute(&s.pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn delete_access_key(s: &PgStore, key_id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM access_keys WHERE key_id = $1")
        .bind(key_id)
        .execute(&s.pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn append_audit(s: &PgStore, entries: &[AuditEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "INSERT INTO audit_log (at_ms, account_id, user_name, key_id, action, resource_ids, \
         request_id, source, outcome) ",
    );
    let mut ids = Vec::with_capacity(entries.len());
    for e in entries {
        ids.push(
            serde_json::to_string(&e.resource_ids)
                .map_err(|err| StoreError::Corrupt(format!("audit ids: {err}")))?,
        );
    }
    q.push_values(entries.iter().zip(&ids), |mut b, (e, ids)| {
        b.push_bind(e.at_ms)
            .push_bind(&e.account_id)
            .push_bind(&e.user_name)
            .push_bind(&e.key_id)
            .push_bind(&e.action)
            .push_bind(ids)
            .push_bind(&e.request_id)
            .push_bind(&e.source)
            .push_bind(&e.outcome);
    });
    q.build().execute(&s.pool).await?;
    Ok(())
}

pub(super) async fn audit(s: &PgStore, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT id, at_ms, account_id, user_name, key_id, action, resource_ids, request_id, \
         source, outcome FROM audit_log WHERE id > ",
    );
    q.push_bind(f.after_id);
    if let Some(a) = &f.account_id {
        q.push(" AND account_id = ").push_bind(a);
    }
    if let Some(a) = &f.action {
        q.push(" AND action = ").push_bind(a);
    }
    q.push(" ORDER BY id LIMIT ")
        .push_bind(f.limit.clamp(1, 10_000) as i64);
    let rows = q.build().fetch_all(&s.pool).await?;
    rows.iter()
        .map(|r| {
            let ids: String = r.try_get("resource_ids")?;
            Ok(AuditEntry {
                id: r.try_get("id")?,
                at_ms: r.try_get("at_ms")?,
                account_id: r.try_get("account_id")?,
                user_name: r.try_get("user_name")?,
                key_id: r.try_get("key_id")?,
                action: r.try_get("action")?,
                resource_ids: serde_json::from_str(&ids)
                    .map_err(|err| StoreError::Corrupt(format!("audit ids: {err}")))?,
                request_id: r.try_get("request_id")?,
                source: r.try_get("source")?,
                outcome: r.try_get("outcome")?,
            })
        })
        .collect()
}

pub(super) async fn access_key(s: &PgStore, key_id: &str) -> Result<Option<AccessKey>> {
    let row = sqlx::query(
        "SELECT k.key_id, k.secret, k.account_id, k.user_name FROM access_keys k \
         JOIN accounts a ON a.id = k.account_id \
         WHERE k.key_id = $1 AND NOT k.disabled AND NOT a.disabled",
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
