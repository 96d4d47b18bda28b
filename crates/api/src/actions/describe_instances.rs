//! DescribeAndroidInstances: the caller's phones with their filters, newest first by default,
//! paginated. `KeyPairId` is answered for a phone with a key pair attached; `NetworkInterfaceIp`
//! and `PublicIpAddress` never are: a simulated phone has no network of its own, and a docker
//! phone's container address is private to its host and not reachable by clients, who reach a
//! phone through its ADB endpoint (ListInstanceAdbAttributes) instead. `SessionStatus` is
//! `connect` while someone watches the phone's live screen (a session whose node was heard from
//! within the last 10 s, on any node), else `disConnect`.

use std::collections::{HashMap, HashSet};

use cloudphone_core::resources::{Instance, spec};
use cloudphone_core::time::iso;
use cloudphone_core::{ApiError, InstanceStatus};
use cloudphone_store::InstanceFilter;
use serde_json::{Value, json};

use super::common::{Paging, dedup, enum_param, internal};
use super::describe_groups::ascending;
use crate::params::Params;
use crate::state::Ctx;

pub struct DescribeAndroidInstances {
    filter: InstanceFilter,
    region: Option<String>,
    /// A filter on something no phone here has (a key pair, a matrix, a policy, ...).
    absent: bool,
    paging: Paging,
}

const STATUSES: &str = "the instance statuses (RUNNING, STOPPED, ...)";

/// Filters on features this server's phones never have: asking for one lists nothing.
const ABSENT: &[&str] = &[
    "AuthorizedUserId",
    "NodeId",
    "NodeName",
    "PrivateIpAddress",
    "AppManagePolicyId",
];

impl DescribeAndroidInstances {
    pub fn parse(p: &Params) -> Result<DescribeAndroidInstances, ApiError> {
        let mut ids = dedup(p.list("AndroidInstanceIds", 100)?);
        ids.sort();
        let mut group_ids = p.list("InstanceGroupIds", 100)?;
        group_ids.extend(p.string("InstanceGroupId"));
        let mut group_ids = dedup(group_ids);
        group_ids.sort();
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
        // Phones carry no tags of their own here (their `Tags` are empty), so no phone has one.
        let absent = !p.object_list("Tag", &["Key", "Value"], 20)?.is_empty()
            || ABSENT.iter().any(|name| p.get(name).is_some())
            || !p.list("OfficeSiteIds", 100)?.is_empty()
            || !p.list("QosRuleIds", 100)?.is_empty()
            || p.get("InstanceVersion").is_some_and(|v| v != "basic")
            || p.get("SaleMode").is_some_and(|v| v != "Instance");
        Ok(DescribeAndroidInstances {
            filter: InstanceFilter {
                account_id: String::new(),
                ids,
                name: p.string("AndroidInstanceName"),
                group_ids,
                group_name: p.string("InstanceGroupName"),
                status: enum_param(p, "Status", |s| s.parse::<InstanceStatus>().ok(), STATUSES)?,
                ascending: ascending(p)?,
                charge_type,
                key_pair_id: p.string("KeyPairId"),
            },
            region: p.string("BizRegionId"),
            absent,
            paging: Paging::parse(p, 100)?,
        })
    }

    pub async fn apply(mut self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        self.filter.account_id = ctx.account().to_string();
        let scope = format!(
            "DescribeAndroidInstances|{:?}|{:?}",
            self.filter, self.region
        );
        let page = self.paging.page(ctx, &scope)?;
        if self.absent || self.region.as_ref().is_some_and(|r| r != &ctx.state.region) {
            return Ok(json!({ "TotalCount": 0, "InstanceModel": [] }));
        }
        let listing = ctx
            .state
            .store
            .list_instances(&self.filter, &page)
            .await
            .map_err(internal)?;
        let images = ctx.state.backend.images();
        let page_ids: Vec<String> = listing.items.iter().map(|i| i.id.clone()).collect();
        // Read after the page: a key pair attached or detached in between shows as it is now.
        let keys: HashMap<String, String> = ctx
            .state
            .store
            .instances_adb(ctx.account(), &page_ids)
            .await
            .map_err(internal)?
            .into_iter()
            .filter_map(|a| Some((a.instance_id, a.key_pair_id?)))
            .collect();
        let watched: HashSet<String> = ctx
            .state
            .store
            .live_stream_instances(
                ctx.account(),
                &page_ids,
                cloudphone_stream::stale_before(ctx.now_ms),
            )
            .await
            .map_err(internal)?
            .into_iter()
            .collect();
        let models: Vec<Value> = listing
            .items
            .iter()
            .map(|i| {
                let version = images
                    .iter()
                    .find(|im| im.id == i.image_id)
                    .map(|im| im.android_version.clone())
                    .unwrap_or_default();
                let mut model = instance_json(i, &version);
                if let Some(key) = keys.get(&i.id) {
                    model["KeyPairId"] = json!(key);
                }
                if watched.contains(&i.id) {
                    model["SessionStatus"] = json!("connect");
                }
                model
            })
            .collect();
        let mut body = json!({ "TotalCount": listing.total, "InstanceModel": models });
        if let Some(token) = Paging::next_token(ctx, &scope, listing.next.as_ref()) {
            body["NextToken"] = json!(token);
        }
        Ok(body)
    }
}

fn instance_json(i: &Instance, android_version: &str) -> Value {
    let s = spec(&i.spec);
    let mut v = json!({
        "AndroidInstanceId": i.id,
        "AndroidInstanceName": i.name,
        "AndroidInstanceStatus": i.status.as_str(),
        "AndroidInstanceGroupId": i.group_id,
        "AndroidInstanceGroupName": i.group_name,
        "InstanceType": i.spec,
        "ImageId": i.image_id,
        "ImageVersion": android_version,
        "SystemVersion": format!("Android {android_version}"),
        "RegionId": i.region_id,
        "ZoneId": format!("{}-a", i.region_id),
        "ChargeType": i.charge_type,
        "Channel": "CLOUDPHONE",
        "Cpu": s.map(|s| s.cpu.to_string()).unwrap_or_default(),
        "Memory": s.map(|s| s.memory_mib).unwrap_or_default(),
        "DisplayConfig": {
            "ResolutionWidth": s.map(|s| s.width).unwrap_or_default(),
            "ResolutionHeight": s.map(|s| s.height).unwrap_or_default(),
            "Dpi": 320,
            "Fps": 30,
            "LockResolution": "off",
        },
        "RenderingType": "CPU",
        "SessionStatus": "disConnect",
        "GmtCreate": iso(i.created_ms),
        "GmtModified": iso(i.modified_ms),
        "Tags": [],
    });
    if let Some(up) = i.up_bandwidth_limit {
        v["UpBandwidthLimit"] = json!(up);
    }
    if let Some(down) = i.down_bandwidth_limit {
        v["DownBandwidthLimit"] = json!(down);
    }
    v
}
