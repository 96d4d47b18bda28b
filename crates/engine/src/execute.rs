//! Maps a claimed task onto the backend method that carries it out, and the backend's answer onto
//! the task's outcome. Moves between hosts, and resets and deletes of phones whose host is
//! gone, also need the store ([`crate::migrate`], [`crate::gone`]).

use cloudphone_core::TaskErrorCode;
use cloudphone_core::task_params::TaskParam;
use cloudphone_store::{Claim, Outcome, Store};
use tracing::warn;

use crate::backup;
use crate::command::{self, CommandTask};
use crate::cut::Cut;
use crate::gone;
use crate::migrate;
use crate::services::Services;
use crate::transfer::{self, TransferTask};
use cloudphone_backend::{AppOp, Backend, InstanceRef};

/// Who the task runs for and which attempt this is; file and command tasks need them.
pub struct Run<'a> {
    pub claim: &'a Claim,
    pub account_id: &'a str,
    /// Where CancelTasks stops the attempt (interruptible types only, docs/design.md §5.7).
    pub cut: &'a Cut,
    /// Moves commit and give up through it; relocations place through it.
    pub store: &'a dyn Store,
}

/// Runs one claimed task on `phone`. A `Param` that is not its type's fails the task with
/// `InvalidTaskParameters` before the phone is touched.
pub async fn execute(
    backend: &dyn Backend,
    services: &Services,
    run: Run<'_>,
    phone: &InstanceRef,
) -> Outcome {
    let param = match TaskParam::parse(run.claim.task_type, &run.claim.param) {
        Ok(p) => p,
        Err(e) => {
            warn!(task_id = %run.claim.task_id, error = %e, "the task's Param does not parse");
            return Outcome::Failed {
                code: TaskErrorCode::InvalidTaskParameters,
                message: e.to_string(),
            };
        }
    };
    let transfer = TransferTask {
        task_id: &run.claim.task_id,
        attempt: run.claim.attempt,
        account_id: run.account_id,
        cut: run.cut,
    };
    let done = match &param {
        TaskParam::CreateInstance(_) => backend.create(phone).await,
        TaskParam::DeleteInstance(_) => gone::delete(backend, run.store, run.claim, phone).await,
        TaskParam::MigrateInstance(p) => match &run.claim.phone {
            Some(claimed) => {
                migrate::migrate(backend, run.store, run.claim, claimed, phone, p).await
            }
            None => Err(cloudphone_backend::BackendError::new(
                TaskErrorCode::InstanceUnreachable,
                "The instance no longer exists.",
            )),
        },
        TaskParam::StartInstance(_) => backend.start(phone).await,
        TaskParam::StopInstance(p) => backend.stop(phone, p.force_stop.unwrap_or(false)).await,
        TaskParam::RebootInstance(p) => backend.reboot(phone, p.force_stop.unwrap_or(false)).await,
        TaskParam::ResetInstance(_) => {
            gone::reset(backend, run.store, run.claim, phone, &phone.image_id).await
        }
        TaskParam::UpdateGroupImage(p) => {
            gone::reset(backend, run.store, run.claim, phone, &p.image_id).await
        }
        TaskParam::RunCommand(p) => {
            let task = CommandTask {
                account_id: run.account_id,
                task_id: &run.claim.task_id,
                param: p,
                cut: run.cut,
            };
            return command::run(backend, services, task, phone).await;
        }
        TaskParam::SendFile(p) => {
            return transfer::send(backend, services, transfer, p, phone).await;
        }
        TaskParam::FetchFile(p) => {
            return transfer::fetch(backend, services, transfer, p, phone).await;
        }
        TaskParam::Screenshot(p) => {
            return transfer::screenshot(backend, services, transfer, p, phone).await;
        }
        TaskParam::BackupFile(p) => {
            return backup::backup(backend, services, transfer, p, phone).await;
        }
        TaskParam::RecoverFile(p) => {
            return backup::recover(backend, services, transfer, p, phone).await;
        }
        TaskParam::InstallApp(p) => {
            return transfer::install_app(backend, services, transfer, p, phone).await;
        }
        TaskParam::UninstallApp(p) => backend.uninstall_app(phone, &p.package_name).await,
        TaskParam::StartApp(p) => {
            backend
                .operate_app(phone, &p.package_name, AppOp::Start)
                .await
        }
        TaskParam::StopApp(p) => {
            backend
                .operate_app(phone, &p.package_name, AppOp::Stop)
                .await
        }
        TaskParam::RestartApp(p) => {
            backend
                .operate_app(phone, &p.package_name, AppOp::Restart)
                .await
        }
    };
    match done {
        Ok(()) => Outcome::Finished {
            result: r#"{"Success":true}"#.into(),
        },
        Err(e) => Outcome::Failed {
            code: e.code,
            message: e.message,
        },
    }
}
