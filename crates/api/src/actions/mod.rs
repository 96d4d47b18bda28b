//! One module per API action. Each action is a type with `parse` (from the request's parameters,
//! validating everything before anything is written) and `apply` (against the store and
//! engine); [`Action`] dispatches on the action name.

mod app_tasks;
mod apps;
mod backup_file;
mod cancel_tasks;
pub(crate) mod common;
mod create_group;
mod create_screenshot;
mod delete_backup_file;
mod delete_group;
mod describe_backup_files;
mod describe_groups;
mod describe_images;
mod describe_instances;
mod describe_invocations;
mod describe_regions;
pub(crate) mod describe_tasks;
mod fetch_file;
mod files;
mod invocations;
mod lifecycle;
mod modify_instance;
mod recovery_file;
mod retry_tasks;
mod run_command;
mod run_sync_command;
mod send_file;
mod sim_faults;
mod update_group_image;
mod webhooks;

use cloudphone_core::ApiError;

use crate::params::Params;
use crate::reply::Body;
use crate::state::Ctx;

pub use common::Paging;

/// Whether action `name` only reads (changes nothing, starts no task): the server may work out
/// its answer while the call's nonce is being recorded.
pub fn reads_only(name: &str) -> bool {
    matches!(
        name,
        "DescribeRegions"
            | "DescribeImageList"
            | "DescribeAndroidInstanceGroups"
            | "DescribeAndroidInstances"
            | "DescribeTasks"
            | "DescribeInvocations"
            | "DescribeApps"
            | "DescribeBackupFiles"
            | "DescribeWebhooks"
            | "DescribeWebhookDeliveries"
    )
}

/// Whether action `name` creates tasks (batches, or a group's instances): the calls
/// `ClientToken` makes idempotent.
pub fn produces_tasks(name: &str) -> bool {
    matches!(
        name,
        "CreateAndroidInstanceGroup"
            | "StartAndroidInstance"
            | "StopAndroidInstance"
            | "RebootAndroidInstancesInGroup"
            | "ResetAndroidInstancesInGroup"
            | "RunCommand"
            | "SendFile"
            | "FetchFile"
            | "InstallApp"
            | "UninstallApp"
            | "OperateApp"
            | "CreateScreenshot"
            | "UpdateInstanceGroupImage"
            | "BackupFile"
            | "RecoveryFile"
            | "RetryTasks"
    )
}

/// Whether action `name` honours `DryRun` (reports and creates nothing); any other action
/// refuses it rather than do what it was asked not to.
pub fn dry_runs(name: &str) -> bool {
    produces_tasks(name) && name != "CreateAndroidInstanceGroup"
}

/// The name of every action [`Action::parse`] knows, for labels that must stay bounded (a
/// metric's `action`): any other name is `"unknown"`.
pub const NAMES: &[&str] = &[
    "DescribeRegions",
    "DescribeImageList",
    "CreateAndroidInstanceGroup",
    "DescribeAndroidInstanceGroups",
    "DeleteAndroidInstanceGroup",
    "DescribeAndroidInstances",
    "ModifyAndroidInstance",
    "StartAndroidInstance",
    "StopAndroidInstance",
    "RebootAndroidInstancesInGroup",
    "ResetAndroidInstancesInGroup",
    "DescribeTasks",
    "RunCommand",
    "RunSyncCommand",
    "DescribeInvocations",
    "SendFile",
    "FetchFile",
    "CreateApp",
    "DescribeApps",
    "DeleteApps",
    "InstallApp",
    "UninstallApp",
    "OperateApp",
    "CreateScreenshot",
    "UpdateInstanceGroupImage",
    "InjectSimulatedFault",
    "ClearSimulatedFaults",
    "BackupFile",
    "RecoveryFile",
    "DescribeBackupFiles",
    "DeleteBackupFile",
    "CancelTasks",
    "RetryTasks",
    "CreateWebhook",
    "DescribeWebhooks",
    "DeleteWebhook",
    "DescribeWebhookDeliveries",
];

/// `name` if it is an action of [`NAMES`], else `"unknown"`.
pub fn label(name: &str) -> &'static str {
    NAMES
        .iter()
        .find(|n| **n == name)
        .copied()
        .unwrap_or("unknown")
}

