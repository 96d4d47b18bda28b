//! SendFile and FetchFile on one phone. Files travel through a scratch file under the data dir,
//! streamed chunk by chunk, so a file of any size costs bounded memory. CancelTasks stops a
//! transfer while it reads its source into the scratch file (which is then removed), never
//! while it writes onto the phone or into the object store ([`Cut`]).

use std::path::Path;

use cloudphone_core::TaskErrorCode;
use cloudphone_core::task_params::{FetchFileParam, InstallParam, ScreenshotParam, SendFileParam};
use cloudphone_objects::{ObjectError, OssPath};
use cloudphone_outbound::FetchError;
use cloudphone_store::Outcome;
use serde_json::{Value, json};

use crate::cut::Cut;
use crate::services::Services;
use cloudphone_backend::{Backend, BackendError, InstanceRef};

/// Which attempt of which task, for whom: where its scratch files and objects go.
pub struct TransferTask<'a> {
    pub task_id: &'a str,
    pub attempt: i64,
    pub account_id: &'a str,
    /// Where CancelTasks stops it: while it reads its source, never while it writes
    /// (docs/design.md §5.7).
    pub cut: &'a Cut,
}

fn failed(code: TaskErrorCode, message: impl Into<String>) -> BackendError {
    BackendError::new(code, message)
}

/// Removes the scratch file however the operation ended.
pub(crate) struct Scratch<'a>(pub(crate) &'a Path);

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// The task's outcome: the result JSON, or the backend's error code and message.
pub(crate) fn outcome(result: Result<Value, BackendError>) -> Outcome {
    match result {
        Ok(v) => Outcome::Finished {
            result: v.to_string(),
        },
        Err(e) => Outcome::Failed {
            code: e.code,
            message: e.message,
        },
    }
}

/// SendFile: fetches the source (an `oss://` object or a URL) into a scratch file, checks its MD5
/// when the call gave one, and pushes it onto the phone.
pub async fn send(
    backend: &dyn Backend,
    services: &Services,
    task: TransferTask<'_>,
    param: &SendFileParam,
    phone: &InstanceRef,
) -> Outcome {
    let scratch = services.scratch_file(task.task_id, task.attempt, "send");
    let _cleanup = Scratch(&scratch);
    outcome(
        async {
            let source = param.upload_url.as_str();
            let md5 = task
                .cut
                .droppable(async {
                    match param.upload_type.as_str() {
                        "OSS" => fetch_object(services, task.account_id, source, &scratch).await,
                        _ => download(services, source, &scratch).await,
                    }
                })
                .await?;
            let expected = param.file_md5.as_deref().unwrap_or_default();
            if !expected.is_empty() && !expected.eq_ignore_ascii_case(&md5) {
                return Err(failed(
                    TaskErrorCode::FileMd5Mismatch,
                    format!("The file's MD5 is {md5}, not {expected}."),
                ));
            }
            let dest = param.destination.as_str();
            task.cut.before_writing()?;
            let size = backend.push_file(phone, &scratch, dest).await?;
            Ok(json!({ "Success": true, "FilePath": dest, "FileSize": size, "Md5": md5 }))
        }
        .await,
    )
}

/// FetchFile: pulls the file off the phone into a scratch file and stores it as the object named
/// by `Destination`; the result links it.
pub async fn fetch(
    backend: &dyn Backend,
    services: &Services,
    task: TransferTask<'_>,
    param: &FetchFileParam,
    phone: &InstanceRef,
) -> Outcome {
    let scratch = services.scratch_file(task.task_id, task.attempt, "fetch");
    let _cleanup = Scratch(&scratch);
    outcome(
        async {
            let pulled = backend.pull_file(phone, &param.source_file_path, &scratch);
            let size = task.cut.droppable(pulled).await?;
            let dest = OssPath::parse(&param.destination)
                .map_err(|e| failed(TaskErrorCode::FetchFileFailed, e.to_string()))?;
            task.cut.before_writing()?;
            let info = services
                .objects
                .put_file(task.account_id, &dest, &scratch)
                .await
                .map_err(|e| object_error(TaskErrorCode::FetchFileFailed, e))?;
            Ok(json!({
                "Url": services.objects.link(task.account_id, &dest, services.link_ttl),
                "OssPath": dest.to_string(),
                "FileSize": size,
                "Md5": info.md5_hex,
            }))
        }
        .await,
    )
}

