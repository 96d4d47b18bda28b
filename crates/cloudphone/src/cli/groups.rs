//! `cloudphone groups create|list|delete`: instance groups, each a set of phones of one image
//! and spec.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::{Format, Output, Profile, call, table, text};

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// Creates groups of phones (CreateAndroidInstanceGroup) and prints their ids.
    #[command(after_help = "\
Examples:
  cloudphone groups create --image imgc-simandroid140000 --instances 5 --name lab

The images a server offers: cloudphone images list")]
    Create(CreateArgs),
    /// Lists groups (DescribeAndroidInstanceGroups).
    #[command(after_help = "Example:\n  cloudphone groups list --name lab --output json")]
    List(ListArgs),
    /// Deletes groups with their phones (DeleteAndroidInstanceGroup).
    #[command(after_help = "Example:\n  cloudphone groups delete ag-0a1b2c3d4e5f")]
    Delete {
        #[command(flatten)]
        profile: Profile,
        #[arg(required = true, value_delimiter = ',')]
        groups: Vec<String>,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    profile: Profile,
    #[command(flatten)]
    format: Format,
    /// The image of the phones (ImageId).
    #[arg(long)]
    image: String,
    /// The spec (InstanceGroupSpec), such as acp.basic.small.
    #[arg(long, default_value = "acp.basic.small")]
    spec: String,
    /// Phones per group (NumberOfInstances).
    #[arg(long, default_value_t = 1)]
    instances: u32,
    /// How many groups (Amount).
    #[arg(long, default_value_t = 1)]
    amount: u32,
    /// The group's name (InstanceGroupName).
    #[arg(long)]
    name: Option<String>,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    profile: Profile,
    #[command(flatten)]
    format: Format,
    /// Groups whose name contains this.
    #[arg(long)]
    name: Option<String>,
    /// Only groups with this status (RUNNING, CREATING, ...).
    #[arg(long)]
    status: Option<String>,
    #[arg(long, default_value_t = 100)]
    max_results: u32,
    /// Walk every page, not only the first.
    #[arg(long)]
    all: bool,
}

pub async fn run(command: GroupsCommand) -> anyhow::Result<i32> {
    match command {
        GroupsCommand::Create(args) => create(args).await,
        GroupsCommand::List(args) => list(args).await,
        GroupsCommand::Delete { profile, groups } => {
            super::delete(
                &profile,
                "DeleteAndroidInstanceGroup",
                "InstanceGroupIds",
                groups,
            )
            .await
        }
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<i32> {
    let resolved = args.profile.resolve()?;
    let client = args.profile.client()?;
    let mut params = vec![
        ("BizRegionId".to_string(), resolved.region),
        ("ImageId".into(), args.image),
        ("InstanceGroupSpec".into(), args.spec),
        ("NumberOfInstances".into(), args.instances.to_string()),
        ("Amount".into(), args.amount.to_string()),
        ("ChargeType".into(), "PostPaid".into()),
    ];
    if let Some(n) = args.name {
        params.push(("InstanceGroupName".into(), n));
    }
    let body = call(&client, "CreateAndroidInstanceGroup", &params).await?;
    let infos = body["InstanceGroupInfos"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match args.format.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&infos)?),
        Output::Table => {
            let rows: Vec<Vec<String>> = infos
                .iter()
                .map(|g| {
                    let ids: Vec<&str> = g["InstanceIds"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    vec![text(g, "InstanceGroupId"), ids.join(",")]
                })
                .collect();
            print!("{}", table(&["GroupId", "InstanceIds"], &rows));
        }
    }
    Ok(0)
}

async fn list(args: ListArgs) -> anyhow::Result<i32> {
    let client = args.profile.client()?;
    let mut params = vec![("MaxResults".to_string(), args.max_results.to_string())];
    for (name, v) in [("InstanceGroupName", &args.name), ("Status", &args.status)] {
        if let Some(v) = v {
            params.push((name.into(), v.clone()));
        }
    }
    super::list(
        &client,
        ("DescribeAndroidInstanceGroups", "InstanceGroupModel"),
        &params,
        args.all,
        args.format.output,
        &[
            ("GroupId", &|g: &Value| text(g, "InstanceGroupId")),
            ("Name", &|g| text(g, "InstanceGroupName")),
            ("Status", &|g| text(g, "InstanceGroupStatus")),
            ("Image", &|g| text(g, "ImageId")),
            ("Spec", &|g| text(g, "InstanceGroupSpec")),
            ("Instances", &|g| text(g, "NumberOfInstances")),
        ],
    )
    .await
}
