//! `cloudphone admin hosts drain NAME` and `admin hosts drains [ID]` (docs/design.md §6.9):
//! every phone of a host moved to the others by MigrateInstance tasks, which any node's engine
//! runs (the store wakes them), and what became of the moves. Only the store is needed.

use std::time::Duration;

use anyhow::bail;
use cloudphone_core::Level;
use cloudphone_core::TaskType;
use cloudphone_core::placement::Strategy;
use cloudphone_core::resources::Task;
use cloudphone_core::task_params::MigrateMode;
use cloudphone_store::{
    DrainPlan, DrainProgress, Health, HostKind, NewDrain, Page, Store, StoreError, TaskFilter,
};
use serde_json::json;

use crate::cli::{Output, table};

/// How often `--wait` reads the drain's progress.
const POLL: Duration = Duration::from_millis(500);

pub struct DrainArgs {
    pub name: String,
    pub recreate: bool,
    pub partial: bool,
    pub placement: Strategy,
    pub wait: bool,
}

pub async fn drain(store: &dyn Store, a: DrainArgs, output: Output) -> anyhow::Result<i32> {
    let hosts = store.list_hosts().await?;
    let Some(host) = hosts.iter().find(|h| h.name == a.name) else {
        bail!(
            "no host {}: `cloudphone admin hosts list` shows them",
            a.name
        );
    };
    if host.kind != HostKind::Docker {
        bail!(
            "the host {} is the simulated phones' host: only docker hosts can be drained",
            a.name
        );
    }
    let mode = if a.recreate {
        MigrateMode::Recreate
    } else {
        MigrateMode::Copy
    };
    if mode == MigrateMode::Copy && host.health != Health::Healthy {
        bail!(
            "host {} does not answer ({}); its phones' data cannot be copied: drain with --recreate (their data is lost)",
            a.name,
            host.health.as_str()
        );
    }
    let on_host = store
        .host_phones(&a.name)
        .await?
        .iter()
        .filter(|p| p.host == a.name && p.moving_to.is_none())
        .count();
    let asked = NewDrain {
        id: cloudphone_core::ids::new_id("dr-"),
        host: a.name.clone(),
        mode,
        partial: a.partial,
        strategy: a.placement,
        operator: "admin".into(),
        now_ms: cloudphone_core::time::now_ms(),
    };
    let plan = match store.start_drain(&asked).await {
        Ok(plan) => plan,
        Err(StoreError::NoStock { fits }) => {
            bail!("room for {fits} of {on_host} phones; add room or use --partial")
        }
        Err(e) => return Err(e.into()),
    };
    print_plan(&plan, &a.name, mode, output)?;
    if !a.wait {
        return Ok(0);
    }
    let progress = follow(store, &plan.id, output).await?;
    Ok(if progress.failed > 0 { 1 } else { 0 })
}

fn mode_name(mode: MigrateMode) -> &'static str {
    match mode {
        MigrateMode::Copy => "copy",
        MigrateMode::Recreate => "recreate",
    }
}

fn print_plan(
    plan: &DrainPlan,
    host: &str,
    mode: MigrateMode,
    output: Output,
) -> anyhow::Result<()> {
    match output {
        Output::Json => {
            let moves: Vec<_> = plan
                .moves
                .iter()
                .map(|m| {
                    json!({"InstanceId": m.instance_id, "AccountId": m.account_id,
                           "TaskId": m.task_id, "To": m.to, "AdbPort": m.port})
                })
                .collect();
            let out = json!({"DrainId": plan.id, "Host": host, "Mode": mode_name(mode),
                             "Moves": moves, "Left": plan.left});
            println!("{}", serde_json::to_string(&out)?);
        }
        Output::Table => {
            println!(
                "{}: {} phones of {host} moving ({}); {host} stays cordoned",
                plan.id,
                plan.moves.len(),
                mode_name(mode)
            );
            if plan.left > 0 {
                println!(
                    "{} phones stay on {host}: no room for them elsewhere",
                    plan.left
                );
            }
            let rows: Vec<Vec<String>> = plan
                .moves
                .iter()
                .map(|m| vec![m.instance_id.clone(), m.to.clone(), m.task_id.clone()])
                .collect();
            print!("{}", table(&["Instance", "To", "Task"], &rows));
        }
    }
    Ok(())
}

fn progress_line(p: &DrainProgress) -> String {
    format!(
        "moved {}/{}, failed {}, running {}",
        p.finished, p.phones, p.failed, p.processing
    )
}

fn ended(p: &DrainProgress) -> bool {
    p.waiting == 0 && p.processing == 0
}

