//! CreateScreenshot: a PNG of each phone's screen, stored as `ScreenshotId_AndroidInstanceId.png` in
//! the bucket named (or the account's default bucket); each task's `Result` links it.

use cloudphone_core::resources::default_bucket;
use cloudphone_core::{ApiError, TaskType, ids};
use serde_json::{Map, Value, json};

use super::common::{create_batch, dedup, resolve_instances};
use super::files::{self, MAX_INSTANCES};
use crate::params::Params;
use crate::state::Ctx;

pub struct CreateScreenshot {
    instance_ids: Vec<String>,
    bucket: Option<String>,
    screenshot_id: String,
    given: Map<String, Value>,
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
        let mut given = Map::new();
        if let Some(v) = p.string("SkipCheckPolicyConfig") {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(ApiError::invalid(
                    "SkipCheckPolicyConfig",
                    "It is true or false.",
                ));
            }
            given.insert("SkipCheckPolicyConfig".into(), json!(v));
        }
        Ok(CreateScreenshot {
            instance_ids,
            bucket,
            screenshot_id,
            given,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let instances = resolve_instances(ctx, "AndroidInstanceIdList", &self.instance_ids).await?;
        let bucket = self
            .bucket
            .clone()
            .unwrap_or_else(|| default_bucket(&ctx.state.region, ctx.account()));
        let mut param = self.given.clone();
        param.insert("AndroidInstanceIdList".into(), json!(self.instance_ids));
        param.insert("OssBucketName".into(), json!(bucket));
        param.insert("ScreenshotId".into(), json!(self.screenshot_id));
        let destination =
            |instance: &str| format!("oss://{bucket}/{}_{instance}.png", self.screenshot_id);
        let created = create_batch(
            ctx,
            TaskType::Screenshot,
            "",
            &instances,
            &Value::Object(param),
            |i| json!({ "ScreenshotId": self.screenshot_id, "Destination": destination(&i.id) }),
        )
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
