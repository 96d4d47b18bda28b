//! SendFile: pushes a file from `oss://` or a URL onto phones. Mind the vendor's names:
//! `UploadUrl` is the source and `SourceFilePath` the destination on the phone.

use cloudphone_core::task_params::{SendFileParam, batch};
use cloudphone_core::{ApiError, TaskType};
use serde_json::{Value, json};

use super::common::{create_batch, dedup, resolve_instances};
use super::files::{self, MAX_INSTANCES};
use crate::params::Params;
use crate::state::Ctx;

enum Source {
    Object(cloudphone_objects::OssPath),
    Url,
}

pub struct SendFile {
    instance_ids: Vec<String>,
    upload_type: String,
    source_url: String,
    source: Source,
    /// The full path of the file on the phone.
    destination: String,
    md5: Option<String>,
    /// The batch's `Param`: the call's parameters as given.
    given: batch::SendFile,
}

impl SendFile {
    pub fn parse(p: &Params) -> Result<SendFile, ApiError> {
        let instance_ids = dedup(p.list("AndroidInstanceIdList", MAX_INSTANCES)?);
        if instance_ids.is_empty() {
            return Err(ApiError::missing("AndroidInstanceIdList"));
        }
        let upload_type = p.required("UploadType")?;
        let source_url = p.required("UploadUrl")?;
        let target = p.required("SourceFilePath")?;
        let target = files::phone_path("SourceFilePath", &target)?;
        let target_name = p
            .string("TargetFileName")
            .map(|n| files::file_name("TargetFileName", &n))
            .transpose()?;
        let (source, destination) = match upload_type.as_str() {
            "OSS" => {
                let path = files::oss_path("UploadUrl", &source_url)?;
                p.required("UploadEndpoint")?;
                let name = match target_name {
                    Some(n) => n,
                    None => path.key.rsplit('/').next().unwrap_or_default().to_string(),
                };
                (Source::Object(path), files::join(&target, &name))
            }
            "DOWNLOAD_URL" | "OSS_BRIDGED" => {
                if !(source_url.starts_with("http://") || source_url.starts_with("https://")) {
                    return Err(ApiError::invalid(
                        "UploadUrl",
                        "It must be an http:// or https:// URL.",
                    ));
                }
                if upload_type == "DOWNLOAD_URL" {
                    if target.ends_with('/') {
                        return Err(ApiError::invalid(
                            "SourceFilePath",
                            "With DOWNLOAD_URL it is the full path of the file on the phone.",
                        ));
                    }
                    (Source::Url, target.clone())
                } else {
                    p.required("UploadEndpoint")?;
                    let name = match target_name {
                        Some(n) => n,
                        None => {
                            let path = source_url.split(['?', '#']).next().unwrap_or_default();
                            let last = path.rsplit('/').next().unwrap_or_default();
                            files::file_name("UploadUrl", last)?
                        }
                    };
                    (Source::Url, files::join(&target, &name))
                }
            }
            other => {
                return Err(ApiError::invalid(
                    "UploadType",
                    format!("'{other}' is not OSS, DOWNLOAD_URL or OSS_BRIDGED."),
                ));
            }
        };
        let md5 = p.string("FileMd5");
        if let Some(m) = &md5
            && !(m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ApiError::invalid(
                "FileMd5",
                "It must be 32 hexadecimal digits.",
            ));
        }
        let given = batch::SendFile {
            android_instance_id_list: instance_ids.clone(),
            upload_type: p.string("UploadType"),
            upload_url: p.string("UploadUrl"),
            upload_endpoint: p.string("UploadEndpoint"),
            source_file_path: p.string("SourceFilePath"),
            target_file_name: p.string("TargetFileName"),
            file_md5: p.string("FileMd5"),
            auto_install: p.bool("AutoInstall")?,
            client_token: files::client_token(p)?,
        };
        Ok(SendFile {
            instance_ids,
            upload_type,
            source_url,
            source,
            destination,
            md5,
            given,
        })
    }

    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
        let instances = resolve_instances(ctx, "AndroidInstanceIdList", &self.instance_ids).await?;
        if let Source::Object(path) = &self.source {
            files::readable_object(ctx, "UploadUrl", &self.source_url, path).await?;
        }
        let child = SendFileParam {
            upload_type: self.upload_type,
            upload_url: self.source_url,
            destination: self.destination,
            file_md5: self.md5,
        };
        let created = create_batch(ctx, TaskType::SendFile, "", &instances, &self.given, |_| {
            &child
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
