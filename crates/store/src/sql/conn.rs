//! Running the shared SQL: a [`Conn`] is a connection or transaction of either store, a [`Row`]
//! a row it read. The area modules write each operation once, as an `async fn` over a `Conn`;
//! on PostgreSQL it awaits the server, on SQLite every call is answered at once on the
//! database thread the operation runs on (`sqlite::now`).

use std::str::FromStr;

use super::{Dialect, Sql};
use crate::{Result, StoreError};

/// A connection (or transaction) of either store.
pub(crate) trait Conn {
    fn dialect(&self) -> Dialect;

    /// A statement for this connection's dialect.
    fn sql(&self, text: &str) -> Sql {
        Sql::new(self.dialect(), text)
    }

    /// A one-off statement with `?` placeholders (see [`Sql::with`]).
    fn with(&self, text: &str, args: impl IntoIterator<Item = super::Arg>) -> Sql {
        Sql::with(self.dialect(), text, args)
    }

    /// Runs the statement; returns the rows it changed.
    async fn execute(&mut self, q: &Sql) -> Result<u64>;

    /// Every row, decoded by `decode`, in order.
    async fn rows<T>(
        &mut self,
        q: &Sql,
        decode: impl FnMut(&dyn Row) -> Result<T>,
    ) -> Result<Vec<T>>;

    /// The first row, if any.
    async fn row<T>(
        &mut self,
        q: &Sql,
        decode: impl FnOnce(&dyn Row) -> Result<T>,
    ) -> Result<Option<T>>;

    /// The integer in the first column of the first row (a `COUNT(*)`, an id returned).
    async fn int(&mut self, q: &Sql) -> Result<i64>;

    /// Signals "work may be ready" to every node when the transaction commits (PostgreSQL's
    /// NOTIFY; nothing on SQLite, whose one process wakes its engine itself).
    async fn wake_workers(&mut self) -> Result<()>;

    /// Takes `lock` until the transaction ends, so that transactions taking the same lock run
    /// one after the other, also on different nodes (PostgreSQL's advisory locks; nothing on
    /// SQLite, where one writer runs every write transaction alone).
    async fn lock(&mut self, lock: Lock<'_>) -> Result<()>;
}

/// What [`Conn::lock`] serialises.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lock<'a> {
    /// Creations of an account's instances, and its deletion (so a quota count is not overtaken
    /// by another node's insert, and no instance joins an account being deleted).
    Account(&'a str),
    /// Adoptions of discovered devices into a group.
    Group(&'a str),
    /// Creations of an account's webhooks (so two cannot both pass the count).
    Webhooks(&'a str),
    /// Creations and renames of an account's key pairs (so two cannot take one name).
    KeyPairs(&'a str),
    /// Changes to who watches and who controls one phone's screen: sessions opened, control
    /// taken, the phone disconnected (so a viewer count, the one controller and the epochs
    /// checked are not overtaken by another node's write).
    Screen(&'a str),
    /// Placements of phones on the farm's hosts (one lock for all: a placement reads every
    /// host's room), taken after [`Lock::Account`], so that two creations never fill one room.
    Placement,
}

/// A row read from either store; columns by name. A value of another type than asked is an
/// error (for PostgreSQL's integers, any width is an integer).
pub(crate) trait Row {
    fn int(&self, col: &str) -> Result<i64>;
    fn int_opt(&self, col: &str) -> Result<Option<i64>>;
    fn text(&self, col: &str) -> Result<String>;
    fn text_opt(&self, col: &str) -> Result<Option<String>>;
    /// A boolean (an integer 0 or 1 on SQLite).
    fn flag(&self, col: &str) -> Result<bool>;
}

/// Parses a stored enum value (`TaskType`, `TaskStatus`, `InstanceStatus`, ...).
pub(crate) fn parse<T: FromStr>(what: &str, s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what}: unexpected value {s:?}")))
}

/// A stored `Level`.
pub(crate) fn level(v: i64) -> Result<cloudphone_core::Level> {
    cloudphone_core::Level::from_i64(v)
        .ok_or_else(|| StoreError::Corrupt(format!("level: unexpected value {v}")))
}
