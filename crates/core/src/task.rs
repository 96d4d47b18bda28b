//! Tasks: their types, statuses and levels, and how a batch's status and counters follow from
//! its children (docs/design.md §3).

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as it is written on the wire and in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($text => Ok($name::$variant),)+ _ => Err(()) }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// The task types. The first sixteen are the vendor's; the last three are internal (Level 0)
    /// and never shown by DescribeTasks.
    TaskType {
        StartInstance = "StartInstance",
        StopInstance = "StopInstance",
        RebootInstance = "RebootInstance",
        ResetInstance = "ResetInstance",
        BackupFile = "BackupFile",
        RecoverFile = "RecoverFile",
        SendFile = "SendFile",
        FetchFile = "FetchFile",
        InstallApp = "InstallApp",
        UninstallApp = "UninstallApp",
        StartApp = "StartApp",
        StopApp = "StopApp",
        RestartApp = "RestartApp",
        RunCommand = "RunCommand",
        Screenshot = "Screenshot",
        UpdateGroupImage = "UpdateGroupImage",
        CreateInstance = "CreateInstance",
        DeleteInstance = "DeleteInstance",
        /// Moves a phone to another host of the farm (a drain): stop, copy its data, start.
        MigrateInstance = "MigrateInstance",
    }
}

impl TaskType {
    /// Whether the type is one of the vendor's sixteen (a client may filter on it).
    pub fn is_public(self) -> bool {
        !matches!(
            self,
            TaskType::CreateInstance | TaskType::DeleteInstance | TaskType::MigrateInstance
        )
    }

    /// Parses a vendor type name; internal types are not accepted from clients.
    pub fn parse_public(s: &str) -> Option<TaskType> {
        s.parse::<TaskType>().ok().filter(|t| t.is_public())
    }

    /// Whether running the operation twice has the same effect as once, so that an attempt
    /// lost with its worker may simply be run again. A command may have had its effect already.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, TaskType::RunCommand)
    }

    /// Whether CancelTasks may stop a running task of this type (docs/design.md §5.7): a command
    /// is killed; a transfer (SendFile, FetchFile, InstallApp) is stopped while it reads its
    /// source (a download, an object, the phone's file) into a scratch file, and then never
    /// writes onto the phone or into the object store. The other operations change the phone or
    /// the store in steps that must not be cut, and take a time no outsider controls.
    pub fn is_interruptible(self) -> bool {
        matches!(
            self,
            TaskType::RunCommand | TaskType::SendFile | TaskType::FetchFile | TaskType::InstallApp
        )
    }
}

wire_enum! {
    /// The status of a task, batch or instance-level.
    TaskStatus {
        Waiting = "Waiting",
        Processing = "Processing",
        Finished = "Finished",
        PartFinished = "PartFinished",
        Failed = "Failed",
        Skipped = "Skipped",
    }
}

impl TaskStatus {
    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        !matches!(self, TaskStatus::Waiting | TaskStatus::Processing)
    }

    /// Whether an instance task may move from `self` to `to` (docs/design.md §3.2).
    pub fn may_become(self, to: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, to),
            (Waiting, Processing)
                | (Waiting, Skipped)
                | (Waiting, Failed)
                | (Processing, Finished)
                | (Processing, Failed)
        )
    }
}

/// Level 1 is a batch, level 2 an instance task; level 0 marks internal work that is never listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Internal = 0,
    Batch = 1,
    Instance = 2,
}

impl Level {
    pub fn as_i64(self) -> i64 {
        self as i64
    }

    pub fn from_i64(v: i64) -> Option<Level> {
        match v {
            0 => Some(Level::Internal),
            1 => Some(Level::Batch),
            2 => Some(Level::Instance),
            _ => None,
        }
    }
}

/// How many of a batch's children are in each status. Kept on the batch row and changed in the
/// same transaction as every child transition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub waiting: i64,
    pub processing: i64,
    pub finished: i64,
    pub failed: i64,
    pub skipped: i64,
}

impl BatchCounts {
    /// The counts of a new batch of `n` waiting children.
    pub fn new(n: i64) -> BatchCounts {
        BatchCounts {
            waiting: n,
            ..BatchCounts::default()
        }
    }

    pub fn total(&self) -> i64 {
        self.waiting + self.processing + self.finished + self.failed + self.skipped
    }

    /// `RunningChildCount`: children not yet terminal.
    pub fn running(&self) -> i64 {
        self.waiting + self.processing
    }

    fn slot(&mut self, status: TaskStatus) -> &mut i64 {
        match status {
            TaskStatus::Waiting => &mut self.waiting,
            TaskStatus::Processing => &mut self.processing,
            TaskStatus::Finished => &mut self.finished,
            TaskStatus::Failed => &mut self.failed,
            TaskStatus::Skipped | TaskStatus::PartFinished => &mut self.skipped,
        }
    }

