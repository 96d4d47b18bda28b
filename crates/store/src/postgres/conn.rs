//! The shared SQL on PostgreSQL: [`Pg`] runs a [`Sql`] on the pool (each statement its own
//! transaction) or inside a transaction, as a prepared statement sqlx caches per connection.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgConnection, PgPool, Postgres, Row as _, TypeInfo, ValueRef};

use super::WORK_CHANNEL;
use crate::sql::conn::{Conn, Lock, Row};
use crate::sql::{Arg, Dialect, Kind, Sql};
use crate::{Result, StoreError};

/// Where the shared SQL runs on PostgreSQL.
pub(crate) enum Pg<'c> {
    /// Any pooled connection, each statement in a transaction of its own.
    Pool(&'c PgPool),
    /// One connection, inside the caller's transaction.
    Tx(&'c mut PgConnection),
}

/// `q` as a sqlx query, its values bound.
pub(crate) fn query(q: &Sql) -> Query<'_, Postgres, PgArguments> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(q.text()));
    for arg in q.args() {
        query = match arg {
            Arg::Null(Kind::Int) => query.bind(None::<i64>),
            Arg::Null(Kind::Small) => query.bind(None::<i16>),
            Arg::Null(Kind::Bool) => query.bind(None::<bool>),
            Arg::Null(Kind::Text) => query.bind(None::<String>),
            Arg::Int(n) => query.bind(*n),
            Arg::Small(n) => query.bind(*n),
            Arg::Bool(b) => query.bind(*b),
            Arg::Text(s) => query.bind(s.as_str()),
            Arg::Texts(v) => query.bind(v.as_slice()),
            Arg::Ints(v) => query.bind(v.as_slice()),
        };
    }
    query
}

impl Conn for Pg<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn execute(&mut self, q: &Sql) -> Result<u64> {
        let done = match self {
            Pg::Pool(pool) => query(q).execute(*pool).await?,
            Pg::Tx(conn) => query(q).execute(&mut **conn).await?,
        };
        Ok(done.rows_affected())
    }

    async fn rows<T>(
        &mut self,
        q: &Sql,
        mut decode: impl FnMut(&dyn Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let rows = match self {
            Pg::Pool(pool) => query(q).fetch_all(*pool).await?,
            Pg::Tx(conn) => query(q).fetch_all(&mut **conn).await?,
        };
        rows.iter().map(|r| decode(r)).collect()
    }

    async fn row<T>(
        &mut self,
        q: &Sql,
        decode: impl FnOnce(&dyn Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let row = match self {
            Pg::Pool(pool) => query(q).fetch_optional(*pool).await?,
            Pg::Tx(conn) => query(q).fetch_optional(&mut **conn).await?,
        };
        row.as_ref().map(|r| decode(r)).transpose()
    }

    async fn int(&mut self, q: &Sql) -> Result<i64> {
        let row = match self {
            Pg::Pool(pool) => query(q).fetch_one(*pool).await?,
            Pg::Tx(conn) => query(q).fetch_one(&mut **conn).await?,
        };
        int_at(&row, 0)
    }

    async fn wake_workers(&mut self) -> Result<()> {
        let q = Sql::with(
            Dialect::Postgres,
            "SELECT pg_notify(?, '')",
            [Arg::Text(WORK_CHANNEL.into())],
        );
        self.execute(&q).await.map(drop)
    }

    async fn lock(&mut self, lock: Lock<'_>) -> Result<()> {
        let (text, key) = match lock {
            Lock::Account(id) => ("SELECT pg_advisory_xact_lock(hashtextextended(?, 7))", id),
            Lock::Group(id) => ("SELECT pg_advisory_xact_lock(hashtext(?))", id),
            Lock::Webhooks(id) => (
                "SELECT pg_advisory_xact_lock(hashtext('webhooks:' || ?))",
                id,
            ),
            Lock::KeyPairs(id) => (
                "SELECT pg_advisory_xact_lock(hashtext('key-pairs:' || ?))",
                id,
            ),
            Lock::Screen(id) => ("SELECT pg_advisory_xact_lock(hashtext('screen:' || ?))", id),
            Lock::Placement => ("SELECT pg_advisory_xact_lock(hashtext(?))", "placement"),
        };
        let q = Sql::with(Dialect::Postgres, text, [Arg::Text(key.into())]);
        self.execute(&q).await.map(drop)
    }
}

/// An integer column of any width.
fn int_at<I: sqlx::ColumnIndex<PgRow> + Copy>(row: &PgRow, col: I) -> Result<i64> {
    int_opt_at(row, col)?.ok_or_else(|| StoreError::Corrupt("an integer column is NULL".into()))
}

fn int_opt_at<I: sqlx::ColumnIndex<PgRow> + Copy>(row: &PgRow, col: I) -> Result<Option<i64>> {
    let raw = row.try_get_raw(col)?;
    if raw.is_null() {
        return Ok(None);
    }
    let width = raw.type_info().name().to_owned();
    Ok(Some(match width.as_str() {
        "INT2" => i64::from(row.try_get::<i16, _>(col)?),
        "INT4" => i64::from(row.try_get::<i32, _>(col)?),
        _ => row.try_get::<i64, _>(col)?,
    }))
}

impl Row for PgRow {
    fn int(&self, col: &str) -> Result<i64> {
        int_at(self, col)
    }
    fn int_opt(&self, col: &str) -> Result<Option<i64>> {
        int_opt_at(self, col)
    }
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get(col)?)
    }
    fn text_opt(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.try_get(col)?)
    }
}
