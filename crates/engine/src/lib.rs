//! The task engine (design.md §5): workers claim instance tasks from the store, run them on a
//! [`Backend`] outside any transaction while heartbeating their lease, and write the outcome
//! fenced by the attempt number; a sweeper re-queues or fails tasks whose lease expired.

mod backend;
mod engine;
mod execute;
mod sweeper;

pub use backend::{Backend, BackendError, CommandOutput, Fault, InstanceRef, OpResult};
pub use engine::{Engine, EngineConfig};
pub use sweeper::{Sweeper, SweeperConfig};
