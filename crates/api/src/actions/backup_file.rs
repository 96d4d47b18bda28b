//! BackupFile: archives paths of each phone into `oss://bucket/folder/<BackupFileId>.tar`, one
//! backup (and one BackupFile task) per phone. The backups are created with their batch, in
//! one transaction, in status CREATING; the end of each task makes its backup AVAILABLE (with
//! its size) or FAILED.
//!
//! `BackupAll` stands for the phone's user data: `/sdcard` and `/data/local/tmp`.
//! `SourceAppList` is recorded (and listed by DescribeBackupFiles); app data is not archived by
//! this server.

use cloudphone_core::resources::{Backup, Instance};
use cloudphone_core::task_params::{BackupParam, batch, to_json};
use cloudphone_core::{ApiError, TaskType, ids};
use serde_json::{Value, json};

use super::common::{CreatedBatch, dedup, internal, new_batch, resolve_instances, unless_dry_run};
use super::files::{self, MAX_INSTANCES};
use crate::params::Params;
use crate::state::Ctx;

/// What `BackupAll` archives.
pub const ALL_PATHS: &[&str] = &["/sdcard", "/data/local/tmp"];
const MAX_PATHS: usize = 100;

pub struct BackupFile {
    instance_ids: Vec<String>,
    bucket: String,
    folder: String,
    sources: Vec<String>,
    exclude: Vec<String>,
    apps: Vec<String>,
    backup_all: bool,
    name: Option<String>,
    description: String,
    endpoint: String,
    /// The batch's `Param`: the call's parameters as checked.
    given: batch::BackupFile,
}

fn paths(p: &Params, name: &str) -> Result<Vec<String>, ApiError> {
    let list = p.list(name, MAX_PATHS)?;
    let mut out = Vec::with_capacity(list.len());
    for path in list {
        let path = files::phone_path(name, &path)?;
        let trimmed = path.trim_end_matches('/');
        out.push(if trimmed.is_empty() {
            "/".to_string()
        } else {
            trimmed.to_string()
        });
    }
    Ok(dedup(out))
}

