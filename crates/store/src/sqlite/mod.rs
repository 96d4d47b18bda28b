//! The SQLite implementation of [`crate::Store`]: one database file in WAL mode, read by a few
//! reader threads and written by one writer thread that commits in groups ([`db`]).
//!
//! Each operation runs whole on one of those threads: the async methods below hand the
//! operation (with owned copies of its arguments) to [`db::Db`] and await its answer. Writes of
//! other processes on the same file (a `keys create` while the server runs, say) wait on
//! SQLite's lock: the writer's transactions are `BEGIN IMMEDIATE`, with a busy timeout.
//!
//! The SQL of most operations is the areas' own (`crate::areas`), run here through [`Lite`];
//! what is SQLite's alone is in [`by_store`]: the engine's claim and group-committed
//! completions ([`engine`]), nonces in their own file, DescribeTasks written straight from the
//! rows ([`rows`]), the webhook claim.

pub(crate) mod by_store;
pub(crate) mod carry;
mod conn;
mod db;
mod engine;
mod rows;

pub(crate) use conn::{Lite, now};
pub(crate) use db::snapshot;

use std::path::Path;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::Result;

/// How long a connection waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`crate::Store`] on one SQLite database file. Cheap to share behind an `Arc`; every method may be
/// called from many tasks at once.
#[derive(Debug)]
pub struct SqliteStore {
    db: db::Db,
    /// sqlx's pool on the same file: it runs the migrations, and serves diagnostics and the
    /// benchmarks' own statements; the store's operations never use it.
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .min_connections(0)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let path = path.to_owned();
        let db = tokio::task::spawn_blocking(move || db::Db::open(&path))
            .await
            .map_err(|_| crate::StoreError::Panicked)??;
        Ok(SqliteStore { db, pool })
    }

    /// sqlx's pool on the same file, for diagnostics and benchmarks.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Finishes the operations queued, then closes every connection (the last one
    /// checkpoints the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
        self.db.close();
    }
}

impl SqliteStore {
    pub(crate) fn db(&self) -> &db::Db {
        &self.db
    }
}

impl crate::Store for SqliteStore {
    fn shared(&self) -> bool {
        false
    }
}
