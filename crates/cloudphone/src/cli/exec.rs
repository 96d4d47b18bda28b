//! `cloudphone exec --instances ... -- COMMAND`: runs a shell command on phones (RunCommand),
//! waits for every child and prints each phone's output. With one phone it behaves like `ssh`:
//! the output as is, and the command's own exit code as the exit status.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use super::{Profile, call, text};
use cloudphone_client::push_list;

#[derive(Args)]
#[command(after_help = "\
Examples:
  cloudphone exec --instances acp-0a1b2c3d4e5f -- pm list packages
  cloudphone exec --instances acp-0a1b2c3d4e5f,acp-1b2c3d4e5f6a --timeout 30 -- 'getprop ro.build.version.release'

With one instance the output is printed as it is and the exit status is the command's; with
several, each output follows a line naming its phone, and the exit status is 1 if any command
failed or exited non-zero.")]
pub struct ExecArgs {
    #[command(flatten)]
    profile: Profile,
    /// The phones (repeatable, or comma-separated).
    #[arg(long, required = true, value_delimiter = ',')]
    instances: Vec<String>,
    /// Seconds before the command is stopped (Timeout).
    #[arg(long, default_value_t = 60)]
    timeout: u32,
    /// How often the command's tasks are polled, in milliseconds.
    #[arg(long, default_value_t = 300, value_name = "MS")]
    interval_ms: u64,
    /// The command, run by the phone's shell; words are joined by spaces, as ssh does.
    #[arg(required = true, last = true)]
    command: Vec<String>,
}

pub async fn run(args: ExecArgs) -> anyhow::Result<i32> {
    let client = args.profile.client()?;
    let mut params = vec![
        ("CommandContent".to_string(), args.command.join(" ")),
        ("Timeout".into(), args.timeout.to_string()),
    ];
    push_list(&mut params, "InstanceIds", &args.instances);
    let body = call(&client, "RunCommand", &params).await?;
    let batch = body["TaskId"]
        .as_str()
        .context("RunCommand answered without a TaskId")?
        .to_string();
    let every = Duration::from_millis(args.interval_ms.max(100));
    let children = loop {
        let kids = super::tasks::describe(
            &client,
            &[
                ("ParentTaskId".to_string(), batch.clone()),
                ("MaxResults".into(), "100".into()),
            ],
        )
        .await?;
        let done = kids
            .iter()
            .all(|k| !matches!(k["TaskStatus"].as_str(), Some("Waiting" | "Processing")));
        if done && kids.len() >= args.instances.len() {
            break kids;
        }
        tokio::time::sleep(every).await;
    };
    let one = args.instances.len() == 1;
    let mut status = 0;
    // In the order asked for, not the order the server lists them.
    for id in &args.instances {
        let Some(kid) = children.iter().find(|k| text(k, "InstanceId") == *id) else {
            continue;
        };
        let result: Value = kid["Result"]
            .as_str()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or(Value::Null);
        let exit = result["ExitCode"].as_i64();
        if !one {
            println!(
                "--- {id} ({}) ---",
                match exit {
                    Some(c) => format!("exit {c}"),
                    None => text(kid, "TaskStatus"),
                }
            );
        }
        print!("{}", result["Output"].as_str().unwrap_or_default());
        if result["Truncated"].as_bool() == Some(true) {
            eprintln!("{id}: the output was cut; the full copy is in the task's result");
        }
        match exit {
            Some(0) => {}
            Some(c) if one => status = c.clamp(1, 255) as i32,
            Some(_) => status = 1,
            None => {
                eprintln!(
                    "{id}: {}: {}",
                    text(kid, "ErrorCode"),
                    text(kid, "ErrorMsg")
                );
                status = 1;
            }
        }
    }
    Ok(status)
}
