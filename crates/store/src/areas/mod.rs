//! The store's operations, one trait per area (accounts, fleet, hosts, tasks, engine, apps,
//! backups, webhooks, idempotency, events, adb, streams, sim, leases), each declared and implemented for both stores in its own
//! file by [`area!`]: the SQL of an operation is written once, as an `async fn` over a
//! [`Conn`](crate::sql::conn::Conn), and runs on SQLite or PostgreSQL alike. An operation whose
//! SQL genuinely differs per database (the engine's claim, the event log, nonces) is declared
//! `by_store` and lives in `sqlite/by_store.rs` and `postgres/by_store.rs`.
//!
//! How each kind of operation runs:
//!
//! | kind | SQLite | PostgreSQL |
//! |---|---|---|
//! | `read` | a reader thread, each statement on the latest commit | any pooled connection |
//! | `snapshot` | a reader thread, one read transaction | one REPEATABLE READ, READ ONLY transaction |
//! | `write` | the writer thread's next group transaction | one READ COMMITTED transaction |
//! | `autocommit` | the writer thread's next group transaction | any pooled connection (one statement) |
//! | `by_store` | `sqlite::by_store::NAME` | `postgres::by_store::NAME` |

/// Declares an area trait and implements it for both stores from one declaration per method:
/// `fn name(&self, arg: Type, ...) -> T = kind (|c| operation(c, arg, ...));` where `kind` is
/// one of the table's above and `operation` an `async fn` over a `Conn` returning
/// `Result<T>`; or `= by_store ();`.
macro_rules! area {
    (
        $(#[$tmeta:meta])*
        pub trait $Trait:ident {
            $(
                $(#[$meta:meta])*
                fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty = $how:ident $body:tt;
            )*
        }
    ) => {
        $(#[$tmeta])*
        #[async_trait::async_trait]
        pub trait $Trait: Send + Sync + 'static {
            $(
                $(#[$meta])*
                async fn $name(&self $(, $arg: $ty)*) -> $crate::Result<$ret>;
            )*
        }

        #[async_trait::async_trait]
        impl $Trait for $crate::SqliteStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $crate::Result<$ret> {
                    on_sqlite!(self, $how $body, $name $(, $arg: $ty)*)
                }
            )*
        }

        #[async_trait::async_trait]
        impl $Trait for $crate::PgStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $crate::Result<$ret> {
                    on_postgres!(self, $how $body, $name $(, $arg)*)
                }
            )*
        }
    };
}

/// One operation on the SQLite store: its borrowed arguments are carried to a database thread
/// (`sqlite::carry`), where the shared operation runs to its end at once (`sqlite::now`).
macro_rules! on_sqlite {
    ($s:ident, by_store (), $name:ident $(, $arg:ident: $ty:ty)*) => {
        $crate::sqlite::by_store::$name($s $(, $arg)*).await
    };
    ($s:ident, read (|$c:ident| $op:expr), $name:ident $(, $arg:ident: $ty:ty)*) => {{
        $(let $arg = $crate::sqlite::carry::Carry::carry($arg);)*
        $s.db()
            .read(move |conn| {
                $(let $arg = <$ty as $crate::sqlite::carry::Carry>::view(&$arg);)*
                let $c = &mut $crate::sqlite::Lite::new(conn);
                $crate::sqlite::now($op)
            })
            .await
    }};
    ($s:ident, snapshot (|$c:ident| $op:expr), $name:ident $(, $arg:ident: $ty:ty)*) => {{
        $(let $arg = $crate::sqlite::carry::Carry::carry($arg);)*
        $s.db()
            .read(move |conn| {
                $(let $arg = <$ty as $crate::sqlite::carry::Carry>::view(&$arg);)*
                $crate::sqlite::snapshot(conn, |conn| {
                    let $c = &mut $crate::sqlite::Lite::new(conn);
                    $crate::sqlite::now($op)
                })
            })
            .await
    }};
    ($s:ident, write (|$c:ident| $op:expr), $name:ident $(, $arg:ident: $ty:ty)*) => {{
        $(let $arg = $crate::sqlite::carry::Carry::carry($arg);)*
        $s.db()
            .write(move |conn| {
                $(let $arg = <$ty as $crate::sqlite::carry::Carry>::view(&$arg);)*
                let $c = &mut $crate::sqlite::Lite::new(conn);
                $crate::sqlite::now($op)
            })
            .await
    }};
    ($s:ident, autocommit $op:tt, $name:ident $(, $arg:ident: $ty:ty)*) => {
        on_sqlite!($s, write $op, $name $(, $arg: $ty)*)
    };
}

/// One operation on the PostgreSQL store.
macro_rules! on_postgres {
    ($s:ident, by_store (), $name:ident $(, $arg:ident)*) => {
        $crate::postgres::by_store::$name($s $(, $arg)*).await
    };
    ($s:ident, read (|$c:ident| $op:expr), $name:ident $(, $arg:ident)*) => {{
        let $c = &mut $crate::postgres::Pg::Pool($s.pool());
        $op.await
    }};
    ($s:ident, autocommit $op:tt, $name:ident $(, $arg:ident)*) => {
        on_postgres!($s, read $op, $name $(, $arg)*)
    };
    ($s:ident, snapshot (|$c:ident| $op:expr), $name:ident $(, $arg:ident)*) => {{
        let mut tx = $s.read_only().await?;
        let out = {
            let $c = &mut $crate::postgres::Pg::Tx(&mut *tx);
            $op.await
        };
        if out.is_ok() {
            tx.commit().await?;
        }
        out
    }};
    ($s:ident, write (|$c:ident| $op:expr), $name:ident $(, $arg:ident)*) => {{
        let mut tx = $s.pool().begin().await?;
        let out = {
            let $c = &mut $crate::postgres::Pg::Tx(&mut *tx);
            $op.await
        };
        if out.is_ok() {
            tx.commit().await?;
        }
        out
    }};
}

pub(crate) mod accounts;
pub(crate) mod adb;
pub(crate) mod apps;
pub(crate) mod backups;
pub(crate) mod engine;
pub(crate) mod events;
pub(crate) mod fleet;
pub(crate) mod hosts;
pub(crate) mod idempotency;
pub(crate) mod leases;
pub(crate) mod placing;
pub(crate) mod rows;
pub(crate) mod sim;
pub(crate) mod streams;
pub(crate) mod tasks;
pub(crate) mod webhooks;

pub use accounts::AccountStore;
pub use adb::AdbStore;
pub use apps::AppStore;
pub use backups::BackupStore;
pub use engine::EngineStore;
pub use events::EventStore;
pub use fleet::FleetStore;
pub use hosts::HostStore;
pub use idempotency::IdempotencyStore;
pub use leases::LeaseStore;
pub use sim::SimStore;
pub use streams::StreamStore;
pub use tasks::TaskStore;
pub use webhooks::WebhookStore;
