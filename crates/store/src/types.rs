//! The plain data the store's operations take and give, beside the filters and listings of
//! [`crate::filters`]: accounts and keys as the admin sees them, the audit log, leases,
//! claims and outcomes of the engine, cancellations, idempotency and nonce answers.

use cloudphone_core::resources::{AccessKey, TaskRef};
use cloudphone_core::{InstanceStatus, TaskErrorCode, TaskType};

use crate::Cursor;

/// An account as the admin sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: String,
    pub name: String,
    pub disabled: bool,
    pub created_ms: i64,
    pub keys: u64,
    pub instances: u64,
}

/// An access key as the admin sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub key: AccessKey,
    pub disabled: bool,
    pub account_disabled: bool,
    pub created_ms: i64,
}

/// What [`crate::AccountStore::delete_account`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountDeletion {
    Deleted,
    NotFound,
    /// Nothing deleted: the account still has this many instances not DELETED.
    HasInstances(u64),
}

/// One mutating call, as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Assigned by the store, increasing; 0 in an entry to append.
    pub id: i64,
    pub at_ms: i64,
    pub account_id: String,
    pub user_name: String,
    pub key_id: String,
    pub action: String,
    pub resource_ids: Vec<String>,
    pub request_id: String,
    /// The caller's address.
    pub source: String,
    /// `Success`, or the error Code of the answer.
    pub outcome: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub account_id: Option<String>,
    pub action: Option<String>,
    pub after_id: i64,
    pub limit: usize,
}

/// What [`crate::EngineStore::heartbeat`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    /// Still this attempt's, extended.
    Held,
    /// Extended, but `CancelTasks` asked the attempt to stop.
    CancelRequested,
    /// No longer this attempt's: write nothing.
    Lost,
}

/// What [`crate::TaskStore::cancel_tasks`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CancelOutcome {
    /// Ids that are no task of the account (then nothing was done).
    pub unknown: Vec<String>,
    /// Waiting children now Skipped with `Cancelled`.
    pub skipped: u64,
    /// Processing children asked to stop.
    pub interrupting: u64,
    /// Their ids, so that the workers of this node can be told at once.
    pub interrupted: Vec<String>,
    /// Processing children that cannot be interrupted and run to their end.
    pub finishing: u64,
    /// Children that had ended already.
    pub ended: u64,
}

/// What [`crate::IdempotencyStore::begin_idempotent`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Idempotent {
    /// Reserved for this call: run it, then [`crate::IdempotencyStore::finish_idempotent`].
    Fresh,
    /// An earlier call with the same token and parameters answered this body.
    Replay(String),
    /// The token was used with other parameters.
    Mismatch,
    /// A call with the token is still running.
    InFlight,
}

/// One line of [`crate::TaskStore::task_counts`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskCount {
    pub task_type: TaskType,
    pub level: cloudphone_core::Level,
    pub status: cloudphone_core::TaskStatus,
    pub count: i64,
}

/// Writes task number `n` (from 0) of a page into the page's bytes; see
/// [`crate::TaskStore::describe_tasks_rendered`].
pub type TaskRender = std::sync::Arc<dyn Fn(&mut Vec<u8>, usize, &TaskRef<'_>) + Send + Sync>;

/// A page of tasks as [`crate::TaskStore::describe_tasks_rendered`] wrote it.
#[derive(Debug)]
pub struct Rendered {
    /// The head given, then every task of the page as written.
    pub bytes: Vec<u8>,
    /// Tasks on the page.
    pub count: usize,
    /// Tasks matching the filter over all pages.
    pub total: i64,
    /// The cursor of the page's last task when more follow.
    pub next: Option<Cursor>,
}

/// What [`crate::AccountStore::remember_nonce`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonce {
    /// Not seen before: now recorded.
    Fresh,
    /// Recorded already: the call is a replay.
    Replay,
    /// The key is no longer stored as given (deleted, or its secret, account or user changed).
    KeyChanged,
}

/// A task that the engine claimed and must now run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub task_id: String,
    pub task_type: TaskType,
    pub instance_id: String,
    pub param: String,
    pub attempt: i64,
    /// The instance status before the task started (for after-failure).
    pub previous_status: InstanceStatus,
    /// The phone the task runs on, read in the claim's transaction (`None` when it no longer
    /// exists), so that a worker needs no read of its own.
    pub phone: Option<Phone>,
}

/// How many tasks of each account a claim may start (docs/design.md §5.10): no account may
/// hold more than `per_account` of the claiming node's slots, and `held` says how many each
/// holds already. The default caps nothing (every claim before shares existed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountShares {
    /// The most tasks of one account running on the node at once; `None`: no cap.
    pub per_account: Option<usize>,
    /// The tasks each account runs on the node now, by account id (an account not named runs
    /// none).
    pub held: std::collections::HashMap<String, usize>,
}

impl AccountShares {
    /// How many more tasks of `account` the claim may start (`usize::MAX`: no cap).
    pub fn left(&self, account: &str) -> usize {
        match self.per_account {
            None => usize::MAX,
            Some(cap) => cap.saturating_sub(self.held.get(account).copied().unwrap_or(0)),
        }
    }

    /// The accounts that may start nothing now, sorted: the claim passes over their tasks.
    pub fn saturated(&self) -> Vec<String> {
        let mut full: Vec<String> = self
            .held
            .keys()
            .filter(|a| self.left(a) == 0)
            .cloned()
            .collect();
        full.sort();
        full
    }
}

/// What a worker needs to know of the phone a claimed task runs on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Phone {
    pub account_id: String,
    pub name: String,
    pub image_id: String,
    pub spec: String,
    /// The host of the farm it lives on (`None`: not placed, as ADB devices).
    pub host: Option<String>,
    /// Its ADB port on that host (host-network hosts).
    pub adb_port: Option<u16>,
    /// The host a move in progress takes it to, and the port held there.
    pub moving_to: Option<String>,
    pub moving_port: Option<u16>,
}

/// One attempt's end, for [`crate::EngineStore::complete_many`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub task_id: String,
    pub attempt: i64,
    pub outcome: Outcome,
    /// When the attempt ended.
    pub now_ms: i64,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `result` is compact JSON.
    Finished { result: String },
    Failed {
        code: TaskErrorCode,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Swept {
    Requeued {
        task_id: String,
        attempt: i64,
    },
    Failed {
        task_id: String,
        code: TaskErrorCode,
    },
}
