//! The task engine (docs/design.md §5): workers claim instance tasks from the store, run them on a
//! [`Backend`] outside any transaction while heartbeating their lease, and write the outcome
//! fenced by the attempt number; a sweeper re-queues or fails tasks whose lease expired; a
//! watcher marks phones that died outside any task UNAVAILABLE.

mod backup;
mod command;
mod cut;
mod engine;
mod execute;
mod gone;
mod migrate;
mod services;
mod shares;
mod stops;
mod sweeper;
mod transfer;
mod watcher;
mod webhooks;

pub use cloudphone_backend::{
    AppOp, AttemptRef, Backend, BackendError, CommandOutput, Fault, InstanceRef, Liveness, OpResult,
};
pub use command::INLINE_OUTPUT;
pub use engine::{Engine, EngineConfig};
pub use services::Services;
pub use shares::default_account_slots;
pub use stops::Stops;
pub use sweeper::{PURGE_BATCH, Sweeper, SweeperConfig};
pub use watcher::{Watcher, WatcherConfig};
pub use webhooks::{WebhookConfig, WebhookSender, signature as webhook_signature};
