//! The fleet page's batch actions, `POST /console/actions`:
//! `{"op": "reboot", "instances": [...], "app_id": ..., "command": ..., "client_token": ...}`.
//! Each `op` is one API action with the instances under the parameter that action names them
//! by (a fixed table, [`request`]), carried out as the signed-in key ([`crate::post`]), so the
//! batch is the same as the SDK's, with its tasks, isolation and audit. The answer is the API's
//! body with the batch it made (`TaskId`) and that batch's `InvokeId`, which the page follows
//! live (`/console/tasks/{id}?part=progress`, refreshed by the watch stream).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use cloudphone_api::AppState;
use cloudphone_core::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::post::{Acting, Caller, api_failure, json_reply};

/// The most phones one RunCommand names.
const MAX_COMMAND_INSTANCES: usize = 50;
/// The most phones one action of the page names (the API's own cap for the others).
const MAX_INSTANCES: usize = 100;

#[derive(Deserialize, Debug, Default)]
pub struct Ask {
    op: String,
    #[serde(default)]
    instances: Vec<String>,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    command: Option<String>,
    /// Sent again with a retried click, so one batch is made whatever the retries.
    #[serde(default)]
    client_token: Option<String>,
}

/// An API action and its parameters.
pub type Call = (&'static str, Vec<(String, String)>);

/// The API action and its parameters for `ask`.
pub fn request(ask: &Ask) -> Result<Call, ApiError> {
    let listed = |name: &str| -> Vec<(String, String)> {
        ask.instances
            .iter()
            .enumerate()
            .map(|(i, id)| (format!("{name}.{}", i + 1), id.clone()))
            .collect()
    };
    if ask.instances.is_empty() {
        return Err(ApiError::missing("instances"));
    }
    let cap = if ask.op == "command" {
        MAX_COMMAND_INSTANCES
    } else {
        MAX_INSTANCES
    };
    if ask.instances.len() > cap {
        return Err(ApiError::invalid(
            "instances",
            format!("At most {cap} phones at once for {}.", ask.op),
        ));
    }
    let (action, mut params) = match ask.op.as_str() {
        "start" => ("StartAndroidInstance", listed("AndroidInstanceIds")),
        "stop" => ("StopAndroidInstance", listed("AndroidInstanceIds")),
        "reboot" => (
            "RebootAndroidInstancesInGroup",
            listed("AndroidInstanceIds"),
        ),
        "reset" => ("ResetAndroidInstancesInGroup", listed("AndroidInstanceIds")),
        "screenshot" => ("CreateScreenshot", listed("AndroidInstanceIdList")),
        "install" => {
            let app = ask
                .app_id
                .clone()
                .filter(|a| !a.trim().is_empty())
                .ok_or_else(|| ApiError::missing("app_id"))?;
            let mut p = listed("InstanceIdList");
            p.push(("AppIdList.1".into(), app));
            ("InstallApp", p)
        }
        "command" => {
            let command = ask
                .command
                .clone()
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(|| ApiError::missing("command"))?;
            let mut p = listed("InstanceIds");
            p.push(("CommandContent".into(), command));
            ("RunCommand", p)
        }
        other => {
            return Err(ApiError::invalid(
                "op",
                format!(
                    "'{other}' is not start, stop, reboot, reset, screenshot, install or command."
                ),
            ));
        }
    };
    if let Some(token) = ask.client_token.clone().filter(|t| !t.is_empty()) {
        params.push(("ClientToken".into(), token));
    }
    Ok((action, params))
}

/// The batch an action's answer made, as far as the answer names it.
fn batch_named(body: &Value) -> Option<String> {
    [&body["TaskId"], &body["Tasks"]["ParentTaskId"]]
        .into_iter()
        .find_map(|v| v.as_str().filter(|s| !s.is_empty()).map(String::from))
}

/// The batch an action made and its InvokeId: from the answer, from the parent of the child it
/// names, or by the call's RequestId (StartAndroidInstance answers nothing but that).
async fn describe(
    state: &AppState,
    caller: &Caller,
    params: Vec<(&'static str, String)>,
) -> Result<Value, ApiError> {
    caller.read(state, "DescribeTasks", params).await
}

async fn find_batch(
    state: &AppState,
    caller: &Caller,
    body: &Value,
) -> Result<Option<(String, String)>, ApiError> {
    let found = if let Some(batch) = batch_named(body) {
        describe(state, caller, vec![("TaskIds.1", batch)]).await?
    } else if let Some(child) = crate::phone::first_child(body) {
        let child = describe(state, caller, vec![("TaskIds.1", child)]).await?;
        match child["Data"][0]["ParentTaskId"].as_str() {
            Some(parent) => {
                describe(state, caller, vec![("TaskIds.1", parent.to_string())]).await?
            }
            None => return Ok(None),
        }
    } else if let Some(request) = body["RequestId"].as_str() {
        describe(
            state,
            caller,
            vec![("InvokeId", request.to_string()), ("Level", "1".into())],
        )
        .await?
    } else {
        return Ok(None);
    };
    let task = &found["Data"][0];
    Ok(task["TaskId"].as_str().map(|id| {
        (
            id.to_string(),
            task["InvokeId"].as_str().unwrap_or_default().to_string(),
        )
    }))
}

/// `POST /console/actions`.
pub async fn act(State(state): State<Arc<AppState>>, Acting(caller, ask): Acting<Ask>) -> Response {
    let (action, params) = match request(&ask) {
        Ok(r) => r,
        Err(e) => return api_failure(&e),
    };
    let params: Vec<(&str, String)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let body = match caller.act(&state, action, params).await {
        Ok(b) => b,
        Err(e) => return api_failure(&e),
    };
    // The batch exists whatever this read says; without it the page links the task center.
    let batch = find_batch(&state, &caller, &body).await.ok().flatten();
    let (task_id, invoke_id) = batch.unzip();
    json_reply(
        StatusCode::OK,
        &json!({
            "Action": action,
            "TaskId": task_id,
            "InvokeId": invoke_id,
            "RequestId": body["RequestId"],
            "Result": body,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(op: &str, n: usize) -> Ask {
        Ask {
            op: op.into(),
            instances: (1..=n).map(|i| format!("acp-{i}")).collect(),
            ..Ask::default()
        }
    }

    fn names(params: &[(String, String)]) -> Vec<&str> {
        params.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn each_op_is_its_api_action_with_the_phones_named_its_way() {
        let cases = [
            ("start", "StartAndroidInstance", "AndroidInstanceIds.2"),
            ("stop", "StopAndroidInstance", "AndroidInstanceIds.2"),
            (
                "reboot",
                "RebootAndroidInstancesInGroup",
                "AndroidInstanceIds.2",
            ),
            (
                "reset",
                "ResetAndroidInstancesInGroup",
                "AndroidInstanceIds.2",
            ),
            ("screenshot", "CreateScreenshot", "AndroidInstanceIdList.2"),
        ];
        for (op, action, second) in cases {
            let (a, p) = request(&ask(op, 2)).unwrap();
            assert_eq!((a, names(&p)[1]), (action, second), "{op}");
            assert_eq!(p[1].1, "acp-2");
        }
        let mut install = ask("install", 1);
        assert!(request(&install).is_err(), "install needs an app");
        install.app_id = Some("12".into());
        let (a, p) = request(&install).unwrap();
        assert_eq!(
            (a, names(&p)),
            ("InstallApp", vec!["InstanceIdList.1", "AppIdList.1"])
        );
        let mut command = ask("command", 1);
        command.command = Some("getprop".into());
        command.client_token = Some("tok".into());
        let (a, p) = request(&command).unwrap();
        assert_eq!(
            (a, names(&p)),
            (
                "RunCommand",
                vec!["InstanceIds.1", "CommandContent", "ClientToken"]
            )
        );
    }

    #[test]
    fn no_phones_too_many_or_an_unknown_op_is_refused() {
        assert!(request(&ask("reboot", 0)).is_err());
        assert!(request(&ask("reboot", 101)).is_err());
        assert!(request(&ask("reboot", 100)).is_ok());
        let mut command = ask("command", 51);
        command.command = Some("id".into());
        assert!(request(&command).is_err(), "RunCommand takes 50 at most");
        let e = request(&ask("format", 1)).unwrap_err();
        assert_eq!(e.code(), "InvalidParameter.op");
    }

    #[test]
    fn the_batch_is_read_from_either_answer_shape() {
        assert_eq!(
            batch_named(&json!({"TaskId": "t-1"})).as_deref(),
            Some("t-1")
        );
        assert_eq!(
            batch_named(&json!({"Tasks": {"ParentTaskId": "t-2", "ChildTasks": []}})).as_deref(),
            Some("t-2")
        );
        assert_eq!(batch_named(&json!({"Tasks": [{"TaskId": "c"}]})), None);
        assert_eq!(batch_named(&json!({})), None);
    }
}
