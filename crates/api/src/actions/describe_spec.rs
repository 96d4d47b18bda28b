//! DescribeSpec: the specs this server sells, with how many phones of each one call can get
//! now (`MaxPhoneCount`) and `SoldOut` when the farm has no room for one. The room is read from
//! the hosts in one `list_hosts` snapshot; a server that places no phone on hosts (ADB devices
//! alone) never runs out.

use std::collections::HashSet;

use cloudphone_core::ApiError;
use cloudphone_core::placement::{Room, room_for};
use cloudphone_core::resources::{SPECS, Spec};
use cloudphone_store::{Cursor, HostKind};
use serde_json::{Value, json};

use super::common::{Paging, internal};
use crate::params::Params;
use crate::state::Ctx;

/// The most phones one call orders (CreateAndroidInstanceGroup's and
/// UpgradeAndroidInstanceGroup's bound).
const MAX_PER_CALL: u64 = 100;

pub struct DescribeSpec {
    spec_ids: Vec<String>,
    /// `true`: SoldOut, `false`: Available.
    sold_out: Option<bool>,
    spec_type: Option<String>,
    region: Option<String>,
    /// Asked for the vendor's matrix (Node) sale mode, which sells no spec here.
    absent: bool,
    paging: Paging,
}

impl DescribeSpec {
    pub fn parse(p: &Params) -> Result<DescribeSpec, ApiError> {
        let spec_ids = p.list("SpecIds", 100)?;
        let sold_out = match p.get("SpecStatus") {
            None => None,
            Some("Available") => Some(false),
            Some("SoldOut") => Some(true),
            Some(v) => {
                return Err(ApiError::invalid(
                    "SpecStatus",
                    format!("'{v}' is not Available or SoldOut."),
                ));
            }
        };
        let spec_type = match p.get("SpecType") {
            None => None,
            Some(v @ ("basic" | "std" | "perf")) => Some(v.to_string()),
            Some(v) => {
                return Err(ApiError::invalid(
                    "SpecType",
                    format!("'{v}' is not basic, std or perf."),
                ));
            }
        };
        if let Some(v) = p.get("ChargeType")
            && !matches!(v, "PostPaid" | "PrePaid")
        {
            return Err(ApiError::invalid(
                "ChargeType",
                format!("'{v}' is not PostPaid or PrePaid."),
            ));
        }
        let absent = match p.get("SaleMode") {
            None | Some("Instance") => false,
            Some("Node") => true,
            Some(v) => {
                return Err(ApiError::invalid(
                    "SaleMode",
                    format!("'{v}' is not Instance or Node."),
                ));
            }
        };
        Ok(DescribeSpec {
            spec_ids,
            sold_out,
            spec_type,
            region: p.string("BizRegionId"),
            absent,
            paging: Paging::parse(p, 100)?,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        if let Some(region) = &self.region
            && region != &ctx.state.region
        {
            return Err(ApiError::invalid(
                "BizRegionId",
                format!(
                    "This server runs region {}, not {region}.",
                    ctx.state.region
                ),
            ));
        }
        // Bound to every filter: a token of one listing does not page another.
        let scope = format!(
            "DescribeSpec|{:?}|{:?}|{:?}|{}",
            self.spec_ids, self.sold_out, self.spec_type, self.absent
        );
        let page = self.paging.page(ctx, &scope)?;
        let rooms = self.rooms(ctx).await?;
        let wanted: HashSet<&str> = self.spec_ids.iter().map(String::as_str).collect();
        let matching: Vec<(&Spec, u64)> = SPECS
            .iter()
            .filter(|_| !self.absent)
            .filter(|s| wanted.is_empty() || wanted.contains(s.name))
            .filter(|s| self.spec_type.as_deref().is_none_or(|t| s.kind() == t))
            .map(|s| (s, rooms.as_ref().map_or(MAX_PER_CALL, |r| room_for(r, s))))
            .filter(|(_, room)| self.sold_out.is_none_or(|sold| sold == (*room == 0)))
            .collect();
        let start = match &page.after {
            None => 0,
            Some(after) => matching
                .iter()
                .position(|(s, _)| s.name == after.id)
                .map_or(matching.len(), |i| i + 1),
        };
        let shown: Vec<&(&Spec, u64)> = matching.iter().skip(start).take(page.limit).collect();
        let more = start + shown.len() < matching.len();
        let models: Vec<Value> = shown.iter().map(|(s, room)| model(s, *room)).collect();
        let mut body = json!({ "TotalCount": matching.len(), "SpecInfoModel": models });
        if more && let Some((last, _)) = shown.last() {
            let cursor = Cursor {
                ms: 0,
                id: last.name.to_string(),
            };
            if let Some(token) = Paging::next_token(ctx, &scope, Some(&cursor)) {
                body["NextToken"] = json!(token);
            }
        }
        Ok(body)
    }

    /// The rooms of the hosts the server places phones on; `None` when it places none (so
    /// nothing runs out).
    async fn rooms(&self, ctx: &Ctx<'_>) -> Result<Option<Vec<Room>>, ApiError> {
        let kinds: HashSet<HostKind> = ctx.state.placement.kinds.values().copied().collect();
        if kinds.is_empty() {
            return Ok(None);
        }
        let hosts = ctx.state.store.list_hosts().await.map_err(internal)?;
        Ok(Some(
            hosts
                .iter()
                .filter(|h| kinds.contains(&h.kind))
                // Room for phones of an image the host runs (an empty list: any image).
                .map(|h| {
                    h.room(
                        h.kind,
                        h.images.first().map_or("", String::as_str),
                        ctx.now_ms,
                    )
                })
                .collect(),
        ))
    }
}

/// One `SpecInfoModel`, with the room there is for phones of it.
fn model(s: &Spec, room: u64) -> Value {
    json!({
        "SpecId": s.name,
        "Core": s.cpu,
        "Memory": s.memory_mib / 1024,
        "Resolution": format!("{}*{}", s.width, s.height),
        "SystemDiskSize": s.system_disk_gib,
        "SpecType": s.kind(),
        "PhoneCount": "1",
        "MinPhoneCount": "1",
        "MaxPhoneCount": room.min(MAX_PER_CALL).to_string(),
        "SpecStatus": if room == 0 { "SoldOut" } else { "Available" },
    })
}
