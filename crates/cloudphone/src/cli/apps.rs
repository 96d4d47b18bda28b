//! `cloudphone apps ...`: the app center (create, list, delete) and the app tasks on phones
//! (install, uninstall, start, stop, restart).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cloudphone_objects::OssPath;
use serde_json::Value;

use super::{Format, Profile, Wait, call, started, text};
use cloudphone_client::push_list;

#[derive(Subcommand)]
pub enum AppsCommand {
    /// Adds an APK to the app center (CreateApp), from the object store or a local file.
    #[command(after_help = "\
Examples:
  cloudphone apps create --name shop --file ./shop.apk --bucket apks
  cloudphone apps create --name shop --oss-url oss://apks/shop-2.apk")]
    Create(CreateArgs),
    /// Lists the app center (DescribeApps).
    #[command(after_help = "Example:\n  cloudphone apps list --name shop --output json")]
    List {
        #[command(flatten)]
        profile: Profile,
        #[command(flatten)]
        format: Format,
        /// Apps whose name contains this.
        #[arg(long)]
        name: Option<String>,
    },
    /// Removes apps from the app center (DeleteApps); phones keep what they installed.
    Delete {
        #[command(flatten)]
        profile: Profile,
        #[arg(required = true, value_delimiter = ',')]
        apps: Vec<String>,
    },
    /// Installs apps on phones or whole groups (InstallApp).
    #[command(after_help = "\
Examples:
  cloudphone apps install 1001 --instances acp-0a1b2c3d4e5f,acp-1b2c3d4e5f6a --wait
  cloudphone apps install 1001,1002 --groups ag-0a1b2c3d4e5f")]
    Install(OnPhones),
    /// Uninstalls apps from phones or whole groups (UninstallApp).
    Uninstall(OnPhones),
    /// Starts an app on phones (OperateApp start).
    #[command(
        after_help = "Example:\n  cloudphone apps start 1001 --instances acp-0a1b2c3d4e5f --wait"
    )]
    Start(Operate),
    /// Stops an app on phones (OperateApp stop).
    Stop(Operate),
    /// Restarts an app on phones (OperateApp restart).
    Restart(Operate),
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    profile: Profile,
    /// The app's name in the app center (AppName).
    #[arg(long)]
    name: String,
    /// An APK already in the object store (OssAppUrl).
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    oss_url: Option<String>,
    /// A local APK: uploaded to --bucket first, as `cp` does.
    #[arg(long, requires = "bucket")]
    file: Option<PathBuf>,
    /// The bucket --file goes to (created by the first upload).
    #[arg(long)]
    bucket: Option<String>,
    #[arg(long)]
    description: Option<String>,
}

#[derive(Args)]
pub struct OnPhones {
    #[command(flatten)]
    profile: Profile,
    /// App ids (repeatable, or comma-separated).
    #[arg(required = true, value_delimiter = ',')]
    apps: Vec<String>,
    /// The phones.
    #[arg(long, value_delimiter = ',', required_unless_present = "groups")]
    instances: Vec<String>,
    /// Whole groups (InstanceGroupIdList).
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    #[command(flatten)]
    wait: Wait,
}

#[derive(Args)]
pub struct Operate {
    #[command(flatten)]
    profile: Profile,
    /// The app id.
    app: u64,
    /// The phones.
    #[arg(long, required = true, value_delimiter = ',')]
    instances: Vec<String>,
    #[command(flatten)]
    wait: Wait,
}

pub async fn run(command: AppsCommand) -> anyhow::Result<i32> {
    match command {
        AppsCommand::Create(args) => create(args).await,
        AppsCommand::List {
            profile,
            format,
            name,
        } => {
            let client = profile.client()?;
            let mut params = vec![("MaxResults".to_string(), "100".to_string())];
            if let Some(n) = name {
                params.push(("AppName".into(), n));
            }
            super::list(
                &client,
                ("DescribeApps", "Data"),
                &params,
                true,
                format.output,
                &[
                    ("AppId", &|a: &Value| text(a, "AppId")),
                    ("Name", &|a| text(a, "AppName")),
                    ("Package", &|a| text(a, "PackageName")),
                    ("Version", &|a| text(a, "AndroidAppVersion")),
                    ("Status", &|a| text(a, "Status")),
                ],
            )
            .await
        }
        AppsCommand::Delete { profile, apps } => {
            super::delete(&profile, "DeleteApps", "AppIdList", apps).await
        }
        AppsCommand::Install(a) => on_phones("InstallApp", a).await,
        AppsCommand::Uninstall(a) => on_phones("UninstallApp", a).await,
        AppsCommand::Start(a) => operate("start", a).await,
        AppsCommand::Stop(a) => operate("stop", a).await,
        AppsCommand::Restart(a) => operate("restart", a).await,
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<i32> {
    let resolved = args.profile.resolve()?;
    let client = args.profile.client()?;
    let url = match (&args.oss_url, &args.file, &args.bucket) {
        (Some(url), _, _) => url.clone(),
        (None, Some(file), Some(bucket)) => {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{} names no file", file.display()))?;
            let dest = OssPath::parse(&format!("oss://{bucket}/{name}"))?;
            crate::cp::upload(&client, file, &dest, true).await?;
            dest.to_string()
        }
        _ => bail!("give --oss-url, or --file with --bucket"),
    };
    let mut params = vec![
        ("AppName".to_string(), args.name),
        ("OssAppUrl".into(), url),
        ("BizRegionId".into(), resolved.region),
    ];
    if let Some(d) = args.description {
        params.push(("Description".into(), d));
    }
    let body = call(&client, "CreateApp", &params).await?;
    println!("{}", text(&body, "AppId"));
    Ok(0)
}

async fn on_phones(action: &str, a: OnPhones) -> anyhow::Result<i32> {
    let client = a.profile.client()?;
    let mut params = Vec::new();
    push_list(&mut params, "AppIdList", &a.apps);
    push_list(&mut params, "InstanceIdList", &a.instances);
    push_list(&mut params, "InstanceGroupIdList", &a.groups);
    let body = call(&client, action, &params).await?;
    let batch = body["TaskId"].as_str().map(String::from);
    started(&client, &body, batch.as_deref(), a.wait).await
}

async fn operate(kind: &str, a: Operate) -> anyhow::Result<i32> {
    let client = a.profile.client()?;
    let mut params = vec![
        ("AppId".to_string(), a.app.to_string()),
        ("OperateType".into(), kind.to_string()),
    ];
    push_list(&mut params, "InstanceIdList", &a.instances);
    let body = call(&client, "OperateApp", &params).await?;
    let batch = body["TaskId"].as_str().map(String::from);
    started(&client, &body, batch.as_deref(), a.wait).await
}
