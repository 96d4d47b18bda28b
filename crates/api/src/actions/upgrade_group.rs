//! UpgradeAndroidInstanceGroup: scale-out. Adds phones to an existing group (its image, spec
//! and charge type), named on after the group's highest numbered phone, CREATING, with one
//! internal CreateInstance task each; the quota, the group's state and placement are checked
//! in the transaction that inserts them, so a group that does not fit gets nothing.

use cloudphone_core::resources::{Group, Instance};
use cloudphone_core::{ApiError, TaskType};
use cloudphone_store::{GroupFilter, Page, StoreError};
use serde_json::{Value, json};

use super::common::{group_members, internal};
use super::create_group::{creation_error, internal_task};
use crate::params::Params;
use crate::state::Ctx;

pub struct UpgradeAndroidInstanceGroup {
    group_id: String,
    increase: u64,
}

impl UpgradeAndroidInstanceGroup {
    pub fn parse(p: &Params) -> Result<UpgradeAndroidInstanceGroup, ApiError> {
        let group_id = p.required("InstanceGroupId")?;
        let increase = p
            .int("IncreaseNumberOfInstance", 1, 100)?
            .ok_or_else(|| ApiError::missing("IncreaseNumberOfInstance"))?;
        // An order's settings: nothing is paid for here, but they must be well formed.
        p.bool("AutoPay")?;
        Ok(UpgradeAndroidInstanceGroup {
            group_id,
            increase: increase as u64,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let group = find_group(ctx, &self.group_id).await?;
        if !ctx.state.backend.can_create(&group.image_id) {
            return Err(ApiError::invalid(
                "ImageId",
                format!(
                    "Phones of {} cannot be ordered: the image is gone from this server or its phones join by themselves.",
                    group.image_id
                ),
            ));
        }
        let members = group_members(ctx, std::slice::from_ref(&group.id)).await?;
        let first = next_number(
            group.phone_base_name(),
            members.iter().map(|i| i.name.as_str()),
        );
        let now = ctx.now_ms;
        let instances: Vec<Instance> = (first..first + self.increase)
            .map(|n| group.new_phone(n, now))
            .collect();
        let tasks: Vec<_> = instances
            .iter()
            .map(|i| internal_task(ctx, TaskType::CreateInstance, i))
            .collect();
        let quota = ctx.state.limits.instance_quota;
        let placement = ctx.state.placement.ask(&group.image_id, now);
        ctx.state
            .store
            .upgrade_group(
                ctx.account(),
                &group.id,
                &instances,
                &tasks,
                quota,
                placement,
            )
            .await
            .map_err(|e| match e {
                // The group went (or began to) between the look-up and the write.
                StoreError::NotFound { .. } => ApiError::not_found("InstanceGroupId", &group.id),
                StoreError::IncorrectStatus { .. } => deleting(&group.id),
                e => creation_error(e, quota, &group.spec, self.increase),
            })?;
        ctx.state.wake.notify_one();
        Ok(json!({
            "InstanceIds": instances.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
            // Nothing is paid for: the order is the call itself.
            "OrderId": ctx.request_id,
        }))
    }
}

/// The caller's group `id`: `404 InvalidInstanceGroupId.NotFound` when it has none (or the
/// group is gone), `409 IncorrectStatus` while it is being deleted.
pub async fn find_group(ctx: &Ctx<'_>, id: &str) -> Result<Group, ApiError> {
    let filter = GroupFilter {
        account_id: ctx.account().to_string(),
        ids: vec![id.to_string()],
        ..GroupFilter::default()
    };
    let page = Page {
        after: None,
        limit: 1,
    };
    let found = ctx
        .state
        .store
        .list_groups(&filter, &page)
        .await
        .map_err(internal)?;
    match found.items.into_iter().next() {
        None => Err(ApiError::not_found("InstanceGroupId", id)),
        Some(g) if g.group.deleting => Err(deleting(id)),
        Some(g) => Ok(g.group),
    }
}

fn deleting(id: &str) -> ApiError {
    ApiError::IncorrectStatus {
        what: format!("instance group {id}"),
        status: "DELETING".into(),
    }
}

/// The number after the highest `<base>-<n>` among `names` (1 when there is none).
fn next_number<'a>(base: &str, names: impl Iterator<Item = &'a str>) -> u64 {
    names
        .filter_map(|name| {
            name.strip_prefix(base)?
                .strip_prefix('-')?
                .parse::<u64>()
                .ok()
        })
        .max()
        .map_or(1, |n| n.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::next_number;

    #[test]
    fn new_phones_are_numbered_after_the_highest() {
        let names = ["farm-1", "farm-7", "farm-x", "other-9", "farm-3", "farm"];
        assert_eq!(next_number("farm", names.into_iter()), 8);
        assert_eq!(next_number("farm", std::iter::empty()), 1);
        assert_eq!(next_number("farm", ["farmer-4"].into_iter()), 1);
    }
}
