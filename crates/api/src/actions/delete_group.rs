//! DeleteAndroidInstanceGroup: marks the groups deleting and queues the deletion of each of their
//! phones after whatever is already queued for it.

use cloudphone_core::{ApiError, TaskType};
use cloudphone_store::{GroupFilter, Page};
use serde_json::{Value, json};

use super::common::{dedup, group_members, internal};
use super::create_group::internal_task;
use crate::adb::RevocationReason;
use crate::params::Params;
use crate::state::Ctx;

pub struct DeleteAndroidInstanceGroup {
    group_ids: Vec<String>,
}

impl DeleteAndroidInstanceGroup {
    pub fn parse(p: &Params) -> Result<DeleteAndroidInstanceGroup, ApiError> {
        let group_ids = dedup(p.list("InstanceGroupIds", 100)?);
        if group_ids.is_empty() {
            return Err(ApiError::missing("InstanceGroupIds"));
        }
        Ok(DeleteAndroidInstanceGroup { group_ids })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let store = &ctx.state.store;
        let all = Page {
            after: None,
            limit: 100,
        };
        let groups = store
            .list_groups(
                &GroupFilter {
                    account_id: ctx.account().to_string(),
                    ids: self.group_ids.clone(),
                    ..GroupFilter::default()
                },
                &all,
            )
            .await
            .map_err(internal)?;
        for id in &self.group_ids {
            match groups.items.iter().find(|g| &g.group.id == id) {
                None => return Err(ApiError::not_found("InstanceGroupIds", id)),
                Some(g) if g.group.deleting => {
                    return Err(ApiError::IncorrectStatus {
                        what: format!("instance group {id}"),
                        status: "DELETING".into(),
                    });
                }
                Some(_) => {}
            }
        }
        let members = group_members(ctx, &self.group_ids).await?;
        let tasks: Vec<_> = members
            .iter()
            .map(|i| internal_task(ctx, TaskType::DeleteInstance, i))
            .collect();
        store
            .delete_groups(ctx.account(), &self.group_ids, &tasks)
            .await
            .map_err(internal)?;
        ctx.state.wake.notify_one();
        ctx.state.adb_revocations.ring(
            members.into_iter().map(|i| i.id).collect(),
            RevocationReason::PhoneDeleted,
        );
        Ok(json!({}))
    }
}
