//! RetryTasks (an extension, issue 10): a new batch over the instances whose children of an
//! ended batch Failed (and, with `IncludeSkipped`, were Skipped), with the same type and
//! parameters; its `Param` names the batch it retries in `RetryOf`.

use cloudphone_core::resources::Task;
use cloudphone_core::task_params::{self, TaskParam};
use cloudphone_core::{ApiError, Level, TaskStatus, TaskType};
use cloudphone_store::TaskFilter;
use serde_json::{Value, json};

use super::common::{CreatedBatch, all_tasks, internal, new_batch, unless_dry_run};
use crate::params::Params;
use crate::state::Ctx;

pub struct RetryTasks {
    task_id: String,
    include_skipped: bool,
}

/// Types whose batches carry more than their tasks (backup records, a group's image): retried
/// by calling their action again, not here.
fn retriable(t: TaskType) -> bool {
    !matches!(t, TaskType::BackupFile | TaskType::UpdateGroupImage)
}

impl RetryTasks {
    pub fn parse(p: &Params) -> Result<RetryTasks, ApiError> {
        Ok(RetryTasks {
            task_id: p.required("TaskId")?,
            include_skipped: p.bool("IncludeSkipped")?.unwrap_or(false),
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let store = &ctx.state.store;
        let batch = store
            .task(ctx.account(), &self.task_id)
            .await
            .map_err(internal)?
            .filter(|t| t.level == Level::Batch)
            .ok_or_else(|| ApiError::not_found("TaskId", &self.task_id))?;
        if !batch.status.is_terminal() {
            return Err(ApiError::IncorrectStatus {
                what: format!("batch {}", batch.id),
                status: batch.status.as_str().into(),
            });
        }
        if !retriable(batch.task_type) {
            return Err(ApiError::invalid(
                "TaskId",
                format!(
                    "{} batches are retried by calling their action again.",
                    batch.task_type
                ),
            ));
        }
        let mut statuses = vec![TaskStatus::Failed];
        if self.include_skipped {
            statuses.push(TaskStatus::Skipped);
        }
        let children = self.children(ctx, &statuses).await?;
        if children.is_empty() {
            // Nothing failed (or was skipped): there is nothing to retry.
            return Err(ApiError::IncorrectStatus {
                what: format!("batch {}", batch.id),
                status: batch.status.as_str().into(),
            });
        }
        let ids: Vec<String> = children
            .iter()
            .filter_map(|c| c.instance_id.clone())
            .collect();
        let found = store
            .instances_by_id(ctx.account(), &ids)
            .await
            .map_err(internal)?;
        let by_id: std::collections::HashMap<&str, _> =
            found.iter().map(|i| (i.id.as_str(), i)).collect();
        // A phone deleted since is left out (and named), not retried.
        let mut instances = Vec::new();
        let mut params = Vec::new();
        let mut gone = Vec::new();
        for c in &children {
            let id = c.instance_id.as_deref().unwrap_or_default();
            match by_id.get(id) {
                Some(i) => {
                    instances.push((*i).clone());
                    // As stored: one that does not parse fails its retry with
                    // InvalidTaskParameters, as it did the first time.
                    params.push(c.param.clone());
                }
                None => gone.push(id.to_string()),
            }
        }
        if instances.is_empty() {
            // Every phone to retry was deleted since: nothing to run.
            return Err(ApiError::IncorrectStatus {
                what: format!("batch {} (its failed phones are gone)", batch.id),
                status: batch.status.as_str().into(),
            });
        }
        // Each retried child keeps its own parameters.
        let pairs: Vec<_> = instances.iter().zip(params).collect();
        let new = new_batch(
            ctx,
            batch.task_type,
            &batch.resource_id,
            &pairs,
            task_params::batch::retry_of(&batch.param, &batch.id),
        );
        unless_dry_run(ctx, &[&new]).await?;
        match batch.task_type {
            // The apps' latest install or uninstall batch is the retry now, as for a new call.
            TaskType::InstallApp | TaskType::UninstallApp => {
                let mut app_ids: Vec<i64> = pairs
                    .iter()
                    .filter_map(|(_, p)| TaskParam::parse(batch.task_type, p).ok()?.app_id())
                    .collect();
                app_ids.sort_unstable();
                app_ids.dedup();
                let install = batch.task_type == TaskType::InstallApp;
                store.create_app_batch(&new, &app_ids, install).await
            }
            _ => store.create_batch(&new).await,
        }
        .map_err(internal)?;
        ctx.state.wake.notify_one();
        let created = CreatedBatch::of(new);
        Ok(json!({
            "TaskId": created.batch_id,
            "RetryOf": batch.id,
            "ChildTasks": created.children.iter().map(|(instance, task)| json!({
                "InstanceId": instance,
                "TaskId": task,
            })).collect::<Vec<_>>(),
            "LeftOutInstanceIds": gone,
        }))
    }

    /// The batch's children in `statuses`, oldest first.
    async fn children(
        &self,
        ctx: &Ctx<'_>,
        statuses: &[TaskStatus],
    ) -> Result<Vec<Task>, ApiError> {
        let filter = TaskFilter {
            account_id: ctx.account().to_string(),
            parent_task_id: Some(self.task_id.clone()),
            statuses: statuses.to_vec(),
            level: Some(Level::Instance),
            ..TaskFilter::default()
        };
        let mut found = all_tasks(ctx, &filter).await?;
        found.reverse();
        Ok(found)
    }
}
