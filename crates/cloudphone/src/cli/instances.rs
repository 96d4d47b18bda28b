//! `cloudphone instances list|start|stop|reboot|reset`: the phones of an account and their
//! power operations, each a batch that `--wait` follows to its end.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::{Format, Profile, Wait, call, started, text};
use cloudphone_client::push_list;

#[derive(Subcommand)]
pub enum InstancesCommand {
    /// Lists instances (DescribeAndroidInstances).
    #[command(after_help = "\
Examples:
  cloudphone instances list
  cloudphone instances list --group ag-0a1b2c3d4e5f --status RUNNING --all --output json")]
    List(ListArgs),
    /// Starts stopped instances (StartAndroidInstance).
    #[command(
        after_help = "Example:\n  cloudphone instances start acp-0a1b2c3d4e5f acp-1b2c3d4e5f6a --wait"
    )]
    Start(PowerArgs),
    /// Stops instances (StopAndroidInstance).
    #[command(after_help = "Example:\n  cloudphone instances stop acp-0a1b2c3d4e5f --force --wait")]
    Stop(PowerArgs),
    /// Reboots instances (RebootAndroidInstancesInGroup).
    #[command(after_help = "Example:\n  cloudphone instances reboot acp-0a1b2c3d4e5f --wait")]
    Reboot(PowerArgs),
    /// Resets instances to their image, wiping their data (ResetAndroidInstancesInGroup).
    #[command(after_help = "Example:\n  cloudphone instances reset acp-0a1b2c3d4e5f --wait")]
    Reset(PowerArgs),
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    profile: Profile,
    #[command(flatten)]
    format: Format,
    /// Only the instances of this group.
    #[arg(long)]
    group: Option<String>,
    /// Only instances with this status (RUNNING, STOPPED, ...).
    #[arg(long)]
    status: Option<String>,
    /// Only instances with this name.
    #[arg(long)]
    name: Option<String>,
    /// Only these instances (repeatable, or comma-separated).
    #[arg(long = "id", value_delimiter = ',')]
    ids: Vec<String>,
    #[arg(long, default_value_t = 100)]
    max_results: u32,
    /// Walk every page, not only the first.
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
pub struct PowerArgs {
    #[command(flatten)]
    profile: Profile,
    /// The instances (AndroidInstanceIds).
    #[arg(required = true, value_delimiter = ',')]
    instances: Vec<String>,
    /// Stop or reboot at once, without a clean shutdown (ForceStop; ignored by start and reset).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    wait: Wait,
}

pub async fn run(command: InstancesCommand) -> anyhow::Result<i32> {
    let (action, args) = match command {
        InstancesCommand::List(args) => return list(args).await,
        InstancesCommand::Start(a) => ("StartAndroidInstance", a),
        InstancesCommand::Stop(a) => ("StopAndroidInstance", a),
        InstancesCommand::Reboot(a) => ("RebootAndroidInstancesInGroup", a),
        InstancesCommand::Reset(a) => ("ResetAndroidInstancesInGroup", a),
    };
    let client = args.profile.client()?;
    let mut params = Vec::new();
    push_list(&mut params, "AndroidInstanceIds", &args.instances);
    if args.force
        && matches!(
            action,
            "StopAndroidInstance" | "RebootAndroidInstancesInGroup"
        )
    {
        params.push(("ForceStop".into(), "true".into()));
    }
    let body = call(&client, action, &params).await?;
    let batch = body["Tasks"]["ParentTaskId"].as_str().map(String::from);
    started(&client, &body, batch.as_deref(), args.wait).await
}

async fn list(args: ListArgs) -> anyhow::Result<i32> {
    let client = args.profile.client()?;
    let mut params = vec![("MaxResults".to_string(), args.max_results.to_string())];
    for (name, v) in [
        ("InstanceGroupId", &args.group),
        ("Status", &args.status),
        ("AndroidInstanceName", &args.name),
    ] {
        if let Some(v) = v {
            params.push((name.into(), v.clone()));
        }
    }
    push_list(&mut params, "AndroidInstanceIds", &args.ids);
    super::list(
        &client,
        ("DescribeAndroidInstances", "InstanceModel"),
        &params,
        args.all,
        args.format.output,
        &[
            ("InstanceId", &|i: &Value| text(i, "AndroidInstanceId")),
            ("Name", &|i| text(i, "AndroidInstanceName")),
            ("Status", &|i| text(i, "AndroidInstanceStatus")),
            ("Group", &|i| text(i, "AndroidInstanceGroupId")),
            ("Image", &|i| text(i, "ImageId")),
        ],
    )
    .await
}
