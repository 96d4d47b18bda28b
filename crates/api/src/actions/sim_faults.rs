//! Extension actions for the simulated fleet (not in the vendor's API; call them with the SDK's
//! generic `call_api`): `InjectSimulatedFault` makes matching operations fail with a chosen error
//! code, so that automation can be tested against `Failed` and `PartFinished` batches;
//! `ClearSimulatedFaults` removes them. Faults live in the node's memory, and each belongs to the
//! account that injected it: it fails only that account's phones (an `InstanceId` of another
//! account is not found), and that account's clear removes it (docs/design.md §8).

use cloudphone_core::{ApiError, TaskErrorCode, TaskType};
use cloudphone_engine::Fault;
use serde_json::{Value, json};

use super::common::enum_param;
use crate::params::Params;
use crate::state::Ctx;

pub struct InjectSimulatedFault {
    /// Its `account_id` is filled in from the caller by [`InjectSimulatedFault::apply`].
    fault: Fault,
}

impl InjectSimulatedFault {
    pub fn parse(p: &Params) -> Result<InjectSimulatedFault, ApiError> {
        let task_type = enum_param(p, "TaskType", TaskType::parse_public, "the 16 task types")?;
        let code = enum_param(
            p,
            "ErrorCode",
            |s| s.parse::<TaskErrorCode>().ok(),
            "the task error codes",
        )?
        .unwrap_or(TaskErrorCode::OperationFailed);
        let message = p
            .string("ErrorMsg")
            .unwrap_or_else(|| code.default_message().to_string());
        let remaining = p.int("Count", 1, 1_000_000)?.map(|c| c as u32);
        Ok(InjectSimulatedFault {
            fault: Fault {
                account_id: String::new(),
                task_type,
                instance_id: p.string("InstanceId"),
                code,
                message,
                remaining,
                percent: p.int("Probability", 1, 100)?.map(|v| v as u8),
            },
        })
    }

    pub async fn apply(mut self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        if let Some(id) = &self.fault.instance_id {
            super::common::resolve_instances(ctx, "InstanceId", std::slice::from_ref(id)).await?;
        }
        self.fault.account_id = ctx.account().to_string();
        ctx.state
            .backend
            .inject_fault(self.fault)
            .map_err(|reason| ApiError::invalid("Backend", reason))?;
        Ok(json!({}))
    }
}

pub struct ClearSimulatedFaults;

impl ClearSimulatedFaults {
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        ctx.state.backend.clear_faults(ctx.account());
        Ok(json!({}))
    }
}
