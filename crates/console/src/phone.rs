//! A phone's page, `/console/phones/{id}`: its live screen (drawn by `static/phone.js` from the
//! stream server's WebSocket, with a ticket the page asks for at
//! `POST /console/phones/{id}/ticket`), and beside it the phone's status, who views it, its
//! recent tasks and sessions (the part refreshed live). The page's actions on this one phone go
//! through the API's own actions as the signed-in key ([`crate::post`]): a command
//! (RunCommand), a file fetched (FetchFile), a screenshot (CreateScreenshot); drops are in
//! [`crate::uploads`]. Each answers the child task to follow, which the page reads back with
//! `/console/tasks/{id}?part=json` until it ends.
//!
//! `/console/view/{id}` is the same screen without the console: no login, no side panel, no
//! actions; the ticket in the URL's fragment (`#t=...`, never sent to the server with the page)
//! is all it has, and the stream server checks it.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use cloudphone_api::AppState;
use cloudphone_core::ApiError;
use cloudphone_core::resources::{AccessKey, default_bucket};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::signed_in;
use crate::pages::{MissingPage, REFRESH_MS, call, page, shown, status_of, who};
use crate::post::{Acting, api_failure, failure, json_reply};
use crate::view::{PhoneView, SessionRow, TaskRow};

/// Tasks the side panel lists.
const RECENT_TASKS: &str = "20";
/// Sessions the side panel reads (the live ones first, then the history).
const RECENT_SESSIONS: &str = "20";
/// Ended sessions the side panel shows.
const HISTORY: usize = 8;
/// Where a file fetched from a phone is put, in the caller's bucket.
const FETCH_FOLDER: &str = "console-fetch";

#[derive(Template, WebTemplate)]
#[template(path = "phone.html")]
pub struct PhonePage {
    section: &'static str,
    who: String,
    refresh_ms: u64,
    error: Option<String>,
    mode: &'static str,
    phone: PhoneView,
    viewers: Vec<SessionRow>,
    history: Vec<SessionRow>,
    tasks: Vec<TaskRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "viewer.html")]
pub struct ViewerPage {
    mode: &'static str,
    phone: PhoneView,
}

