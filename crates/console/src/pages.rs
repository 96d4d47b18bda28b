//! The console's pages: the fleet (groups and their instances), the task center (DescribeTasks
//! with its filters) and one task (a batch's progress and children, or an instance task's
//! result). Every page gets its data through the API's own actions as the signed-in key
//! ([`cloudphone_api::call_as`]), so it sees exactly what that key's SDK would.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cloudphone_api::AppState;
use cloudphone_api::call_as;
use cloudphone_client::pct;
use cloudphone_core::ApiError;
use cloudphone_core::resources::AccessKey;
use serde_json::Value;

use crate::auth::signed_in;
use crate::post::{failure, json_reply};
use crate::view::{AppOption, GroupView, TASK_STATUSES, TASK_TYPES, TaskRow};

/// How often a page's live part is fetched again.
pub(crate) const REFRESH_MS: u64 = 1500;
/// The fleet page walks this many pages of instances at most (100 each).
const FLEET_PAGES: usize = 10;
const TASKS_PER_PAGE: &str = "50";

pub(crate) fn who(key: &AccessKey) -> String {
    format!("{} · {}", key.user_name, key.account_id)
}

pub(crate) fn shown(e: &ApiError) -> String {
    format!("{}: {}", e.code(), e)
}

pub(crate) fn status_of(e: &ApiError) -> StatusCode {
    StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
}

pub(crate) fn page(status: StatusCode, body: impl IntoResponse) -> Response {
    (status, body).into_response()
}

pub(crate) async fn call(
    state: &AppState,
    key: &AccessKey,
    action: &str,
    params: Vec<(&str, String)>,
) -> Result<Value, ApiError> {
    let params: Vec<(String, String)> = params.into_iter().map(|(k, v)| (k.into(), v)).collect();
    call_as(state, key.clone(), action, &params).await
}

fn next_token(body: &Value) -> Option<String> {
    body["NextToken"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(String::from)
}

#[derive(Template, WebTemplate)]
#[template(path = "fleet.html")]
pub struct FleetPage {
    section: &'static str,
    who: String,
    refresh_ms: u64,
    error: Option<String>,
    groups: Vec<GroupView>,
    instance_count: usize,
    running: usize,
    /// The apps the toolbar can install (DescribeApps' first page).
    apps: Vec<AppOption>,
}

pub async fn fleet(State(state): State<Arc<AppState>>, headers: HeaderMap, uri: Uri) -> Response {
    let key = match signed_in(&state, &headers, &uri.to_string()).await {
        Ok(session) => session.key,
        Err(to_login) => return to_login,
    };
    let mut view = FleetPage {
        section: "fleet",
        who: who(&key),
        refresh_ms: REFRESH_MS * 2,
        error: None,
        groups: Vec::new(),
        instance_count: 0,
        running: 0,
        apps: Vec::new(),
    };
    let loaded: Result<(), ApiError> = async {
        let apps = call(&state, &key, "DescribeApps", vec![("MaxResults", "100".into())]).await?;
        view.apps = apps["Data"].as_array().map(|a| a.iter().map(AppOption::of).collect()).unwrap_or_default();
        let groups = call(&state, &key, "DescribeAndroidInstanceGroups", vec![("MaxResults", "100".into())]).await?;
        let mut instances = Vec::new();
        let mut token = None;
        for _ in 0..FLEET_PAGES {
            let mut params = vec![("MaxResults", "100".to_string())];
            if let Some(t) = token.take() {
                params.push(("NextToken", t));
            }
            let body = call(&state, &key, "DescribeAndroidInstances", params).await?;
            instances.extend(body["InstanceModel"].as_array().cloned().unwrap_or_default());
            token = next_token(&body);
            if token.is_none() {
                break;
            }
        }
        if token.is_some() || next_token(&groups).is_some() {
            view.error = Some(format!(
                "Showing the first {} instances and 100 groups; the CLI lists them all (cloudphone instances list --all).",
                instances.len()
            ));
        }
        view.groups = groups["InstanceGroupModel"]
            .as_array()
            .map(|gs| gs.iter().map(|g| GroupView::of(g, &instances)).collect())
            .unwrap_or_default();
        view.instance_count = view.groups.iter().map(|g| g.instances.len()).sum();
        view.running = view.groups.iter().map(GroupView::running).sum();
        Ok(())
    }
    .await;
    match loaded {
        Ok(()) => page(StatusCode::OK, view),
        Err(e) => {
            let status = status_of(&e);
            view.error = Some(shown(&e));
            page(status, view)
        }
    }
}

/// The task center's filters, named as DescribeTasks names them.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub invoke_id: String,
    pub task_id: String,
    pub instance_id: String,
    pub status: String,
    pub task_type: String,
    pub level: String,
    pub param: String,
}

