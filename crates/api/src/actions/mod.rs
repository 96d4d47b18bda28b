//! One module per API action. Each action is a type with `parse` (from the request's parameters,
//! validating everything before anything is written) and `apply` (against the store and
//! engine); [`Action`] dispatches on the action name. Each action is declared once, in the table
//! of `actions!`, with its kind (read-only, task-producing, ...).

mod adb_endpoints;
mod app_tasks;
mod apps;
mod attach_key_pair;
mod backup_file;
mod batch_get_acp_connection_ticket;
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
mod describe_spec;
mod describe_stream_sessions;
pub(crate) mod describe_tasks;
mod disconnect_android_instance;
mod downgrade_group;
mod fetch_file;
mod files;
mod invocations;
mod key_pairs;
mod lifecycle;
mod modify_instance;
mod recovery_file;
mod retry_tasks;
mod run_command;
mod run_sync_command;
mod send_file;
mod sim_faults;
mod update_group_image;
mod upgrade_group;
mod webhooks;

use cloudphone_core::ApiError;

use crate::params::Params;
use crate::reply::Body;
use crate::state::Ctx;

/// What an action does, beyond its own work, as the server must know before running it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Changes nothing and starts no task: the answer may be worked out while the call's nonce
    /// is being recorded.
    Reads,
    /// Changes something, synchronously as the vendor counts it: `ClientToken` and `DryRun` do
    /// not apply (RunSyncCommand included, whose tasks are waited for within the call).
    Writes,
    /// Creates tasks (batches, or a group's instances): `ClientToken` makes it idempotent and
    /// `DryRun` reports what it would do.
    Tasks,
    /// Creates tasks, but refuses `DryRun` (CreateAndroidInstanceGroup, whose instances are
    /// not there to report on before it runs).
    TasksNoDryRun,
}

/// The actions: one line each, `Name(its type): Kind` (and `= how to parse it from p` when that
/// is not `Type::parse(p)`), generating the [`Action`] enum, [`Action::parse`],
/// [`Action::apply`], [`NAMES`] and the kind of each ([`reads_only`], [`produces_tasks`],
/// [`dry_runs`]). Adding an action is a line here and its module; its kind cannot be left out.
macro_rules! actions {
    ($p:ident; $($name:ident($ty:ty): $kind:ident $(= $parse:expr)?,)+) => {
        /// Every action this server answers, by name.
        pub enum Action {
            $($name($ty),)+
        }

        /// The name of every action [`Action::parse`] knows, for labels that must stay bounded
        /// (a metric's `action`): any other name is `"unknown"`.
        pub const NAMES: &[&str] = &[$(stringify!($name),)+];

        /// The kind of action `name`; `None` for an unknown one.
        fn kind(name: &str) -> Option<Kind> {
            match name {
                $(stringify!($name) => Some(Kind::$kind),)+
                _ => None,
            }
        }

        impl Action {
            /// Parses the parameters of action `name`; an unknown name is
            /// `InvalidAction.NotFound`.
            pub fn parse(name: &str, $p: &Params) -> Result<Action, ApiError> {
                Ok(match name {
                    $(stringify!($name) => Action::$name(parse_with!($ty, $p $(, $parse)?)?),)+
                    other => return Err(ApiError::ActionNotFound(other.to_string())),
                })
            }

            /// Carries the action out; the value is the response body without `RequestId`.
            pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Body, ApiError> {
                match self {
                    $(Action::$name(a) => a.apply(ctx).await.map(Into::into),)+
                }
            }
        }
    };
}

/// How a table entry is parsed: `Type::parse(p)` unless the entry says otherwise.
macro_rules! parse_with {
    ($ty:ty, $p:ident) => {
        <$ty>::parse($p)
    };
    ($ty:ty, $p:ident, $parse:expr) => {
        parsed($parse)
    };
}

