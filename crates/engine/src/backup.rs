//! BackupFile and RecoverFile on one phone. The archive travels through a scratch file under the
//! data dir: the phone writes it and the object store takes it (backup), or the object store
//! writes it and the phone extracts it (recovery). Memory stays bounded whatever its size.
//!
//! Child `Param` of a BackupFile task: `BackupFileId`, `Paths` (phone paths to archive, already
//! including what `BackupAll` stands for), `ExcludeSourceFilePathList`, `Destination` (the
//! archive's `oss://` path). Of a RecoverFile task: `BackupFileId` (may be empty) and `Source`
//! (the archive's `oss://` path).

use cloudphone_core::TaskErrorCode;
use cloudphone_objects::{ObjectError, OssPath};
use cloudphone_store::Outcome;
use serde_json::{Value, json};

use crate::backend::{Backend, BackendError, InstanceRef};
use crate::services::Services;
use crate::transfer::{Scratch, TransferTask, outcome, text};

fn strings(param: &Value, name: &str) -> Vec<String> {
    param
        .get(name)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn object_error(code: TaskErrorCode, e: ObjectError) -> BackendError {
    match e {
        ObjectError::NotFound(what) => BackendError::new(
            TaskErrorCode::SourceFileNotFound,
            format!("The backup archive {what} does not exist."),
        ),
        ObjectError::InvalidPath(what) => BackendError::new(code, format!("Invalid path: {what}")),
        ObjectError::Io(what) => {
            tracing::error!(error = %what, "object store failure");
            BackendError::new(code, "The object store failed.")
        }
    }
}

/// BackupFile: the phone archives the paths into a scratch tar, stored as the object named by
/// `Destination`. Result: `{"BackupFileId", "OssPath", "FileSize"}`; the store records the size
/// on the backup when the task completes.
pub async fn backup(
    backend: &dyn Backend,
    services: &Services,
    task: TransferTask<'_>,
    phone: &InstanceRef,
) -> Outcome {
    let scratch = services.scratch_file(task.task_id, task.attempt, "backup.tar");
    let _cleanup = Scratch(&scratch);
    outcome(
        async {
            let paths = strings(task.param, "Paths");
            let exclude = strings(task.param, "ExcludeSourceFilePathList");
            let dest = OssPath::parse(text(task.param, "Destination"))
                .map_err(|e| BackendError::new(TaskErrorCode::BackupFileFailed, e.to_string()))?;
            let size = backend.backup(phone, &paths, &exclude, &scratch).await?;
            let info = services
                .objects
                .put_file(task.account_id, &dest, &scratch)
                .await
                .map_err(|e| object_error(TaskErrorCode::BackupFileFailed, e))?;
            Ok(json!({
                "BackupFileId": text(task.param, "BackupFileId"),
                "OssPath": dest.to_string(),
                "FileSize": size,
                "Md5": info.md5_hex,
            }))
        }
        .await,
    )
}

/// RecoverFile: the archive named by `Source` is fetched into a scratch file and extracted onto
/// the phone, overwriting what is there. Result: `{"Success":true, ...}`.
pub async fn recover(
    backend: &dyn Backend,
    services: &Services,
    task: TransferTask<'_>,
    phone: &InstanceRef,
) -> Outcome {
    let scratch = services.scratch_file(task.task_id, task.attempt, "recover.tar");
    let _cleanup = Scratch(&scratch);
    outcome(
        async {
            let source = OssPath::parse(text(task.param, "Source"))
                .map_err(|e| BackendError::new(TaskErrorCode::RecoverFileFailed, e.to_string()))?;
            services
                .objects
                .get_to_file(task.account_id, &source, &scratch)
                .await
                .map_err(|e| object_error(TaskErrorCode::RecoverFileFailed, e))?;
            let written = backend.restore(phone, &scratch).await?;
            Ok(json!({
                "Success": true,
                "BackupFileId": text(task.param, "BackupFileId"),
                "BytesRestored": written,
            }))
        }
        .await,
    )
}
