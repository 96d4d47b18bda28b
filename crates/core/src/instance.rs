//! Instance statuses and the precondition table of docs/design.md §4: which task may start from which
//! status, what the instance shows while it runs, and where it ends up.

use crate::TaskErrorCode;
use crate::task::{TaskType, wire_enum};

wire_enum! {
    /// The status of a cloud phone instance, as the vendor spells it.
    InstanceStatus {
        Creating = "CREATING",
        Running = "RUNNING",
        Starting = "STARTING",
        Stopping = "STOPPING",
        Stopped = "STOPPED",
        Rebooting = "REBOOTING",
        Resetting = "RESETTING",
        Backuping = "BACKUPING",
        BackupFailed = "BACKUP_FAILED",
        Recovering = "RECOVERING",
        RecoverFailed = "RECOVER_FAILED",
        Deleting = "DELETING",
        Deleted = "DELETED",
        Failed = "FAILED",
        Unavailable = "UNAVAILABLE",
    }
}

/// What a task does when it starts on an instance in a given status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Run the operation; the instance shows `during` meanwhile.
    Run { during: InstanceStatus },
    /// Nothing to do: the instance is already where the task would take it.
    Skip,
    /// The precondition does not hold: fail with `IncorrectInstanceStatus`, change nothing.
    Reject,
}

use InstanceStatus as S;

/// The plan for `task` on an instance now in `current`.
pub fn plan(task: TaskType, current: InstanceStatus) -> Plan {
    let run = |during| Plan::Run { during };
    let resettable = matches!(
        current,
        S::Running | S::Stopped | S::Unavailable | S::BackupFailed | S::RecoverFailed
    );
    match task {
        TaskType::StartInstance => match current {
            S::Running => Plan::Skip,
            S::Stopped | S::BackupFailed | S::RecoverFailed => run(S::Starting),
            _ => Plan::Reject,
        },
        TaskType::StopInstance => match current {
            S::Stopped => Plan::Skip,
            S::Running | S::Unavailable => run(S::Stopping),
            _ => Plan::Reject,
        },
        TaskType::RebootInstance => match current {
            S::Running | S::Unavailable | S::BackupFailed | S::RecoverFailed => run(S::Rebooting),
            _ => Plan::Reject,
        },
        TaskType::ResetInstance | TaskType::UpdateGroupImage if resettable => run(S::Resetting),
        TaskType::ResetInstance | TaskType::UpdateGroupImage => Plan::Reject,
        TaskType::BackupFile if current == S::Running => run(S::Backuping),
        TaskType::RecoverFile if current == S::Running => run(S::Recovering),
        TaskType::BackupFile | TaskType::RecoverFile => Plan::Reject,
        TaskType::CreateInstance if current == S::Creating => run(S::Creating),
        TaskType::CreateInstance => Plan::Skip,
        TaskType::DeleteInstance if current == S::Deleted => Plan::Skip,
        TaskType::DeleteInstance => run(S::Deleting),
        // A move looks like a reboot to the tenant; a phone in the middle of something else
        // waits for the drain to be asked again.
        TaskType::MigrateInstance if resettable => run(S::Rebooting),
        TaskType::MigrateInstance => Plan::Reject,
        // App, file, command and screenshot tasks need a running phone and leave its status alone.
        _ if current == S::Running => run(S::Running),
        _ => Plan::Reject,
    }
}

/// Whether `task` moves its instance's status at all. App, file, command and screenshot tasks
/// leave it alone, so that their end never overwrites what happened to the phone meanwhile (a
/// watcher that saw it die and marked it UNAVAILABLE).
pub fn moves_status(task: TaskType) -> bool {
    matches!(
        task,
        TaskType::StartInstance
            | TaskType::StopInstance
            | TaskType::RebootInstance
            | TaskType::ResetInstance
            | TaskType::UpdateGroupImage
            | TaskType::BackupFile
            | TaskType::RecoverFile
            | TaskType::CreateInstance
            | TaskType::DeleteInstance
            | TaskType::MigrateInstance
    )
}

