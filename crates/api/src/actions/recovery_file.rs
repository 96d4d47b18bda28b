//! RecoveryFile: restores one backup onto one or many phones (RecoverFile tasks), overwriting
//! the files it holds; restoring one phone's backup onto others replicates its data. The backup
//! is named by `BackupFileId` (the caller's, AVAILABLE) or by `BackupFilePath` (the `oss://`
//! path of an archive the caller may read).

use cloudphone_core::resources::Backup;
use cloudphone_core::task_params::{RecoverParam, batch};
use cloudphone_core::{ApiError, TaskType};
use serde_json::{Value, json};

use super::common::{create_batch, dedup, internal, resolve_instances};
use super::files::{self, MAX_INSTANCES};
use crate::params::Params;
use crate::state::Ctx;

pub struct RecoveryFile {
    instance_ids: Vec<String>,
    backup_id: Option<String>,
    path: Option<(String, cloudphone_objects::OssPath)>,
    /// The batch's `Param`: the call's parameters as given.
    given: batch::RecoveryFile,
}

impl RecoveryFile {
    pub fn parse(p: &Params) -> Result<RecoveryFile, ApiError> {
        let instance_ids = dedup(p.list("AndroidInstanceIdList", MAX_INSTANCES)?);
        if instance_ids.is_empty() {
            return Err(ApiError::missing("AndroidInstanceIdList"));
        }
        let backup_id = p.string("BackupFileId");
        let path = match p.string("BackupFilePath") {
            Some(v) => {
                let parsed = files::oss_path("BackupFilePath", &v)?;
                Some((v, parsed))
            }
            None => None,
        };
        if backup_id.is_none() && path.is_none() {
            return Err(ApiError::missing("BackupFileId"));
        }
        if let Some(t) = p.get("UploadType")
            && t != "OSS"
        {
            return Err(ApiError::invalid(
                "UploadType",
                format!("'{t}' is not OSS."),
            ));
        }
        let given = batch::RecoveryFile {
            android_instance_id_list: instance_ids.clone(),
            backup_file_id: p.string("BackupFileId"),
            backup_file_path: p.string("BackupFilePath"),
            upload_type: p.string("UploadType"),
            upload_endpoint: p.string("UploadEndpoint"),
            backup_all: p.bool("BackupAll")?,
        };
        Ok(RecoveryFile {
            instance_ids,
            backup_id,
            path,
            given,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let instances = resolve_instances(ctx, "AndroidInstanceIdList", &self.instance_ids).await?;
        // The id wins over the path when both are given.
        let (backup_id, source) = match (&self.backup_id, &self.path) {
            (Some(id), _) => {
                let found = ctx
                    .state
                    .store
                    .backups_by_id(ctx.account(), std::slice::from_ref(id))
                    .await
                    .map_err(internal)?;
                let Some(backup) = found.into_iter().next() else {
                    return Err(ApiError::not_found("BackupFileId", id));
                };
                if backup.status != Backup::AVAILABLE {
                    return Err(ApiError::IncorrectStatus {
                        what: format!("backup file {id}"),
                        status: backup.status,
                    });
                }
                (id.clone(), backup.oss_path)
            }
            (None, Some((value, path))) => {
                files::readable_object(ctx, "BackupFilePath", value, path).await?;
                (String::new(), value.clone())
            }
            (None, None) => return Err(ApiError::missing("BackupFileId")),
        };
        let child = RecoverParam {
            backup_file_id: backup_id,
            source,
        };
        let created = create_batch(
            ctx,
            TaskType::RecoverFile,
            "",
            &instances,
            &self.given,
            |_| &child,
        )
        .await?;
        Ok(json!({
            "TaskId": created.batch_id,
            "Count": created.children.len(),
            "Data": created.children.iter().map(|(instance, task)| json!({
                "AndroidInstanceId": instance,
                "TaskId": task,
            })).collect::<Vec<_>>(),
        }))
    }
}