/// Every action this server answers.
pub enum Action {
    DescribeRegions(describe_regions::DescribeRegions),
    DescribeImageList(describe_images::DescribeImageList),
    CreateAndroidInstanceGroup(create_group::CreateAndroidInstanceGroup),
    DescribeAndroidInstanceGroups(describe_groups::DescribeAndroidInstanceGroups),
    DeleteAndroidInstanceGroup(delete_group::DeleteAndroidInstanceGroup),
    DescribeAndroidInstances(describe_instances::DescribeAndroidInstances),
    ModifyAndroidInstance(modify_instance::ModifyAndroidInstance),
    Lifecycle(lifecycle::Lifecycle),
    DescribeTasks(describe_tasks::DescribeTasks),
    RunCommand(run_command::RunCommand),
    RunSyncCommand(run_sync_command::RunSyncCommand),
    DescribeInvocations(describe_invocations::DescribeInvocations),
    SendFile(send_file::SendFile),
    FetchFile(fetch_file::FetchFile),
    UpdateInstanceGroupImage(update_group_image::UpdateInstanceGroupImage),
    CreateScreenshot(create_screenshot::CreateScreenshot),
    CreateApp(apps::CreateApp),
    DescribeApps(apps::DescribeApps),
    DeleteApps(apps::DeleteApps),
    InstallOrUninstall(app_tasks::InstallOrUninstall),
    OperateApp(app_tasks::OperateApp),
    InjectSimulatedFault(sim_faults::InjectSimulatedFault),
    ClearSimulatedFaults(sim_faults::ClearSimulatedFaults),
    BackupFile(backup_file::BackupFile),
    RecoveryFile(recovery_file::RecoveryFile),
    DescribeBackupFiles(describe_backup_files::DescribeBackupFiles),
    DeleteBackupFile(delete_backup_file::DeleteBackupFile),
    CancelTasks(cancel_tasks::CancelTasks),
    RetryTasks(retry_tasks::RetryTasks),
    CreateWebhook(webhooks::CreateWebhook),
    DescribeWebhooks(webhooks::DescribeWebhooks),
    DeleteWebhook(webhooks::DeleteWebhook),
    DescribeWebhookDeliveries(webhooks::DescribeWebhookDeliveries),
}

impl Action {
    /// Parses the parameters of action `name`; an unknown name is `InvalidAction.NotFound`.
    pub fn parse(name: &str, p: &Params) -> Result<Action, ApiError> {
        Ok(match name {
            "DescribeRegions" => {
                Action::DescribeRegions(describe_regions::DescribeRegions::parse(p)?)
            }
            "DescribeImageList" => {
                Action::DescribeImageList(describe_images::DescribeImageList::parse(p)?)
            }
            "CreateAndroidInstanceGroup" => Action::CreateAndroidInstanceGroup(
                create_group::CreateAndroidInstanceGroup::parse(p)?,
            ),
            "DescribeAndroidInstanceGroups" => Action::DescribeAndroidInstanceGroups(
                describe_groups::DescribeAndroidInstanceGroups::parse(p)?,
            ),
            "DeleteAndroidInstanceGroup" => Action::DeleteAndroidInstanceGroup(
                delete_group::DeleteAndroidInstanceGroup::parse(p)?,
            ),
            "DescribeAndroidInstances" => Action::DescribeAndroidInstances(
                describe_instances::DescribeAndroidInstances::parse(p)?,
            ),
            "ModifyAndroidInstance" => {
                Action::ModifyAndroidInstance(modify_instance::ModifyAndroidInstance::parse(p)?)
            }
            "StartAndroidInstance"
            | "StopAndroidInstance"
            | "RebootAndroidInstancesInGroup"
            | "ResetAndroidInstancesInGroup" => {
                Action::Lifecycle(lifecycle::Lifecycle::parse(name, p)?)
            }
            "DescribeTasks" => Action::DescribeTasks(describe_tasks::DescribeTasks::parse(p)?),
            "RunCommand" => Action::RunCommand(run_command::RunCommand::parse(p)?),
            "RunSyncCommand" => Action::RunSyncCommand(run_sync_command::RunSyncCommand::parse(p)?),
            "DescribeInvocations" => {
                Action::DescribeInvocations(describe_invocations::DescribeInvocations::parse(p)?)
            }
            "SendFile" => Action::SendFile(send_file::SendFile::parse(p)?),
            "FetchFile" => Action::FetchFile(fetch_file::FetchFile::parse(p)?),
            "CreateApp" => Action::CreateApp(apps::CreateApp::parse(p)?),
            "DescribeApps" => Action::DescribeApps(apps::DescribeApps::parse(p)?),
            "DeleteApps" => Action::DeleteApps(apps::DeleteApps::parse(p)?),
            "InstallApp" => {
                Action::InstallOrUninstall(app_tasks::InstallOrUninstall::parse(true, p)?)
            }
            "UninstallApp" => {
                Action::InstallOrUninstall(app_tasks::InstallOrUninstall::parse(false, p)?)
            }
            "OperateApp" => Action::OperateApp(app_tasks::OperateApp::parse(p)?),
            "CreateScreenshot" => {
                Action::CreateScreenshot(create_screenshot::CreateScreenshot::parse(p)?)
            }
            "UpdateInstanceGroupImage" => Action::UpdateInstanceGroupImage(
                update_group_image::UpdateInstanceGroupImage::parse(p)?,
            ),
            "InjectSimulatedFault" => {
                Action::InjectSimulatedFault(sim_faults::InjectSimulatedFault::parse(p)?)
            }
            "ClearSimulatedFaults" => {
                Action::ClearSimulatedFaults(sim_faults::ClearSimulatedFaults)
            }
            "BackupFile" => Action::BackupFile(backup_file::BackupFile::parse(p)?),
            "RecoveryFile" => Action::RecoveryFile(recovery_file::RecoveryFile::parse(p)?),
            "DescribeBackupFiles" => {
                Action::DescribeBackupFiles(describe_backup_files::DescribeBackupFiles::parse(p)?)
            }
            "DeleteBackupFile" => {
                Action::DeleteBackupFile(delete_backup_file::DeleteBackupFile::parse(p)?)
            }
            "CancelTasks" => Action::CancelTasks(cancel_tasks::CancelTasks::parse(p)?),
            "RetryTasks" => Action::RetryTasks(retry_tasks::RetryTasks::parse(p)?),
            "CreateWebhook" => Action::CreateWebhook(webhooks::CreateWebhook::parse(p)?),
            "DescribeWebhooks" => Action::DescribeWebhooks(webhooks::DescribeWebhooks),
            "DeleteWebhook" => Action::DeleteWebhook(webhooks::DeleteWebhook::parse(p)?),
            "DescribeWebhookDeliveries" => {
                Action::DescribeWebhookDeliveries(webhooks::DescribeWebhookDeliveries::parse(p)?)
            }
            other => return Err(ApiError::ActionNotFound(other.to_string())),
        })
    }

