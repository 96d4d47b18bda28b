//! DescribeAndroidInstanceGroups: the caller's groups, newest first by default, paginated.

use cloudphone_core::ApiError;
use cloudphone_core::resources::{GroupSummary, spec};
use cloudphone_core::time::iso;
use cloudphone_store::GroupFilter;
use serde_json::{Value, json};

use super::common::{Paging, dedup, internal};
use crate::params::Params;
use crate::state::Ctx;

pub struct DescribeAndroidInstanceGroups {
    filter: GroupFilter,
    region: Option<String>,
    /// A filter on something no group here has (a policy, a matrix, ...).
    absent: bool,
    paging: Paging,
}

/// Parses `SortKey` / `SortType`; true for ascending. Only creation time exists here (nothing
/// expires), so `ExpiredTime` sorts like it.
pub fn ascending(p: &Params) -> Result<bool, ApiError> {
    match p.get("SortKey") {
        None | Some("CreationTime" | "ExpiredTime") => {}
        Some(v) => {
            return Err(ApiError::invalid(
                "SortKey",
                format!("'{v}' is not CreationTime or ExpiredTime."),
            ));
        }
    }
    match p.get("SortType") {
        None | Some("DESC") => Ok(false),
        Some("ASC") => Ok(true),
        Some(v) => Err(ApiError::invalid(
            "SortType",
            format!("'{v}' is not ASC or DESC."),
        )),
    }
}

/// The group's status as listed (see [`GroupSummary::status`]).
pub fn group_status(g: &GroupSummary) -> &'static str {
    g.status()
}

/// The group statuses of the vendor's enum.
const GROUP_STATUSES: &[&str] = &[
    "CREATING",
    "RUNNING",
    "UPDATING",
    "UPDATING_FAILED",
    "FAILED",
    "EXPIRED",
    "DELETING",
    "DELETED",
];

impl DescribeAndroidInstanceGroups {
    pub fn parse(p: &Params) -> Result<DescribeAndroidInstanceGroups, ApiError> {
        let mut ids = dedup(p.list("InstanceGroupIds", 100)?);
        ids.sort();
        let tags = p
            .object_list("Tags", &["Key", "Value"], 20)?
            .into_iter()
            .map(|mut t| {
                let key = t.remove("Key").filter(|k| !k.is_empty());
                key.map(|k| (k, t.remove("Value")))
                    .ok_or_else(|| ApiError::invalid("Tags", "Every tag needs a Key."))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let status = p.string("Status");
        if let Some(s) = &status
            && !GROUP_STATUSES.contains(&s.as_str())
        {
            return Err(ApiError::invalid(
                "Status",
                format!("'{s}' is not one of {}.", GROUP_STATUSES.join(", ")),
            ));
        }
        let charge_type = p.string("ChargeType");
        if let Some(c) = &charge_type
            && c != "PostPaid"
            && c != "PrePaid"
        {
            return Err(ApiError::invalid(
                "ChargeType",
                format!("'{c}' is not PostPaid or PrePaid."),
            ));
        }
        Ok(DescribeAndroidInstanceGroups {
            filter: GroupFilter {
                account_id: String::new(),
                ids,
                name: p.string("InstanceGroupName"),
                ascending: ascending(p)?,
                include_deleted: false,
                status,
                charge_type,
                tags,
                key_pair_id: p.string("KeyPairId"),
            },
            region: p.string("BizRegionId"),
            absent: p.get("PolicyGroupId").is_some()
                || p.get("InstanceVersion").is_some_and(|v| v != "basic")
                || p.get("SaleMode").is_some_and(|v| v != "Instance"),
            paging: Paging::parse(p, 100)?,
        })
    }

    pub async fn apply(mut self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        self.filter.account_id = ctx.account().to_string();
        if self.absent || self.region.as_ref().is_some_and(|r| r != &ctx.state.region) {
            return Ok(json!({ "TotalCount": 0, "InstanceGroupModel": [] }));
        }
        let scope = format!("DescribeAndroidInstanceGroups|{:?}", self.filter);
        let page = self.paging.page(ctx, &scope)?;
        let listing = ctx
            .state
            .store
            .list_groups(&self.filter, &page)
            .await
            .map_err(internal)?;
        let images = ctx.state.backend.images();
        let models: Vec<Value> = listing
            .items
            .iter()
            .map(|g| {
                let s = spec(&g.group.spec);
                let version = images
                    .iter()
                    .find(|i| i.id == g.group.image_id)
                    .map(|i| i.android_version.clone())
                    .unwrap_or_default();
                json!({
                    "InstanceGroupId": g.group.id,
                    "InstanceGroupName": g.group.name,
                    "InstanceGroupSpec": g.group.spec,
                    "InstanceGroupSpecDescribe": s.map(|s| s.describe).unwrap_or_default(),
                    "InstanceGroupStatus": group_status(g),
                    "NumberOfInstances": g.instances.to_string(),
                    "AvailableInstanceAmount": g.instances - g.deleted,
                    "ImageId": g.group.image_id,
                    "ImageVersion": version,
                    "SystemVersion": format!("Android {version}"),
                    "RegionId": g.group.region_id,
                    "ZoneId": format!("{}-a", g.group.region_id),
                    "ChargeType": g.group.charge_type,
                    "SaleMode": "Instance",
                    "Channel": "CLOUDPHONE",
                    "Cpu": s.map(|s| s.cpu.to_string()).unwrap_or_default(),
                    "Memory": s.map(|s| s.memory_mib).unwrap_or_default(),
                    "ResolutionWidth": s.map(|s| s.width).unwrap_or_default(),
                    "ResolutionHeight": s.map(|s| s.height).unwrap_or_default(),
                    "RenderingType": "CPU",
                    "GmtCreate": iso(g.group.created_ms),
                    "GmtModified": iso(g.group.modified_ms),
                    "Tags": g.group.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut body = json!({ "TotalCount": listing.total, "InstanceGroupModel": models });
        if let Some(token) = Paging::next_token(ctx, &scope, listing.next.as_ref()) {
            body["NextToken"] = json!(token);
        }
        Ok(body)
    }
}
