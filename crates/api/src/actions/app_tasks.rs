//! InstallApp, UninstallApp and OperateApp: batches of app tasks, one child per phone and app.

use cloudphone_core::resources::Instance;
use cloudphone_core::task_params::{AppParam, InstallParam, batch, to_json};
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
        // (phone, child `Param`), with the app of each child for the answer.
        let mut children = Vec::new();
        let mut app_of = Vec::new();
        for instance in &instances {
            for app in &apps {
                let param = if self.install {
                    to_json(&InstallParam {
                        app_id: app.id,
                        md5: app.md5.clone(),
                        package_name: app.package.clone(),
                        source: app.source.clone(),
                    })
                } else {
                    to_json(&AppParam {
                        app_id: app.id,
                        package_name: app.package.clone(),
                    })
                };
                children.push((instance, param));
                app_of.push(app.id);
            }
        }
        let param = batch::InstallOrUninstall {
            app_id_list: self.app_ids.iter().map(|i| i.to_string()).collect(),
            instance_group_id_list: self.targets.group_ids.clone(),
            instance_id_list: self.targets.instance_ids.clone(),
        };
        let task_type = if self.install {
            TaskType::InstallApp
        } else {
            TaskType::UninstallApp
        };
        let resource = match self.targets.group_ids.as_slice() {
            [one] => one.as_str(),
            _ => "",
        };
        let new = new_batch(ctx, task_type, resource, &children, to_json(&param));
        unless_dry_run(ctx, &[&new]).await?;
        ctx.state
            .store
            .create_app_batch(&new, &self.app_ids, self.install)
            .await
            .map_err(internal)?;
        ctx.state.wake.notify_one();
        let created = CreatedBatch::of(new);
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
        let child = to_json(&AppParam {
            app_id: app.id,
            package_name: app.package.clone(),
        });
        let children: Vec<_> = instances.iter().map(|i| (i, child.clone())).collect();
        let param = batch::OperateApp {
            app_id: app.id,
            instance_id_list: self.instance_ids.clone(),
            operate_type: self.task_type.as_str().into(),
        };
        let new = new_batch(ctx, self.task_type, "", &children, to_json(&param));
        unless_dry_run(ctx, &[&new]).await?;
        ctx.state.store.create_batch(&new).await.map_err(internal)?;
        ctx.state.wake.notify_one();
        Ok(json!({ "TaskId": new.batch.id }))
    }
}
