//! RunCommand: one batch of RunCommand tasks, at most 50 phones (the vendor's limit). Each child's
//! `Result` holds `Output`, `ExitCode` and `Truncated`; output beyond the inline cap is linked.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cloudphone_core::{ApiError, TaskType};
use serde_json::{Map, Value, json};

use super::common::{CreatedBatch, create_batch, dedup, resolve_instances};
use crate::params::Params;
use crate::state::Ctx;

/// The vendor's limit of phones per command call.
pub const MAX_INSTANCES: usize = 50;
/// The longest command accepted, after decoding.
pub const MAX_COMMAND_BYTES: usize = 16 * 1024;

/// A command as RunCommand and RunSyncCommand take it.
pub struct Command {
    pub instance_ids: Vec<String>,
    /// The script, decoded from Base64 when `ContentEncoding` said so.
    pub content: String,
    /// The parameters as given, for the batch's `Param`.
    pub given: Map<String, Value>,
}

impl Command {
    pub fn parse(p: &Params) -> Result<Command, ApiError> {
        let instance_ids = dedup(p.list("InstanceIds", MAX_INSTANCES)?);
        if instance_ids.is_empty() {
            return Err(ApiError::missing("InstanceIds"));
        }
        let raw = p.required("CommandContent")?;
        // Case-insensitive, and an unknown value means PlainText, as the vendor documents.
        let base64 = p
            .get("ContentEncoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("base64"));
        let content = if base64 {
            let bytes = STANDARD
                .decode(raw.trim())
                .map_err(|_| ApiError::invalid("CommandContent", "It is not valid Base64."))?;
            String::from_utf8(bytes).map_err(|_| {
                ApiError::invalid("CommandContent", "The decoded command is not UTF-8.")
            })?
        } else {
            raw.clone()
        };
        if content.trim().is_empty() {
            return Err(ApiError::invalid("CommandContent", "The command is empty."));
        }
        if content.len() > MAX_COMMAND_BYTES {
            return Err(ApiError::invalid(
                "CommandContent",
                format!("The command is longer than {MAX_COMMAND_BYTES} bytes."),
            ));
        }
        if content.contains('\0') {
            return Err(ApiError::invalid(
                "CommandContent",
                "The command contains a NUL byte.",
            ));
        }
        let mut given = Map::new();
        given.insert("CommandContent".into(), json!(raw));
        if let Some(e) = p.string("ContentEncoding") {
            given.insert("ContentEncoding".into(), json!(e));
        }
        Ok(Command {
            instance_ids,
            content,
            given,
        })
    }

    /// Creates the batch; every child runs `content` with `timeout_secs`.
    pub async fn start(&self, ctx: &Ctx<'_>, timeout_secs: i64) -> Result<CreatedBatch, ApiError> {
        let instances = resolve_instances(ctx, "InstanceIds", &self.instance_ids).await?;
        let mut param = self.given.clone();
        param.insert("InstanceIds".into(), json!(self.instance_ids));
        param.insert("Timeout".into(), json!(timeout_secs));
        let child = json!({ "CommandContent": self.content, "Timeout": timeout_secs });
        create_batch(
            ctx,
            TaskType::RunCommand,
            "",
            &instances,
            &Value::Object(param),
            |_| child.clone(),
        )
        .await
    }
}

pub struct RunCommand {
    command: Command,
    timeout: i64,
}

impl RunCommand {
    pub fn parse(p: &Params) -> Result<RunCommand, ApiError> {
        let command = Command::parse(p)?;
        let timeout = p.int("Timeout", 1, 86_400)?.unwrap_or(60);
        Ok(RunCommand { command, timeout })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let created = self.command.start(ctx, self.timeout).await?;
        Ok(json!({
            "InvokeId": ctx.request_id,
            "TaskId": created.batch_id,
            "RunCommandInfos": created.children.iter().map(|(instance, task)| json!({
                "InstanceId": instance,
                "ChildTaskId": task,
                "InvokeId": ctx.request_id,
            })).collect::<Vec<_>>(),
        }))
    }
}
