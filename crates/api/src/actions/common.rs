//! Pieces several actions share: enum parameters, pagination, store errors ([`internal`]), and
//! the creation of a batch of instance tasks.

use cloudphone_core::instance::{self, Plan};
use cloudphone_core::resources::Instance;
use cloudphone_core::task_params::to_json;
use cloudphone_core::{ApiError, BatchLimits, InstanceStatus, Level, TaskType, ids};
use cloudphone_store::{Cursor, NewBatch, NewTask, Page, StoreError};
use serde::Serialize;
use serde_json::json;

use crate::params::Params;
use crate::state::Ctx;
pub use crate::store_error::internal;

/// Parses an optional enum parameter against the values `parse` accepts.
pub fn enum_param<T>(
    p: &Params,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<Option<T>, ApiError> {
    match p.get(name) {
        None => Ok(None),
        Some(v) => parse(v)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(name, format!("'{v}' is not one of {allowed}."))),
    }
}

/// `MaxResults` and `NextToken` of a paginated call.
#[derive(Clone, Debug)]
pub struct Paging {
    pub max_results: usize,
    pub next_token: Option<String>,
}

impl Paging {
    pub fn parse(p: &Params, default: i64) -> Result<Paging, ApiError> {
        Ok(Paging {
            max_results: p.int("MaxResults", 1, 100)?.unwrap_or(default) as usize,
            next_token: p.string("NextToken"),
        })
    }

    /// The store page this paging asks for; `scope` binds the token to its listing and filters.
    pub fn page(&self, ctx: &Ctx<'_>, scope: &str) -> Result<Page, ApiError> {
        let after = match &self.next_token {
            None => None,
            Some(token) => Some(ctx.state.tokens.open(scope, token).ok_or_else(|| {
                ApiError::invalid(
                    "NextToken",
                    "The token is malformed, altered or was issued for other filters.",
                )
            })?),
        };
        Ok(Page {
            after,
            limit: self.max_results,
        })
    }

    /// The token to return for the next page.
    pub fn next_token(ctx: &Ctx<'_>, scope: &str, next: Option<&Cursor>) -> Option<String> {
        next.map(|c| ctx.state.tokens.issue(scope, c))
    }
}

/// Instance ids of a call, without duplicates, in the order given.
pub fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// Looks the instances up for the caller; an id that is unknown, deleted or another account's
/// fails the whole call (named after parameter `param`).
pub async fn resolve_instances(
    ctx: &Ctx<'_>,
    param: &str,
    ids: &[String],
) -> Result<Vec<Instance>, ApiError> {
    let found = ctx
        .state
        .store
        .instances_by_id(ctx.account(), ids)
        .await
        .map_err(internal)?;
    let mut by_id: std::collections::HashMap<&str, &Instance> =
        found.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut ordered = Vec::with_capacity(ids.len());
    for id in ids {
        match by_id.remove(id.as_str()) {
            Some(i) => ordered.push(i.clone()),
            None => return Err(ApiError::not_found(param, id)),
        }
    }
    Ok(ordered)
}

/// The ids a new batch got.
pub struct CreatedBatch {
    pub batch_id: String,
    /// (instance id, child task id), in the order of the call.
    pub children: Vec<(String, String)>,
}

/// Creates a batch of `task_type` over `instances` in one transaction and wakes the engine.
/// `param` is the batch's `Param` (the call's parameters); `child_param` gives each child's.
pub async fn create_batch<P: Serialize, C: Serialize>(
    ctx: &Ctx<'_>,
    task_type: TaskType,
    resource_id: &str,
    instances: &[Instance],
    param: &P,
    child_param: impl Fn(&Instance) -> C,
) -> Result<CreatedBatch, ApiError> {
    let children: Vec<(&Instance, String)> = instances
        .iter()
        .map(|i| (i, to_json(&child_param(i))))
        .collect();
    let batch = new_batch(ctx, task_type, resource_id, &children, to_json(param));
    unless_dry_run(ctx, &[&batch]).await?;
    ctx.state
        .store
        .create_batch(&batch)
        .await
        .map_err(internal)?;
    ctx.state.wake.notify_one();
    Ok(CreatedBatch::of(batch))
}

impl CreatedBatch {
    /// The ids of a batch that was just stored.
    pub fn of(batch: NewBatch) -> CreatedBatch {
        CreatedBatch {
            batch_id: batch.batch.id,
            children: batch
                .children
                .into_iter()
                .map(|c| (c.resource_id, c.id))
                .collect(),
        }
    }
}