    /// Carries the action out; the value is the response body without `RequestId`.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Body, ApiError> {
        match self {
            Action::DescribeRegions(a) => a.apply(ctx).await.map(Into::into),
            Action::DescribeImageList(a) => a.apply(ctx).await.map(Into::into),
            Action::CreateAndroidInstanceGroup(a) => a.apply(ctx).await.map(Into::into),
            Action::DescribeAndroidInstanceGroups(a) => a.apply(ctx).await.map(Into::into),
            Action::DeleteAndroidInstanceGroup(a) => a.apply(ctx).await.map(Into::into),
            Action::DescribeAndroidInstances(a) => a.apply(ctx).await.map(Into::into),
            Action::ModifyAndroidInstance(a) => a.apply(ctx).await.map(Into::into),
            Action::Lifecycle(a) => a.apply(ctx).await.map(Into::into),
            Action::DescribeTasks(a) => a.apply(ctx).await,
            Action::RunCommand(a) => a.apply(ctx).await.map(Into::into),
            Action::RunSyncCommand(a) => a.apply(ctx).await.map(Into::into),
            Action::DescribeInvocations(a) => a.apply(ctx).await.map(Into::into),
            Action::SendFile(a) => a.apply(ctx).await.map(Into::into),
            Action::FetchFile(a) => a.apply(ctx).await.map(Into::into),
            Action::UpdateInstanceGroupImage(a) => a.apply(ctx).await.map(Into::into),
            Action::CreateScreenshot(a) => a.apply(ctx).await.map(Into::into),
            Action::CreateApp(a) => a.apply(ctx).await.map(Into::into),
            Action::DescribeApps(a) => a.apply(ctx).await.map(Into::into),
            Action::DeleteApps(a) => a.apply(ctx).await.map(Into::into),
            Action::InstallOrUninstall(a) => a.apply(ctx).await.map(Into::into),
            Action::OperateApp(a) => a.apply(ctx).await.map(Into::into),
            Action::InjectSimulatedFault(a) => a.apply(ctx).await.map(Into::into),
            Action::ClearSimulatedFaults(a) => a.apply(ctx).await.map(Into::into),
            Action::BackupFile(a) => a.apply(ctx).await.map(Into::into),
            Action::RecoveryFile(a) => a.apply(ctx).await.map(Into::into),
            Action::DescribeBackupFiles(a) => a.apply(ctx).await.map(Into::into),
            Action::DeleteBackupFile(a) => a.apply(ctx).await.map(Into::into),
            Action::CancelTasks(a) => a.apply(ctx).await.map(Into::into),
            Action::RetryTasks(a) => a.apply(ctx).await.map(Into::into),
            Action::CreateWebhook(a) => a.apply(ctx).await.map(Into::into),
            Action::DescribeWebhooks(a) => a.apply(ctx).await.map(Into::into),
            Action::DeleteWebhook(a) => a.apply(ctx).await.map(Into::into),
            Action::DescribeWebhookDeliveries(a) => a.apply(ctx).await.map(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_exactly_the_actions_parse_knows() {
        let none = Params::from_pairs(std::iter::empty::<(&str, &str)>()).unwrap();
        for name in NAMES {
            let known = !matches!(Action::parse(name, &none), Err(ApiError::ActionNotFound(_)));
            assert!(known, "{name} is in NAMES but not parsed");
            assert_eq!(label(name), *name);
        }
        assert!(matches!(
            Action::parse("DescribeNothing", &none),
            Err(ApiError::ActionNotFound(_))
        ));
        assert_eq!(label("DescribeNothing"), "unknown");
    }
}