/// Pins the error type of a table entry's own parse expression (`Ok(..)` alone does not).
fn parsed<T>(result: Result<T, ApiError>) -> Result<T, ApiError> {
    result
}

actions! { p;
    DescribeRegions(describe_regions::DescribeRegions): Reads,
    DescribeImageList(describe_images::DescribeImageList): Reads,
    CreateAndroidInstanceGroup(create_group::CreateAndroidInstanceGroup): TasksNoDryRun,
    DescribeAndroidInstanceGroups(describe_groups::DescribeAndroidInstanceGroups): Reads,
    DeleteAndroidInstanceGroup(delete_group::DeleteAndroidInstanceGroup): Writes,
    DescribeAndroidInstances(describe_instances::DescribeAndroidInstances): Reads,
    ModifyAndroidInstance(modify_instance::ModifyAndroidInstance): Writes,
    StartAndroidInstance(lifecycle::Lifecycle): Tasks =
        lifecycle::Lifecycle::parse("StartAndroidInstance", p),
    StopAndroidInstance(lifecycle::Lifecycle): Tasks =
        lifecycle::Lifecycle::parse("StopAndroidInstance", p),
    RebootAndroidInstancesInGroup(lifecycle::Lifecycle): Tasks =
        lifecycle::Lifecycle::parse("RebootAndroidInstancesInGroup", p),
    ResetAndroidInstancesInGroup(lifecycle::Lifecycle): Tasks =
        lifecycle::Lifecycle::parse("ResetAndroidInstancesInGroup", p),
    DescribeTasks(describe_tasks::DescribeTasks): Reads,
    RunCommand(run_command::RunCommand): Tasks,
    RunSyncCommand(run_sync_command::RunSyncCommand): Writes,
    DescribeInvocations(describe_invocations::DescribeInvocations): Reads,
    SendFile(send_file::SendFile): Tasks,
    FetchFile(fetch_file::FetchFile): Tasks,
    CreateApp(apps::CreateApp): Writes,
    DescribeApps(apps::DescribeApps): Reads,
    DeleteApps(apps::DeleteApps): Writes,
    InstallApp(app_tasks::InstallOrUninstall): Tasks =
        app_tasks::InstallOrUninstall::parse(true, p),
    UninstallApp(app_tasks::InstallOrUninstall): Tasks =
        app_tasks::InstallOrUninstall::parse(false, p),
    OperateApp(app_tasks::OperateApp): Tasks,
    CreateScreenshot(create_screenshot::CreateScreenshot): Tasks,
    UpdateInstanceGroupImage(update_group_image::UpdateInstanceGroupImage): Tasks,
    InjectSimulatedFault(sim_faults::InjectSimulatedFault): Writes,
    ClearSimulatedFaults(sim_faults::ClearSimulatedFaults): Writes =
        Ok(sim_faults::ClearSimulatedFaults),
    BackupFile(backup_file::BackupFile): Tasks,
    RecoveryFile(recovery_file::RecoveryFile): Tasks,
    DescribeBackupFiles(describe_backup_files::DescribeBackupFiles): Reads,
    DeleteBackupFile(delete_backup_file::DeleteBackupFile): Writes,
    CancelTasks(cancel_tasks::CancelTasks): Writes,
    RetryTasks(retry_tasks::RetryTasks): Tasks,
    CreateWebhook(webhooks::CreateWebhook): Writes,
    DescribeWebhooks(webhooks::DescribeWebhooks): Reads = Ok(webhooks::DescribeWebhooks),
    DeleteWebhook(webhooks::DeleteWebhook): Writes,
    DescribeWebhookDeliveries(webhooks::DescribeWebhookDeliveries): Reads,
    ListInstanceAdbAttributes(adb_endpoints::ListInstanceAdbAttributes): Reads,
    StartInstanceAdb(adb_endpoints::StartInstanceAdb): Writes,
    StopInstanceAdb(adb_endpoints::StopInstanceAdb): Writes,
    SetAdbSecure(adb_endpoints::SetAdbSecure): Writes,
    CreateKeyPair(key_pairs::CreateKeyPair): Writes,
    ImportKeyPair(key_pairs::ImportKeyPair): Writes,
    DescribeKeyPairs(key_pairs::DescribeKeyPairs): Reads,
    ModifyKeyPairName(key_pairs::ModifyKeyPairName): Writes,
    DeleteKeyPairs(key_pairs::DeleteKeyPairs): Writes,
    AttachKeyPair(attach_key_pair::AttachKeyPair): Writes,
    DetachKeyPair(attach_key_pair::DetachKeyPair): Writes,
    BatchGetAcpConnectionTicket(batch_get_acp_connection_ticket::BatchGetAcpConnectionTicket): Writes,
    DisconnectAndroidInstance(disconnect_android_instance::DisconnectAndroidInstance): Writes,
    DescribeStreamSessions(describe_stream_sessions::DescribeStreamSessions): Reads,
    UpgradeAndroidInstanceGroup(upgrade_group::UpgradeAndroidInstanceGroup): TasksNoDryRun,
    DowngradeAndroidInstanceGroup(downgrade_group::DowngradeAndroidInstanceGroup): Writes,
    DescribeSpec(describe_spec::DescribeSpec): Reads,
}

