//! The SQL both stores run, built once: statement text with placeholders in the dialect's style
//! (`?` for SQLite, `$n` for PostgreSQL) and the values bound to them, plus the few pieces whose
//! spelling differs between the two (booleans, `IN` lists, substring tests, row locks). Where
//! the SQL is the same, an area module builds it here once and runs it on either store through
//! `conn::Conn`; what is genuinely different per database stays in `sqlite/` and `postgres/`.
//!
//! The benchmark builds DescribeTasks' statements through the same functions
//! ([`crate::statements`]), so it measures exactly what the server runs.

pub(crate) mod conn;

use cloudphone_core::Level;

use crate::Cursor;

/// Which database a statement is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to a placeholder. A NULL carries its type: PostgreSQL types every parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Null(Kind),
    Int(i64),
    /// A SMALLINT on PostgreSQL (`tasks.level`), an integer on SQLite.
    Small(i16),
    /// A BOOLEAN on PostgreSQL, 0 or 1 on SQLite.
    Bool(bool),
    Text(String),
    /// An array (PostgreSQL's `= ANY($n)`); SQLite gets one placeholder per value instead.
    Texts(Vec<String>),
    Ints(Vec<i64>),
}

/// The type of a bound NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Small,
    Bool,
    Text,
}

/// A Rust value that can be bound to a placeholder.
pub trait Bind {
    const KIND: Kind;
    fn arg(self) -> Arg;
}

impl Bind for &str {
    const KIND: Kind = Kind::Text;
    fn arg(self) -> Arg {
        Arg::Text(self.to_owned())
    }
}
impl Bind for String {
    const KIND: Kind = Kind::Text;
    fn arg(self) -> Arg {
        Arg::Text(self)
    }
}
impl Bind for &String {
    const KIND: Kind = Kind::Text;
    fn arg(self) -> Arg {
        Arg::Text(self.clone())
    }
}
impl Bind for i64 {
    const KIND: Kind = Kind::Int;
    fn arg(self) -> Arg {
        Arg::Int(self)
    }
}
impl Bind for bool {
    const KIND: Kind = Kind::Bool;
    fn arg(self) -> Arg {
        Arg::Bool(self)
    }
}
impl Bind for Level {
    const KIND: Kind = Kind::Small;
    fn arg(self) -> Arg {
        // Levels are 0, 1 and 2.
        Arg::Small(i16::try_from(self.as_i64()).unwrap_or(i16::MAX))
    }
}
impl<T: Bind> Bind for Option<T> {
    const KIND: Kind = T::KIND;
    fn arg(self) -> Arg {
        self.map_or(Arg::Null(T::KIND), Bind::arg)
    }
}

/// A statement being built.
#[derive(Clone, Debug)]
pub struct Sql {
    dialect: Dialect,
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub fn new(dialect: Dialect, text: impl Into<String>) -> Sql {
        Sql {
            dialect,
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// A one-off statement written with `?` placeholders, bound to `args` in order; on
    /// PostgreSQL each `?` becomes `$n`. (None of the store's SQL has a `?` of its own.)
    pub fn with(dialect: Dialect, text: &str, args: impl IntoIterator<Item = Arg>) -> Sql {
        let mut out = Sql::new(dialect, String::with_capacity(text.len() + 8));
        let mut args = args.into_iter();
        let mut parts = text.split('?');
        out.text.push_str(parts.next().unwrap_or_default());
        for part in parts {
            let arg = args.next().expect("a value for every placeholder");
            out.placeholder(arg);
            out.text.push_str(part);
        }
        debug_assert!(args.next().is_none(), "more values than placeholders");
        out
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The statement's text, with its placeholders.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The values bound, in placeholder order.
    pub fn args(&self) -> &[Arg] {
        &self.args
    }

    pub fn push(&mut self, text: impl AsRef<str>) -> &mut Sql {
        self.text.push_str(text.as_ref());
        self
    }

    /// Appends a placeholder bound to `v`.
    pub fn bind(&mut self, v: impl Bind) -> &mut Sql {
        self.placeholder(v.arg());
        self
    }

    fn placeholder(&mut self, arg: Arg) {
        self.args.push(arg);
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.args.len().to_string());
            }
        }
    }

