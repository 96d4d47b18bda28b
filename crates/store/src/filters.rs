//! The plain data the store takes: new tasks, filters, pages and listings.

use cloudphone_core::TaskStatus;
use cloudphone_core::{InstanceStatus, Level, TaskType};

/// A task to create. Ids are made by the caller, so that the API can return them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTask {
    pub id: String,
    pub account_id: String,
    pub invoke_id: String,
    pub level: Level,
    pub task_type: TaskType,
    pub resource_id: String,
    pub instance_id: Option<String>,
    pub instance_name: Option<String>,
    pub param: String,
    pub operator: String,
    pub start_ms: i64,
}

/// A batch (its own row is `batch`, Level 1) and its instance tasks (Level 2, `parent_id` =
/// `batch.id`), created together. A batch with no children is created Skipped and finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBatch {
    pub batch: NewTask,
    pub children: Vec<NewTask>,
    /// `MaxConcurrency` and `MaxErrors`, as counts.
    pub limits: cloudphone_core::BatchLimits,
}

/// A position in a newest-first (or any keyset) order: the sort time and the id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub ms: i64,
    pub id: String,
}

/// A page request: rows strictly after `after` in the listing's order, at most `limit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub after: Option<Cursor>,
    pub limit: usize,
}

/// One page and the number of rows matching the filter over all pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub total: i64,
    /// The cursor of the last item when more rows follow it; `None` on the last page.
    pub next: Option<Cursor>,
}

/// DescribeTasks filters; every field narrows the result (AND), a list is a set (IN), an empty
/// list does not filter, nor does an empty substring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub account_id: String,
    pub invoke_id: Option<String>,
    pub resource_ids: Vec<String>,
    pub task_ids: Vec<String>,
    pub parent_task_id: Option<String>,
    pub task_types: Vec<TaskType>,
    pub statuses: Vec<TaskStatus>,
    /// `None`: Levels 1 and 2 (internal tasks are never listed).
    pub level: Option<Level>,
    /// Instance tasks of this instance.
    pub instance_id: Option<String>,
    /// Substring of the instance name.
    pub instance_name: Option<String>,
    /// Substring of `Param`.
    pub param: Option<String>,
}

// Written out because `Level` does not derive `Hash`; hashes exactly what `Eq` compares.
impl std::hash::Hash for TaskFilter {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.account_id.hash(state);
        self.invoke_id.hash(state);
        self.resource_ids.hash(state);
        self.task_ids.hash(state);
        self.parent_task_id.hash(state);
        self.task_types.hash(state);
        self.statuses.hash(state);
        self.level.map(Level::as_i64).hash(state);
        self.instance_id.hash(state);
        self.instance_name.hash(state);
        self.param.hash(state);
    }
}

/// DescribeAndroidInstances filters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct InstanceFilter {
    pub account_id: String,
    pub ids: Vec<String>,
    /// Substring of the instance name.
    pub name: Option<String>,
    pub group_ids: Vec<String>,
    /// Substring of the group name.
    pub group_name: Option<String>,
    /// `None` lists every status but DELETED.
    pub status: Option<InstanceStatus>,
    /// The group's charge type.
    pub charge_type: Option<String>,
    /// Instances with this ADB key pair attached.
    pub key_pair_id: Option<String>,
    /// Creation time ascending instead of descending.
    pub ascending: bool,
}

/// DescribeAndroidInstanceGroups filters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupFilter {
    pub account_id: String,
    pub ids: Vec<String>,
    /// Substring of the group name.
    pub name: Option<String>,
    /// Creation time ascending instead of descending.
    pub ascending: bool,
    /// Include groups whose every instance is DELETED.
    pub include_deleted: bool,
    /// The group status as listed: CREATING, RUNNING, DELETING or DELETED (derived from the
    /// group's instances); any other value matches nothing.
    pub status: Option<String>,
    pub charge_type: Option<String>,
    /// Every (key, value) pair must be among the group's tags; a `None` value matches any value.
    pub tags: Vec<(String, Option<String>)>,
    /// Groups with a live instance that has this ADB key pair attached (key pairs belong to
    /// instances here; a group has the keys of its phones).
    pub key_pair_id: Option<String>,
}

/// DescribeKeyPairs filters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyPairFilter {
    pub account_id: String,
    pub ids: Vec<String>,
    /// Substring of the key pair's name.
    pub name: Option<String>,
}

/// ListInstanceAdbAttributes filters: the account's instances whose ADB endpoint is started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AdbFilter {
    pub account_id: String,
    /// An empty list does not filter.
    pub instance_ids: Vec<String>,
}

/// DescribeApps filters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AppFilter {
    pub account_id: String,
    pub ids: Vec<i64>,
    /// Substring of the app name.
    pub name: Option<String>,
    pub md5: Option<String>,
    pub installation_status: Option<String>,
}

/// A change to instances; `None` leaves the field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceChange {
    pub name: Option<String>,
    pub up_bandwidth_limit: Option<i64>,
    pub down_bandwidth_limit: Option<i64>,
}

/// DescribeBackupFiles filters; every field narrows the result (AND).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BackupFilter {
    pub account_id: String,
    pub id: Option<String>,
    pub instance_id: Option<String>,
    /// Substring of the instance name.
    pub instance_name: Option<String>,
    /// Substring of the backup's name.
    pub name: Option<String>,
    /// Substring of the description.
    pub description: Option<String>,
    pub group_id: Option<String>,
    /// A set of statuses; empty does not filter.
    pub statuses: Vec<String>,
    /// Created at or after (ms).
    pub start_ms: Option<i64>,
    /// Created at or before (ms).
    pub end_ms: Option<i64>,
    pub backup_all: Option<bool>,
}

/// A place in the task event log, in the log's order: (0, id) on SQLite, (transaction id, id)
/// on PostgreSQL ([`crate::EventStore::task_events`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventPosition {
    pub major: i64,
    pub minor: i64,
}

/// Which events of an account a watch wants; every field narrows (AND), a list is a set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub account_id: String,
    pub invoke_id: Option<String>,
    pub task_ids: Vec<String>,
    pub parent_task_id: Option<String>,
    pub task_types: Vec<TaskType>,
    pub statuses: Vec<TaskStatus>,
    /// `None`: Levels 1 and 2.
    pub level: Option<Level>,
    pub instance_id: Option<String>,
}

/// One transition of a batch or instance task, as the event log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskEvent {
    pub position: EventPosition,
    pub task_id: String,
    pub parent_id: Option<String>,
    pub invoke_id: String,
    pub level: Level,
    pub task_type: TaskType,
    /// The status after the transition.
    pub status: TaskStatus,
    pub instance_id: Option<String>,
    pub error_code: Option<String>,
    /// A batch's counters after the transition.
    pub counts: Option<cloudphone_core::BatchCounts>,
    pub at_ms: i64,
}
