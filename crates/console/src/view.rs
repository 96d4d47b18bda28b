//! What the pages show, taken from the API's JSON answers: tasks, batches' progress, groups and
//! instances. Pure functions of the answers, so the templates stay simple.

use serde_json::Value;

/// The 16 task types, for the task center's filter.
pub const TASK_TYPES: &[&str] = &[
    "BackupFile",
    "FetchFile",
    "InstallApp",
    "RebootInstance",
    "RecoverFile",
    "ResetInstance",
    "RestartApp",
    "RunCommand",
    "Screenshot",
    "SendFile",
    "StartApp",
    "StartInstance",
    "StopApp",
    "StopInstance",
    "UninstallApp",
    "UpdateGroupImage",
];

pub const TASK_STATUSES: &[&str] = &[
    "Waiting",
    "Processing",
    "Finished",
    "PartFinished",
    "Failed",
    "Skipped",
];

/// A field as text: strings bare, null empty, anything else as JSON.
pub fn text(v: &Value, field: &str) -> String {
    match &v[field] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A batch's children by outcome, with the bar's widths in per cent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub total: u64,
    pub success: u64,
    pub failed: u64,
    pub running: u64,
    pub success_pct: u64,
    pub failed_pct: u64,
    pub running_pct: u64,
}

impl Progress {
    pub fn of(task: &Value) -> Option<Progress> {
        let total = task["TotalChildCount"].as_u64()?;
        let n = |f: &str| task[f].as_u64().unwrap_or(0);
        let (success, failed, running) = (
            n("SuccessChildCount"),
            n("FailedChildCount"),
            n("RunningChildCount"),
        );
        let pct = |x: u64| (x * 100).checked_div(total).unwrap_or(0);
        Some(Progress {
            total,
            success,
            failed,
            running,
            success_pct: pct(success),
            failed_pct: pct(failed),
            running_pct: pct(running),
        })
    }

    /// Children that ended (succeeded, failed or were skipped).
    pub fn done(&self) -> u64 {
        self.total.saturating_sub(self.running).min(self.total)
    }
}

/// One task as a row of the task center or the drill-down.
#[derive(Clone, Debug)]
pub struct TaskRow {
    pub id: String,
    pub level: String,
    pub task_type: String,
    pub status: String,
    pub instance: String,
    pub resource: String,
    pub invoke_id: String,
    pub parent: String,
    pub start: String,
    pub finish: String,
    pub operator: String,
    pub param: String,
    pub result: String,
    pub error_code: String,
    pub error_msg: String,
    pub progress: Option<Progress>,
    /// A screenshot's download link, shown inline.
    pub image_url: Option<String>,
    /// Any other download link in the result (a fetched file, a command's full output).
    pub link: Option<String>,
    pub output: Option<String>,
}

impl TaskRow {
    pub fn of(t: &Value) -> TaskRow {
        let result_text = text(t, "Result");
        let result: Value = serde_json::from_str(&result_text).unwrap_or(Value::Null);
        let task_type = text(t, "TaskType");
        let url = result["Url"].as_str().map(String::from);
        let (image_url, link) = if task_type == "Screenshot" {
            (url, None)
        } else {
            (None, url.or(result["OutputUrl"].as_str().map(String::from)))
        };
        TaskRow {
            id: text(t, "TaskId"),
            level: text(t, "Level"),
            status: text(t, "TaskStatus"),
            instance: text(t, "InstanceId"),
            resource: text(t, "ResourceId"),
            invoke_id: text(t, "InvokeId"),
            parent: text(t, "ParentTaskId"),
            start: text(t, "StartTime"),
            finish: text(t, "FinishTime"),
            operator: text(t, "Operator"),
            param: text(t, "Param"),
            result: result_text,
            error_code: text(t, "ErrorCode"),
            error_msg: text(t, "ErrorMsg"),
            progress: Progress::of(t),
            output: result["Output"].as_str().map(String::from),
            image_url,
            link,
            task_type,
        }
    }

    pub fn is_batch(&self) -> bool {
        self.level == "1"
    }

