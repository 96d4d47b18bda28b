//! StartAndroidInstance, StopAndroidInstance, RebootAndroidInstancesInGroup and
//! ResetAndroidInstancesInGroup: one batch over the named instances, a task per instance.

use cloudphone_core::resources::Instance;
use cloudphone_core::task_params::{RebootParam, ResetParam, StartParam, StopParam, batch};
use cloudphone_core::{ApiError, TaskType};
use serde::Serialize;
use serde_json::{Value, json};

use super::common::{CreatedBatch, create_batch, dedup, resolve_instances};
use crate::adb::RevocationReason;
use crate::params::Params;
use crate::state::Ctx;

/// The most instances one lifecycle call may name.
pub const MAX_INSTANCES: usize = 1000;

pub struct Lifecycle {
    instance_ids: Vec<String>,
    /// The optional flags of the call, as given (the tasks' `Param`).
    options: Options,
}

/// The options each action takes, by task type.
enum Options {
    Start(StartParam),
    Stop(StopParam),
    Reboot(RebootParam),
    Reset(ResetParam),
}

impl Options {
    fn task_type(&self) -> TaskType {
        match self {
            Options::Start(_) => TaskType::StartInstance,
            Options::Stop(_) => TaskType::StopInstance,
            Options::Reboot(_) => TaskType::RebootInstance,
            Options::Reset(_) => TaskType::ResetInstance,
        }
    }
}

impl Lifecycle {
    pub fn parse(action: &str, p: &Params) -> Result<Lifecycle, ApiError> {
        let instance_ids = dedup(p.list("AndroidInstanceIds", MAX_INSTANCES)?);
        if instance_ids.is_empty() {
            return Err(ApiError::missing("AndroidInstanceIds"));
        }
        // Checked in the order booleans, integers, strings: the first bad one is the error.
        let options = match action {
            "StartAndroidInstance" => Options::Start(StartParam {
                sale_mode: p.string("SaleMode"),
            }),
            "StopAndroidInstance" => Options::Stop(StopParam {
                force_stop: p.bool("ForceStop")?,
                sale_mode: p.string("SaleMode"),
            }),
            "RebootAndroidInstancesInGroup" => Options::Reboot(RebootParam {
                force_stop: p.bool("ForceStop")?,
                ignore_param_validation: p.bool("IgnoreParamValidation")?,
                sale_mode: p.string("SaleMode"),
            }),
            _ => Options::Reset(ResetParam {
                auto_pay: p.bool("AutoPay")?,
                ignore_param_validation: p.bool("IgnoreParamValidation")?,
                setting_reset_type: p.int("SettingResetType", 0, i64::from(i32::MAX))?,
                target_data_disk_size: p.int("TargetDataDiskSize", 0, i64::from(i32::MAX))?,
                promotion_id: p.string("PromotionId"),
                sale_mode: p.string("SaleMode"),
            }),
        };
        Ok(Lifecycle {
            instance_ids,
            options,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let instances = resolve_instances(ctx, "AndroidInstanceIds", &self.instance_ids).await?;
        let task_type = self.options.task_type();
        let ids = self.instance_ids;
        let phones: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
        let created = match self.options {
            Options::Start(o) => start(ctx, task_type, &instances, ids, o).await?,
            Options::Stop(o) => start(ctx, task_type, &instances, ids, o).await?,
            Options::Reboot(o) => start(ctx, task_type, &instances, ids, o).await?,
            Options::Reset(o) => start(ctx, task_type, &instances, ids, o).await?,
        };
        if task_type == TaskType::StopInstance {
            // A phone being stopped keeps no ADB connection on this node's gateway.
            ctx.state
                .adb_revocations
                .ring(phones, RevocationReason::PhoneStopped);
        }
        Ok(match task_type {
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

/// Starts one batch of `task_type` over `instances`: each child takes `options`, the batch those
/// and the instances named.
async fn start<O: Serialize>(
    ctx: &Ctx<'_>,
    task_type: TaskType,
    instances: &[Instance],
    android_instance_ids: Vec<String>,
    options: O,
) -> Result<CreatedBatch, ApiError> {
    let param = batch::Lifecycle {
        android_instance_ids,
        options,
    };
    create_batch(ctx, task_type, "", instances, &param, |_| &param.options).await
}
