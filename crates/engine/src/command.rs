//! RunCommand on one phone: runs the script, keeps the output inline up to a cap and the full copy
//! in the object store, and writes the `Result` JSON.

use std::time::Duration;

use cloudphone_core::TaskErrorCode;
use cloudphone_core::task_params::CommandParam;
use cloudphone_objects::OssPath;
use cloudphone_store::Outcome;
use serde_json::json;
use tracing::error;

use crate::cut::Cut;
use crate::services::Services;
use cloudphone_backend::{Backend, InstanceRef};

/// Output kept inline in `Result`; the rest is reachable through `OutputUrl`.
pub const INLINE_OUTPUT: usize = 24 * 1024;

pub struct CommandTask<'a> {
    pub account_id: &'a str,
    pub task_id: &'a str,
    pub param: &'a CommandParam,
    /// A cut drops the running command, which kills it (docs/design.md §5.7).
    pub cut: &'a Cut,
}

pub async fn run(
    backend: &dyn Backend,
    services: &Services,
    task: CommandTask<'_>,
    phone: &InstanceRef,
) -> Outcome {
    let command = backend.run_command(
        phone,
        &task.param.command_content,
        Duration::from_secs(task.param.timeout),
    );
    let out = match task.cut.droppable(command).await {
        Ok(out) => out,
        Err(e) => {
            return Outcome::Failed {
                code: e.code,
                message: e.message,
            };
        }
    };
    let truncated = out.output.len() > INLINE_OUTPUT;
    let mut result = json!({
        "Output": inline(&out.output),
        "ExitCode": out.exit_code,
        "Truncated": truncated,
    });
    if truncated {
        let bucket = services.default_bucket(task.account_id);
        let stored = async {
            let path = OssPath::parse(&format!(
                "oss://{bucket}/command-output/{}.txt",
                task.task_id
            ))?;
            services
                .objects
                .put_bytes(task.account_id, &path, out.output.clone())
                .await?;
            Ok::<_, cloudphone_objects::ObjectError>(path)
        }
        .await;
        match stored {
            Ok(path) => {
                result["OutputUrl"] = json!(services.objects.link(
                    task.account_id,
                    &path,
                    services.link_ttl
                ));
                result["OutputPath"] = json!(path.to_string());
            }
            Err(e) => {
                error!(error = %e, "storing the full command output failed");
                return Outcome::Failed {
                    code: TaskErrorCode::InternalError,
                    message: "The command ran, but its full output could not be stored.".into(),
                };
            }
        }
    }
    Outcome::Finished {
        result: result.to_string(),
    }
}

/// The first [`INLINE_OUTPUT`] bytes as text, cut at a character boundary.
fn inline(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(&output[..output.len().min(INLINE_OUTPUT)]).into_owned();
    if output.len() > INLINE_OUTPUT {
        // A multi-byte character cut in half shows as U+FFFD at the end; drop it.
        text.trim_end_matches('\u{FFFD}').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README: output beyond 24 KiB is cut there inline (the full copy is linked).
    const KIB_24: usize = 24 * 1024;

    #[test]
    fn output_up_to_24_kib_stays_inline_whole() {
        assert_eq!(inline(b"hello\n"), "hello\n");
        let full = vec![b'x'; KIB_24];
        assert_eq!(inline(&full).len(), KIB_24);
        let longer = vec![b'x'; KIB_24 + 1];
        assert_eq!(inline(&longer), "x".repeat(KIB_24));
        assert_eq!(inline(&vec![b'y'; 3 * KIB_24]).len(), KIB_24);
    }

    /// A character cut in half by the 24 KiB limit is dropped, not shown as U+FFFD.
    #[test]
    fn a_character_cut_at_the_limit_is_dropped() {
        let mut output = vec![b'a'; KIB_24 - 1];
        output.extend_from_slice("é and more".as_bytes());
        assert_eq!(inline(&output), "a".repeat(KIB_24 - 1));
    }

    /// Output that is not cut is shown as it is, invalid bytes included (as U+FFFD).
    #[test]
    fn output_not_cut_keeps_its_invalid_bytes() {
        assert_eq!(inline(b"ok\xff"), "ok\u{FFFD}");
        let mut full = vec![b'a'; KIB_24 - 1];
        full.push(0xff);
        assert!(inline(&full).ends_with('\u{FFFD}'));
    }
}
