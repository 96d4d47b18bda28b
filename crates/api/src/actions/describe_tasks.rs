//! DescribeTasks: every filter of the vendor's page, newest first, keyset-paginated with an
//! authenticated token.

use cloudphone_core::resources::Task;
use cloudphone_core::time::iso;
use cloudphone_core::{ApiError, Level, TaskStatus, TaskType};
use cloudphone_store::TaskFilter;
use serde_json::{Map, Value, json};

use super::common::{Paging, enum_param, internal};
use crate::params::Params;
use crate::state::Ctx;

/// The most ids one list filter may carry.
const MAX_LIST: usize = 100;

pub struct DescribeTasks {
    filter: TaskFilter,
    paging: Paging,
}

fn task_type(s: &str) -> Option<TaskType> {
    TaskType::parse_public(s)
}

fn task_status(s: &str) -> Option<TaskStatus> {
    s.parse().ok()
}

const TYPES: &str = "the 16 task types (StartInstance, StopInstance, ...)";
const STATUSES: &str = "Waiting, Processing, Finished, PartFinished, Failed, Skipped";

/// Parses each item of list parameter `name` with `parse`.
fn enum_list<T>(
    p: &Params,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<Vec<T>, ApiError> {
    p.list(name, MAX_LIST)?
        .iter()
        .map(|v| {
            parse(v)
                .ok_or_else(|| ApiError::invalid(name, format!("'{v}' is not one of {allowed}.")))
        })
        .collect()
}

fn merged<T: Ord>(one: Option<T>, many: Vec<T>) -> Vec<T> {
    let mut all: Vec<T> = one.into_iter().chain(many).collect();
    all.sort();
    all.dedup();
    all
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

impl DescribeTasks {
    pub fn parse(p: &Params) -> Result<DescribeTasks, ApiError> {
        let level = match p.int("Level", i64::MIN, i64::MAX)? {
            None => None,
            Some(1) => Some(Level::Batch),
            Some(2) => Some(Level::Instance),
            Some(v) => {
                return Err(ApiError::invalid(
                    "Level",
                    format!("{v} is not 1 (batch) or 2 (instance task)."),
                ));
            }
        };
        let filter = TaskFilter {
            account_id: String::new(),
            invoke_id: p.string("InvokeId"),
            resource_ids: sorted(p.list("ResourceIds", MAX_LIST)?),
            task_ids: sorted(p.list("TaskIds", MAX_LIST)?),
            parent_task_id: p.string("ParentTaskId"),
            task_types: merged(
                enum_param(p, "TaskType", task_type, TYPES)?,
                enum_list(p, "TaskTypes", task_type, TYPES)?,
            ),
            statuses: merged(
                enum_param(p, "TaskStatus", task_status, STATUSES)?,
                enum_list(p, "TaskStatuses", task_status, STATUSES)?,
            ),
            level,
            instance_id: p.string("InstanceId"),
            instance_name: p.string("InstanceName"),
            param: p.string("Param"),
        };
        Ok(DescribeTasks {
            filter,
            paging: Paging::parse(p, 10)?,
        })
    }

    pub async fn apply(mut self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        self.filter.account_id = ctx.account().to_string();
        // The filters are part of the token's scope: a token only resumes the listing it came from.
        let scope = format!("DescribeTasks|{:?}", self.filter);
        let page = self.paging.page(ctx, &scope)?;
        let listing = ctx
            .state
            .store
            .describe_tasks(&self.filter, &page)
            .await
            .map_err(internal)?;
        let data: Vec<Value> = listing
            .items
            .iter()
            .map(|t| task_json(t, &ctx.state.region))
            .collect();
        let mut body = json!({
            "TotalCount": listing.total,
            "Data": data,
        });
        if let Some(token) = Paging::next_token(ctx, &scope, listing.next.as_ref()) {
            body["NextToken"] = json!(token);
        }
        Ok(body)
    }
}

/// One task as DescribeTasks shows it. Fields that do not apply are left out.
pub fn task_json(t: &Task, region: &str) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("TaskId", json!(t.id));
    put("InvokeId", json!(t.invoke_id));
    put("RegionId", json!(region));
    put("ResourceId", json!(t.resource_id));
    put("TaskType", json!(t.task_type.as_str()));
    put("TaskStatus", json!(t.status.as_str()));
    put("StartTime", json!(iso(t.start_ms)));
    if let Some(f) = t.finish_ms {
        put("FinishTime", json!(iso(f)));
    }
    put("Param", json!(t.param));
    if let Some(r) = &t.result {
        put("Result", json!(r));
    }
    if let Some(c) = &t.error_code {
        put("ErrorCode", json!(c));
    }
    if let Some(msg) = &t.error_msg {
        put("ErrorMsg", json!(msg));
    }
    put("Level", json!(t.level.as_i64()));
    if let Some(c) = &t.counts {
        put("TotalChildCount", json!(c.total()));
        put("SuccessChildCount", json!(c.finished));
        put("FailedChildCount", json!(c.failed));
        put("RunningChildCount", json!(c.running()));
    }
    if let Some(i) = &t.instance_id {
        put("InstanceId", json!(i));
    }
    if let Some(n) = &t.instance_name {
        put("InstanceName", json!(n));
    }
    if let Some(s) = &t.instance_status {
        put("InstanceStatus", json!(s.as_str()));
    }
    put("Operator", json!(t.operator));
    if let Some(p) = &t.parent_id {
        put("ParentTaskId", json!(p));
    }
    Value::Object(m)
}
