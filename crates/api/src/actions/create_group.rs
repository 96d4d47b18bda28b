//! CreateAndroidInstanceGroup: validates the order, then creates the groups, their instances
//! (CREATING) and the internal tasks that bring each phone up, in one transaction.

use cloudphone_core::resources::{Group, Instance, spec};
use cloudphone_core::task_params::{NoParam, to_json};
use cloudphone_core::{ApiError, Level, TaskType, ids};
use cloudphone_store::{NewTask, StoreError};
use serde_json::{Value, json};

use super::common::internal;
use crate::params::Params;
use crate::state::Ctx;

pub struct CreateAndroidInstanceGroup {
    region: String,
    image_id: String,
    spec: String,
    name: String,
    amount: i64,
    per_group: i64,
    charge_type: String,
    tags: Vec<(String, String)>,
    /// Attached to every new phone (issue 22).
    key_pair_id: Option<String>,
}

/// The vendor's naming rule for groups and instances: at most 30 characters, starting with a
/// letter or CJK character, then letters, digits, CJK, `:`, `_`, `.` or `-`.
pub fn valid_name(name: &str) -> bool {
    let is_cjk = |c: char| ('\u{4e00}'..='\u{9fff}').contains(&c);
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || is_cjk(c));
    first_ok
        && name.chars().count() <= 30
        && !name.starts_with("http://")
        && !name.starts_with("https://")
        && chars.all(|c| c.is_ascii_alphanumeric() || is_cjk(c) || ":_.-".contains(c))
}

