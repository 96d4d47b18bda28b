//! Accounts, access keys, signature nonces, node-wide settings, the audit log, and the bucket
//! owners of the old single-namespace object layout. Each key has a session generation, which
//! console session cookies carry: ending a key's sessions (a logout) and disabling the key or
//! its account move it on, so that those cookies are refused for good (migrations
//! sqlite/0013, postgres/0007). Every insert-if-absent is an
//! `INSERT ... ON CONFLICT DO NOTHING` followed by a read in a statement of its own: of two
//! nodes racing, the second waits for the first's commit and then does nothing, and its read
//! (a new snapshot, at READ COMMITTED) sees the winner's row, so exactly one value wins.

use cloudphone_core::resources::AccessKey;
use cloudphone_core::time::now_ms;

use crate::sql::conn::{Conn, Lock, Row};
use crate::sql::v;
use crate::{
    AccountDeletion, AccountRecord, AuditEntry, AuditFilter, KeyRecord, Nonce, Result, StoreError,
};

area! {
    /// Accounts, keys, nonces, settings and the audit log.
    pub trait AccountStore {
        /// Creates the account if it does not exist yet (idempotent).
        fn ensure_account(&self, account_id: &str, name: &str) -> () =
            autocommit (|c| ensure_account(c, account_id, name));
        /// Inserts or replaces an access key (enabled).
        fn put_access_key(&self, key: &AccessKey) -> () = autocommit (|c| put_access_key(c, key));
        /// The key `key_id` if it may act: enabled, of an enabled account. A disabled key is
        /// as absent as an unknown one.
        fn access_key(&self, key_id: &str) -> Option<AccessKey> = read (|c| access_key(c, key_id));
        /// Every account, in id order, with its counts of keys and of instances not DELETED.
        fn list_accounts(&self) -> Vec<AccountRecord> = read (|c| list_accounts(c));
        /// Disables or enables an account (all its keys with it); false when there is none.
        /// Disabling ends the console sessions of all its keys.
        fn set_account_disabled(&self, account_id: &str, disabled: bool) -> bool =
            write (|c| set_account_disabled(c, account_id, disabled));
        /// Deletes an account and its keys, unless it still has instances not DELETED.
        fn delete_account(&self, account_id: &str) -> AccountDeletion =
            write (|c| delete_account(c, account_id));
        /// Access keys (secrets included), of one account or all, in key id order.
        fn list_access_keys(&self, account_id: Option<&str>) -> Vec<KeyRecord> =
            read (|c| list_access_keys(c, account_id));
        /// Disables or enables a key; false when there is none. Disabling ends its console
        /// sessions.
        fn set_access_key_disabled(&self, key_id: &str, disabled: bool) -> bool =
            write (|c| set_key_disabled(c, key_id, disabled));
        /// The session generation of key `key_id` if the key may act (as
        /// [`AccountStore::access_key`]); a console session is valid only while its cookie's
        /// generation is this one.
        fn session_generation(&self, key_id: &str) -> Option<i64> =
            read (|c| session_generation(c, key_id));
        /// Ends every console session of key `key_id` (moves its generation on); false when
        /// there is no such key.
        fn end_sessions(&self, key_id: &str) -> bool = autocommit (|c| end_sessions(c, key_id));
        /// Deletes a key; false when there is none.
        fn delete_access_key(&self, key_id: &str) -> bool =
            autocommit (|c| delete_access_key(c, key_id));
        /// Appends entries to the audit log.
        fn append_audit(&self, entries: &[AuditEntry]) -> () =
            autocommit (|c| append_audit(c, entries));
        /// Audit entries in the order they were written, after `filter.after_id`.
        fn audit(&self, filter: &AuditFilter) -> Vec<AuditEntry> = read (|c| audit(c, filter));
        /// Records a signature nonce for `key`, provided `key` is still stored exactly as
        /// given (same secret, account and user): the caller may have checked the signature
        /// against a copy it kept, and this is where a key deleted or changed since is seen, in
        /// the same write. Nothing is recorded unless the answer is [`Nonce::Fresh`].
        fn remember_nonce(&self, key: &AccessKey, nonce: &str, expires_ms: i64) -> Nonce =
            by_store ();
        /// Forgets nonces that expired before `now_ms`; returns how many.
        fn purge_nonces(&self, now_ms: i64) -> u64 = by_store ();
        /// Returns the value stored under `name`, storing `init` first if there is none. Used
        /// for secrets every node must share (the pagination-token key).
        fn setting_or_init(&self, name: &str, init: &str) -> String =
            autocommit (|c| setting_or_init(c, name, init));
        /// Makes `account_id` the owner of `bucket` if it has none, atomically; returns the
        /// owner (`account_id`, or the account that claimed it first). Bucket names were once
        /// one namespace, a bucket belonging to its first writer; they are per account now
        /// (docs/design.md §7), and the owners recorded then tell where each old bucket moves
        /// at start. Only tests that build an old layout call this now.
        fn claim_bucket(&self, bucket: &str, account_id: &str) -> String =
            autocommit (|c| claim_bucket(c, bucket, account_id));
        /// The account recorded as the owner of `bucket`, if any.
        fn bucket_owner(&self, bucket: &str) -> Option<String> = read (|c| bucket_owner(c, bucket));
    }
}

