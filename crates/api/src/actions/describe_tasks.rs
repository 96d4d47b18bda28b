//! DescribeTasks: every filter of the vendor's page, newest first, keyset-paginated with an
//! authenticated token.

use std::sync::Arc;

use cloudphone_core::resources::TaskRef;
use cloudphone_core::time::iso;
use cloudphone_core::{ApiError, Level, TaskStatus, TaskType};
use cloudphone_store::{TaskFilter, TaskRender};
use serde::Serialize;

use super::common::{Paging, enum_param, internal};
use crate::params::Params;
use crate::reply::Body;
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
        Ok(DescribeTasks {
            filter: task_filter(p)?,
            paging: Paging::parse(p, 10)?,
        })
    }
}

/// The filters of DescribeTasks (the account left empty); the watch stream takes them too.
pub fn task_filter(p: &Params) -> Result<TaskFilter, ApiError> {
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
    Ok(filter)
}

impl DescribeTasks {
    pub async fn apply(mut self, ctx: &Ctx<'_>) -> Result<Body, ApiError> {
        self.filter.account_id = ctx.account().to_string();
        // The filters are part of the token's scope: a token only resumes the listing it came from.
        let scope = format!("DescribeTasks|{:?}", self.filter);
        let page = self.paging.page(ctx, &scope)?;
        // Each task is written as the store reads it (on the store's thread, from the row):
        // a page of 100 tasks decoded into owned strings and serialised here cost more than
        // the query that read them. The answer's head goes first, RequestId included, so the
        // page is written once into the buffer that is sent.
        let mut head = Vec::with_capacity(page.limit.max(1) * 512 + 128);
        head.extend_from_slice(b"{\"RequestId\":");
        write_json(&mut head, &ctx.request_id);
        head.extend_from_slice(b",\"Data\":[");
        let region = ctx.state.region.clone();
        let render: TaskRender = Arc::new(move |out, n, task| {
            if n > 0 {
                out.push(b',');
            }
            write_json(out, &TaskJson::of(task, &region));
        });
        let written = ctx
            .state
            .store
            .describe_tasks_rendered(&self.filter, &page, head, render)
            .await
            .map_err(internal)?;
        let mut out = written.bytes;
        out.push(b']');
        if let Some(token) = Paging::next_token(ctx, &scope, written.next.as_ref()) {
            out.extend_from_slice(b",\"NextToken\":");
            write_json(&mut out, &token);
        }
        out.extend_from_slice(b",\"TotalCount\":");
        out.extend_from_slice(written.total.to_string().as_bytes());
        out.push(b'}');
        Ok(Body::Complete(out))
    }
}

/// Appends `value` as JSON. Writing into a `Vec` fails only for a value that cannot be
/// serialised, which none of these is.
fn write_json(out: &mut Vec<u8>, value: &impl Serialize) {
    if let Err(e) = serde_json::to_writer(out, value) {
        tracing::error!(error = %e, "writing a DescribeTasks answer failed");
    }
}

/// One task as DescribeTasks shows it. Fields that do not apply are left out; the members are
/// in name order, as the other answers' maps are.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TaskJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_msg: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_child_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_status: Option<&'a str>,
    invoke_id: &'a str,
    level: i64,
    operator: &'a str,
    param: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_task_id: Option<&'a str>,
    region_id: &'a str,
    resource_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    running_child_count: Option<i64>,
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    success_child_count: Option<i64>,
    task_id: &'a str,
    task_status: &'a str,
    task_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_child_count: Option<i64>,
}

impl<'a> TaskJson<'a> {
    fn of(t: &'a TaskRef<'a>, region: &'a str) -> TaskJson<'a> {
        let counts = t.counts.as_ref();
        TaskJson {
            error_code: t.error_code,
            error_msg: t.error_msg,
            failed_child_count: counts.map(|c| c.failed),
            finish_time: t.finish_ms.map(iso),
            instance_id: t.instance_id,
            instance_name: t.instance_name,
            instance_status: t.instance_status.as_ref().map(|s| s.as_str()),
            invoke_id: t.invoke_id,
            level: t.level.as_i64(),
            operator: t.operator,
            param: t.param,
            parent_task_id: t.parent_id,
            region_id: region,
            resource_id: t.resource_id,
            result: t.result,
            running_child_count: counts.map(|c| c.running()),
            start_time: iso(t.start_ms),
            success_child_count: counts.map(|c| c.finished),
            task_id: t.id,
            task_status: t.status.as_str(),
            task_type: t.task_type.as_str(),
            total_child_count: counts.map(|c| c.total()),
        }
    }
}
