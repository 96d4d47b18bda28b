//! RunSyncCommand: RunCommand that waits up to `WaitTime` ms (500-3000) and answers with each
//! phone's output inline. Its tasks are ordinary RunCommand tasks, visible in DescribeTasks.

use std::time::Duration;

use cloudphone_core::ApiError;
use serde_json::{Value, json};

use super::invocations;
use super::run_command::Command;
use crate::params::Params;
use crate::state::Ctx;

pub struct RunSyncCommand {
    command: Command,
    wait: Duration,
}

impl RunSyncCommand {
    pub fn parse(p: &Params) -> Result<RunSyncCommand, ApiError> {
        Ok(RunSyncCommand {
            command: Command::parse(p)?,
            wait: Duration::from_millis(p.int("WaitTime", 500, 3000)?.unwrap_or(1000) as u64),
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        // The command may outlive the wait; it then goes on as an ordinary task.
        let timeout_secs = 60;
        self.command.start(ctx, timeout_secs).await?;
        let deadline = tokio::time::Instant::now() + self.wait;
        let tasks = loop {
            let tasks =
                invocations::tasks(ctx, &ctx.request_id, &self.command.instance_ids).await?;
            let done = tasks.iter().all(|t| t.status.is_terminal());
            if done || tokio::time::Instant::now() >= deadline {
                break tasks;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let data: Vec<Value> = tasks.iter().map(|t| invocations::entry(t, true)).collect();
        Ok(json!({ "TotalCount": data.len().to_string(), "Data": data }))
    }
}