    /// The change to the counters when one child moves from `from` to `to`.
    pub fn delta(from: TaskStatus, to: TaskStatus) -> BatchCounts {
        let mut d = BatchCounts::default();
        *d.slot(from) -= 1;
        *d.slot(to) += 1;
        d
    }

    pub fn add(&self, d: &BatchCounts) -> BatchCounts {
        BatchCounts {
            waiting: self.waiting + d.waiting,
            processing: self.processing + d.processing,
            finished: self.finished + d.finished,
            failed: self.failed + d.failed,
            skipped: self.skipped + d.skipped,
        }
    }

    /// The batch status these counts give (docs/design.md §3.3).
    pub fn status(&self) -> TaskStatus {
        if self.running() > 0 {
            if self.waiting == self.total() {
                TaskStatus::Waiting
            } else {
                TaskStatus::Processing
            }
        } else if self.finished > 0 && self.failed > 0 {
            TaskStatus::PartFinished
        } else if self.finished > 0 {
            TaskStatus::Finished
        } else if self.failed > 0 {
            TaskStatus::Failed
        } else {
            TaskStatus::Skipped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    fn counts(w: i64, p: i64, f: i64, x: i64, s: i64) -> BatchCounts {
        BatchCounts {
            waiting: w,
            processing: p,
            finished: f,
            failed: x,
            skipped: s,
        }
    }

    #[test]
    fn batch_status_follows_children() {
        assert_eq!(counts(3, 0, 0, 0, 0).status(), Waiting);
        assert_eq!(counts(2, 1, 0, 0, 0).status(), Processing);
        assert_eq!(counts(2, 0, 0, 0, 1).status(), Processing);
        assert_eq!(counts(0, 0, 3, 0, 0).status(), Finished);
        assert_eq!(counts(0, 0, 2, 0, 1).status(), Finished);
        assert_eq!(counts(0, 0, 0, 2, 1).status(), Failed);
        assert_eq!(counts(0, 0, 1, 1, 1).status(), PartFinished);
        assert_eq!(counts(0, 0, 0, 0, 3).status(), Skipped);
    }

    #[test]
    fn deltas_keep_the_total() {
        let c = BatchCounts::new(2)
            .add(&BatchCounts::delta(Waiting, Processing))
            .add(&BatchCounts::delta(Processing, Finished));
        assert_eq!(c, counts(1, 0, 1, 0, 0));
        assert_eq!(c.total(), 2);
        assert_eq!(c.running(), 1);
    }

    #[test]
    fn transitions() {
        assert!(Waiting.may_become(Processing));
        assert!(Waiting.may_become(Skipped));
        assert!(!Finished.may_become(Failed));
        assert!(!Processing.may_become(Skipped));
        assert!(!Skipped.may_become(Processing));
    }

    #[test]
    fn public_types() {
        assert_eq!(
            TaskType::parse_public("StartInstance"),
            Some(TaskType::StartInstance)
        );
        assert_eq!(TaskType::parse_public("CreateInstance"), None);
        assert_eq!(TaskType::parse_public("startinstance"), None);
        assert_eq!(TaskType::ALL.iter().filter(|t| t.is_public()).count(), 16);
    }

    /// The `Level` DescribeTasks shows and filters on, and that the database stores: 1 for a
    /// batch, 2 for an instance task, 0 for internal work that is never listed.
    #[test]
    fn levels_are_stored_as_the_vendor_numbers_them() {
        assert_eq!(Level::Internal.as_i64(), 0);
        assert_eq!(Level::Batch.as_i64(), 1);
        assert_eq!(Level::Instance.as_i64(), 2);
        for level in [Level::Internal, Level::Batch, Level::Instance] {
            assert_eq!(Level::from_i64(level.as_i64()), Some(level));
        }
        assert_eq!(Level::from_i64(0), Some(Level::Internal));
        assert_eq!(Level::from_i64(1), Some(Level::Batch));
        assert_eq!(Level::from_i64(2), Some(Level::Instance));
        assert_eq!(Level::from_i64(3), None);
        assert_eq!(Level::from_i64(-1), None);
    }

    /// Only a command may have had its effect when its attempt was lost (so it is not run
    /// again, docs/design.md §5); only commands and transfers are stopped by CancelTasks while
    /// they run (§5.7).
    #[test]
    fn only_commands_are_unsafe_to_repeat_and_only_commands_and_transfers_are_interrupted() {
        use TaskType::{FetchFile, InstallApp, RunCommand, SendFile};
        for &t in TaskType::ALL {
            let command = t == RunCommand;
            assert_eq!(t.is_idempotent(), !command, "{t}");
            let stoppable = matches!(t, RunCommand | SendFile | FetchFile | InstallApp);
            assert_eq!(t.is_interruptible(), stoppable, "{t}");
        }
    }
}