    pub fn terminal(&self) -> bool {
        !matches!(self.status.as_str(), "Waiting" | "Processing")
    }

    /// The CSS class of the status badge.
    pub fn tone(&self) -> &'static str {
        tone(&self.status)
    }
}

/// The CSS class of a task or instance status.
pub fn tone(status: &str) -> &'static str {
    match status {
        "Finished" | "RUNNING" => "ok",
        "Failed" | "FAILED" | "UNAVAILABLE" | "BACKUP_FAILED" | "RECOVER_FAILED" => "bad",
        "PartFinished" => "mixed",
        "Waiting" | "Skipped" | "STOPPED" | "DELETED" => "idle",
        _ => "busy",
    }
}

#[derive(Clone, Debug)]
pub struct InstanceRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub image: String,
}

impl InstanceRow {
    pub fn of(i: &Value) -> InstanceRow {
        InstanceRow {
            id: text(i, "AndroidInstanceId"),
            name: text(i, "AndroidInstanceName"),
            status: text(i, "AndroidInstanceStatus"),
            image: text(i, "ImageId"),
        }
    }

    pub fn tone(&self) -> &'static str {
        tone(&self.status)
    }
}

#[derive(Clone, Debug)]
pub struct GroupView {
    pub id: String,
    pub name: String,
    pub status: String,
    pub image: String,
    pub spec: String,
    pub instances: Vec<InstanceRow>,
}

impl GroupView {
    pub fn of(g: &Value, instances: &[Value]) -> GroupView {
        let id = text(g, "InstanceGroupId");
        let mut members: Vec<InstanceRow> = instances
            .iter()
            .filter(|i| text(i, "AndroidInstanceGroupId") == id)
            .map(InstanceRow::of)
            .collect();
        members.sort_by(|a, b| (a.name.len(), &a.name).cmp(&(b.name.len(), &b.name)));
        GroupView {
            instances: members,
            name: text(g, "InstanceGroupName"),
            status: text(g, "InstanceGroupStatus"),
            image: text(g, "ImageId"),
            spec: text(g, "InstanceGroupSpec"),
            id,
        }
    }

    pub fn tone(&self) -> &'static str {
        tone(&self.status)
    }

    pub fn running(&self) -> usize {
        self.instances
            .iter()
            .filter(|i| i.status == "RUNNING")
            .count()
    }
}

/// An app the fleet's toolbar can install.
#[derive(Clone, Debug)]
pub struct AppOption {
    pub id: String,
    pub label: String,
}

impl AppOption {
    pub fn of(a: &Value) -> AppOption {
        AppOption {
            id: text(a, "AppId"),
            label: format!(
                "{} ({} {})",
                text(a, "AppName"),
                text(a, "PackageName"),
                text(a, "AndroidAppVersion")
            ),
        }
    }
}

/// One phone, as its page's side panel shows it.
#[derive(Clone, Debug, Default)]
pub struct PhoneView {
    pub id: String,
    pub name: String,
    pub status: String,
    pub group_id: String,
    pub group_name: String,
    pub spec: String,
    pub image: String,
    pub resolution: String,
    /// `connect` while someone views the phone, else `disConnect`.
    pub session_status: String,
}

impl PhoneView {
    pub fn of(i: &Value) -> PhoneView {
        let display = &i["DisplayConfig"];
        PhoneView {
            id: text(i, "AndroidInstanceId"),
            name: text(i, "AndroidInstanceName"),
            status: text(i, "AndroidInstanceStatus"),
            group_id: text(i, "AndroidInstanceGroupId"),
            group_name: text(i, "AndroidInstanceGroupName"),
            spec: text(i, "InstanceType"),
            image: text(i, "ImageId"),
            resolution: format!(
                "{}x{}",
                text(display, "ResolutionWidth"),
                text(display, "ResolutionHeight")
            ),
            session_status: text(i, "SessionStatus"),
        }
    }

    pub fn tone(&self) -> &'static str {
        tone(&self.status)
    }
}

