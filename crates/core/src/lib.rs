//! Domain types of cloudphone, free of I/O: identifiers, resources, the task and instance state
//! machines, batch aggregation and the catalogue of vendor error codes. Every other crate speaks
//! in these types.

pub mod error;
pub mod ids;
pub mod instance;
pub mod limits;
pub mod peer;
pub mod placement;
#[cfg(test)]
mod props;
pub mod resources;
pub mod task;
pub mod task_error;
pub mod task_params;
pub mod time;

pub use error::ApiError;
pub use instance::{InstanceStatus, Plan};
pub use limits::{BatchLimits, Share};
pub use task::{BatchCounts, Level, TaskStatus, TaskType};
pub use task_error::TaskErrorCode;