/// The instance status after `task` succeeded.
pub fn after_success(task: TaskType, previous: InstanceStatus) -> InstanceStatus {
    match task {
        TaskType::StopInstance => S::Stopped,
        TaskType::DeleteInstance => S::Deleted,
        // A stopped phone is moved stopped; any other comes back running on its new host.
        TaskType::MigrateInstance if previous == S::Stopped => S::Stopped,
        TaskType::MigrateInstance => S::Running,
        TaskType::StartInstance
        | TaskType::RebootInstance
        | TaskType::ResetInstance
        | TaskType::UpdateGroupImage
        | TaskType::BackupFile
        | TaskType::RecoverFile
        | TaskType::CreateInstance => S::Running,
        _ => previous,
    }
}

/// The instance status after `task` ended failed with `code`: as [`after_failure`], except that
/// an operation the backend cannot do at all (`UnsupportedOperation`) or whose parameters do not
/// parse (`InvalidTaskParameters`) never touched the phone, which keeps the status it had.
pub fn after_failed(
    task: TaskType,
    previous: InstanceStatus,
    code: TaskErrorCode,
) -> InstanceStatus {
    if matches!(
        code,
        TaskErrorCode::UnsupportedOperation | TaskErrorCode::InvalidTaskParameters
    ) {
        previous
    } else {
        after_failure(task, previous)
    }
}