    /// Appends `?, ?, ...` bound to `items` (the inside of an `IN (...)`).
    pub fn list<B: Bind>(&mut self, items: impl IntoIterator<Item = B>) -> &mut Sql {
        for (n, v) in items.into_iter().enumerate() {
            if n > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
        self
    }

    /// Appends `VALUES (?, ...), (?, ...)`: one tuple per item, filled by `row`.
    pub fn values<T>(&mut self, items: &[T], mut row: impl FnMut(&mut Tuple<'_>, &T)) {
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

    /// Appends ` AND <column> IN (...)` of the texts (one array parameter on PostgreSQL);
    /// nothing for an empty list (no filter).
    pub fn and_in<S: Into<String>>(
        &mut self,
        column: &str,
        values: impl IntoIterator<Item = S>,
    ) -> &mut Sql {
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        self.and_any(column, values, Arg::Texts)
    }

    /// [`Sql::and_in`] of integers.
    pub fn and_in_ints(&mut self, column: &str, values: &[i64]) -> &mut Sql {
        self.and_any(column, values.to_vec(), Arg::Ints)
    }

    fn and_any<T: Bind>(
        &mut self,
        column: &str,
        values: Vec<T>,
        array: fn(Vec<T>) -> Arg,
    ) -> &mut Sql {
        if values.is_empty() {
            return self;
        }
        self.push(" AND ").push(column);
        match self.dialect {
            Dialect::Sqlite => {
                self.push(" IN (").list(values).push(")");
            }
            Dialect::Postgres => {
                self.push(" = ANY(");
                self.placeholder(array(values));
                self.push(")");
            }
        }
        self
    }

    /// Appends ` AND <column> contains <needle>` (a literal substring: `%` and `_` are not
    /// wildcards); nothing for `None` or an empty string.
    pub fn and_contains(&mut self, column: &str, needle: &Option<String>) -> &mut Sql {
        if let Some(needle) = needle.as_deref().filter(|n| !n.is_empty()) {
            let function = match self.dialect {
                Dialect::Sqlite => " AND instr(",
                Dialect::Postgres => " AND strpos(",
            };
            self.push(function)
                .push(column)
                .push(", ")
                .bind(needle)
                .push(") > 0");
        }
        self
    }

    /// Appends the test that boolean `column` is `value` (SQLite keeps 0 and 1).
    pub fn is(&mut self, column: &str, value: bool) -> &mut Sql {
        match (self.dialect, value) {
            (Dialect::Sqlite, true) => self.push(column).push(" != 0"),
            (Dialect::Sqlite, false) => self.push(column).push(" = 0"),
            (Dialect::Postgres, true) => self.push(column),
            (Dialect::Postgres, false) => self.push("NOT ").push(column),
        }
    }

    /// The literal `value` of a boolean column, for `SET` lists.
    pub fn truth(&mut self, value: bool) -> &mut Sql {
        let literal = match (self.dialect, value) {
            (Dialect::Sqlite, true) => "1",
            (Dialect::Sqlite, false) => "0",
            (Dialect::Postgres, true) => "TRUE",
            (Dialect::Postgres, false) => "FALSE",
        };
        self.push(literal)
    }

    /// ` FOR UPDATE` on PostgreSQL (the rows stay locked until the transaction ends); nothing
    /// on SQLite, whose one writer runs every write transaction alone.
    pub fn for_update(&mut self) -> &mut Sql {
        if self.dialect == Dialect::Postgres {
            self.push(" FOR UPDATE");
        }
        self
    }

    /// ` FOR UPDATE SKIP LOCKED` on PostgreSQL (another node's leased rows are passed over);
    /// nothing on SQLite.
    pub fn for_update_skip_locked(&mut self) -> &mut Sql {
        if self.dialect == Dialect::Postgres {
            self.push(" FOR UPDATE SKIP LOCKED");
        }
        self
    }

    /// Appends the keyset condition for rows strictly after `after` in the order
    /// `(<ms>, <id>) DESC` (or ASC when `ascending`).
    pub fn and_after(
        &mut self,
        ms: &str,
        id: &str,
        after: &Option<Cursor>,
        ascending: bool,
    ) -> &mut Sql {
        if let Some(c) = after {
            let op = if ascending { ">" } else { "<" };
            self.push(format!(" AND ({ms}, {id}) {op} ("))
                .bind(c.ms)
                .push(", ")
                .bind(&c.id)
                .push(")");
        }
        self
    }

    /// The order of a keyset listing on `(<ms>, <id>)`, and its limit: one row more than the
    /// page so that [`page_of`] can tell whether more follow.
    pub fn order_page(&mut self, ms: &str, id: &str, ascending: bool, limit: usize) -> &mut Sql {
        let dir = if ascending { "ASC" } else { "DESC" };
        self.push(format!(" ORDER BY {ms} {dir}, {id} {dir} LIMIT "))
            .bind(fetch_limit(limit))
    }
}

/// The placeholders of one `VALUES` tuple.
pub struct Tuple<'a> {
    sql: &'a mut Sql,
    first: bool,
}

impl Tuple<'_> {
    pub fn bind(&mut self, v: impl Bind) -> &mut Self {
        if !self.first {
            self.sql.text.push_str(", ");
        }
        self.first = false;
        self.sql.bind(v);
        self
    }
}

/// A value for [`Sql::with`].
pub fn v(x: impl Bind) -> Arg {
    x.arg()
}

/// A page asks for at least one row.
pub fn page_size(limit: usize) -> usize {
    limit.max(1)
}

/// The rows a page fetches: one more than it shows.
pub fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(page_size(limit)).unwrap_or(i64::MAX - 1) + 1
}