fn object_error(code: TaskErrorCode, e: ObjectError) -> BackendError {
    match e {
        ObjectError::NotFound(what) => failed(
            TaskErrorCode::SourceFileNotFound,
            format!("{what} does not exist."),
        ),
        ObjectError::InvalidPath(what) => failed(code, format!("Invalid path: {what}")),
        ObjectError::Io(what) => {
            tracing::error!(error = %what, "object store failure");
            failed(code, "The object store failed.")
        }
    }
}

async fn fetch_object(
    services: &Services,
    account: &str,
    source: &str,
    scratch: &Path,
) -> Result<String, BackendError> {
    let path =
        OssPath::parse(source).map_err(|e| failed(TaskErrorCode::SendFileFailed, e.to_string()))?;
    let info = services
        .objects
        .get_to_file(account, &path, scratch)
        .await
        .map_err(|e| object_error(TaskErrorCode::SendFileFailed, e))?;
    Ok(info.md5_hex)
}

/// Streams `url` into `scratch` through the outbound client (address filter, timeouts, byte
/// cap); returns the MD5 in lower-case hex.
async fn download(services: &Services, url: &str, scratch: &Path) -> Result<String, BackendError> {
    match services.fetch.download(url, scratch).await {
        Ok(got) => Ok(got.md5_hex),
        Err(e) => Err(download_error(url, e)),
    }
}

/// A failed download as the task reports it. Whatever kept it from being fetched at all (a
/// refused address, a closed or silent port) reads the same ([`FetchError::Unreachable`]);
/// the operator's log has the detail.
fn download_error(url: &str, e: FetchError) -> BackendError {
    match e {
        FetchError::Status(status) if status.as_u16() == 404 => failed(
            TaskErrorCode::SourceFileNotFound,
            format!("{url} answered 404."),
        ),
        FetchError::Status(status) => failed(
            TaskErrorCode::DownloadFailed,
            format!("{url} answered {status}."),
        ),
        FetchError::TooLarge { .. } => failed(TaskErrorCode::FileTooLarge, format!("{url}: {e}.")),
        FetchError::Local(e) => failed(TaskErrorCode::SendFileFailed, format!("scratch file: {e}")),
        e => {
            tracing::info!(url, detail = %e.detail(), "a download failed");
            failed(TaskErrorCode::DownloadFailed, format!("{url}: {e}."))
        }
    }
}

/// Screenshot: the phone draws its screen into a scratch PNG, stored as the object named by
/// `Destination` (`ScreenshotId_AndroidInstanceId.png`); the result links it.
pub async fn screenshot(
    backend: &dyn Backend,
    services: &Services,
    task: TransferTask<'_>,
    param: &ScreenshotParam,
    phone: &InstanceRef,
) -> Outcome {
    let scratch = services.scratch_file(task.task_id, task.attempt, "screenshot.png");
    let _cleanup = Scratch(&scratch);
    outcome(
        async {
            let (width, height) = backend.screenshot(phone, &scratch).await?;
            let dest = OssPath::parse(&param.destination)
                .map_err(|e| failed(TaskErrorCode::ScreenshotFailed, e.to_string()))?;
            let info = services
                .objects
                .put_file(task.account_id, &dest, &scratch)
                .await
                .map_err(|e| object_error(TaskErrorCode::ScreenshotFailed, e))?;
            Ok(json!({
                "Url": services.objects.link(task.account_id, &dest, services.link_ttl),
                "OssPath": dest.to_string(),
                "Width": width,
                "Height": height,
                "FileSize": info.size,
            }))
        }
        .await,
    )
}

