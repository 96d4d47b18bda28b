//! Maps a claimed task onto the backend method that carries it out, and the backend's answer onto
//! the task's outcome.

use crate::backend::{Backend, InstanceRef};
use cloudphone_core::{TaskErrorCode, TaskType};
use cloudphone_store::Outcome;
use serde_json::Value;

/// Runs one claimed task of `task_type` with its stored `param` on `phone`.
pub async fn execute(
    backend: &dyn Backend,
    task_type: TaskType,
    param: &str,
    phone: &InstanceRef,
) -> Outcome {
    let param: Value = serde_json::from_str(param).unwrap_or(Value::Null);
    let flag = |name: &str| param.get(name).and_then(Value::as_bool).unwrap_or(false);
    let done = match task_type {
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
        other => {
            return Outcome::Failed {
                code: TaskErrorCode::InternalError,
                message: format!("{other} is not supported by this server yet."),
            };
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
