//! The `Param` of each type of batch: the parameters of the call that made it, as given (list
//! parameters as lists), where they differ from what each child needs. Only written: nothing
//! runs from a batch's `Param`, and `RetryTasks` copies it as it is, adding `RetryOf`.
//! Fields are declared in sorted key order, as the stored JSON has them (see [`super`]).

use serde::Serialize;

use super::{RebootParam, ResetParam, StartParam, StopParam};

/// StartAndroidInstance, StopAndroidInstance, RebootAndroidInstancesInGroup and
/// ResetAndroidInstancesInGroup: the instances and the options each child got
/// (`AndroidInstanceIds` sorts before every option).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Lifecycle<O> {
    pub android_instance_ids: Vec<String>,
    #[serde(flatten)]
    pub options: O,
}

pub type Start = Lifecycle<StartParam>;
pub type Stop = Lifecycle<StopParam>;
pub type Reboot = Lifecycle<RebootParam>;
pub type Reset = Lifecycle<ResetParam>;

/// RunCommand and RunSyncCommand: the command as given (Base64 when it was sent so), its
/// encoding if given, the instances and the timeout every child got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunCommand {
    pub command_content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    pub instance_ids: Vec<String>,
    pub timeout: u64,
}

/// SendFile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendFile {
    pub android_instance_id_list: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_install: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_md5: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_file_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_file_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_url: Option<String>,
}

/// FetchFile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FetchFile {
    pub android_instance_id_list: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_file_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_url: Option<String>,
}

/// CreateScreenshot: the bucket is the one the PNGs go to (the account's default when the call
/// named none) and the screenshot id the one used (generated when the call gave none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Screenshot {
    pub android_instance_id_list: Vec<String>,
    pub oss_bucket_name: String,
    pub screenshot_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_check_policy_config: Option<String>,
}

/// UpdateInstanceGroupImage (one batch per group, each with the whole call's groups).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateImage {
    pub image_id: String,
    pub instance_group_ids: Vec<String>,
}

/// InstallApp and UninstallApp: the apps (ids as text, as the vendor's list is) and the phones,
/// by instance and by group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstallOrUninstall {
    pub app_id_list: Vec<String>,
    pub instance_group_id_list: Vec<String>,
    pub instance_id_list: Vec<String>,
}

/// OperateApp: the operation as its task type (`StartApp`, `StopApp`, `RestartApp`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperateApp {
    pub app_id: i64,
    pub instance_id_list: Vec<String>,
    pub operate_type: String,
}

/// BackupFile: the path lists as checked (trimmed, without duplicates).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BackupFile {
    pub android_instance_id_list: Vec<String>,
    pub backup_all: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_file_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_file_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub exclude_source_file_path_list: Vec<String>,
    pub source_app_list: Vec<String>,
    pub source_file_path_list: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_type: Option<String>,
}

/// RecoveryFile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecoveryFile {
    pub android_instance_id_list: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_all: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_file_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_file_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_type: Option<String>,
}

/// RetryTasks: the retried batch's `Param` (an object; anything else counts as `{}`) with
/// `RetryOf`, the id of the batch it retries, in its sorted place.
pub fn retry_of(retried: &str, batch_id: &str) -> String {
    let mut param = match serde_json::from_str::<serde_json::Value>(retried) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    param.insert("RetryOf".into(), serde_json::Value::from(batch_id));
    super::to_json(&param)
}
