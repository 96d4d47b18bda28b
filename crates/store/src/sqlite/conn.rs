//! The shared SQL on a rusqlite connection: [`Lite`] runs a [`Sql`] through the connection's
//! prepared-statement cache (the same text is prepared once per connection), synchronously on
//! the database thread the operation runs on. The shared operations are `async fn`s; [`now`]
//! runs one to its end there, which it always reaches at its first poll.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql, params_from_iter};

use crate::Result;
use crate::sql::conn::{Conn, Lock, Row};
use crate::sql::{Arg, Dialect, Sql};

/// A connection of the SQLite store, for the shared SQL.
pub(crate) struct Lite<'c> {
    conn: &'c Connection,
}

impl<'c> Lite<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Lite<'c> {
        Lite { conn }
    }
}

/// Runs a shared operation on a SQLite connection to its end. Every [`Lite`] call is answered
/// synchronously, so the operation ends at its first poll; one that waited on anything else
/// would be a bug in the store.
pub(crate) fn now<F: Future>(operation: F) -> F::Output {
    let mut operation = pin!(operation);
    match operation
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("a SQLite store operation waited on something"),
    }
}

impl ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Arg::Null(_) => ToSqlOutput::Borrowed(ValueRef::Null),
            Arg::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
            Arg::Small(n) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*n))),
            Arg::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            Arg::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            // `Sql` writes one placeholder per value on SQLite.
            Arg::Texts(_) | Arg::Ints(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "an array parameter in a SQLite statement".into(),
                ));
            }
        })
    }
}

/// A statement run synchronously on a connection: what the SQLite-only code (the engine's
/// claim and completion, DescribeTasks written straight from its rows) calls.
pub(crate) trait Run {
    /// Runs the statement; returns the rows it changed.
    fn execute(&self, conn: &Connection) -> Result<u64>;
    /// Hands every row to `each`, in order, without keeping any.
    fn each(
        &self,
        conn: &Connection,
        each: impl FnMut(&rusqlite::Row<'_>) -> Result<()>,
    ) -> Result<()>;
    /// Every row, decoded by `decode`.
    fn rows<T>(
        &self,
        conn: &Connection,
        decode: impl FnMut(&rusqlite::Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>>;
    /// The first row, if any.
    fn row<T>(
        &self,
        conn: &Connection,
        decode: impl FnOnce(&rusqlite::Row<'_>) -> Result<T>,
    ) -> Result<Option<T>>;
    /// The first column of the first row (an aggregate's value, say).
    fn scalar<T: rusqlite::types::FromSql>(&self, conn: &Connection) -> Result<T>;
}

impl Run for Sql {
    fn execute(&self, conn: &Connection) -> Result<u64> {
        let mut stmt = conn.prepare_cached(self.text())?;
        Ok(stmt.execute(params_from_iter(self.args()))? as u64)
    }

    fn each(
        &self,
        conn: &Connection,
        mut each: impl FnMut(&rusqlite::Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = conn.prepare_cached(self.text())?;
        let mut rows = stmt.query(params_from_iter(self.args()))?;
        while let Some(row) = rows.next()? {
            each(row)?;
        }
        Ok(())
    }

    fn rows<T>(
        &self,
        conn: &Connection,
        mut decode: impl FnMut(&rusqlite::Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.each(conn, |row| {
            out.push(decode(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    fn row<T>(
        &self,
        conn: &Connection,
        decode: impl FnOnce(&rusqlite::Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut stmt = conn.prepare_cached(self.text())?;
        let mut rows = stmt.query(params_from_iter(self.args()))?;
        match rows.next()? {
            Some(row) => Ok(Some(decode(row)?)),
            None => Ok(None),
        }
    }

    fn scalar<T: rusqlite::types::FromSql>(&self, conn: &Connection) -> Result<T> {
        let mut stmt = conn.prepare_cached(self.text())?;
        Ok(stmt.query_row(params_from_iter(self.args()), |r| r.get(0))?)
    }
}

/// A SQLite statement to build on.
pub(crate) fn query(text: impl Into<String>) -> Sql {
    Sql::new(Dialect::Sqlite, text)
}

/// A SQLite statement from text with `?` placeholders and its values.
pub(crate) fn sql<const N: usize>(text: &str, args: [Arg; N]) -> Sql {
    Sql::with(Dialect::Sqlite, text, args)
}

impl Conn for Lite<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn execute(&mut self, q: &Sql) -> Result<u64> {
        Run::execute(q, self.conn)
    }

    async fn rows<T>(
        &mut self,
        q: &Sql,
        mut decode: impl FnMut(&dyn Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        Run::rows(q, self.conn, |row| decode(row))
    }

    async fn row<T>(
        &mut self,
        q: &Sql,
        decode: impl FnOnce(&dyn Row) -> Result<T>,
    ) -> Result<Option<T>> {
        Run::row(q, self.conn, |row| decode(row))
    }

    async fn int(&mut self, q: &Sql) -> Result<i64> {
        Run::scalar(q, self.conn)
    }

    async fn wake_workers(&mut self) -> Result<()> {
        Ok(())
    }

    async fn lock(&mut self, _lock: Lock<'_>) -> Result<()> {
        Ok(())
    }
}

impl Row for rusqlite::Row<'_> {
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.get(col)?)
    }
    fn int_opt(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.get(col)?)
    }
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.get(col)?)
    }
    fn text_opt(&self, col: &str) -> Result<Option<String>> {
        Ok(self.get(col)?)
    }
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.get(col)?)
    }
}