/// One live screen session (DescribeStreamSessions), as the phone page lists viewers and the
/// recent history.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub id: String,
    pub end_user: String,
    pub key_id: String,
    pub peer: String,
    pub role: String,
    pub status: String,
    pub opened: String,
    pub ended: String,
    pub end_reason: String,
}

impl SessionRow {
    pub fn of(s: &Value) -> SessionRow {
        SessionRow {
            id: text(s, "SessionId"),
            end_user: text(s, "EndUserId"),
            key_id: text(s, "AccessKeyId"),
            peer: text(s, "Peer"),
            role: text(s, "Role"),
            status: text(s, "Status"),
            opened: text(s, "OpenedTime"),
            ended: text(s, "EndedTime"),
            end_reason: text(s, "EndReason"),
        }
    }

    pub fn live(&self) -> bool {
        self.status == "Live"
    }

    /// The viewer's badge: who controls, who watches.
    pub fn tone(&self) -> &'static str {
        match (self.live(), self.role.as_str()) {
            (true, "Control") => "ok",
            (true, _) => "busy",
            _ => "idle",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_batch_has_a_progress_bar_and_a_child_none() {
        let batch = json!({"TaskId": "t-1", "Level": 1, "TaskStatus": "Processing",
            "TotalChildCount": 4, "SuccessChildCount": 2, "FailedChildCount": 1, "RunningChildCount": 1});
        let row = TaskRow::of(&batch);
        let p = row.progress.clone().unwrap();
        assert_eq!(
            (p.success_pct, p.failed_pct, p.running_pct, p.done()),
            (50, 25, 25, 3)
        );
        assert!(row.is_batch() && !row.terminal());
        let child = TaskRow::of(&json!({"TaskId": "t-2", "Level": 2, "TaskStatus": "Failed"}));
        assert!(child.progress.is_none() && child.terminal() && child.tone() == "bad");
    }

    #[test]
    fn a_screenshot_result_is_an_image_and_other_links_are_links() {
        let shot = TaskRow::of(
            &json!({"TaskType": "Screenshot", "Result": "{\"Url\":\"http://x/a.png\"}"}),
        );
        assert_eq!(shot.image_url.as_deref(), Some("http://x/a.png"));
        assert_eq!(shot.link, None);
        let fetched =
            TaskRow::of(&json!({"TaskType": "FetchFile", "Result": "{\"Url\":\"http://x/f\"}"}));
        assert_eq!(
            (fetched.image_url, fetched.link.as_deref()),
            (None, Some("http://x/f"))
        );
        let cmd = TaskRow::of(
            &json!({"TaskType": "RunCommand", "Result": "{\"Output\":\"hi\\n\",\"ExitCode\":0}"}),
        );
        assert_eq!(cmd.output.as_deref(), Some("hi\n"));
    }

    #[test]
    fn a_phone_and_its_sessions_read_from_the_answers() {
        let phone = PhoneView::of(
            &json!({"AndroidInstanceId": "acp-1", "AndroidInstanceStatus": "RUNNING",
            "DisplayConfig": {"ResolutionWidth": 720, "ResolutionHeight": 1280}, "SessionStatus": "connect"}),
        );
        assert_eq!(
            (
                phone.resolution.as_str(),
                phone.tone(),
                phone.session_status.as_str()
            ),
            ("720x1280", "ok", "connect")
        );
        let live =
            SessionRow::of(&json!({"SessionId": "ss-1", "Role": "Control", "Status": "Live"}));
        let ended = SessionRow::of(
            &json!({"SessionId": "ss-2", "Role": "View", "Status": "Ended",
            "EndReason": "Disconnected"}),
        );
        assert!(live.live() && live.tone() == "ok");
        assert!(!ended.live() && ended.tone() == "idle" && ended.end_reason == "Disconnected");
    }

    #[test]
    fn an_empty_batch_has_no_division_by_zero() {
        let p = Progress::of(&json!({"TotalChildCount": 0})).unwrap();
        assert_eq!((p.success_pct, p.done()), (0, 0));
    }
}
