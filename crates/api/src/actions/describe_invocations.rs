//! DescribeInvocations: the per-phone results of a RunCommand invocation (the vendor deprecated it;
//! scripts still call it). The same data as DescribeTasks, in the invocation shape.

use cloudphone_core::ApiError;
use serde_json::{Value, json};

use super::common::dedup;
use super::invocations;
use super::run_command::MAX_INSTANCES;
use crate::params::Params;
use crate::state::Ctx;

pub struct DescribeInvocations {
    invocation_id: String,
    instance_ids: Vec<String>,
}

impl DescribeInvocations {
    pub fn parse(p: &Params) -> Result<DescribeInvocations, ApiError> {
        let invocation_id = p.required("InvocationId")?;
        let instance_ids = dedup(p.list("InstanceIds", MAX_INSTANCES)?);
        if instance_ids.is_empty() {
            return Err(ApiError::missing("InstanceIds"));
        }
        Ok(DescribeInvocations {
            invocation_id,
            instance_ids,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let tasks = invocations::tasks(ctx, &self.invocation_id, &self.instance_ids).await?;
        if tasks.is_empty() {
            return Err(ApiError::not_found("InvocationId", &self.invocation_id));
        }
        let data: Vec<Value> = tasks.iter().map(|t| invocations::entry(t, false)).collect();
        Ok(json!({ "TotalCount": data.len().to_string(), "Data": data }))
    }
}