/// A batch of `task_type` with one child per (instance, child `Param`) pair, in that order; an
/// instance may appear more than once (one task per app, say). Not stored yet.
pub fn new_batch(
    ctx: &Ctx<'_>,
    task_type: TaskType,
    resource_id: &str,
    children: &[(&Instance, String)],
    param: String,
) -> NewBatch {
    let task = |level, resource: &str, instance: Option<&Instance>, param: String| NewTask {
        id: ids::new_id(ids::TASK),
        account_id: ctx.account().to_string(),
        invoke_id: ctx.request_id.clone(),
        level,
        task_type,
        resource_id: resource.to_string(),
        instance_id: instance.map(|i| i.id.clone()),
        instance_name: instance.map(|i| i.name.clone()),
        param,
        operator: ctx.caller.user_name.clone(),
        start_ms: ctx.now_ms,
    };
    NewBatch {
        batch: task(Level::Batch, resource_id, None, param),
        children: children
            .iter()
            .map(|(i, p)| task(Level::Instance, &i.id, Some(i), p.clone()))
            .collect(),
        limits: limits(ctx, children.len()),
    }
}

/// The call's `MaxConcurrency` and `MaxErrors` for a batch of `children`.
pub fn limits(ctx: &Ctx<'_>, children: usize) -> BatchLimits {
    let c = &ctx.controls;
    let total = i64::try_from(children).unwrap_or(i64::MAX);
    BatchLimits::resolve(c.max_concurrency, c.max_errors, total)
}

/// With `DryRun=true`, ends the call here with `DryRunOperation` and the report of what
/// `batches` would do: per child, whether it would run, be Skipped or fail its precondition, by
/// its instance's status now ([`cloudphone_core::instance::plan`], as the claim will check it).
/// Called after every check of the call and before anything is written.
pub async fn unless_dry_run(ctx: &Ctx<'_>, batches: &[&NewBatch]) -> Result<(), ApiError> {
    if !ctx.controls.dry_run {
        return Ok(());
    }
    let ids: Vec<String> = batches
        .iter()
        .flat_map(|b| b.children.iter().filter_map(|c| c.instance_id.clone()))
        .collect();
    let found = ctx
        .state
        .store
        .instances_by_id(ctx.account(), &dedup(ids))
        .await
        .map_err(internal)?;
    let status: std::collections::HashMap<&str, InstanceStatus> =
        found.iter().map(|i| (i.id.as_str(), i.status)).collect();
    let (mut run, mut skip, mut fail) = (0, 0, 0);
    let mut instances = Vec::new();
    for batch in batches {
        for child in &batch.children {
            let id = child.instance_id.as_deref().unwrap_or_default();
            let now = status.get(id).copied();
            let outcome = match now.map(|s| instance::plan(child.task_type, s)) {
                Some(Plan::Run { .. }) => {
                    run += 1;
                    "Run"
                }
                Some(Plan::Skip) => {
                    skip += 1;
                    "Skip"
                }
                Some(Plan::Reject) | None => {
                    fail += 1;
                    "Fail"
                }
            };
            instances.push(json!({
                "InstanceId": id,
                "TaskType": child.task_type.as_str(),
                "InstanceStatus": now.map(|s| s.as_str()),
                "Outcome": outcome,
            }));
        }
    }
    Err(ApiError::DryRunOperation(json!({
        "TotalCount": instances.len(),
        "RunCount": run,
        "SkipCount": skip,
        "FailCount": fail,
        "MaxConcurrency": batches.first().and_then(|b| b.limits.max_concurrency),
        "MaxErrors": batches.first().and_then(|b| b.limits.max_errors),
        "Instances": instances,
    })))
}

/// Every item of a keyset-paginated listing, each page asked of `page_of` in turn.
async fn every_page<T, F, Fut>(mut page_of: F) -> Result<Vec<T>, ApiError>
where
    F: FnMut(Page) -> Fut,
    Fut: std::future::Future<Output = Result<cloudphone_store::Listing<T>, StoreError>>,
{
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let listing = page_of(Page { after, limit: 100 })
            .await
            .map_err(internal)?;
        found.extend(listing.items);
        match listing.next {
            Some(next) => after = Some(next),
            None => return Ok(found),
        }
    }
}

/// Every task matching `filter`, newest first, every page read.
pub async fn all_tasks(
    ctx: &Ctx<'_>,
    filter: &cloudphone_store::TaskFilter,
) -> Result<Vec<cloudphone_core::resources::Task>, ApiError> {
    every_page(|page| async move { ctx.state.store.describe_tasks(filter, &page).await }).await
}

/// The live (not DELETED) phones of the caller's groups, oldest first, every page read.
pub async fn group_members(ctx: &Ctx<'_>, group_ids: &[String]) -> Result<Vec<Instance>, ApiError> {
    let filter = cloudphone_store::InstanceFilter {
        account_id: ctx.account().to_string(),
        group_ids: group_ids.to_vec(),
        ascending: true,
        ..cloudphone_store::InstanceFilter::default()
    };
    let filter = &filter;
    let found =
        every_page(|page| async move { ctx.state.store.list_instances(filter, &page).await })
            .await?;
    Ok(found
        .into_iter()
        .filter(|i| i.status != cloudphone_core::InstanceStatus::Deleted)
        .collect())
}
