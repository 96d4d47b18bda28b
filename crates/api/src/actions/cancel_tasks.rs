//! CancelTasks (an extension, issue 10): stops batches or instance tasks. Waiting children are
//! Skipped with `Cancelled` at once; a running command, or a transfer still reading its source,
//! is stopped (its task Failed with `Cancelled`: at once on this node, at the worker's next
//! heartbeat on another; docs/design.md §5.7); other running operations finish.

use cloudphone_core::ApiError;
use serde_json::{Value, json};

use super::common::{dedup, internal};
use crate::params::Params;
use crate::state::Ctx;

/// The most ids one call may name.
const MAX_IDS: usize = 100;

pub struct CancelTasks {
    task_ids: Vec<String>,
}

impl CancelTasks {
    pub fn parse(p: &Params) -> Result<CancelTasks, ApiError> {
        let task_ids = dedup(p.list("TaskIds", MAX_IDS)?);
        if task_ids.is_empty() {
            return Err(ApiError::missing("TaskIds"));
        }
        Ok(CancelTasks { task_ids })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let done = ctx
            .state
            .store
            .cancel_tasks(ctx.account(), &self.task_ids, ctx.now_ms)
            .await
            .map_err(internal)?;
        if let Some(unknown) = done.unknown.first() {
            return Err(ApiError::not_found("TaskIds", unknown));
        }
        // Commands and transfers running here stop now; elsewhere at their next heartbeat.
        ctx.state.stops.ring(&done.interrupted);
        // A batch that ended here lets the instances' next tasks start.
        ctx.state.wake.notify_one();
        Ok(json!({
            "SkippedCount": done.skipped,
            "InterruptingCount": done.interrupting,
            "FinishingCount": done.finishing,
            "EndedCount": done.ended,
        }))
    }
}
