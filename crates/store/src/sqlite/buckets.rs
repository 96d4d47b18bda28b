//! Object-store buckets and the accounts that own them.

use rusqlite::Connection;

use super::sql::{sql, v};
use crate::Result;

pub(super) fn bucket_owner(conn: &Connection, bucket: &str) -> Result<Option<String>> {
    sql("SELECT account_id FROM buckets WHERE name = ?", [v(bucket)]).scalar_opt(conn)
}

/// Insert-if-absent inside the writer's transaction, so that of two accounts racing for a new
/// bucket exactly one wins and both learn which.
pub(super) fn claim_bucket(conn: &Connection, bucket: &str, account_id: &str) -> Result<String> {
    sql(
        "INSERT INTO buckets (name, account_id) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        [v(bucket), v(account_id)],
    )
    .execute(conn)?;
    sql("SELECT account_id FROM buckets WHERE name = ?", [v(bucket)]).scalar(conn)
}
