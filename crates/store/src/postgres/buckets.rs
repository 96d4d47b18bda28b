//! Object-store buckets and the accounts that own them.

use super::PgStore;
use crate::Result;

pub(super) async fn bucket_owner(s: &PgStore, bucket: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT account_id FROM buckets WHERE name = $1")
            .bind(bucket)
            .fetch_optional(&s.pool)
            .await?,
    )
}

/// Insert-if-absent, then read back in a statement of its own (so that it sees the winner's
/// row): of two accounts racing for a new bucket, on any nodes, exactly one wins and both learn
/// which.
pub(super) async fn claim_bucket(s: &PgStore, bucket: &str, account_id: &str) -> Result<String> {
    if let Some(owner) = bucket_owner(s, bucket).await? {
        return Ok(owner);
    }
    sqlx::query(
        "INSERT INTO buckets (name, account_id) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(bucket)
    .bind(account_id)
    .execute(&s.pool)
    .await?;
    bucket_owner(s, bucket).await?.ok_or_else(|| {
        crate::StoreError::Corrupt(format!("bucket {bucket} vanished after its claim"))
    })
}