fn package_name(name: &str) -> bool {
    name.len() <= 255
        && name.split('.').count() >= 2
        && name.split('.').all(|seg| {
            seg.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

impl BackupFile {
    pub fn parse(p: &Params) -> Result<BackupFile, ApiError> {
        let instance_ids = dedup(p.list("AndroidInstanceIdList", MAX_INSTANCES)?);
        if instance_ids.is_empty() {
            return Err(ApiError::missing("AndroidInstanceIdList"));
        }
        let upload_url = p.required("BackupFilePath")?;
        let (bucket, folder) = files::oss_folder("BackupFilePath", &upload_url)?;
        let sources = paths(p, "SourceFilePathList")?;
        let exclude = paths(p, "ExcludeSourceFilePathList")?;
        let apps = dedup(p.list("SourceAppList", MAX_PATHS)?);
        if let Some(bad) = apps.iter().find(|a| !package_name(a)) {
            return Err(ApiError::invalid(
                "SourceAppList",
                format!("'{bad}' is not a package name."),
            ));
        }
        let backup_all = p.bool("BackupAll")?.unwrap_or(false);
        if sources.is_empty() && !backup_all {
            return Err(ApiError::missing("SourceFilePathList"));
        }
        if let Some(t) = p.get("UploadType")
            && t != "OSS"
        {
            return Err(ApiError::invalid(
                "UploadType",
                format!("'{t}' is not OSS."),
            ));
        }
        let name = p.string("BackupFileName");
        if let Some(n) = &name
            && (n.chars().count() > 128 || n.contains('\0'))
        {
            return Err(ApiError::invalid(
                "BackupFileName",
                "At most 128 characters, no NUL.",
            ));
        }
        let description = p.string("Description").unwrap_or_default();
        if description.chars().count() > 256 {
            return Err(ApiError::invalid("Description", "At most 256 characters."));
        }
        let given = batch::BackupFile {
            android_instance_id_list: instance_ids.clone(),
            backup_all,
            backup_file_name: p.string("BackupFileName"),
            backup_file_path: p.string("BackupFilePath"),
            description: p.string("Description"),
            exclude_source_file_path_list: exclude.clone(),
            source_app_list: apps.clone(),
            source_file_path_list: sources.clone(),
            upload_endpoint: p.string("UploadEndpoint"),
            upload_type: p.string("UploadType"),
        };
        Ok(BackupFile {
            instance_ids,
            bucket,
            folder,
            sources,
            exclude,
            apps,
            backup_all,
            name,
            description,
            endpoint: p.string("UploadEndpoint").unwrap_or_default(),
            given,
        })
    }

    fn destination(&self, backup_id: &str) -> String {
        if self.folder.is_empty() {
            format!("oss://{}/{backup_id}.tar", self.bucket)
        } else {
            format!("oss://{}/{}/{backup_id}.tar", self.bucket, self.folder)
        }
    }

    /// The phone paths archived: what `BackupAll` stands for, then the paths named.
    fn archived(&self) -> Vec<String> {
        let mut all: Vec<String> = if self.backup_all {
            ALL_PATHS.iter().map(|p| p.to_string()).collect()
        } else {
            Vec::new()
        };
        all.extend(self.sources.iter().cloned());
        dedup(all)
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let instances = resolve_instances(ctx, "AndroidInstanceIdList", &self.instance_ids).await?;
        let images = ctx.state.backend.images();
        let archived = self.archived();
        let mut planned: Vec<(&Instance, String, String)> = Vec::with_capacity(instances.len());
        for i in &instances {
            let id = ids::new_id(ids::BACKUP);
            let dest = self.destination(&id);
            files::oss_path("BackupFilePath", &dest)?;
            let child = to_json(&BackupParam {
                backup_file_id: id.clone(),
                destination: dest,
                exclude_source_file_path_list: self.exclude.clone(),
                paths: archived.clone(),
            });
            planned.push((i, id, child));
        }
        let children: Vec<(&Instance, String)> =
            planned.iter().map(|(i, _, c)| (*i, c.clone())).collect();
        let batch = new_batch(
            ctx,
            TaskType::BackupFile,
            "",
            &children,
            to_json(&self.given),
        );
        let backups: Vec<Backup> = planned
            .iter()
            .zip(&batch.children)
            .map(|((i, id, _), task)| Backup {
                id: id.clone(),
                account_id: ctx.account().to_string(),
                instance_id: i.id.clone(),
                instance_name: i.name.clone(),
                group_id: i.group_id.clone(),
                oss_path: self.destination(id),
                name: self.name.clone().unwrap_or_else(|| id.clone()),
                description: self.description.clone(),
                source_paths: self.sources.clone(),
                exclude_paths: self.exclude.clone(),
                source_apps: self.apps.clone(),
                backup_all: self.backup_all,
                upload_endpoint: self.endpoint.clone(),
                system_version: images
                    .iter()
                    .find(|im| im.id == i.image_id)
                    .map(|im| format!("Android {}", im.android_version))
                    .unwrap_or_default(),
                status: Backup::CREATING.into(),
                size: 0,
                task_id: task.id.clone(),
                created_ms: ctx.now_ms,
                modified_ms: ctx.now_ms,
            })
            .collect();
        unless_dry_run(ctx, &[&batch]).await?;
        ctx.state
            .store
            .create_backup_batch(&batch, &backups)
            .await
            .map_err(internal)?;
        ctx.state.wake.notify_one();
        let created = CreatedBatch::of(batch);
        let data: Vec<Value> = created
            .children
            .iter()
            .zip(&backups)
            .map(|((instance, task), b)| {
                json!({
                    "AndroidInstanceId": instance,
                    "BackupFileId": b.id,
                    "BackupFileName": b.name,
                    "TaskId": task,
                })
            })
            .collect();
        Ok(json!({
            "TaskId": created.batch_id,
            "Count": data.len(),
            "Data": data,
        }))
    }
}