/// Prints a line each time the drain's progress changes, until every move ended.
async fn follow(store: &dyn Store, id: &str, output: Output) -> anyhow::Result<DrainProgress> {
    let mut last = None;
    loop {
        let Some(p) = store.drain_progress(id).await? else {
            bail!("the drain {id} is gone");
        };
        if last != Some(p) {
            let line = progress_line(&p);
            // JSON output stays one document on stdout.
            match output {
                Output::Table => println!("{line}"),
                Output::Json => eprintln!("{line}"),
            }
            last = Some(p);
        }
        if ended(&p) {
            // The host stays cordoned, but may be uncordoned now.
            store.end_drain(id, cloudphone_core::time::now_ms()).await?;
            if output == Output::Json {
                println!(
                    "{}",
                    json!({"DrainId": id, "Phones": p.phones, "Moved": p.finished,
                           "Failed": p.failed, "Skipped": p.skipped})
                );
            }
            return Ok(p);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The drains of the hosts (each host's latest), or drain `id` with each phone's move.
pub async fn drains(store: &dyn Store, id: Option<String>, output: Output) -> anyhow::Result<i32> {
    let Some(id) = id else {
        let mut rows = Vec::new();
        for h in store.list_hosts().await? {
            let Some(d) = h.drain_id else { continue };
            if let Some(p) = store.drain_progress(&d).await? {
                rows.push((d, h.name, p));
            }
        }
        match output {
            Output::Json => {
                let out: Vec<_> = rows
                    .iter()
                    .map(|(d, h, p)| {
                        json!({"DrainId": d, "Host": h, "Phones": p.phones,
                        "Moved": p.finished, "Failed": p.failed, "Running": p.processing,
                        "Waiting": p.waiting, "Skipped": p.skipped, "Done": ended(p)})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
            Output::Table => {
                let rows: Vec<Vec<String>> = rows
                    .iter()
                    .map(|(d, h, p)| {
                        vec![
                            d.clone(),
                            h.clone(),
                            progress_line(p),
                            if ended(p) { "done" } else { "running" }.into(),
                        ]
                    })
                    .collect();
                print!("{}", table(&["Drain", "Host", "Progress", "State"], &rows));
            }
        }
        return Ok(0);
    };
    let Some(p) = store.drain_progress(&id).await? else {
        bail!("no drain {id}: `cloudphone admin hosts drains` lists them");
    };
    let tasks = drain_tasks(store, &id).await?;
    match output {
        Output::Json => {
            let moves: Vec<_> = tasks
                .iter()
                .map(|t| {
                    json!({"TaskId": t.id, "InstanceId": t.instance_id,
                    "AccountId": t.account_id, "Status": t.status.as_str(),
                    "InstanceStatus": t.instance_status.map(|s| s.as_str()),
                    "Param": serde_json::from_str::<serde_json::Value>(&t.param).ok(),
                    "ErrorCode": t.error_code, "ErrorMessage": t.error_msg})
                })
                .collect();
            let out = json!({"DrainId": id, "Phones": p.phones, "Moved": p.finished,
                "Failed": p.failed, "Running": p.processing, "Waiting": p.waiting,
                "Done": ended(&p), "Moves": moves});
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Output::Table => {
            println!("{id}: {}", progress_line(&p));
            let rows: Vec<Vec<String>> = tasks
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.instance_id.clone().unwrap_or_default(),
                        t.account_id.clone(),
                        t.status.as_str().into(),
                        match (&t.error_code, &t.error_msg) {
                            (Some(c), Some(m)) => format!("{c}: {m}"),
                            (Some(c), None) => c.clone(),
                            _ => String::new(),
                        },
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["Task", "Instance", "Account", "Status", "Error"], &rows)
            );
        }
    }
    Ok(0)
}

/// The MigrateInstance tasks of drain `id`, every account's (a drain moves phones of many).
async fn drain_tasks(store: &dyn Store, id: &str) -> anyhow::Result<Vec<Task>> {
    let mut all = Vec::new();
    for account in store.list_accounts().await? {
        let filter = TaskFilter {
            account_id: account.id.clone(),
            invoke_id: Some(id.to_owned()),
            task_types: vec![TaskType::MigrateInstance],
            level: Some(Level::Internal),
            ..TaskFilter::default()
        };
        let mut page = Page {
            after: None,
            limit: 100,
        };
        loop {
            let listing = store.describe_tasks(&filter, &page).await?;
            all.extend(listing.items);
            match listing.next {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
    }
    all.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    Ok(all)
}