/// An instance id as the API makes them (`acp-...`): anything else is no phone of anybody's.
fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub async fn page_of(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let key = match signed_in(&state, &headers, &uri.to_string()).await {
        Ok(session) => session.key,
        Err(to_login) => return to_login,
    };
    let missing = |status: StatusCode, message: String| {
        page(
            status,
            MissingPage {
                section: "fleet",
                who: who(&key),
                message,
            },
        )
    };
    let not_found = || {
        missing(
            StatusCode::NOT_FOUND,
            format!("InvalidInstanceId.NotFound: no phone {id} in your account."),
        )
    };
    if !plausible_id(&id) {
        return not_found();
    }
    let found = call(
        &state,
        &key,
        "DescribeAndroidInstances",
        vec![("AndroidInstanceIds.1", id.clone())],
    )
    .await;
    let phone = match found {
        Ok(body) => match body["InstanceModel"].as_array().and_then(|m| {
            m.iter()
                .find(|i| i["AndroidInstanceId"].as_str() == Some(id.as_str()))
        }) {
            // Another account's phone is as absent as one that never existed.
            Some(model) => PhoneView::of(model),
            None => return not_found(),
        },
        Err(e) => return missing(status_of(&e), shown(&e)),
    };
    let mut view = PhonePage {
        section: "fleet",
        who: who(&key),
        refresh_ms: REFRESH_MS,
        error: None,
        mode: "console",
        phone,
        viewers: Vec::new(),
        history: Vec::new(),
        tasks: Vec::new(),
    };
    let loaded: Result<(), ApiError> = async {
        let sessions = call(
            &state,
            &key,
            "DescribeStreamSessions",
            vec![
                ("InstanceIds.1", id.clone()),
                ("MaxResults", RECENT_SESSIONS.into()),
            ],
        )
        .await?;
        let (live, ended): (Vec<SessionRow>, Vec<SessionRow>) = sessions["Sessions"]
            .as_array()
            .map(|s| s.iter().map(SessionRow::of).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .partition(SessionRow::live);
        view.viewers = live;
        view.history = ended.into_iter().take(HISTORY).collect();
        let tasks = call(
            &state,
            &key,
            "DescribeTasks",
            vec![
                ("InstanceId", id.clone()),
                ("MaxResults", RECENT_TASKS.into()),
            ],
        )
        .await?;
        view.tasks = tasks["Data"]
            .as_array()
            .map(|ts| ts.iter().map(TaskRow::of).collect())
            .unwrap_or_default();
        Ok(())
    }
    .await;
    if let Err(e) = loaded {
        view.error = Some(shown(&e));
    }
    page(StatusCode::OK, view)
}

/// `/console/view/{id}`: the screen alone, for the holder of a ticket. The page itself holds
/// nothing of the account: it shows the id it was asked for and what the stream sends.
pub async fn viewer(Path(id): Path<String>) -> Response {
    if !plausible_id(&id) {
        return failure(StatusCode::NOT_FOUND, "NotFound", "No such phone.");
    }
    page(
        StatusCode::OK,
        ViewerPage {
            mode: "ticket",
            phone: PhoneView {
                id,
                ..PhoneView::default()
            },
        },
    )
}

/// The `EndUserId` of the console's sessions: `console:` and the signed-in user's name, in the
/// characters the API allows (so DisconnectAndroidInstance can end one user's console views).
pub fn end_user(key: &AccessKey) -> String {
    let name = if key.user_name.is_empty() {
        &key.key_id
    } else {
        &key.user_name
    };
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@._:-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(56)
        .collect();
    format!("console:{name}")
}

/// `POST /console/phones/{id}/ticket`: a ticket for the page's stream (BatchGetAcpConnectionTicket
/// as the signed-in key), and the ticket-only viewer's path with it.
pub async fn ticket(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Acting(caller, _): Acting<Value>,
) -> Response {
    let params = vec![
        ("InstanceIds.1", id.clone()),
        ("EndUserId", end_user(&caller.key)),
    ];
    match caller
        .act(&state, "BatchGetAcpConnectionTicket", params)
        .await
    {
        Ok(body) => {
            let model = &body["InstanceConnectionModels"][0];
            match model["Ticket"].as_str() {
                Some(t) => json_reply(
                    StatusCode::OK,
                    &json!({
                        "InstanceId": id,
                        "Ticket": t,
                        "ViewPath": format!("/console/view/{id}#t={t}"),
                    }),
                ),
                None => failure(
                    StatusCode::CONFLICT,
                    model["ErrorCode"].as_str().unwrap_or("TicketUnavailable"),
                    "The phone is not running: start it to see its screen.",
                ),
            }
        }
        Err(e) => api_failure(&e),
    }
}

/// The first child task an action's answer names (the one phone's task).
pub fn first_child(body: &Value) -> Option<String> {
    [
        &body["RunCommandInfos"][0]["ChildTaskId"],
        &body["ChildTaskInfo"][0]["ChildTaskId"],
        &body["Data"][0]["TaskId"],
        &body["Tasks"][0]["TaskId"],
        &body["Tasks"]["ChildTasks"][0]["TaskId"],
    ]
    .into_iter()
    .find_map(|v| v.as_str().map(String::from))
}

/// The answer of an action on the page's phone: the child task to follow, and the batch.
fn task_reply(body: &Value) -> Response {
    json_reply(
        StatusCode::OK,
        &json!({
            "TaskId": first_child(body),
            "BatchId": body["TaskId"].as_str(),
            "RequestId": body["RequestId"],
        }),
    )
}

#[derive(Deserialize)]
pub struct CommandAsk {
    command: String,
    /// Seconds; the API's default when absent.
    #[serde(default)]
    timeout: Option<u32>,
}

/// `POST /console/phones/{id}/command` `{"command": "..."}`: RunCommand on this phone.
pub async fn command(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Acting(caller, ask): Acting<CommandAsk>,
) -> Response {
    let mut params = vec![("InstanceIds.1", id), ("CommandContent", ask.command)];
    if let Some(t) = ask.timeout {
        params.push(("Timeout", t.to_string()));
    }
    match caller.act(&state, "RunCommand", params).await {
        Ok(body) => task_reply(&body),
        Err(e) => api_failure(&e),
    }
}

#[derive(Deserialize)]
pub struct FetchAsk {
    path: String,
}

/// `POST /console/phones/{id}/fetch` `{"path": "/sdcard/..."}`: FetchFile into the caller's
/// bucket; the finished task's `Url` is the signed link to it.
pub async fn fetch(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Acting(caller, ask): Acting<FetchAsk>,
) -> Response {
    let bucket = default_bucket(&state.region, &caller.key.account_id);
    let params = vec![
        ("AndroidInstanceIdList.1", id),
        ("SourceFilePath", ask.path),
        ("UploadType", "OSS".into()),
        ("UploadEndpoint", upload_endpoint(&state)),
        ("UploadUrl", format!("oss://{bucket}/{FETCH_FOLDER}/")),
    ];
    match caller.act(&state, "FetchFile", params).await {
        Ok(body) => task_reply(&body),
        Err(e) => api_failure(&e),
    }
}

/// The `UploadEndpoint` the console names (the vendor's OSS endpoint of the region; this server
/// keeps objects itself and only requires the parameter).
pub fn upload_endpoint(state: &AppState) -> String {
    format!("oss-{}.aliyuncs.com", state.region)
}

/// `POST /console/phones/{id}/screenshot`: CreateScreenshot of this phone.
pub async fn screenshot(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Acting(caller, _): Acting<Value>,
) -> Response {
    match caller
        .act(
            &state,
            "CreateScreenshot",
            vec![("AndroidInstanceIdList.1", id)],
        )
        .await
    {
        Ok(body) => task_reply(&body),
        Err(e) => api_failure(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: &str) -> AccessKey {
        AccessKey {
            key_id: "LTAIkey".into(),
            secret: String::new(),
            account_id: "acct".into(),
            user_name: user.into(),
        }
    }

    #[test]
    fn the_console_s_end_user_id_is_one_the_api_takes() {
        assert_eq!(
            end_user(&key("alice@example.com")),
            "console:alice@example.com"
        );
        assert_eq!(end_user(&key("Bob Smith/ops")), "console:Bob_Smith_ops");
        assert_eq!(end_user(&key("")), "console:LTAIkey");
        assert_eq!(end_user(&key(&"x".repeat(200))).len(), 64);
    }

    #[test]
    fn the_one_child_is_found_in_every_answer_shape() {
        let shapes = [
            json!({"TaskId": "b", "RunCommandInfos": [{"ChildTaskId": "c1"}]}),
            json!({"TaskId": "b", "ChildTaskInfo": [{"ChildTaskId": "c1"}]}),
            json!({"TaskId": "b", "Data": [{"TaskId": "c1"}]}),
            json!({"Tasks": [{"TaskId": "c1"}]}),
            json!({"Tasks": {"ParentTaskId": "b", "ChildTasks": [{"TaskId": "c1"}]}}),
        ];
        for s in shapes {
            assert_eq!(first_child(&s).as_deref(), Some("c1"), "{s}");
        }
        assert_eq!(first_child(&json!({})), None);
    }

    #[test]
    fn only_ids_that_could_be_phones_are_looked_up() {
        assert!(plausible_id("acp-0123456789abcdef"));
        for bad in ["", "../x", "a b", &"a".repeat(65), "acp-1?x"] {
            assert!(!plausible_id(bad), "{bad}");
        }
    }
}
