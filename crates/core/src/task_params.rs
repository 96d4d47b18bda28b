//! The `Param` of each task type, typed: the API writes it, the engine reads it. A child's
//! `Param` is what its run needs ([`TaskParam`]); a batch's is the call's parameters as given
//! ([`batch`]), read by people and by `DescribeTasks`'s `Param` filter only.
//!
//! The JSON is the one the API has always stored: keys as the vendor spells them, in sorted
//! order (the order of a `serde_json` object without `preserve_order`, so every field below is
//! declared in that order), optional keys absent when not given. A `Param` that does not parse
//! as its type's fails the task with `InvalidTaskParameters` instead of running with blanks.

pub mod batch;
#[cfg(test)]
mod tests;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::TaskType;

/// `Param` of a task that needs none (CreateInstance, DeleteInstance): `{}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoParam {}

/// How MigrateInstance takes a phone's data along.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrateMode {
    /// The data volume is copied to the new host.
    Copy,
    /// The phone is created afresh from its image on the new host: its data is lost (a host
    /// that does not answer cannot be copied from).
    Recreate,
}

/// MigrateInstance: the move's hosts and mode, and the drain it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MigrateParam {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<String>,
    pub from: String,
    pub mode: MigrateMode,
    pub to: String,
}

/// StartInstance: the call's options as given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartParam {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sale_mode: Option<String>,
}

/// StopInstance: the call's options as given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StopParam {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_stop: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sale_mode: Option<String>,
}

/// RebootInstance: the call's options as given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RebootParam {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_stop: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_param_validation: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sale_mode: Option<String>,
}

/// ResetInstance: the call's options as given (the phone is reset onto its own image).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResetParam {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_pay: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_param_validation: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sale_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setting_reset_type: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_data_disk_size: Option<i64>,
}

/// UpdateGroupImage on one phone: the image it is reset onto.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateImageParam {
    pub image_id: String,
}

/// RunCommand on one phone: the script (decoded) and its timeout in seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommandParam {
    pub command_content: String,
    pub timeout: u64,
}

/// SendFile on one phone: where the file comes from (`UploadUrl`, an `oss://` object when
/// `UploadType` is `OSS`, else a URL) and its full path on the phone; `FileMd5` is `null` when
/// the call gave none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendFileParam {
    pub destination: String,
    pub file_md5: Option<String>,
    pub upload_type: String,
    pub upload_url: String,
}

/// FetchFile on one phone: the file on the phone and the `oss://` object it becomes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FetchFileParam {
    pub destination: String,
    pub source_file_path: String,
}

/// CreateScreenshot on one phone: the `oss://` object the PNG becomes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScreenshotParam {
    pub destination: String,
    pub screenshot_id: String,
}

/// BackupFile on one phone: the phone paths archived (what `BackupAll` stands for included),
/// those left out, and the `oss://` object the archive becomes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BackupParam {
    pub backup_file_id: String,
    pub destination: String,
    pub exclude_source_file_path_list: Vec<String>,
    pub paths: Vec<String>,
}

/// RecoverFile on one phone: the backup (empty when named by its path) and its archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecoverParam {
    pub backup_file_id: String,
    pub source: String,
}

/// InstallApp on one phone: the app, its package and where its APK is (`oss://` or a URL),
/// with the MD5 the APK must have (empty: not checked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstallParam {
    pub app_id: i64,
    pub md5: String,
    pub package_name: String,
    pub source: String,
}

/// UninstallApp, StartApp, StopApp and RestartApp on one phone: the app and its package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AppParam {
    pub app_id: i64,
    pub package_name: String,
}

/// The `Param` of a task that runs on a phone, by its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskParam {
    CreateInstance(NoParam),
    DeleteInstance(NoParam),
    MigrateInstance(MigrateParam),
    StartInstance(StartParam),
    StopInstance(StopParam),
    RebootInstance(RebootParam),
    ResetInstance(ResetParam),
    UpdateGroupImage(UpdateImageParam),
    RunCommand(CommandParam),
    SendFile(SendFileParam),
    FetchFile(FetchFileParam),
    Screenshot(ScreenshotParam),
    BackupFile(BackupParam),
    RecoverFile(RecoverParam),
    InstallApp(InstallParam),
    UninstallApp(AppParam),
    StartApp(AppParam),
    StopApp(AppParam),
    RestartApp(AppParam),
}

/// A `Param` that is not the JSON its task type takes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("The task's Param is not valid for {task_type}: {reason}.")]
pub struct InvalidParam {
    pub task_type: TaskType,
    /// What serde found wrong (a missing field, a value of the wrong type, bad JSON), with
    /// where in the text.
    pub reason: String,
}

impl TaskParam {
    /// Reads the stored `Param` of a task of type `task_type`.
    pub fn parse(task_type: TaskType, json: &str) -> Result<TaskParam, InvalidParam> {
        Ok(match task_type {
            TaskType::CreateInstance => TaskParam::CreateInstance(read(task_type, json)?),
            TaskType::DeleteInstance => TaskParam::DeleteInstance(read(task_type, json)?),
            TaskType::MigrateInstance => TaskParam::MigrateInstance(read(task_type, json)?),
            TaskType::StartInstance => TaskParam::StartInstance(read(task_type, json)?),
            TaskType::StopInstance => TaskParam::StopInstance(read(task_type, json)?),
            TaskType::RebootInstance => TaskParam::RebootInstance(read(task_type, json)?),
            TaskType::ResetInstance => TaskParam::ResetInstance(read(task_type, json)?),
            TaskType::UpdateGroupImage => TaskParam::UpdateGroupImage(read(task_type, json)?),
            TaskType::RunCommand => TaskParam::RunCommand(read(task_type, json)?),
            TaskType::SendFile => TaskParam::SendFile(read(task_type, json)?),
            TaskType::FetchFile => TaskParam::FetchFile(read(task_type, json)?),
            TaskType::Screenshot => TaskParam::Screenshot(read(task_type, json)?),
            TaskType::BackupFile => TaskParam::BackupFile(read(task_type, json)?),
            TaskType::RecoverFile => TaskParam::RecoverFile(read(task_type, json)?),
            TaskType::InstallApp => TaskParam::InstallApp(read(task_type, json)?),
            TaskType::UninstallApp => TaskParam::UninstallApp(read(task_type, json)?),
            TaskType::StartApp => TaskParam::StartApp(read(task_type, json)?),
            TaskType::StopApp => TaskParam::StopApp(read(task_type, json)?),
            TaskType::RestartApp => TaskParam::RestartApp(read(task_type, json)?),
        })
    }

    /// The app of an app task (InstallApp, UninstallApp, StartApp, StopApp, RestartApp).
    pub fn app_id(&self) -> Option<i64> {
        match self {
            TaskParam::InstallApp(p) => Some(p.app_id),
            TaskParam::UninstallApp(p)
            | TaskParam::StartApp(p)
            | TaskParam::StopApp(p)
            | TaskParam::RestartApp(p) => Some(p.app_id),
            _ => None,
        }
    }
}

fn read<T: DeserializeOwned>(task_type: TaskType, json: &str) -> Result<T, InvalidParam> {
    serde_json::from_str(json).map_err(|e| InvalidParam {
        task_type,
        reason: e.to_string(),
    })
}

/// A `Param` as stored: compact JSON.
pub fn to_json<T: Serialize>(param: &T) -> String {
    // Structs of strings, numbers, booleans and lists of them, and JSON maps: nothing here can
    // fail to serialise.
    serde_json::to_string(param).expect("a task Param serialises")
}
