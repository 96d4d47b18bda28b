//! `cloudphone tasks list|show|watch`: the task center from a shell, through the same signed API
//! as the SDK. `watch` follows a batch (or one task) on the watch stream until it is terminal,
//! with a progress bar on a terminal, and exits non-zero when any child failed.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use cloudphone_client::{Client, Watch, push_list};

use super::{Format, Profile, text};

#[derive(Subcommand)]
pub enum TasksCommand {
    /// Lists tasks, with every DescribeTasks filter as a flag.
    #[command(after_help = "\
Examples:
  cloudphone tasks list --invoke-id 01A2...-... --level 1
  cloudphone tasks list --status Failed --type InstallApp --all --output json")]
    List(ListArgs),
    /// Shows one task (a batch with its counters, or an instance task with its result).
    Show {
        #[command(flatten)]
        profile: Profile,
        task_id: String,
    },
    /// Follows batches until they end, each by its InvokeId (the call's RequestId) or its
    /// TaskId, with a progress bar each. Exits 1 when any child of any of them failed.
    #[command(after_help = "\
Examples:
  cloudphone tasks watch 01A23428-CCEF-77CE-B48E-0C3DABEEC2A2
  cloudphone tasks watch t-0mx5ctscv8gyjk3h t-0mx5ctscv8gyjk9q --interval-ms 500")]
    Watch {
        #[command(flatten)]
        profile: Profile,
        /// InvokeIds (RequestIds of the calls) or TaskIds.
        #[arg(required = true)]
        ids: Vec<String>,
        /// How long to wait before reconnecting when the stream is cut.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    profile: Profile,
    #[command(flatten)]
    format: Format,
    #[arg(long)]
    invoke_id: Option<String>,
    #[arg(long = "task-id")]
    task_ids: Vec<String>,
    #[arg(long)]
    parent_task_id: Option<String>,
    #[arg(long = "resource-id")]
    resource_ids: Vec<String>,
    #[arg(long)]
    instance_id: Option<String>,
    #[arg(long)]
    instance_name: Option<String>,
    /// Waiting, Processing, Finished, PartFinished, Failed, Skipped (repeatable).
    #[arg(long = "status")]
    statuses: Vec<String>,
    /// A task type such as RebootInstance (repeatable).
    #[arg(long = "type")]
    types: Vec<String>,
    /// 1: batches, 2: instance tasks.
    #[arg(long)]
    level: Option<u8>,
    #[arg(long)]
    param: Option<String>,
    #[arg(long, default_value_t = 20)]
    max_results: u32,
    /// Walk every page, not only the first.
    #[arg(long)]
    all: bool,
}

pub async fn run(command: TasksCommand) -> anyhow::Result<i32> {
    match command {
        TasksCommand::List(args) => list(args).await,
        TasksCommand::Show { profile, task_id } => {
            let client = profile.client()?;
            let tasks = describe(&client, &[("TaskIds.1".into(), task_id.clone())]).await?;
            let Some(task) = tasks.first() else {
                bail!("InvalidTaskId.NotFound: no task {task_id} in your account");
            };
            println!("{}", serde_json::to_string_pretty(task)?);
            Ok(0)
        }
        TasksCommand::Watch {
            profile,
            ids,
            interval_ms,
        } => {
            let client = profile.client()?;
            let every = Duration::from_millis(interval_ms.max(100));
            let bars = std::io::IsTerminal::is_terminal(&std::io::stderr())
                .then(indicatif::MultiProgress::new);
            let followed = futures::future::join_all(ids.iter().map(|id| {
                let bar = bars.as_ref().map(|m| m.add(new_bar()));
                follow_with(&client, id, every, bar)
            }))
            .await;
            let mut code = 0;
            for r in followed {
                code = code.max(r?);
            }
            Ok(code)
        }
    }
}

pub async fn describe(client: &Client, params: &[(String, String)]) -> anyhow::Result<Vec<Value>> {
    let body = super::call(client, "DescribeTasks", params).await?;
    Ok(body["Data"].as_array().cloned().unwrap_or_default())
}

async fn list(args: ListArgs) -> anyhow::Result<i32> {
    let client = args.profile.client()?;
    let mut params = Vec::new();
    let mut one = |name: &str, v: &Option<String>| {
        if let Some(v) = v {
            params.push((name.to_string(), v.clone()));
        }
    };
    one("InvokeId", &args.invoke_id);
    one("ParentTaskId", &args.parent_task_id);
    one("InstanceId", &args.instance_id);
    one("InstanceName", &args.instance_name);
    one("Param", &args.param);
    one("Level", &args.level.map(|l| l.to_string()));
    push_list(&mut params, "TaskIds", &args.task_ids);
    push_list(&mut params, "ResourceIds", &args.resource_ids);
    push_list(&mut params, "TaskStatuses", &args.statuses);
    push_list(&mut params, "TaskTypes", &args.types);
    params.push(("MaxResults".into(), args.max_results.to_string()));
    let resource = |t: &Value| match text(t, "InstanceId") {
        s if s.is_empty() => text(t, "ResourceId"),
        s => s,
    };
    super::list(
        &client,
        ("DescribeTasks", "Data"),
        &params,
        args.all,
        args.format.output,
        &[
            ("TaskId", &|t| text(t, "TaskId")),
            ("Level", &|t| text(t, "Level")),
            ("TaskType", &|t| text(t, "TaskType")),
            ("Status", &|t| text(t, "TaskStatus")),
            ("Resource", &resource),
            ("Progress", &progress),
            ("Error", &|t| text(t, "ErrorCode")),
        ],
    )
    .await
}

fn progress(t: &Value) -> String {
    match t["TotalChildCount"].as_i64() {
        Some(total) => format!(
            "{}/{total} ok, {} failed, {} running",
            t["SuccessChildCount"].as_i64().unwrap_or(0),
            t["FailedChildCount"].as_i64().unwrap_or(0),
            t["RunningChildCount"].as_i64().unwrap_or(0)
        ),
        None => String::new(),
    }
}

/// A batch's children that have ended (0 for an instance task, or an event without counters).
fn ended(t: &Value) -> i64 {
    ["SuccessChildCount", "FailedChildCount", "SkippedChildCount"]
        .iter()
        .map(|k| t[*k].as_i64().unwrap_or(0))
        .sum()
}

fn terminal(status: &str) -> bool {
    !matches!(status, "Waiting" | "Processing")
}

/// The batch (or single task) `id` names: a TaskId, else the level-1 task of an InvokeId,
/// else the one task of an InvokeId without a batch.
async fn find(client: &Client, id: &str) -> anyhow::Result<Value> {
    if id.starts_with(cloudphone_core::ids::TASK) {
        let found = describe(client, &[("TaskIds.1".into(), id.to_string())]).await?;
        if let Some(t) = found.into_iter().next() {
            return Ok(t);
        }
    } else {
        let by_invoke = [
            ("InvokeId".to_string(), id.to_string()),
            ("Level".into(), "1".into()),
        ];
        if let Some(t) = describe(client, &by_invoke).await?.into_iter().next() {
            return Ok(t);
        }
        let any = [("InvokeId".to_string(), id.to_string())];
        if let Some(t) = describe(client, &any).await?.into_iter().next() {
            return Ok(t);
        }
    }
    bail!("InvalidTaskId.NotFound: no task or invocation {id} in your account")
}

/// Follows the batch or task `id` until it is terminal; 1 if any child failed, else 0.
pub async fn follow(client: &Client, id: &str, every: Duration) -> anyhow::Result<i32> {
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(new_bar);
    follow_with(client, id, every, bar).await
}

fn new_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// [`follow`], drawing on `bar` when given (one of several), else printing a line per change.
async fn follow_with(
    client: &Client,
    id: &str,
    every: Duration,
    bar: Option<ProgressBar>,
) -> anyhow::Result<i32> {
    // The stream is open before the task is first read, so no change after that read is
    // missed; each event then updates what was read.
    let first = find(client, id).await?;
    let task_id = text(&first, "TaskId");
    let mut watch = Watch::open(client, vec![("TaskIds.1".into(), task_id)], None).await?;
    watch.retry = every;
    watch.on_retry(|e| {
        eprintln!(
            "the watch stream was cut; reconnecting: {}",
            super::chain(e)
        )
    });
    let mut t = find(client, id).await?;
    let mut last = String::new();
    loop {
        let status = text(&t, "TaskStatus");
        let line = format!("{} {} {}", text(&t, "TaskId"), status, progress(&t));
        match &bar {
            Some(bar) => {
                let total = t["TotalChildCount"].as_u64().unwrap_or(1);
                let done = t["SuccessChildCount"].as_u64().unwrap_or(0)
                    + t["FailedChildCount"].as_u64().unwrap_or(0);
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(format!("{status} {}", progress(&t)));
            }
            None if line != last => println!("{line}"),
            None => {}
        }
        last = line;
        if terminal(&status) {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
                println!("{last}");
            }
            let failed = t["FailedChildCount"].as_i64().unwrap_or(0) > 0
                || matches!(status.as_str(), "Failed" | "PartFinished");
            if failed {
                let mut params = vec![
                    ("ParentTaskId".to_string(), text(&t, "TaskId")),
                    ("TaskStatuses.1".into(), "Failed".into()),
                    ("MaxResults".into(), "100".into()),
                ];
                if t["TotalChildCount"].is_null() {
                    params = vec![("TaskIds.1".into(), text(&t, "TaskId"))];
                }
                for c in describe(client, &params).await? {
                    eprintln!(
                        "failed: {} {}: {}",
                        text(&c, "InstanceId"),
                        text(&c, "ErrorCode"),
                        text(&c, "ErrorMsg")
                    );
                }
                return Ok(1);
            }
            return Ok(0);
        }
        let event = watch.next().await?;
        // On PostgreSQL two updates of one batch committed at nearly the same moment may
        // arrive in either order: a batch only moves forward, so an event with fewer ended
        // children than shown is an older one.
        if ended(&event.data) < ended(&t) {
            continue;
        }
        if let (Some(into), Some(from)) = (t.as_object_mut(), event.data.as_object()) {
            for (k, v) in from {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}
