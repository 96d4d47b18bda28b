//! Maps a claimed task onto the backend method that carries it out, and the backend's answer onto
//! the task's outcome.

use cloudphone_core::TaskType;
use cloudphone_store::{Claim, Outcome};
use serde_json::Value;

use crate::backend::{AppOp, Backend, InstanceRef};
use crate::backup;
use crate::command::{self, CommandTask};
use crate::services::Services;
use crate::transfer::{self, TransferTask};

/// Who the task runs for and which attempt this is; file and command tasks need them.
pub struct Run<'a> {
    pub claim: &'a Claim,
    pub account_id: &'a str,
}

fn package(param: &Value) -> &str {
    param
        .get("PackageName")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Runs one claimed task on `phone`.
pub async fn execute(
    backend: &dyn Backend,
    services: &Services,
    run: Run<'_>,
    phone: &InstanceRef,
) -> Outcome {
    let param: Value = serde_json::from_str(&run.claim.param).unwrap_or(Value::Null);
    let flag = |name: &str| param.get(name).and_then(Value::as_bool).unwrap_or(false);
    let transfer = || TransferTask {
        task_id: &run.claim.task_id,
        attempt: run.claim.attempt,
        account_id: run.account_id,
        param: &param,
    };
    let done = match run.claim.task_type {
        TaskType::CreateInstance => backend.create(phone).await,
        TaskType::DeleteInstance => backend.delete(phone).await,
        TaskType::StartInstance => backend.start(phone).await,
        TaskType::StopInstance => backend.stop(phone, flag("ForceStop")).await,
        TaskType::RebootInstance => backend.reboot(phone, flag("ForceStop")).await,
        TaskType::ResetInstance => backend.reset(phone, &phone.image_id).await,
        TaskType::UpdateGroupImage => {
            let image = param
                .get("ImageId")
                .and_then(Value::as_str)
                .unwrap_or(&phone.image_id);
            backend.reset(phone, image).await
        }
        TaskType::RunCommand => {
            let task = CommandTask {
                account_id: run.account_id,
                task_id: &run.claim.task_id,
                param: &param,
            };
            return command::run(backend, services, task, phone).await;
        }
        TaskType::SendFile => return transfer::send(backend, services, transfer(), phone).await,
        TaskType::FetchFile => return transfer::fetch(backend, services, transfer(), phone).await,
        TaskType::Screenshot => {
            return transfer::screenshot(backend, services, transfer(), phone).await;
        }
        TaskType::BackupFile => return backup::backup(backend, services, transfer(), phone).await,
        TaskType::RecoverFile => {
            return backup::recover(backend, services, transfer(), phone).await;
        }
        TaskType::InstallApp => {
            return transfer::install_app(backend, services, transfer(), phone).await;
        }
        TaskType::UninstallApp => backend.uninstall_app(phone, package(&param)).await,
        TaskType::StartApp => {
            backend
                .operate_app(phone, package(&param), AppOp::Start)
                .await
        }
        TaskType::StopApp => {
            backend
                .operate_app(phone, package(&param), AppOp::Stop)
                .await
        }
        TaskType::RestartApp => {
            backend
                .operate_app(phone, package(&param), AppOp::Restart)
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
