//! The store's error, and what the API makes of it: every [`StoreError`] becomes
//! `InternalError` (logged, never shown), except the ones [`StoreError::is_unavailable`] says a
//! retry resolves (503 `ServiceUnavailable`).

/// A storage failure. The API turns every one of these into `InternalError` and logs the cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store was closed; nothing more can run on it.
    #[error("the store is closed")]
    Closed,
    /// A store operation panicked; its transaction was rolled back.
    #[error("a store operation panicked")]
    Panicked,
    #[error("starting a database thread failed: {0}")]
    Thread(std::io::Error),
    #[error("syncing the nonce file failed: {0}")]
    Sync(std::io::Error),
    /// A failure shared by several operations (a group commit that failed), as text.
    #[error("{message}")]
    Shared { message: String, unavailable: bool },
    /// Creating the instances would take the account past its quota; `used` is how many it
    /// has (not DELETED).
    #[error("the account's instance quota is used: {used} instances")]
    QuotaExceeded { used: u64 },
    /// The farm has no room for the phones asked (placement): nothing was created; `fits`
    /// of them would have fitted.
    #[error("the farm has room for {fits} more phones")]
    NoStock { fits: u64 },
    /// The `what` named `id` does not exist (or is another account's).
    #[error("no {what} {id}")]
    NotFound { what: &'static str, id: String },
    /// The `what` named `id` is in a state that refuses the operation (a group being deleted).
    #[error("the {what} {id} does not allow this now")]
    IncorrectStatus { what: &'static str, id: String },
    /// A claim raced another node's for the same batch and would take it past its
    /// `MaxConcurrency`; it was rolled back (the store tries again itself).
    #[error("another node filled the batch's MaxConcurrency at the same time")]
    Overbooked,
}

impl StoreError {
    /// True when the database cannot be reached at the moment (connection refused or lost, the
    /// server shutting down or starting up, no connection free in time): the caller should
    /// retry later. The API answers these with 503 `ServiceUnavailable` instead of a 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                // SQLSTATE class 08 (connection exception), 57P01-57P03 (admin shutdown, crash
                // shutdown, cannot connect now), 53300 (too many connections), and the
                // transient conflicts of concurrent nodes that a retry resolves: 40001
                // (serialization failure) and 40P01 (deadlock detected, the other transaction
                // went on).
                sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                    c.starts_with("08")
                        || matches!(
                            &*c,
                            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                        )
                }),
                _ => false,
            },
            StoreError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            StoreError::Closed => true,
            StoreError::Shared { unavailable, .. } => *unavailable,
            StoreError::Overbooked => true,
            _ => false,
        }
    }

    /// A copy to hand to each of several operations that one failure ended.
    pub(crate) fn shared(&self) -> StoreError {
        StoreError::Shared {
            message: self.to_string(),
            unavailable: self.is_unavailable(),
        }
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(e: rusqlite::types::FromSqlError) -> StoreError {
        StoreError::Corrupt(format!("unexpected stored value: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;
