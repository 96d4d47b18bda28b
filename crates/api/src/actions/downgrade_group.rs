//! DowngradeAndroidInstanceGroup: scale-in. Deletes the named phones of a group, each by an
//! internal DeleteInstance task queued after what is already queued on it (as
//! DeleteAndroidInstanceGroup does); the group stays, even empty. One id that is not a live
//! phone of that group of the caller's fails the whole call, and nothing changes.

use cloudphone_core::{ApiError, TaskType};
use cloudphone_store::StoreError;
use serde_json::{Value, json};

use super::common::{dedup, internal, resolve_instances};
use super::create_group::internal_task;
use super::upgrade_group::find_group;
use crate::adb::RevocationReason;
use crate::params::Params;
use crate::state::Ctx;

const IDS: &str = "AndroidInstanceIds";

pub struct DowngradeAndroidInstanceGroup {
    group_id: String,
    instance_ids: Vec<String>,
}

impl DowngradeAndroidInstanceGroup {
    pub fn parse(p: &Params) -> Result<DowngradeAndroidInstanceGroup, ApiError> {
        let group_id = p.required("InstanceGroupId")?;
        let instance_ids = dedup(p.list(IDS, 100)?);
        if instance_ids.is_empty() {
            return Err(ApiError::missing(IDS));
        }
        p.bool("AutoPay")?;
        Ok(DowngradeAndroidInstanceGroup {
            group_id,
            instance_ids,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let group = find_group(ctx, &self.group_id).await?;
        let phones = resolve_instances(ctx, IDS, &self.instance_ids).await?;
        if let Some(stranger) = phones.iter().find(|i| i.group_id != group.id) {
            return Err(ApiError::not_found(IDS, &stranger.id));
        }
        let tasks: Vec<_> = phones
            .iter()
            .map(|i| internal_task(ctx, TaskType::DeleteInstance, i))
            .collect();
        ctx.state
            .store
            .downgrade_group(ctx.account(), &group.id, &self.instance_ids, &tasks)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { what: "group", .. } => {
                    ApiError::not_found("InstanceGroupId", &group.id)
                }
                StoreError::NotFound { id, .. } => ApiError::not_found(IDS, id),
                e => internal(e),
            })?;
        ctx.state.wake.notify_one();
        ctx.state
            .adb_revocations
            .ring(self.instance_ids, RevocationReason::PhoneDeleted);
        Ok(json!({ "OrderId": ctx.request_id }))
    }
}
