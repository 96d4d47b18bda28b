//! RunCommand: one batch of RunCommand tasks, at most 50 phones (the vendor's limit). Each child's
//! `Result` holds `Output`, `ExitCode` and `Truncated`; output beyond the inline cap is linked.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cloudphone_core::task_params::{CommandParam, batch};
use cloudphone_core::{ApiError, TaskType};
use serde_json::{Value, json};

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
    /// `CommandContent` as given (Base64 when so encoded), for the batch's `Param`.
    raw: String,
    /// `ContentEncoding` as given.
    encoding: Option<String>,
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
        Ok(Command {
            instance_ids,
            content,
            raw,
            encoding: p.string("ContentEncoding"),
        })
    }

    /// Creates the batch; every child runs `content` with `timeout_secs`.
    pub async fn start(&self, ctx: &Ctx<'_>, timeout_secs: u64) -> Result<CreatedBatch, ApiError> {
        let instances = resolve_instances(ctx, "InstanceIds", &self.instance_ids).await?;
        let param = batch::RunCommand {
            command_content: self.raw.clone(),
            content_encoding: self.encoding.clone(),
            instance_ids: self.instance_ids.clone(),
            timeout: timeout_secs,
        };
        let child = CommandParam {
            command_content: self.content.clone(),
            timeout: timeout_secs,
        };
        create_batch(ctx, TaskType::RunCommand, "", &instances, &param, |_| {
            &child
        })
        .await
    }
}

pub struct RunCommand {
    command: Command,
    /// Seconds, 1 to 86,400.
    timeout: u64,
}

impl RunCommand {
    pub fn parse(p: &Params) -> Result<RunCommand, ApiError> {
        let command = Command::parse(p)?;
        let timeout = p.int("Timeout", 1, 86_400)?.unwrap_or(60).unsigned_abs();
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
