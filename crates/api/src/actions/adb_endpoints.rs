//! StartInstanceAdb, StopInstanceAdb, SetAdbSecure and ListInstanceAdbAttributes: each phone's
//! ADB endpoint on the gateway (issue 22). StartInstanceAdb gives a phone a port of the
//! gateway's range (`serve --adb-ports`), unique across every node of the store, kept until the
//! phone is deleted (StopInstanceAdb closes the endpoint but keeps the port, so a phone's
//! address does not change between a stop and a start); ListInstanceAdbAttributes reports the
//! open ones as the gateway's public host and the phone's port.

use cloudphone_core::time::plain;
use cloudphone_core::{ApiError, InstanceStatus};
use cloudphone_store::{AdbFilter, StartAdb};
use serde_json::{Value, json};

use super::attach_key_pair::MAX_KEY_INSTANCES;
use super::common::{Paging, dedup, internal, resolve_instances};
use crate::adb::{AdbGateway, RevocationReason};
use crate::params::Params;
use crate::state::Ctx;

/// The most phones one StartInstanceAdb, StopInstanceAdb or ListInstanceAdbAttributes names.
pub const MAX_ADB_INSTANCES: usize = 100;

/// `InstanceIds`: required, at most `max`, duplicates merged.
pub fn instance_ids(p: &Params, max: usize) -> Result<Vec<String>, ApiError> {
    let ids = dedup(p.list("InstanceIds", max)?);
    if ids.is_empty() {
        return Err(ApiError::missing("InstanceIds"));
    }
    Ok(ids)
}

pub struct StartInstanceAdb {
    instance_ids: Vec<String>,
}

impl StartInstanceAdb {
    pub fn parse(p: &Params) -> Result<StartInstanceAdb, ApiError> {
        Ok(StartInstanceAdb {
            instance_ids: instance_ids(p, MAX_ADB_INSTANCES)?,
        })
    }

    /// Refused on an UNAVAILABLE phone, as the vendor documents; DELETED ones are unknown.
    /// All or none: when the range has too few free ports, no endpoint opens.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let gateway = ctx
            .state
            .adb
            .as_ref()
            .ok_or(ApiError::AdbGatewayNotConfigured)?;
        let instances = resolve_instances(ctx, "InstanceIds", &self.instance_ids).await?;
        if let Some(down) = instances
            .iter()
            .find(|i| i.status == InstanceStatus::Unavailable)
        {
            return Err(ApiError::IncorrectStatus {
                what: format!("instance {}", down.id),
                status: down.status.as_str().into(),
            });
        }
        let started = ctx
            .state
            .store
            .start_adb(ctx.account(), &self.instance_ids, gateway.ports, ctx.now_ms)
            .await
            .map_err(internal)?;
        match started {
            StartAdb::Started { .. } => Ok(json!({})),
            StartAdb::NoFreePort => Err(ApiError::AdbPortsExhausted {
                low: gateway.ports.low,
                high: gateway.ports.high,
            }),
        }
    }
}

pub struct StopInstanceAdb {
    instance_ids: Vec<String>,
}

impl StopInstanceAdb {
    pub fn parse(p: &Params) -> Result<StopInstanceAdb, ApiError> {
        Ok(StopInstanceAdb {
            instance_ids: instance_ids(p, MAX_ADB_INSTANCES)?,
        })
    }

    /// Closing a closed endpoint is not an error. Works without a gateway too (endpoints
    /// another node opened are closed all the same).
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        resolve_instances(ctx, "InstanceIds", &self.instance_ids).await?;
        let stopped = ctx
            .state
            .store
            .stop_adb(ctx.account(), &self.instance_ids, ctx.now_ms)
            .await
            .map_err(internal)?;
        ctx.state
            .adb_revocations
            .ring(stopped, RevocationReason::AdbStopped);
        Ok(json!({}))
    }
}

pub struct SetAdbSecure {
    instance_ids: Vec<String>,
    secure: bool,
}

