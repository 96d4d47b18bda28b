//! ModifyAndroidInstance: renames instances and sets their bandwidth limits.

use cloudphone_core::ApiError;
use cloudphone_store::InstanceChange;
use serde_json::{Value, json};

use super::common::{dedup, internal, resolve_instances};
use super::create_group::valid_name;
use crate::params::Params;
use crate::state::Ctx;

pub struct ModifyAndroidInstance {
    ids: Vec<String>,
    param: &'static str,
    change: InstanceChange,
}

impl ModifyAndroidInstance {
    pub fn parse(p: &Params) -> Result<ModifyAndroidInstance, ApiError> {
        // A single AndroidInstanceId wins over the list, as the vendor documents.
        let (ids, param) = match p.string("AndroidInstanceId") {
            Some(id) => (vec![id], "AndroidInstanceId"),
            None => (dedup(p.list("InstanceIds", 100)?), "InstanceIds"),
        };
        if ids.is_empty() {
            return Err(ApiError::missing("AndroidInstanceId"));
        }
        let name = p.string("NewAndroidInstanceName");
        if let Some(n) = &name
            && !valid_name(n)
        {
            return Err(ApiError::invalid(
                "NewAndroidInstanceName",
                "Use at most 30 characters: a letter or CJK character first, then letters, digits, CJK, ':', '_', '.' or '-'.",
            ));
        }
        let change = InstanceChange {
            name,
            up_bandwidth_limit: p.int("UpBandwidthLimit", 0, 100_000)?,
            down_bandwidth_limit: p.int("DownBandwidthLimit", 0, 100_000)?,
        };
        if change == InstanceChange::default() {
            return Err(ApiError::missing("NewAndroidInstanceName"));
        }
        Ok(ModifyAndroidInstance { ids, param, change })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        resolve_instances(ctx, self.param, &self.ids).await?;
        ctx.state
            .store
            .modify_instances(ctx.account(), &self.ids, &self.change)
            .await
            .map_err(internal)?;
        Ok(json!({}))
    }
}
