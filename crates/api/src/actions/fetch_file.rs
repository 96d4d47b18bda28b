//! FetchFile: pulls a file off phones into `oss://bucket/folder/<instance id>/<file name>`; each
//! child's `Result` links its object.

use cloudphone_core::task_params::{FetchFileParam, batch};
use cloudphone_core::{ApiError, TaskType};
use serde_json::{Value, json};

use super::common::{create_batch, dedup, resolve_instances};
use super::files::{self, MAX_INSTANCES};
use crate::params::Params;
use crate::state::Ctx;

pub struct FetchFile {
    instance_ids: Vec<String>,
    source: String,
    bucket: String,
    folder: String,
    /// The batch's `Param`: the call's parameters as given.
    given: batch::FetchFile,
}

impl FetchFile {
    pub fn parse(p: &Params) -> Result<FetchFile, ApiError> {
        let instance_ids = dedup(p.list("AndroidInstanceIdList", MAX_INSTANCES)?);
        if instance_ids.is_empty() {
            return Err(ApiError::missing("AndroidInstanceIdList"));
        }
        let source = files::phone_path("SourceFilePath", &p.required("SourceFilePath")?)?;
        if source.ends_with('/') {
            return Err(ApiError::invalid(
                "SourceFilePath",
                "Name a file, not a folder.",
            ));
        }
        match p.required("UploadType")?.as_str() {
            "OSS" => {}
            other => {
                return Err(ApiError::invalid(
                    "UploadType",
                    format!("'{other}' is not OSS."),
                ));
            }
        }
        p.required("UploadEndpoint")?;
        let upload_url = p.required("UploadUrl")?;
        let (bucket, folder) = files::oss_folder("UploadUrl", &upload_url)?;
        let given = batch::FetchFile {
            android_instance_id_list: instance_ids.clone(),
            source_file_path: p.string("SourceFilePath"),
            upload_type: p.string("UploadType"),
            upload_url: p.string("UploadUrl"),
            upload_endpoint: p.string("UploadEndpoint"),
            client_token: files::client_token(p)?,
        };
        Ok(FetchFile {
            instance_ids,
            source,
            bucket,
            folder,
            given,
        })
    }

    fn destination(&self, instance_id: &str) -> String {
        let name = self.source.rsplit('/').next().unwrap_or_default();
        if self.folder.is_empty() {
            format!("oss://{}/{instance_id}/{name}", self.bucket)
        } else {
            format!("oss://{}/{}/{instance_id}/{name}", self.bucket, self.folder)
        }
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let instances = resolve_instances(ctx, "AndroidInstanceIdList", &self.instance_ids).await?;
        for i in &instances {
            files::oss_path("SourceFilePath", &self.destination(&i.id))?;
        }
        let created = create_batch(ctx, TaskType::FetchFile, "", &instances, &self.given, |i| {
            FetchFileParam {
                destination: self.destination(&i.id),
                source_file_path: self.source.clone(),
            }
        })
        .await?;
        Ok(json!({
            "TaskId": created.batch_id,
            "Data": created.children.iter().map(|(instance, task)| json!({
                "AndroidInstanceId": instance,
                "TaskId": task,
            })).collect::<Vec<_>>(),
        }))
    }
}
