//! `cloudphone screenshot INSTANCE -o FILE`: takes a screenshot (CreateScreenshot), waits for
//! its task, and downloads the PNG from the task's signed link.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use super::{Profile, call, text};

#[derive(Args)]
#[command(after_help = "Example:\n  cloudphone screenshot acp-0a1b2c3d4e5f -o screen.png")]
pub struct ScreenshotArgs {
    #[command(flatten)]
    profile: Profile,
    /// The phone.
    instance: String,
    /// Where the PNG goes.
    #[arg(short, long)]
    output: PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

pub async fn run(args: ScreenshotArgs) -> anyhow::Result<i32> {
    let client = args.profile.client()?;
    let body = call(
        &client,
        "CreateScreenshot",
        &[("AndroidInstanceIdList.1".into(), args.instance.clone())],
    )
    .await?;
    let task = body["Tasks"][0]["TaskId"]
        .as_str()
        .context("CreateScreenshot answered without a task")?
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(args.timeout.max(1));
    let done: Value = loop {
        let found =
            super::tasks::describe(&client, &[("TaskIds.1".to_string(), task.clone())]).await?;
        if let Some(t) = found.into_iter().next()
            && !matches!(t["TaskStatus"].as_str(), Some("Waiting" | "Processing"))
        {
            break t;
        }
        if Instant::now() > deadline {
            bail!(
                "the screenshot task {task} did not end within {}s",
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    if text(&done, "TaskStatus") != "Finished" {
        bail!("{}: {}", text(&done, "ErrorCode"), text(&done, "ErrorMsg"));
    }
    let result: Value = serde_json::from_str(done["Result"].as_str().unwrap_or("{}"))
        .context("the task's Result is not JSON")?;
    let url = result["Url"]
        .as_str()
        .context("the task's Result has no Url")?;
    // Through the client: an https:// link is checked against the same CAs as the calls.
    let answer = client
        .get(url)
        .await
        .with_context(|| format!("fetching {url}"))?;
    if !answer.status().is_success() {
        bail!("fetching the screenshot: HTTP {}", answer.status());
    }
    let png = answer.bytes().await.context("reading the screenshot")?;
    // Beside the destination, then renamed: an interrupted run leaves no half-written file.
    let dir = match args.output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    tmp.write_all(&png)?;
    tmp.persist(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!("{} ({} bytes)", args.output.display(), png.len());
    Ok(0)
}