/// The instance status after `task` started and then failed.
pub fn after_failure(task: TaskType, previous: InstanceStatus) -> InstanceStatus {
    match task {
        TaskType::RebootInstance
        | TaskType::ResetInstance
        | TaskType::UpdateGroupImage
        | TaskType::MigrateInstance => S::Unavailable,
        TaskType::BackupFile => S::BackupFailed,
        TaskType::RecoverFile => S::RecoverFailed,
        TaskType::CreateInstance | TaskType::DeleteInstance => S::Failed,
        _ => previous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_preconditions() {
        assert_eq!(plan(TaskType::StartInstance, S::Running), Plan::Skip);
        assert_eq!(
            plan(TaskType::StartInstance, S::Stopped),
            Plan::Run {
                during: S::Starting
            }
        );
        assert_eq!(plan(TaskType::StartInstance, S::Rebooting), Plan::Reject);
        assert_eq!(plan(TaskType::StopInstance, S::Stopped), Plan::Skip);
        assert_eq!(plan(TaskType::RebootInstance, S::Stopped), Plan::Reject);
        assert_eq!(
            plan(TaskType::ResetInstance, S::Stopped),
            Plan::Run {
                during: S::Resetting
            }
        );
        assert_eq!(plan(TaskType::ResetInstance, S::Creating), Plan::Reject);
        assert_eq!(plan(TaskType::InstallApp, S::Stopped), Plan::Reject);
        assert_eq!(
            plan(TaskType::RunCommand, S::Running),
            Plan::Run { during: S::Running }
        );
    }

    #[test]
    fn outcomes() {
        assert_eq!(
            after_success(TaskType::StopInstance, S::Running),
            S::Stopped
        );
        assert_eq!(
            after_failure(TaskType::StopInstance, S::Running),
            S::Running
        );
        assert_eq!(
            after_failure(TaskType::RebootInstance, S::Running),
            S::Unavailable
        );
        assert_eq!(
            after_failure(TaskType::BackupFile, S::Running),
            S::BackupFailed
        );
        assert_eq!(after_success(TaskType::InstallApp, S::Running), S::Running);
    }

    #[test]
    fn an_unsupported_operation_leaves_the_status() {
        let unsupported = TaskErrorCode::UnsupportedOperation;
        assert_eq!(
            after_failed(TaskType::ResetInstance, S::Running, unsupported),
            S::Running
        );
        assert_eq!(
            after_failed(
                TaskType::ResetInstance,
                S::Running,
                TaskErrorCode::OperationFailed
            ),
            S::Unavailable
        );
    }

    /// The internal CreateInstance task runs only on a phone still being created; on a phone in
    /// any other status it is skipped, so that a phone is never created over one that exists.
    #[test]
    fn a_create_task_runs_only_on_a_creating_phone() {
        assert_eq!(
            plan(TaskType::CreateInstance, S::Creating),
            Plan::Run {
                during: S::Creating
            }
        );
        for &current in InstanceStatus::ALL {
            if current != S::Creating {
                assert_eq!(
                    plan(TaskType::CreateInstance, current),
                    Plan::Skip,
                    "{current}"
                );
            }
        }
    }

    /// The internal DeleteInstance task deletes a phone in any status, even one that is
    /// failed, half-created or busy, and skips one already deleted.
    #[test]
    fn a_delete_task_runs_on_any_phone_not_yet_deleted() {
        assert_eq!(plan(TaskType::DeleteInstance, S::Deleted), Plan::Skip);
        for &current in InstanceStatus::ALL {
            if current != S::Deleted {
                assert_eq!(
                    plan(TaskType::DeleteInstance, current),
                    Plan::Run {
                        during: S::Deleting
                    },
                    "{current}"
                );
            }
        }
    }

    #[test]
    fn a_created_phone_runs_and_a_deleted_one_is_deleted() {
        assert_eq!(
            after_success(TaskType::CreateInstance, S::Creating),
            S::Running
        );
        assert_eq!(
            after_success(TaskType::DeleteInstance, S::Running),
            S::Deleted
        );
        assert_eq!(
            after_success(TaskType::DeleteInstance, S::Failed),
            S::Deleted
        );
    }

    /// A phone whose creation or deletion failed shows FAILED (whatever the backend said),
    /// not the CREATING or DELETING it had while the task ran.
    #[test]
    fn a_failed_create_or_delete_shows_failed() {
        for task in [TaskType::CreateInstance, TaskType::DeleteInstance] {
            for previous in [S::Creating, S::Running, S::Stopped] {
                assert_eq!(after_failure(task, previous), S::Failed, "{task}");
                assert_eq!(
                    after_failed(task, previous, TaskErrorCode::InternalError),
                    S::Failed,
                    "{task}"
                );
            }
        }
    }

    /// docs/design.md §4's MigrateInstance row: from the statuses a reset runs from, REBOOTING
    /// meanwhile, back STOPPED or RUNNING as it was, UNAVAILABLE when the move broke.
    #[test]
    fn a_move_looks_like_a_reboot_and_keeps_a_stopped_phone_stopped() {
        let t = TaskType::MigrateInstance;
        for &current in InstanceStatus::ALL {
            let movable = matches!(
                current,
                S::Running | S::Stopped | S::Unavailable | S::BackupFailed | S::RecoverFailed
            );
            let want = if movable {
                Plan::Run {
                    during: S::Rebooting,
                }
            } else {
                Plan::Reject
            };
            assert_eq!(plan(t, current), want, "{current}");
        }
        assert_eq!(after_success(t, S::Stopped), S::Stopped);
        assert_eq!(after_success(t, S::Running), S::Running);
        assert_eq!(after_success(t, S::Unavailable), S::Running);
        assert_eq!(after_failure(t, S::Stopped), S::Unavailable);
        assert_eq!(
            after_failed(t, S::Stopped, TaskErrorCode::UnsupportedOperation),
            S::Stopped
        );
        assert!(moves_status(t) && !t.is_public() && t.is_idempotent());
        assert!(!t.is_interruptible());
    }

    #[test]
    fn only_lifecycle_backup_and_provisioning_tasks_move_the_status() {
        for t in TaskType::ALL {
            let moves = moves_status(*t);
            let changes = after_success(*t, S::Unavailable) != S::Unavailable
                || after_failure(*t, S::Unavailable) != S::Unavailable;
            assert_eq!(moves, changes, "{t}");
        }
    }
}
