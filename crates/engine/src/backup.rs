//! BackupFile and RecoverFile on one phone. The archive travels through a scratch file under the
//! data dir: the phone writes it and the object store takes it (backup), or the object store
//! writes it and the phone extracts it (recovery). Memory stays bounded whatever its size.
//!
//! What each task reads from its `Param`: [`BackupParam`] and [`RecoverParam`].

use cloudphone_core::TaskErrorCode;
use cloudphone_core::task_params::{BackupParam, RecoverParam};
use cloudphone_objects::{ObjectError, OssPath};
use cloudphone_store::Outcome;
use serde_json::json;

use crate::services::Services;
use crate::transfer::{Scratch, TransferTask, outcome};
use cloudphone_backend::{Backend, BackendError, InstanceRef};

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
    param: &BackupParam,
    phone: &InstanceRef,
) -> Outcome {
    let scratch = services.scratch_file(task.task_id, task.attempt, "backup.tar");
    let _cleanup = Scratch(&scratch);
    outcome(
        async {
            let dest = OssPath::parse(&param.destination)
                .map_err(|e| BackendError::new(TaskErrorCode::BackupFileFailed, e.to_string()))?;
            let size = backend
                .backup(
                    phone,
                    &param.paths,
                    &param.exclude_source_file_path_list,
                    &scratch,
                )
                .await?;
            let info = services
                .objects
                .put_file(task.account_id, &dest, &scratch)
                .await
                .map_err(|e| object_error(TaskErrorCode::BackupFileFailed, e))?;
            Ok(json!({
                "BackupFileId": param.backup_file_id,
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
    param: &RecoverParam,
    phone: &InstanceRef,
) -> Outcome {
    let scratch = services.scratch_file(task.task_id, task.attempt, "recover.tar");
    let _cleanup = Scratch(&scratch);
    outcome(
        async {
            let source = OssPath::parse(&param.source)
                .map_err(|e| BackendError::new(TaskErrorCode::RecoverFileFailed, e.to_string()))?;
            services
                .objects
                .get_to_file(task.account_id, &source, &scratch)
                .await
                .map_err(|e| object_error(TaskErrorCode::RecoverFileFailed, e))?;
            let written = backend.restore(phone, &scratch).await?;
            Ok(json!({
                "Success": true,
                "BackupFileId": param.backup_file_id,
                "BytesRestored": written,
            }))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing archive is `SourceFileNotFound` and says so; a storage failure keeps the
    /// task's own code and does not show its cause to the caller.
    #[test]
    fn object_store_failures_map_to_task_codes() {
        let e = object_error(
            TaskErrorCode::RecoverFileFailed,
            ObjectError::NotFound("oss://b/x.tar".into()),
        );
        assert_eq!(e.code, TaskErrorCode::SourceFileNotFound);
        assert_eq!(
            e.message,
            "The backup archive oss://b/x.tar does not exist."
        );
        let e = object_error(
            TaskErrorCode::BackupFileFailed,
            ObjectError::Io("/var/lib/disk full".into()),
        );
        assert_eq!(e.code, TaskErrorCode::BackupFileFailed);
        assert!(!e.message.contains("/var/lib"), "{}", e.message);
        let e = object_error(
            TaskErrorCode::BackupFileFailed,
            ObjectError::InvalidPath("no bucket".into()),
        );
        assert_eq!(e.code, TaskErrorCode::BackupFileFailed);
        assert!(e.message.contains("no bucket"));
    }
}
