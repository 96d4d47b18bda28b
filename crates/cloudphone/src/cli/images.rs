//! `cloudphone images list`: the images a server offers (DescribeImageList), to pick one for
//! `groups create`.

use clap::Args;
use serde_json::Value;

use super::{Format, Profile, text};

#[derive(Args)]
#[command(after_help = "Example:\n  cloudphone images list --type User")]
pub struct ImagesList {
    #[command(flatten)]
    profile: Profile,
    #[command(flatten)]
    format: Format,
    /// System images (the server's own) or User images.
    #[arg(long = "type", default_value = "System", value_parser = ["System", "User"])]
    image_type: String,
}

pub async fn list(args: ImagesList) -> anyhow::Result<i32> {
    let client = args.profile.client()?;
    let params = vec![
        ("ImageType".to_string(), args.image_type),
        ("MaxResults".into(), "100".into()),
    ];
    super::list(
        &client,
        ("DescribeImageList", "Data"),
        &params,
        true,
        args.format.output,
        &[
            ("ImageId", &|i: &Value| text(i, "ImageId")),
            ("Name", &|i| text(i, "ImageName")),
            ("Version", &|i| text(i, "ImageVersion")),
        ],
    )
    .await
}