async fn ensure_account(c: &mut impl Conn, account_id: &str, name: &str) -> Result<()> {
    let q = c.with(
        "INSERT INTO accounts (id, name, created_ms) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
        [v(account_id), v(name), v(now_ms())],
    );
    c.execute(&q).await.map(drop)
}

async fn put_access_key(c: &mut impl Conn, key: &AccessKey) -> Result<()> {
    // A replaced key keeps its generation (its secret, which signs the cookies, may change).
    let mut q = c.with(
        "INSERT INTO access_keys (key_id, secret, account_id, user_name, created_ms, \
         session_generation) VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (key_id) DO UPDATE SET secret = excluded.secret, \
         account_id = excluded.account_id, user_name = excluded.user_name, disabled = ",
        [
            v(&key.key_id),
            v(&key.secret),
            v(&key.account_id),
            v(&key.user_name),
            v(now_ms()),
            v(fresh_generation()),
        ],
    );
    q.truth(false);
    c.execute(&q).await.map(drop)
}

fn key(r: &dyn Row) -> Result<AccessKey> {
    Ok(AccessKey {
        key_id: r.text("key_id")?,
        secret: r.text("secret")?,
        account_id: r.text("account_id")?,
        user_name: r.text("user_name")?,
    })
}

/// The key, if it and its account are enabled.
pub(crate) async fn access_key(c: &mut impl Conn, key_id: &str) -> Result<Option<AccessKey>> {
    let mut q = c.sql(
        "SELECT k.key_id, k.secret, k.account_id, k.user_name FROM access_keys k \
         JOIN accounts a ON a.id = k.account_id WHERE k.key_id = ",
    );
    q.bind(key_id).push(" AND ").is("k.disabled", false);
    q.push(" AND ").is("a.disabled", false);
    c.row(&q, key).await
}

async fn list_accounts(c: &mut impl Conn) -> Result<Vec<AccountRecord>> {
    let q = c.sql(
        "SELECT a.id, a.name, a.disabled, a.created_ms, \
         (SELECT COUNT(*) FROM access_keys k WHERE k.account_id = a.id) AS keys, \
         (SELECT COUNT(*) FROM instances i WHERE i.account_id = a.id AND i.status != 'DELETED') \
         AS instances FROM accounts a ORDER BY a.id",
    );
    c.rows(&q, |r| {
        Ok(AccountRecord {
            id: r.text("id")?,
            name: r.text("name")?,
            disabled: r.flag("disabled")?,
            created_ms: r.int("created_ms")?,
            keys: r.int("keys")? as u64,
            instances: r.int("instances")? as u64,
        })
    })
    .await
}

/// A random first generation for a new key: 48 bits, far from any a deleted key of the same id
/// reached by its logouts.
fn fresh_generation() -> i64 {
    cloudphone_core::ids::secret(12)
        .bytes()
        .fold(0i64, |g, b| g.wrapping_mul(62).wrapping_add(i64::from(b)))
        & ((1 << 48) - 1)
}