impl Filters {
    fn from_query(q: &HashMap<String, String>) -> Filters {
        let get = |k: &str| q.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        Filters {
            invoke_id: get("InvokeId"),
            task_id: get("TaskId"),
            instance_id: get("InstanceId"),
            status: get("TaskStatus"),
            task_type: get("TaskType"),
            level: get("Level"),
            param: get("Param"),
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("InvokeId", &self.invoke_id),
            ("TaskId", &self.task_id),
            ("InstanceId", &self.instance_id),
            ("TaskStatus", &self.status),
            ("TaskType", &self.task_type),
            ("Level", &self.level),
            ("Param", &self.param),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.clone()))
        .collect()
    }

    /// The DescribeTasks parameters: one TaskId goes in as TaskIds.1.
    fn params(&self) -> Vec<(&'static str, String)> {
        self.pairs()
            .into_iter()
            .map(|(k, v)| {
                if k == "TaskId" {
                    ("TaskIds.1", v)
                } else {
                    (k, v)
                }
            })
            .collect()
    }

    fn link(&self, next: &str) -> String {
        let mut query: Vec<String> = self
            .pairs()
            .into_iter()
            .map(|(k, v)| format!("{k}={}", pct(&v)))
            .collect();
        query.push(format!("NextToken={}", pct(next)));
        format!("/console/tasks?{}", query.join("&"))
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "tasks.html")]
pub struct TasksPage {
    section: &'static str,
    who: String,
    refresh_ms: u64,
    error: Option<String>,
    f: Filters,
    statuses: &'static [&'static str],
    types: &'static [&'static str],
    rows: Vec<TaskRow>,
    total: i64,
    next_page: Option<String>,
}

pub async fn tasks(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let key = match signed_in(&state, &headers, &uri.to_string()).await {
        Ok(session) => session.key,
        Err(to_login) => return to_login,
    };
    let f = Filters::from_query(&q);
    let mut params = f.params();
    params.push(("MaxResults", TASKS_PER_PAGE.into()));
    if let Some(t) = q.get("NextToken").filter(|t| !t.is_empty()) {
        params.push(("NextToken", t.clone()));
    }
    let mut view = TasksPage {
        section: "tasks",
        who: who(&key),
        refresh_ms: REFRESH_MS,
        error: None,
        statuses: TASK_STATUSES,
        types: TASK_TYPES,
        rows: Vec::new(),
        total: 0,
        next_page: None,
        f,
    };
    match call(&state, &key, "DescribeTasks", params).await {
        Ok(body) => {
            view.rows = body["Data"]
                .as_array()
                .map(|ts| ts.iter().map(TaskRow::of).collect())
                .unwrap_or_default();
            view.total = body["TotalCount"]
                .as_i64()
                .unwrap_or(view.rows.len() as i64);
            view.next_page = next_token(&body).map(|t| view.f.link(&t));
            page(StatusCode::OK, view)
        }
        Err(e) => {
            let status = status_of(&e);
            view.error = Some(shown(&e));
            page(status, view)
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "task.html")]
pub struct TaskPage {
    section: &'static str,
    who: String,
    refresh_ms: u64,
    error: Option<String>,
    task: TaskRow,
    /// The task and its children are terminal: the page stops refreshing.
    settled: bool,
    children: Vec<TaskRow>,
    child_total: i64,
    next_page: Option<String>,
}

/// A batch's status and progress alone (`?part=progress`), for the fleet page's panel.
#[derive(Template, WebTemplate)]
#[template(path = "batch_part.html")]
pub struct BatchPart {
    row: TaskRow,
    settled: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "missing.html")]
pub struct MissingPage {
    pub(crate) section: &'static str,
    pub(crate) who: String,
    pub(crate) message: String,
}

pub async fn task(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let key = match signed_in(&state, &headers, &uri.to_string()).await {
        Ok(session) => session.key,
        Err(to_login) => return to_login,
    };
    let part = q.get("part").map(String::as_str);
    let missing = |status: StatusCode, message: String| {
        if part == Some("json") {
            return failure(status, "NotFound", message);
        }
        page(
            status,
            MissingPage {
                section: "tasks",
                who: who(&key),
                message,
            },
        )
    };
    let found = match call(
        &state,
        &key,
        "DescribeTasks",
        vec![("TaskIds.1", id.clone())],
    )
    .await
    {
        Ok(body) => body["Data"].as_array().and_then(|d| d.first().cloned()),
        Err(e) => return missing(status_of(&e), shown(&e)),
    };
    let Some(found) = found else {
        // Another account's task is as absent as one that never existed.
        return missing(
            StatusCode::NOT_FOUND,
            format!("InvalidTaskId.NotFound: no task {id} in your account."),
        );
    };
    match part {
        // What a phone's page follows after an action: the task as the API answers it.
        Some("json") => return json_reply(StatusCode::OK, &found),
        // What the fleet page follows after a batch action.
        Some("progress") => {
            let row = TaskRow::of(&found);
            return page(
                StatusCode::OK,
                BatchPart {
                    settled: row.terminal(),
                    row,
                },
            );
        }
        _ => {}
    }
    let task = TaskRow::of(&found);
    let mut view = TaskPage {
        section: "tasks",
        who: who(&key),
        refresh_ms: REFRESH_MS,
        error: None,
        settled: task.terminal(),
        children: Vec::new(),
        child_total: 0,
        next_page: None,
        task,
    };
    if view.task.is_batch() {
        let mut params = vec![("ParentTaskId", id.clone()), ("MaxResults", "100".into())];
        if let Some(t) = q.get("NextToken").filter(|t| !t.is_empty()) {
            params.push(("NextToken", t.clone()));
        }
        match call(&state, &key, "DescribeTasks", params).await {
            Ok(body) => {
                view.children = body["Data"]
                    .as_array()
                    .map(|ts| ts.iter().map(TaskRow::of).collect())
                    .unwrap_or_default();
                view.child_total = body["TotalCount"].as_i64().unwrap_or(0);
                view.next_page = next_token(&body)
                    .map(|t| format!("/console/tasks/{}?NextToken={}", pct(&id), pct(&t)));
                view.settled &= view.children.iter().all(TaskRow::terminal);
            }
            Err(e) => {
                view.settled = false;
                view.error = Some(shown(&e));
            }
        }
    }
    page(StatusCode::OK, view)
}