impl CreateAndroidInstanceGroup {
    pub fn parse(p: &Params) -> Result<CreateAndroidInstanceGroup, ApiError> {
        let region = p.required("BizRegionId")?;
        let image_id = p.required("ImageId")?;
        let spec_name = p.required("InstanceGroupSpec")?;
        if spec(&spec_name).is_none() {
            return Err(ApiError::invalid(
                "InstanceGroupSpec",
                format!(
                    "'{spec_name}' is not one of acp.basic.small, acp.std.large, acp.perf.large."
                ),
            ));
        }
        let name = p.string("InstanceGroupName").unwrap_or_default();
        if !name.is_empty() && !valid_name(&name) {
            return Err(ApiError::invalid(
                "InstanceGroupName",
                "Use at most 30 characters: a letter or CJK character first, then letters, digits, CJK, ':', '_', '.' or '-'.",
            ));
        }
        let charge_type = match p.get("ChargeType") {
            None => "PostPaid".to_string(),
            Some(v @ ("PostPaid" | "PrePaid")) => v.to_string(),
            Some(v) => {
                return Err(ApiError::invalid(
                    "ChargeType",
                    format!("'{v}' is not PostPaid or PrePaid."),
                ));
            }
        };
        if let Some(unit) = p.get("PeriodUnit")
            && !matches!(unit, "Month" | "Year" | "Hour")
        {
            return Err(ApiError::invalid(
                "PeriodUnit",
                format!("'{unit}' is not Month, Year or Hour."),
            ));
        }
        p.int("Period", 1, 1000)?;
        p.bool("AutoPay")?;
        p.bool("AutoRenew")?;
        p.bool("GpuAcceleration")?;
        p.bool("EnableIpv6")?;
        p.json("NetworkInfo")?;
        let tags = p
            .object_list("Tag", &["Key", "Value"], 20)?
            .into_iter()
            .map(|mut t| {
                let key = t.remove("Key").filter(|k| !k.is_empty());
                key.map(|k| (k, t.remove("Value").unwrap_or_default()))
                    .ok_or_else(|| ApiError::invalid("Tag", "Every tag needs a Key."))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CreateAndroidInstanceGroup {
            region,
            image_id,
            spec: spec_name,
            name,
            amount: p.int("Amount", 1, 100)?.unwrap_or(1),
            per_group: p.int("NumberOfInstances", 1, 100)?.unwrap_or(1),
            charge_type,
            tags,
            key_pair_id: p.string("KeyPairId"),
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        if self.region != ctx.state.region {
            return Err(ApiError::invalid(
                "BizRegionId",
                format!(
                    "This server runs region {}, not {}.",
                    ctx.state.region, self.region
                ),
            ));
        }
        if !ctx
            .state
            .backend
            .images()
            .iter()
            .any(|i| i.id == self.image_id)
        {
            return Err(ApiError::not_found("ImageId", &self.image_id));
        }
        if !ctx.state.backend.can_create(&self.image_id) {
            return Err(ApiError::invalid(
                "ImageId",
                format!(
                    "Phones of {} cannot be ordered: they are the devices of an ADB server, which join by themselves.",
                    self.image_id
                ),
            ));
        }
        let now = ctx.now_ms;
        let mut groups = Vec::new();
        let mut instances = Vec::new();
        let mut tasks = Vec::new();
        let mut infos = Vec::new();
        for _ in 0..self.amount {
            let group = Group {
                id: ids::new_id(ids::GROUP),
                account_id: ctx.account().to_string(),
                name: self.name.clone(),
                region_id: self.region.clone(),
                image_id: self.image_id.clone(),
                spec: self.spec.clone(),
                charge_type: self.charge_type.clone(),
                tags: self.tags.clone(),
                created_ms: now,
                modified_ms: now,
                deleting: false,
            };
            let mut members = Vec::new();
            for n in 1..=self.per_group.max(0) as u64 {
                let instance = group.new_phone(n, now);
                tasks.push(internal_task(ctx, TaskType::CreateInstance, &instance));
                members.push(instance.id.clone());
                instances.push(instance);
            }
            infos.push(json!({ "InstanceGroupId": group.id, "InstanceIds": members }));
            groups.push(group);
        }
        let asked = instances.len() as u64;
        let quota = ctx.state.limits.instance_quota;
        let placement = ctx.state.placement.ask(&self.image_id, now);
        let store = &ctx.state.store;
        let created = match &self.key_pair_id {
            None => store
                .create_groups(&groups, &instances, &tasks, quota, placement)
                .await
                .map(|()| true),
            // In the same transaction, so that an unknown key pair creates nothing.
            Some(key) => {
                store
                    .create_groups_with_key_pair(&groups, &instances, &tasks, quota, key, placement)
                    .await
            }
        };
        let created = created.map_err(|e| creation_error(e, quota, &self.spec, asked))?;
        if !created {
            let key = self.key_pair_id.unwrap_or_default();
            return Err(ApiError::not_found("KeyPairId", key));
        }
        ctx.state.wake.notify_one();
        Ok(json!({
            "InstanceGroupIds": groups.iter().map(|g| g.id.clone()).collect::<Vec<_>>(),
            "InstanceGroupInfos": infos,
        }))
    }
}

/// What a failed creation of `asked` phones of `spec` tells the caller: the quota, checked
/// first, then the farm's stock; anything else is the store's failure.
pub fn creation_error(e: StoreError, quota: Option<u64>, spec: &str, asked: u64) -> ApiError {
    match (e, quota) {
        (StoreError::QuotaExceeded { used }, Some(limit)) => ApiError::QuotaExceeded {
            what: "instances".into(),
            limit,
            used,
            asked,
        },
        (StoreError::NoStock { fits }, _) => ApiError::NoStock {
            spec: spec.to_string(),
            asked,
            fits,
        },
        (e, _) => internal(e),
    }
}

/// An internal (Level 0) task on one instance: provisioning and deletion, which the vendor does
/// not list as tasks but which must survive a crash all the same.
pub fn internal_task(ctx: &Ctx<'_>, task_type: TaskType, instance: &Instance) -> NewTask {
    NewTask {
        id: ids::new_id(ids::TASK),
        account_id: ctx.account().to_string(),
        invoke_id: ctx.request_id.clone(),
        level: Level::Internal,
        task_type,
        resource_id: instance.id.clone(),
        instance_id: Some(instance.id.clone()),
        instance_name: Some(instance.name.clone()),
        param: to_json(&NoParam {}),
        operator: ctx.caller.user_name.clone(),
        start_ms: ctx.now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names_follow_the_vendor_rule() {
        assert!(valid_name("farm-1"));
        assert!(valid_name("手机:a_b.c-1"));
        assert!(!valid_name("1farm"));
        assert!(!valid_name("farm 1"));
        assert!(!valid_name(&"a".repeat(31)));
        assert!(!valid_name(""));
    }
}