async fn set_key_disabled(c: &mut impl Conn, key_id: &str, disabled: bool) -> Result<bool> {
    if disabled {
        end_sessions(c, key_id).await?;
    }
    set_disabled(c, "access_keys", "key_id", key_id, disabled).await
}

async fn set_account_disabled(c: &mut impl Conn, account_id: &str, disabled: bool) -> Result<bool> {
    if disabled {
        let q = c.with(
            "UPDATE access_keys SET session_generation = session_generation + 1 \
             WHERE account_id = ?",
            [v(account_id)],
        );
        c.execute(&q).await?;
    }
    set_disabled(c, "accounts", "id", account_id, disabled).await
}

async fn end_sessions(c: &mut impl Conn, key_id: &str) -> Result<bool> {
    let q = c.with(
        "UPDATE access_keys SET session_generation = session_generation + 1 WHERE key_id = ?",
        [v(key_id)],
    );
    Ok(c.execute(&q).await? == 1)
}

/// The generation of the key, if it and its account are enabled.
async fn session_generation(c: &mut impl Conn, key_id: &str) -> Result<Option<i64>> {
    let mut q = c.sql(
        "SELECT k.session_generation FROM access_keys k \
         JOIN accounts a ON a.id = k.account_id WHERE k.key_id = ",
    );
    q.bind(key_id).push(" AND ").is("k.disabled", false);
    q.push(" AND ").is("a.disabled", false);
    c.row(&q, |r| r.int("session_generation")).await
}

/// Sets the `disabled` flag of the row of `table` whose `key` column is `id`.
async fn set_disabled(
    c: &mut impl Conn,
    table: &str,
    key: &str,
    id: &str,
    disabled: bool,
) -> Result<bool> {
    let mut q = c.sql(&format!("UPDATE {table} SET disabled = "));
    q.bind(disabled).push(format!(" WHERE {key} = ")).bind(id);
    Ok(c.execute(&q).await? == 1)
}

async fn delete_account(c: &mut impl Conn, id: &str) -> Result<AccountDeletion> {
    // The lock creations for the account take (`fleet::create_groups`): none can add an
    // instance between the count and the delete.
    c.lock(Lock::Account(id)).await?;
    let q = c.with("SELECT id FROM accounts WHERE id = ?", [v(id)]);
    if c.row(&q, |r| r.text("id")).await?.is_none() {
        return Ok(AccountDeletion::NotFound);
    }
    let q = c.with(
        "SELECT COUNT(*) FROM instances WHERE account_id = ? AND status != 'DELETED'",
        [v(id)],
    );
    let live = c.int(&q).await?;
    if live > 0 {
        return Ok(AccountDeletion::HasInstances(live as u64));
    }
    let q = c.with("DELETE FROM access_keys WHERE account_id = ?", [v(id)]);
    c.execute(&q).await?;
    let q = c.with("DELETE FROM accounts WHERE id = ?", [v(id)]);
    c.execute(&q).await?;
    Ok(AccountDeletion::Deleted)
}

async fn list_access_keys(c: &mut impl Conn, account: Option<&str>) -> Result<Vec<KeyRecord>> {
    let mut q = c.sql(
        "SELECT k.key_id, k.secret, k.account_id, k.user_name, k.disabled, \
         a.disabled AS account_disabled, k.created_ms \
         FROM access_keys k JOIN accounts a ON a.id = k.account_id",
    );
    if let Some(account) = account {
        q.push(" WHERE k.account_id = ").bind(account);
    }
    q.push(" ORDER BY k.key_id");
    c.rows(&q, |r| {
        Ok(KeyRecord {
            key: key(r)?,
            disabled: r.flag("disabled")?,
            account_disabled: r.flag("account_disabled")?,
            created_ms: r.int("created_ms")?,
        })
    })
    .await
}

async fn delete_access_key(c: &mut impl Conn, key_id: &str) -> Result<bool> {
    let q = c.with("DELETE FROM access_keys WHERE key_id = ?", [v(key_id)]);
    Ok(c.execute(&q).await? == 1)
}

