//! CreateScreenshot: a PNG of each phone's screen, stored as `ScreenshotId_AndroidInstanceId.png` in
//! the bucket named (or the account's default bucket); each task's `Result` links it.

use cloudphone_core::resources::default_bucket;
use cloudphone_core::task_params::{ScreenshotParam, batch};
use cloudphone_core::{ApiError, TaskType, ids};
use serde_json::{Value, json};

use super::common::{create_batch, dedup, resolve_instances};
use super::files::{self, MAX_INSTANCES};
use crate::params::Params;
use crate::state::Ctx;

pub struct CreateScreenshot {
    instance_ids: Vec<String>,
    bucket: Option<String>,
    screenshot_id: String,
    /// `SkipCheckPolicyConfig` as given.
    skip_check: Option<String>,
}

/// The vendor's rule: 2-128 characters, a letter first, then letters, digits, `_` and `-`.
fn valid_screenshot_id(id: &str) -> bool {
    (2..=128).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl CreateScreenshot {
    pub fn parse(p: &Params) -> Result<CreateScreenshot, ApiError> {
        let instance_ids = dedup(p.list("AndroidInstanceIdList", MAX_INSTANCES)?);
        if instance_ids.is_empty() {
            return Err(ApiError::missing("AndroidInstanceIdList"));
        }
        let bucket = p.string("OssBucketName");
        if let Some(b) = &bucket {
            files::oss_path("OssBucketName", &format!("oss://{b}/probe"))?;
        }
        let screenshot_id = match p.string("ScreenshotId") {
            Some(id) if valid_screenshot_id(&id) => id,
            Some(_) => {
                return Err(ApiError::invalid(
                    "ScreenshotId",
                    "Use 2-128 characters: a letter first, then letters, digits, '_' or '-'.",
                ));
            }
            None => ids::new_id("s"),
        };
        let skip_check = p.string("SkipCheckPolicyConfig");
        if let Some(v) = &skip_check
            && !v.eq_ignore_ascii_case("true")
            && !v.eq_ignore_ascii_case("false")
        {
            return Err(ApiError::invalid(
                "SkipCheckPolicyConfig",
                "It is true or false.",
            ));
        }
        Ok(CreateScreenshot {
            instance_ids,
            bucket,
            screenshot_id,
            skip_check,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let instances = resolve_instances(ctx, "AndroidInstanceIdList", &self.instance_ids).await?;
        let bucket = self
            .bucket
            .clone()
            .unwrap_or_else(|| default_bucket(&ctx.state.region, ctx.account()));
        let destination =
            |instance: &str| format!("oss://{bucket}/{}_{instance}.png", self.screenshot_id);
        let param = batch::Screenshot {
            android_instance_id_list: self.instance_ids.clone(),
            oss_bucket_name: bucket.clone(),
            screenshot_id: self.screenshot_id.clone(),
            skip_check_policy_config: self.skip_check.clone(),
        };
        let created = create_batch(ctx, TaskType::Screenshot, "", &instances, &param, |i| {
            ScreenshotParam {
                destination: destination(&i.id),
                screenshot_id: self.screenshot_id.clone(),
            }
        })
        .await?;
        Ok(json!({
            "Tasks": created.children.iter().map(|(instance, task)| json!({
                "AndroidInstanceId": instance,
                "ScreenshotId": self.screenshot_id,
                "TaskId": task,
            })).collect::<Vec<_>>(),
        }))
    }
}