/// InstallApp: fetches the app's APK (an `oss://` object or a URL) into a scratch file, checks its
/// MD5 when the app has one, and installs it.
pub async fn install_app(
    backend: &dyn Backend,
    services: &Services,
    task: TransferTask<'_>,
    param: &InstallParam,
    phone: &InstanceRef,
) -> Outcome {
    let scratch = services.scratch_file(task.task_id, task.attempt, "app.apk");
    let _cleanup = Scratch(&scratch);
    outcome(
        async {
            let source = param.source.as_str();
            let md5 = task
                .cut
                .droppable(async {
                    if source.starts_with("oss://") {
                        fetch_object(services, task.account_id, source, &scratch).await
                    } else {
                        download(services, source, &scratch).await
                    }
                    .map_err(|e| match e.code {
                        TaskErrorCode::FileTooLarge => e,
                        _ => failed(TaskErrorCode::InstallAppFailed, e.message),
                    })
                })
                .await?;
            let expected = param.md5.as_str();
            if !expected.is_empty() && !expected.eq_ignore_ascii_case(&md5) {
                return Err(failed(
                    TaskErrorCode::FileMd5Mismatch,
                    format!("The APK's MD5 is {md5}, not {expected}."),
                ));
            }
            let package = param.package_name.as_str();
            task.cut.before_writing()?;
            backend.install_app(phone, package, &scratch).await?;
            Ok(json!({ "Success": true, "PackageName": package }))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The task's `Result` is the operation's JSON; a failure carries the backend's code and
    /// message as `ErrorCode` and `ErrorMsg`.
    #[test]
    fn the_outcome_is_the_result_or_the_backend_s_error() {
        assert_eq!(
            outcome(Ok(json!({ "Success": true }))),
            Outcome::Finished {
                result: r#"{"Success":true}"#.into()
            }
        );
        assert_eq!(
            outcome(Err(failed(TaskErrorCode::FileMd5Mismatch, "bad md5"))),
            Outcome::Failed {
                code: TaskErrorCode::FileMd5Mismatch,
                message: "bad md5".into()
            }
        );
    }

    /// A URL that could not be fetched at all reads the same whatever stopped it; a 404 is a
    /// missing source; a file over the cap has its own code.
    #[test]
    fn download_failures_map_to_task_errors() {
        let url = "http://10.0.0.1:22/x";
        let unreachable = |detail: &str, refused| {
            download_error(
                url,
                FetchError::Unreachable {
                    detail: detail.into(),
                    refused,
                },
            )
        };
        let closed = unreachable("tcp connect error: Connection refused", None);
        let refused = unreachable(
            "10.0.0.1 is not a public address (private)",
            Some(cloudphone_outbound::Refused::Address {
                ip: "10.0.0.1".parse().unwrap(),
                block: "private",
            }),
        );
        assert_eq!(
            (closed.code, &closed.message),
            (refused.code, &refused.message)
        );
        assert_eq!(closed.code, TaskErrorCode::DownloadFailed);
        assert!(!closed.message.contains("refused the connection (os"));
        let gone = download_error(url, FetchError::Status(404u16.try_into().unwrap()));
        assert_eq!(gone.code, TaskErrorCode::SourceFileNotFound);
        let big = download_error(url, FetchError::TooLarge { limit: 10 });
        assert_eq!(big.code, TaskErrorCode::FileTooLarge);
        assert!(
            big.message.contains("download limit of 10 bytes"),
            "{}",
            big.message
        );
    }

    #[test]
    fn a_missing_source_is_source_file_not_found() {
        let e = object_error(
            TaskErrorCode::SendFileFailed,
            ObjectError::NotFound("oss://b/in.txt".into()),
        );
        assert_eq!(e.code, TaskErrorCode::SourceFileNotFound);
        assert_eq!(e.message, "oss://b/in.txt does not exist.");
        let e = object_error(
            TaskErrorCode::FetchFileFailed,
            ObjectError::Io("disk at /var/lib full".into()),
        );
        assert_eq!(e.code, TaskErrorCode::FetchFileFailed);
        assert_eq!(e.message, "The object store failed.");
        let e = object_error(
            TaskErrorCode::ScreenshotFailed,
            ObjectError::InvalidPath("no key".into()),
        );
        assert_eq!(e.code, TaskErrorCode::ScreenshotFailed);
        assert_eq!(e.message, "Invalid path: no key");
    }
}