/// Whether action `name` only reads (changes nothing, starts no task): the server may work out
/// its answer while the call's nonce is being recorded.
pub fn reads_only(name: &str) -> bool {
    kind(name) == Some(Kind::Reads)
}

/// Whether action `name` creates tasks (batches, or a group's instances): the calls
/// `ClientToken` makes idempotent.
pub fn produces_tasks(name: &str) -> bool {
    matches!(kind(name), Some(Kind::Tasks | Kind::TasksNoDryRun))
}

/// Whether action `name` honours `DryRun` (reports and creates nothing); any other action
/// refuses it rather than do what it was asked not to.
pub fn dry_runs(name: &str) -> bool {
    kind(name) == Some(Kind::Tasks)
}

/// `name` if it is an action of [`NAMES`], else `"unknown"`.
pub fn label(name: &str) -> &'static str {
    NAMES
        .iter()
        .find(|n| **n == name)
        .copied()
        .unwrap_or("unknown")
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

    /// The kinds are those the server had listed by hand before the table.
    #[test]
    fn kinds_are_the_listed_ones() {
        let reads = [
            "DescribeRegions",
            "DescribeImageList",
            "DescribeAndroidInstanceGroups",
            "DescribeAndroidInstances",
            "DescribeTasks",
            "DescribeInvocations",
            "DescribeApps",
            "DescribeBackupFiles",
            "DescribeWebhooks",
            "DescribeWebhookDeliveries",
            "ListInstanceAdbAttributes",
            "DescribeKeyPairs",
            "DescribeStreamSessions",
            "DescribeSpec",
        ];
        let tasks = [
            "CreateAndroidInstanceGroup",
            "StartAndroidInstance",
            "StopAndroidInstance",
            "RebootAndroidInstancesInGroup",
            "ResetAndroidInstancesInGroup",
            "RunCommand",
            "SendFile",
            "FetchFile",
            "InstallApp",
            "UninstallApp",
            "OperateApp",
            "CreateScreenshot",
            "UpdateInstanceGroupImage",
            "BackupFile",
            "RecoveryFile",
            "RetryTasks",
            "UpgradeAndroidInstanceGroup",
        ];
        for name in NAMES.iter().copied().chain(["DescribeNothing"]) {
            assert_eq!(reads_only(name), reads.contains(&name), "{name}");
            assert_eq!(produces_tasks(name), tasks.contains(&name), "{name}");
            assert_eq!(
                dry_runs(name),
                tasks.contains(&name)
                    && !matches!(
                        name,
                        "CreateAndroidInstanceGroup" | "UpgradeAndroidInstanceGroup"
                    ),
                "{name}"
            );
        }
    }
}
