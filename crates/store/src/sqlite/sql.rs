//! A statement being built: SQL text with `?` placeholders and the values bound to them, run on
//! a rusqlite connection through its prepared-statement cache (the same text is prepared once
//! per connection).

use rusqlite::types::Value;
use rusqlite::{Connection, Row, params_from_iter};

use crate::Result;

#[derive(Debug, Default)]
pub(super) struct Sql {
    text: String,
    args: Vec<Value>,
}

/// A value bound to a placeholder.
pub(super) trait Bind {
    fn value(self) -> Value;
}

impl Bind for &str {
    fn value(self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl Bind for String {
    fn value(self) -> Value {
        Value::Text(self)
    }
}
impl Bind for &String {
    fn value(self) -> Value {
        Value::Text(self.clone())
    }
}
impl Bind for i64 {
    fn value(self) -> Value {
        Value::Integer(self)
    }
}
impl Bind for bool {
    fn value(self) -> Value {
        Value::Integer(i64::from(self))
    }
}
impl<T: Bind> Bind for Option<T> {
    fn value(self) -> Value {
        self.map_or(Value::Null, Bind::value)
    }
}

impl Sql {
    pub(super) fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            args: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, text: impl AsRef<str>) -> &mut Sql {
        self.text.push_str(text.as_ref());
        self
    }

    /// Appends a placeholder bound to `v`.
    pub(super) fn bind(&mut self, v: impl Bind) -> &mut Sql {
        self.text.push('?');
        self.args.push(v.value());
        self
    }

    /// Appends `VALUES (?, ...), (?, ...)`: one tuple per item, filled by `row`.
    pub(super) fn values<T>(&mut self, items: &[T], mut row: impl FnMut(&mut Tuple<'_>, &T)) {
        self.text.push_str("VALUES ");
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                self.text.push_str(", ");
            }
            self.text.push('(');
            let mut tuple = Tuple {
                sql: self,
                first: true,
            };
            row(&mut tuple, item);
            self.text.push(')');
        }
    }

    /// Appends `?, ?, ...` bound to `items` (for an `IN (...)` list).
    pub(super) fn list<B: Bind>(&mut self, items: impl IntoIterator<Item = B>) -> &mut Sql {
        for (n, v) in items.into_iter().enumerate() {
            if n > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
        self
    }

    /// Runs the statement; returns the rows it changed.
    pub(super) fn execute(&self, conn: &Connection) -> Result<u64> {
        let mut stmt = conn.prepare_cached(&self.text)?;
        let n = stmt.execute(params_from_iter(self.args.iter()))?;
        Ok(n as u64)
    }

    /// Every row, decoded by `decode`.
    pub(super) fn rows<T>(
        &self,
        conn: &Connection,
        mut decode: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.each(conn, |row| {
            out.push(decode(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Hands every row to `each`, in order, without keeping any.
    pub(super) fn each(
        &self,
        conn: &Connection,
        mut each: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = conn.prepare_cached(&self.text)?;
        let mut rows = stmt.query(params_from_iter(self.args.iter()))?;
        while let Some(row) = rows.next()? {
            each(row)?;
        }
        Ok(())
    }

    /// The first row, if any.
    pub(super) fn row<T>(
        &self,
        conn: &Connection,
        decode: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut stmt = conn.prepare_cached(&self.text)?;
        let mut rows = stmt.query(params_from_iter(self.args.iter()))?;
        match rows.next()? {
            Some(row) => Ok(Some(decode(row)?)),
            None => Ok(None),
        }
    }

    /// The first column of the first row (an aggregate's value, say).
    pub(super) fn scalar<T: rusqlite::types::FromSql>(&self, conn: &Connection) -> Result<T> {
        let mut stmt = conn.prepare_cached(&self.text)?;
        Ok(stmt.query_row(params_from_iter(self.args.iter()), |r| r.get(0))?)
    }

    /// The first column of the first row, if there is a row.
    pub(super) fn scalar_opt<T: rusqlite::types::FromSql>(
        &self,
        conn: &Connection,
    ) -> Result<Option<T>> {
        self.row(conn, |r| Ok(r.get(0)?))
    }
}

/// The placeholders of one `VALUES` tuple.
pub(super) struct Tuple<'a> {
    sql: &'a mut Sql,
    first: bool,
}

impl Tuple<'_> {
    pub(super) fn bind(&mut self, v: impl Bind) -> &mut Self {
        if !self.first {
            self.sql.text.push_str(", ");
        }
        self.first = false;
        self.sql.bind(v);
        self
    }
}

/// A statement with its values, for the one-off statements that need no building.
pub(super) fn sql<const N: usize>(text: &str, args: [Value; N]) -> Sql {
    Sql {
        text: text.to_owned(),
        args: args.into(),
    }
}

/// A value for [`sql`].
pub(super) fn v(x: impl Bind) -> Value {
    x.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_values_lists_and_binds_in_order() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a TEXT, b INTEGER)")
            .unwrap();
        let mut q = Sql::new("INSERT INTO t (a, b) ");
        q.values(&[("x", 1), ("y", 2)], |t, (a, b)| {
            t.bind(*a).bind(*b);
        });
        assert_eq!(q.execute(&conn).unwrap(), 2);
        let mut q = Sql::new("SELECT a FROM t WHERE b IN (");
        q.list([2i64, 3]).push(") AND a != ").bind(None::<String>);
        let got: Vec<String> = q.rows(&conn, |r| Ok(r.get(0)?)).unwrap();
        assert!(got.is_empty(), "NULL never compares equal");
        let mut q = Sql::new("SELECT a FROM t WHERE b IN (");
        q.list([2i64, 3]).push(")");
        let got: Vec<String> = q.rows(&conn, |r| Ok(r.get(0)?)).unwrap();
        assert_eq!(got, ["y"]);
        let n: i64 = sql("SELECT COUNT(*) FROM t WHERE a = ?", [v("x")])
            .scalar(&conn)
            .unwrap();
        assert_eq!(n, 1);
    }
}