/// Entries per INSERT statement: 9 parameters a row, far below either database's limit.
const AUDIT_ROWS_PER_INSERT: usize = 500;

async fn append_audit(c: &mut impl Conn, entries: &[AuditEntry]) -> Result<()> {
    for chunk in entries.chunks(AUDIT_ROWS_PER_INSERT) {
        let ids = chunk
            .iter()
            .map(|e| {
                serde_json::to_string(&e.resource_ids)
                    .map_err(|err| StoreError::Corrupt(format!("audit ids: {err}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut q = c.sql(
            "INSERT INTO audit_log (at_ms, account_id, user_name, key_id, action, resource_ids, \
             request_id, source, outcome) ",
        );
        let rows: Vec<_> = chunk.iter().zip(&ids).collect();
        q.values(&rows, |row, (e, ids)| {
            row.bind(e.at_ms)
                .bind(&e.account_id)
                .bind(&e.user_name)
                .bind(&e.key_id)
                .bind(&e.action)
                .bind(*ids)
                .bind(&e.request_id)
                .bind(&e.source)
                .bind(&e.outcome);
        });
        c.execute(&q).await?;
    }
    Ok(())
}

async fn audit(c: &mut impl Conn, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
    let mut q = c.sql(
        "SELECT id, at_ms, account_id, user_name, key_id, action, resource_ids, request_id, \
         source, outcome FROM audit_log WHERE id > ",
    );
    q.bind(f.after_id);
    if let Some(a) = &f.account_id {
        q.push(" AND account_id = ").bind(a);
    }
    if let Some(a) = &f.action {
        q.push(" AND action = ").bind(a);
    }
    q.push(" ORDER BY id LIMIT ")
        .bind(f.limit.clamp(1, 10_000) as i64);
    c.rows(&q, |r| {
        let ids = r.text("resource_ids")?;
        Ok(AuditEntry {
            id: r.int("id")?,
            at_ms: r.int("at_ms")?,
            account_id: r.text("account_id")?,
            user_name: r.text("user_name")?,
            key_id: r.text("key_id")?,
            action: r.text("action")?,
            resource_ids: serde_json::from_str(&ids)
                .map_err(|err| StoreError::Corrupt(format!("audit ids: {err}")))?,
            request_id: r.text("request_id")?,
            source: r.text("source")?,
            outcome: r.text("outcome")?,
        })
    })
    .await
}

async fn setting(c: &mut impl Conn, name: &str) -> Result<Option<String>> {
    let q = c.with("SELECT value FROM settings WHERE name = ?", [v(name)]);
    c.row(&q, |r| r.text("value")).await
}

async fn setting_or_init(c: &mut impl Conn, name: &str, init: &str) -> Result<String> {
    if let Some(value) = setting(c, name).await? {
        return Ok(value);
    }
    let q = c.with(
        "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        [v(name), v(init)],
    );
    c.execute(&q).await?;
    setting(c, name)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("setting {name} vanished after its insert")))
}

async fn bucket_owner(c: &mut impl Conn, bucket: &str) -> Result<Option<String>> {
    let q = c.with("SELECT account_id FROM buckets WHERE name = ?", [v(bucket)]);
    c.row(&q, |r| r.text("account_id")).await
}

async fn claim_bucket(c: &mut impl Conn, bucket: &str, account_id: &str) -> Result<String> {
    if let Some(owner) = bucket_owner(c, bucket).await? {
        return Ok(owner);
    }
    let q = c.with(
        "INSERT INTO buckets (name, account_id) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        [v(bucket), v(account_id)],
    );
    c.execute(&q).await?;
    bucket_owner(c, bucket)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("bucket {bucket} vanished after its claim")))
}

/// What the nonce write of SQLite checks, in its job (the key as stored, or `KeyChanged`).
pub(crate) fn nonce_answer(key_ok: bool, inserted: bool) -> Nonce {
    match (key_ok, inserted) {
        (false, _) => Nonce::KeyChanged,
        (true, true) => Nonce::Fresh,
        (true, false) => Nonce::Replay,
    }
}
