//! Persistence for cloudphone: the [`Store`] the engine and the API speak to, and its two
//! implementations, [`SqliteStore`] (one process, one file) and [`PgStore`] (several nodes over
//! one PostgreSQL database).
//!
//! `Store` is the sum of one trait per area (`areas`: accounts, fleet, hosts, tasks, engine, apps,
//! backups, webhooks, idempotency, events, adb, streams). Each area declares its operations once and writes
//! their SQL once, over [`sql::Sql`] (a builder that spells placeholders, booleans, `IN` lists
//! and row locks for either database) and a connection of either store; only what is genuinely
//! different per database (the engine's claim and completion, nonces, DescribeTasks written
//! straight from SQLite's rows, LISTEN/NOTIFY) lives in `sqlite/` and `postgres/`. The
//! conformance suite (`tests/conformance/`) is written against the traits and runs on both.
//!
//! Callers bring the area traits into scope with `use cloudphone_store::prelude::*`.

#[macro_use]
mod areas;
mod error;
mod filters;
mod hosts_types;
mod moves;
mod postgres;
pub mod sql;
mod sqlite;
mod types;

pub use areas::adb::{
    AdbEndpoint, AdbPorts, InstanceAdb, KeyPairCreated, KeyPairsDeleted, Rename, StartAdb,
};
pub use areas::sim::{SimCheckout, SimPublish};
pub use areas::streams::{
    NewStreamSession, Opened, Reaped, SESSION_DISCONNECTED, SESSION_LOST, SessionState,
    StreamEpochs, StreamRole, StreamSession, StreamSessionFilter,
};
pub use areas::webhooks::{Delivery, DeliveryEnd, DeliveryRecord, Webhook};
pub use areas::{
    AccountStore, AdbStore, AppStore, BackupStore, EngineStore, EventStore, FleetStore, HostStore,
    IdempotencyStore, LeaseStore, SimStore, StreamStore, TaskStore, WebhookStore,
};
pub use error::{Result, StoreError};
pub use filters::*;
pub use hosts_types::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use types::*;

/// Everything a caller needs to call a store's operations: the [`Store`] and its area traits.
pub mod prelude {
    pub use crate::{
        AccountStore, AdbStore, AppStore, BackupStore, EngineStore, EventStore, FleetStore,
        HostStore, IdempotencyStore, LeaseStore, SimStore, Store, StreamStore, TaskStore,
        WebhookStore,
    };
}

/// The statements the store runs, for the benchmark to measure them as they are.
pub mod statements {
    pub use crate::areas::rows::{TASK_COLUMNS, TASK_FROM};
    pub use crate::areas::tasks::describe_statements;
}

/// A store: every area's operations, on one database.
pub trait Store:
    AccountStore
    + FleetStore
    + HostStore
    + TaskStore
    + EngineStore
    + AppStore
    + BackupStore
    + WebhookStore
    + IdempotencyStore
    + EventStore
    + AdbStore
    + StreamStore
    + SimStore
    + LeaseStore
{
    /// True when several processes may share this store (PostgreSQL): leases of other
    /// processes may be alive, and work queued elsewhere arrives through
    /// [`EngineStore::forward_work_signals`].
    fn shared(&self) -> bool;
}
