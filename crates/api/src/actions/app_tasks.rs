//! InstallApp, UninstallApp and OperateApp: batches of app tasks, one child per phone and app.

use cloudphone_core::resources::Instance;
use cloudphone_core::{ApiError, TaskType};
use serde_json::{Value, json};

use super::apps::{app_ids, resolve_apps};
use super::common::{
    CreatedBatch, dedup, group_members, internal, new_batch, resolve_instances, unless_dry_run,
};
use crate::params::Params;
use crate::state::Ctx;

/// The phones a call names: by group (which wins when both are given, as the vendor documents for
/// UninstallApp) or by instance.
struct Targets {
    instance_ids: Vec<String>,
    group_ids: Vec<String>,
}

impl Targets {
    fn parse(p: &Params) -> Result<Targets, ApiError> {
        let group_ids = dedup(p.list("InstanceGroupIdList", 100)?);
        let instance_ids = dedup(p.list("InstanceIdList", 100)?);
        if group_ids.is_empty() && instance_ids.is_empty() {
            return Err(ApiError::missing("InstanceIdList"));
        }
        Ok(Targets {
            instance_ids,
            group_ids,
        })
    }

    async fn resolve(&self, ctx: &Ctx<'_>) -> Result<Vec<Instance>, ApiError> {
        if self.group_ids.is_empty() {
            return resolve_instances(ctx, "InstanceIdList", &self.instance_ids).await;
        }
        let mut found = Vec::new();
        for group in &self.group_ids {
            let members = group_members(ctx, std::slice::from_ref(group)).await?;
            if members.is_empty() {
                return Err(ApiError::not_found("InstanceGroupIdList", group));
            }
            found.extend(members);
        }
        Ok(found)
    }
}

pub struct InstallOrUninstall {
    install: bool,
    app_ids: Vec<i64>,
    targets: Targets,
}

impl InstallOrUninstall {
    pub fn parse(install: bool, p: &Params) -> Result<InstallOrUninstall, ApiError> {
        Ok(InstallOrUninstall {
            install,
            app_ids: app_ids(p, true)?.into_iter().fold(Vec::new(), |mut v, id| {
                if !v.contains(&id) {
                    v.push(id);
                }
                v
            }),
            targets: Targets::parse(p)?,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let apps = resolve_apps(ctx, "AppIdList", &self.app_ids).await?;
        let instances = self.targets.resolve(ctx).await?;
        let mut children = Vec::new();
        for instance in &instances {
            for app in &apps {
                let param = if self.install {
                    json!({ "AppId": app.id, "PackageName": app.package, "Source": app.source, "Md5": app.md5 })
                } else {
                    json!({ "AppId": app.id, "PackageName": app.package })
                };
                children.push((instance, param));
            }
        }
        let param = json!({
            "AppIdList": self.app_ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            "InstanceIdList": self.targets.instance_ids,
            "InstanceGroupIdList": self.targets.group_ids,
        });
        let task_type = if self.install {
            TaskType::InstallApp
        } else {
            TaskType::UninstallApp
        };
        let resource = match self.targets.group_ids.as_slice() {
            [one] => one.as_str(),
            _ => "",
        };
        let batch = new_batch(ctx, task_type, resource, &children, &param);
        unless_dry_run(ctx, &[&batch]).await?;
        ctx.state
            .store
            .create_app_batch(&batch, &self.app_ids, self.install)
            .await
            .map_err(internal)?;
        ctx.state.wake.notify_one();
        let app_of: Vec<i64> = children
            .iter()
            .map(|(_, p)| p["AppId"].as_i64().unwrap_or_default())
            .collect();
        let created = CreatedBatch::of(batch);
        Ok(json!({
            "TaskId": created.batch_id,
            "ChildTaskInfo": created.children.iter().zip(app_of).map(|((instance, task), app)| json!({
                "AppId": app.to_string(),
                "ChildTaskId": task,
                "InstanceId": instance,
            })).collect::<Vec<_>>(),
        }))
    }
}

pub struct OperateApp {
    task_type: TaskType,
    app_id: i64,
    instance_ids: Vec<String>,
}

impl OperateApp {
    pub fn parse(p: &Params) -> Result<OperateApp, ApiError> {
        let app_id = p
            .int("AppId", 1, i64::MAX)?
            .ok_or_else(|| ApiError::missing("AppId"))?;
        let task_type = match p.required("OperateType")?.to_ascii_lowercase().as_str() {
            "start" => TaskType::StartApp,
            "stop" => TaskType::StopApp,
            "restart" => TaskType::RestartApp,
            other => {
                return Err(ApiError::invalid(
                    "OperateType",
                    format!("'{other}' is not start, stop or restart."),
                ));
            }
        };
        let instance_ids = dedup(p.list("InstanceIdList", 100)?);
        if instance_ids.is_empty() {
            return Err(ApiError::missing("InstanceIdList"));
        }
        Ok(OperateApp {
            task_type,
            app_id,
            instance_ids,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let app = resolve_apps(ctx, "AppId", &[self.app_id]).await?.remove(0);
        let instances = resolve_instances(ctx, "InstanceIdList", &self.instance_ids).await?;
        let child = json!({ "AppId": app.id, "PackageName": app.package });
        let children: Vec<_> = instances.iter().map(|i| (i, child.clone())).collect();
        let param = json!({ "AppId": app.id, "InstanceIdList": self.instance_ids, "OperateType": self.task_type.as_str() });
        let batch = new_batch(ctx, self.task_type, "", &children, &param);
        unless_dry_run(ctx, &[&batch]).await?;
        ctx.state
            .store
            .create_batch(&batch)
            .await
            .map_err(internal)?;
        ctx.state.wake.notify_one();
        Ok(json!({ "TaskId": batch.batch.id }))
    }
}