/// Cuts the `limit + 1` fetched rows to the page and gives the cursor of its last item when
/// more rows follow.
pub fn page_of<T>(
    mut items: Vec<T>,
    limit: usize,
    cursor_of: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<Cursor>) {
    let limit = page_size(limit);
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(cursor_of);
        (items, next)
    } else {
        (items, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_dialect() {
        let build = |d| {
            let mut q = Sql::new(d, "SELECT 1 FROM t WHERE a = ");
            q.bind("x").and_in("b", ["p", "q"]).and_in_ints("c", &[]);
            q.push(" AND ").is("d", false);
            q
        };
        let lite = build(Dialect::Sqlite);
        assert_eq!(
            lite.text(),
            "SELECT 1 FROM t WHERE a = ? AND b IN (?, ?) AND d = 0"
        );
        assert_eq!(lite.args().len(), 3);
        let pg = build(Dialect::Postgres);
        assert_eq!(
            pg.text(),
            "SELECT 1 FROM t WHERE a = $1 AND b = ANY($2) AND NOT d"
        );
        assert_eq!(
            pg.args(),
            [
                Arg::Text("x".into()),
                Arg::Texts(vec!["p".into(), "q".into()])
            ]
        );
    }

    #[test]
    fn one_off_statements_number_their_placeholders() {
        let q = Sql::with(
            Dialect::Postgres,
            "UPDATE t SET a = ? WHERE b = ? AND c = ?",
            [v(1), v("k"), v(None::<i64>)],
        );
        assert_eq!(q.text(), "UPDATE t SET a = $1 WHERE b = $2 AND c = $3");
        assert_eq!(q.args()[2], Arg::Null(Kind::Int));
        let q = Sql::with(Dialect::Sqlite, "SELECT ?", [v(true)]);
        assert_eq!((q.text(), q.args()), ("SELECT ?", &[Arg::Bool(true)][..]));
    }

    #[test]
    fn values_lists_and_keyset_pages() {
        let mut q = Sql::new(Dialect::Postgres, "INSERT INTO t (a, b) ");
        q.values(&[("x", 1), ("y", 2)], |t, (a, b)| {
            t.bind(*a).bind(*b);
        });
        assert_eq!(q.text(), "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)");
        let mut q = Sql::new(Dialect::Sqlite, "SELECT x FROM t WHERE 1");
        let after = Some(Cursor {
            ms: 5,
            id: "a".into(),
        });
        q.and_after("ms", "id", &after, false)
            .order_page("ms", "id", false, 10);
        assert_eq!(
            q.text(),
            "SELECT x FROM t WHERE 1 AND (ms, id) < (?, ?) ORDER BY ms DESC, id DESC LIMIT ?"
        );
        assert_eq!(q.args()[2], Arg::Int(11));
    }

    #[test]
    fn a_page_keeps_its_size_and_says_where_the_next_starts() {
        let cursor = |n: &i64| Cursor {
            ms: *n,
            id: String::new(),
        };
        let (items, next) = page_of(vec![9, 8, 7], 2, cursor);
        assert_eq!((items, next.map(|c| c.ms)), (vec![9, 8], Some(8)));
        let (items, next) = page_of(vec![9, 8], 2, cursor);
        assert_eq!((items, next), (vec![9, 8], None));
        assert_eq!((page_size(0), fetch_limit(0)), (1, 2));
    }
}
