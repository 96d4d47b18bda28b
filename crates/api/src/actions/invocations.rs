//! The vendor's invocation view of RunCommand tasks, shared by RunSyncCommand and
//! DescribeInvocations: the same tasks DescribeTasks shows, in another shape.

use cloudphone_core::resources::Task;
use cloudphone_core::time::{iso, plain};
use cloudphone_core::{ApiError, Level, TaskStatus, TaskType};
use cloudphone_store::TaskFilter;
use serde_json::{Value, json};

use super::common::all_tasks;
use crate::state::Ctx;

/// The RunCommand instance tasks of invocation `invoke_id` on `instance_ids`, in that order
/// (phones the invocation did not touch are left out).
pub async fn tasks(
    ctx: &Ctx<'_>,
    invoke_id: &str,
    instance_ids: &[String],
) -> Result<Vec<Task>, ApiError> {
    let filter = TaskFilter {
        account_id: ctx.account().to_string(),
        invoke_id: Some(invoke_id.to_string()),
        task_types: vec![TaskType::RunCommand],
        level: Some(Level::Instance),
        ..TaskFilter::default()
    };
    let found = all_tasks(ctx, &filter).await?;
    Ok(instance_ids
        .iter()
        .filter_map(|id| {
            found
                .iter()
                .find(|t| t.instance_id.as_deref() == Some(id.as_str()))
                .cloned()
        })
        .collect())
}

/// `Pending`, `Running`, `Success`, `Failed` or `Timeout`. A command that ran and exited
/// non-zero is `Failed` here, while its task is `Finished` (the command did run).
pub fn status(t: &Task) -> &'static str {
    match t.status {
        TaskStatus::Waiting => "Pending",
        TaskStatus::Processing => "Running",
        TaskStatus::Finished if exit_code(t) == Some(0) => "Success",
        TaskStatus::Failed if t.error_code.as_deref() == Some("CommandTimeout") => "Timeout",
        _ => "Failed",
    }
}

fn result(t: &Task) -> Option<Value> {
    t.result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
}

fn exit_code(t: &Task) -> Option<i64> {
    result(t).and_then(|r| r.get("ExitCode").and_then(Value::as_i64))
}

/// The output shown for an invocation: the command's inline output, or the error message.
pub fn output(t: &Task) -> String {
    match result(t) {
        Some(r) => r
            .get("Output")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        None => t.error_msg.clone().unwrap_or_default(),
    }
}

/// One entry of `Data`. `iso_start` is RunSyncCommand's documented ISO 8601 StartTime.
pub fn entry(t: &Task, iso_start: bool) -> Value {
    let mut v = json!({
        "InstanceId": t.instance_id,
        "InvocationId": t.invoke_id,
        "InvocationStatus": status(t),
        "Output": output(t),
        "StartTime": if iso_start { iso(t.start_ms) } else { plain(t.start_ms) },
    });
    if let Some(f) = t.finish_ms {
        v["FinishTime"] = json!(plain(f));
    }
    v
}
