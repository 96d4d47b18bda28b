//! StartAndroidInstance, StopAndroidInstance, RebootAndroidInstancesInGroup and
//! ResetAndroidInstancesInGroup: one batch over the named instances, a task per instance.

use cloudphone_core::{ApiError, TaskType};
use serde_json::{Map, Value, json};

use super::common::{create_batch, dedup, resolve_instances};
use crate::params::Params;
use crate::state::Ctx;

/// The most instances one lifecycle call may name.
pub const MAX_INSTANCES: usize = 1000;

pub struct Lifecycle {
    task_type: TaskType,
    instance_ids: Vec<String>,
    /// The optional flags of the call, as given (the tasks' `Param`).
    options: Map<String, Value>,
}

impl Lifecycle {
    pub fn parse(action: &str, p: &Params) -> Result<Lifecycle, ApiError> {
        let (task_type, bools, ints, strings): (_, &[&str], &[&str], &[&str]) = match action {
            "StartAndroidInstance" => (TaskType::StartInstance, &[], &[], &["SaleMode"]),
            "StopAndroidInstance" => (TaskType::StopInstance, &["ForceStop"], &[], &["SaleMode"]),
            "RebootAndroidInstancesInGroup" => (
                TaskType::RebootInstance,
                &["ForceStop", "IgnoreParamValidation"],
                &[],
                &["SaleMode"],
            ),
            _ => (
                TaskType::ResetInstance,
                &["AutoPay", "IgnoreParamValidation"],
                &["SettingResetType", "TargetDataDiskSize"],
                &["PromotionId", "SaleMode"],
            ),
        };
        let instance_ids = dedup(p.list("AndroidInstanceIds", MAX_INSTANCES)?);
        if instance_ids.is_empty() {
            return Err(ApiError::missing("AndroidInstanceIds"));
        }
        let mut options = Map::new();
        for name in bools {
            if let Some(v) = p.bool(name)? {
                options.insert(name.to_string(), json!(v));
            }
        }
        for name in ints {
            if let Some(v) = p.int(name, 0, i64::from(i32::MAX))? {
                options.insert(name.to_string(), json!(v));
            }
        }
        for name in strings {
            if let Some(v) = p.string(name) {
                options.insert(name.to_string(), json!(v));
            }
        }
        Ok(Lifecycle {
            task_type,
            instance_ids,
            options,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let instances = resolve_instances(ctx, "AndroidInstanceIds", &self.instance_ids).await?;
        let mut param = self.options.clone();
        param.insert("AndroidInstanceIds".into(), json!(self.instance_ids));
        let child = Value::Object(self.options);
        let created = create_batch(
            ctx,
            self.task_type,
            "",
            &instances,
            &Value::Object(param),
            |_| child.clone(),
        )
        .await?;
        Ok(match self.task_type {
            TaskType::StartInstance | TaskType::StopInstance => json!({}),
            _ => json!({
                "Tasks": {
                    "ParentTaskId": created.batch_id,
                    "ChildTasks": created.children.iter().map(|(instance, task)| json!({
                        "InstanceId": instance,
                        "TaskId": task,
                    })).collect::<Vec<_>>(),
                }
            }),
        })
    }
}
