//! The PostgreSQL implementation of [`crate::Store`], for several nodes (processes) sharing one
//! database. Every transaction runs at READ COMMITTED; where a read decides a write, the rows
//! are locked (`FOR UPDATE`, `SKIP LOCKED` for the engine's queues) or the write is an
//! `INSERT ... ON CONFLICT`. Listings read in one REPEATABLE READ, READ ONLY transaction so
//! that the total and the page come from one snapshot.
//!
//! Nodes wake each other through LISTEN/NOTIFY: every transaction that queues work or may
//! unblock it (new tasks, a task ended so its instance's next one may start, a task re-queued)
//! sends a notification on [`WORK_CHANNEL`], which PostgreSQL delivers at commit, and
//! [`crate::EngineStore::forward_work_signals`] turns those into wake-ups of the local engine.
//!
//! The SQL of most operations is the areas' own (`crate::areas`), run here through [`Pg`];
//! what is PostgreSQL's alone is in [`by_store`]: the engine's claim, completion and sweep with
//! their locking rules ([`engine`]), the one-statement nonce check, the webhook claim with
//! `SKIP LOCKED`, and LISTEN. The schema is `migrations/postgres`.

pub(crate) mod by_store;
mod conn;
mod engine;

pub(crate) use conn::Pg;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::Result;

/// Connections per node. One is held by the work-signal listener.
const POOL_SIZE: u32 = 16;
/// How long a call waits for a connection, including connecting: an unreachable database gives
/// an error within this time instead of a hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The LISTEN/NOTIFY channel of "work may be ready" signals.
pub(crate) const WORK_CHANNEL: &str = "cloudphone_work";

/// A [`crate::Store`] on one PostgreSQL database, which several nodes may share. Cheap to share behind
/// an `Arc`; every method may be called from many tasks at once.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://...`) and brings its schema up to date
    /// (nodes starting together take turns: the migrator holds an advisory lock).
    pub async fn connect(url: &str) -> Result<PgStore> {
        // sqlx has no connect timeout of its own: the acquire timeout bounds connecting.
        // A statement stuck behind a lock or a stalled server ends with an error instead of
        // holding the caller (and a pooled connection) forever.
        let options = PgConnectOptions::from_str(url)?
            .application_name("cloudphone")
            .options([("statement_timeout", "60s")]);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A connection that died while idle (the server restarted) is dropped at its next
            // checkout instead of failing the call that drew it.
            .test_before_acquire(true)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// The connection pool, for diagnostics and benchmarks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection, waiting for those in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A read-only transaction on one snapshot, for a listing's total and page.
    pub(crate) async fn read_only(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?)
    }
}

/// Signals "work may be ready" to every node, when the caller's transaction commits (nothing if
/// it rolls back; several in one transaction are delivered as one).
pub(crate) async fn notify_work(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WORK_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

impl crate::Store for PgStore {
    fn shared(&self) -> bool {
        true
    }
}