impl SetAdbSecure {
    pub fn parse(p: &Params) -> Result<SetAdbSecure, ApiError> {
        let instance_ids = instance_ids(p, MAX_KEY_INSTANCES)?;
        let status = p
            .int("Status", 0, 1)?
            .ok_or_else(|| ApiError::missing("Status"))?;
        Ok(SetAdbSecure {
            instance_ids,
            secure: status == 1,
        })
    }

    /// `Status` 1: clients must sign with the phone's key pair (none attached: nobody gets
    /// in); 0: anyone who reaches the endpoint does.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        resolve_instances(ctx, "InstanceIds", &self.instance_ids).await?;
        let changed = ctx
            .state
            .store
            .set_adb_secure(ctx.account(), &self.instance_ids, self.secure, ctx.now_ms)
            .await
            .map_err(internal)?;
        ctx.state
            .adb_revocations
            .ring(changed, RevocationReason::SecureChanged);
        Ok(json!({
            "Data": {
                "FailCount": 0,
                "InstanceIds": self.instance_ids,
                "TotalCount": self.instance_ids.len(),
            }
        }))
    }
}

pub struct ListInstanceAdbAttributes {
    filter: AdbFilter,
    external_ip: Option<String>,
    /// A filter on something no endpoint here has (a private IP, another port or protocol).
    absent: bool,
    paging: Paging,
}

impl ListInstanceAdbAttributes {
    pub fn parse(p: &Params) -> Result<ListInstanceAdbAttributes, ApiError> {
        let mut instance_ids = dedup(p.list("InstanceIds", MAX_ADB_INSTANCES)?);
        instance_ids.sort();
        let internal_port = AdbGateway::INTERNAL_PORT.to_string();
        // The phones' private addresses are not known here (README, "ADB endpoints"), so a
        // filter on one finds nothing.
        let absent = p.get("InternalIp").is_some()
            || p.get("InternalPort").is_some_and(|v| v != internal_port)
            || p.get("IpProtocol")
                .is_some_and(|v| !v.eq_ignore_ascii_case("TCP"));
        Ok(ListInstanceAdbAttributes {
            filter: AdbFilter {
                account_id: String::new(),
                instance_ids,
            },
            external_ip: p.string("ExternalIp"),
            absent,
            paging: Paging::parse(p, 100)?,
        })
    }

    pub async fn apply(mut self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        self.filter.account_id = ctx.account().to_string();
        let scope = format!(
            "ListInstanceAdbAttributes|{:?}|{:?}|{}",
            self.filter, self.external_ip, self.absent
        );
        let page = self.paging.page(ctx, &scope)?;
        let public_host = ctx.state.adb.as_ref().map(|g| g.public_host.as_str());
        let max_results = self.paging.max_results;
        if self.absent
            || self
                .external_ip
                .as_deref()
                .is_some_and(|ip| Some(ip) != public_host)
        {
            return Ok(json!({ "TotalCount": 0, "MaxResults": max_results, "Data": [] }));
        }
        let listing = ctx
            .state
            .store
            .list_adb(&self.filter, &page)
            .await
            .map_err(internal)?;
        let data: Vec<Value> = listing
            .items
            .iter()
            .map(|a| {
                let mut v = json!({
                    "InstanceId": a.instance_id,
                    "ExternalPort": a.port.map(|p| p.to_string()).unwrap_or_default(),
                    "InternalPort": AdbGateway::INTERNAL_PORT.to_string(),
                    "IpProtocol": "TCP",
                    "GmtCreated": plain(a.started_ms.unwrap_or(a.created_ms)),
                    "GmtModified": plain(a.modified_ms),
                });
                // A node without the gateway's settings does not know where clients reach it.
                if let Some(host) = public_host {
                    v["ExternalIp"] = json!(host);
                }
                v
            })
            .collect();
        let mut body = json!({
            "TotalCount": listing.total,
            "MaxResults": max_results,
            "Data": data,
        });
        if let Some(token) = Paging::next_token(ctx, &scope, listing.next.as_ref()) {
            body["NextToken"] = json!(token);
        }
        Ok(body)
    }
}
