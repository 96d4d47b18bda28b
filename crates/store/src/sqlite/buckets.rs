//! Object-store buckets and the accounts that own them.

use super::SqliteStore;
use crate::Result;

pub(super) async fn bucket_owner(s: &SqliteStore, bucket: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT account_id FROM buckets WHERE name = ?")
            .bind(bucket)
            .fetch_optional(&s.pool)
            .await?,
    )
}

/// Insert-if-absent in one write transaction, so that of two accounts racing for a new bucket
/// exactly one wins and both learn which.
pub(super) async fn claim_bucket(
    s: &SqliteStore,
    bucket: &str,
    account_id: &str,
) -> Result<String> {
    if let Some(owner) = bucket_owner(s, bucket).await? {
        return Ok(owner);
    }
    let mut w = s.write().await?;
    sqlx::query(
        "INSERT INTO buckets (name, account_id) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
    )
    .bind(bucket)
    .bind(account_id)
    .execute(&mut *w.tx)
    .await?;
    let owner: String = sqlx::query_scalar("SELECT account_id FROM buckets WHERE name = ?")
        .bind(bucket)
        .fetch_one(&mut *w.tx)
        .await?;
    w.commit().await?;
    Ok(owner)
}
