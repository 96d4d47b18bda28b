//! `cloudphone instances list|start|stop|reboot|reset|view`: the phones of an account, their
//! power operations (each a batch that `--wait` follows to its end), and a link that opens a
//! phone's live screen in a browser.

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
    /// Prints a link that opens the phone's live screen in a browser, with a fresh connection
    /// ticket (BatchGetAcpConnectionTicket). Anyone with the link sees and drives the phone
    /// until the ticket expires (the server's --stream-ticket-ttl-secs, 120 s by default) or
    /// the phone is disconnected (DisconnectAndroidInstance).
    #[command(after_help = "\
Examples:
  cloudphone instances view acp-0a1b2c3d4e5f
  cloudphone instances view acp-0a1b2c3d4e5f --end-user-id alice --public-url https://phones.example.com")]
    View(ViewArgs),
}

#[derive(Args)]
pub struct ViewArgs {
    #[command(flatten)]
    profile: Profile,
    /// The instance.
    instance: String,
    /// The end user the ticket is for (EndUserId), recorded with the session: a disconnect
    /// with this end user ends that user's sessions only.
    #[arg(long)]
    end_user_id: Option<String>,
    /// The address browsers reach the server at, when it is not the endpoint (the server's
    /// --public-url behind a proxy) [default: the endpoint].
    #[arg(long)]
    public_url: Option<String>,
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
        InstancesCommand::View(args) => return view(args).await,
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

async fn view(args: ViewArgs) -> anyhow::Result<i32> {
    let profile = args.profile.resolve()?;
    let client = profile.client()?;
    let mut params = Vec::new();
    push_list(
        &mut params,
        "InstanceIds",
        std::slice::from_ref(&args.instance),
    );
    if let Some(user) = &args.end_user_id {
        params.push(("EndUserId".into(), user.clone()));
    }
    let body = call(&client, "BatchGetAcpConnectionTicket", &params).await?;
    let model = &body["InstanceConnectionModels"][0];
    match model["Ticket"].as_str() {
        Some(ticket) if text(model, "TaskStatus") == "FINISHED" => {
            let base = args.public_url.as_deref().unwrap_or(&profile.endpoint);
            println!("{}", view_url(base, &args.instance, ticket));
            Ok(0)
        }
        _ => {
            eprintln!(
                "{}: no ticket ({} {})",
                args.instance,
                text(model, "TaskStatus"),
                text(model, "ErrorCode")
            );
            Ok(1)
        }
    }
}

/// The viewer page of a phone with its ticket: the ticket is in the fragment, which browsers
/// never send to a server, so it stays out of access logs and `Referer` headers.
fn view_url(base: &str, instance: &str, ticket: &str) -> String {
    format!(
        "{}/console/view/{instance}#t={ticket}",
        base.trim_end_matches('/')
    )
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

#[cfg(test)]
mod tests {
    use super::view_url;

    #[test]
    fn the_ticket_goes_in_the_fragment() {
        assert_eq!(
            view_url("http://127.0.0.1:9723/", "acp-1", "cpt1.abc.def"),
            "http://127.0.0.1:9723/console/view/acp-1#t=cpt1.abc.def"
        );
        assert_eq!(
            view_url("https://phones.example.com", "acp-2", "cpt1.x.y"),
            "https://phones.example.com/console/view/acp-2#t=cpt1.x.y"
        );
    }
}
