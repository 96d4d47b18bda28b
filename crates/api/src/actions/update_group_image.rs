//! UpdateInstanceGroupImage: moves every phone of the groups to a new image. One batch per group
//! (its `ResourceId` is the group), all under the call's `RequestId`; each phone resets onto the
//! new image. The group shows UPDATING until its batch ends, then RUNNING or UPDATING_FAILED.

use cloudphone_core::task_params::{UpdateImageParam, batch, to_json};
use cloudphone_core::{ApiError, Level, TaskType, ids};
use cloudphone_store::{GroupFilter, NewBatch, NewTask, Page};
use serde_json::{Value, json};

use super::common::{dedup, group_members, internal, limits, unless_dry_run};
use crate::params::Params;
use crate::state::Ctx;

pub struct UpdateInstanceGroupImage {
    image_id: String,
    group_ids: Vec<String>,
}

impl UpdateInstanceGroupImage {
    pub fn parse(p: &Params) -> Result<UpdateInstanceGroupImage, ApiError> {
        let image_id = p.required("ImageId")?;
        let group_ids = dedup(p.list("InstanceGroupIds", 100)?);
        if group_ids.is_empty() {
            return Err(ApiError::missing("InstanceGroupIds"));
        }
        Ok(UpdateInstanceGroupImage {
            image_id,
            group_ids,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        if !ctx
            .state
            .backend
            .images()
            .iter()
            .any(|i| i.id == self.image_id)
        {
            return Err(ApiError::not_found("ImageId", &self.image_id));
        }
        let store = &ctx.state.store;
        let groups = store
            .list_groups(
                &GroupFilter {
                    account_id: ctx.account().to_string(),
                    ids: self.group_ids.clone(),
                    ..GroupFilter::default()
                },
                &Page {
                    after: None,
                    limit: 100,
                },
            )
            .await
            .map_err(internal)?;
        for id in &self.group_ids {
            let Some(g) = groups.items.iter().find(|g| &g.group.id == id) else {
                return Err(ApiError::not_found("InstanceGroupIds", id));
            };
            // A group being created, deleted or already updated cannot take another image now.
            if !ctx
                .state
                .backend
                .can_reimage(&g.group.image_id, &self.image_id)
            {
                return Err(ApiError::invalid(
                    "ImageId",
                    format!(
                        "The phones of group {id} run {}, which cannot be changed to {}: an image change stays within one backend, and devices of an ADB server have no image to change.",
                        g.group.image_id, self.image_id
                    ),
                ));
            }
            let status = g.status();
            if status != "RUNNING" && status != "UPDATING_FAILED" {
                return Err(ApiError::IncorrectStatus {
                    what: format!("instance group {id}"),
                    status: status.into(),
                });
            }
        }
        let param = to_json(&batch::UpdateImage {
            image_id: self.image_id.clone(),
            instance_group_ids: self.group_ids.clone(),
        });
        let child_param = to_json(&UpdateImageParam {
            image_id: self.image_id.clone(),
        });
        let task = |level, resource: &str, name: Option<&str>, param: String| NewTask {
            id: ids::new_id(ids::TASK),
            account_id: ctx.account().to_string(),
            invoke_id: ctx.request_id.clone(),
            level,
            task_type: TaskType::UpdateGroupImage,
            resource_id: resource.to_string(),
            instance_id: name.map(|_| resource.to_string()),
            instance_name: name.map(str::to_string),
            param,
            operator: ctx.caller.user_name.clone(),
            start_ms: ctx.now_ms,
        };
        let mut batches = Vec::new();
        for group_id in &self.group_ids {
            let children: Vec<NewTask> = group_members(ctx, std::slice::from_ref(group_id))
                .await?
                .iter()
                .map(|i| task(Level::Instance, &i.id, Some(&i.name), child_param.clone()))
                .collect();
            batches.push(NewBatch {
                batch: task(Level::Batch, group_id, None, param.clone()),
                limits: limits(ctx, children.len()),
                children,
            });
        }
        unless_dry_run(ctx, &batches.iter().collect::<Vec<_>>()).await?;
        store
            .update_group_images(ctx.account(), &self.image_id, &batches, ctx.now_ms)
            .await
            .map_err(internal)?;
        ctx.state.wake.notify_one();
        Ok(json!({}))
    }
}
