//! Property tests of the task and instance state machines and of batch aggregation. The expected
//! values come from tables written here from docs/design.md (§3.2, §3.3, §4), never from the code
//! under test, so that a change to either side that breaks their agreement fails here.

use proptest::prelude::*;
use proptest::sample::Index;

use crate::instance::{self, Plan};
use crate::task::{BatchCounts, TaskStatus, TaskType};
use crate::{InstanceStatus, TaskErrorCode};

use InstanceStatus as S;
use TaskStatus::*;

/// No regression files: a failure prints its shrunk input, and the tests must not write into
/// the source tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---- Tasks (docs/design.md §3.2) ----

/// "`Waiting` -> `Processing` -> `Finished` | `Failed`, and `Waiting` -> `Skipped`", plus
/// `Waiting` -> `Failed`: the store fails a task whose precondition does not hold as it claims
/// it (docs/design.md §3.2).
const TASK_EDGES: &[(TaskStatus, TaskStatus)] = &[
    (Waiting, Processing),
    (Processing, Finished),
    (Processing, Failed),
    (Waiting, Skipped),
    (Waiting, Failed),
];

/// Every status but the two of a task still to run or running; PartFinished is a batch's end.
const TERMINAL: &[TaskStatus] = &[Finished, PartFinished, Failed, Skipped];

#[test]
fn task_transitions_are_the_designed_ones() {
    for &from in TaskStatus::ALL {
        for &to in TaskStatus::ALL {
            assert_eq!(
                from.may_become(to),
                TASK_EDGES.contains(&(from, to)),
                "{from} -> {to}"
            );
        }
    }
}

#[test]
fn terminal_task_statuses_never_move() {
    for &from in TaskStatus::ALL {
        assert_eq!(from.is_terminal(), TERMINAL.contains(&from), "{from}");
        if TERMINAL.contains(&from) {
            for &to in TaskStatus::ALL {
                assert!(!from.may_become(to), "{from} -> {to}");
            }
        }
    }
}

// ---- Batches (docs/design.md §3.3) ----

/// The batch status of docs/design.md §3.3, from the children alone.
fn designed_batch_status(children: &[TaskStatus]) -> TaskStatus {
    let count = |s: TaskStatus| children.iter().filter(|&&c| c == s).count();
    let all = |s: TaskStatus| count(s) == children.len();
    let finished = count(Finished);
    let failed = count(Failed);
    if all(Waiting) {
        Waiting
    } else if children.iter().any(|c| !TERMINAL.contains(c)) {
        // Not all Waiting means some child has left Waiting, i.e. "started" in the document's
        // words, even if it was skipped or failed its precondition.
        Processing
    } else if failed == 0 && finished > 0 {
        Finished
    } else if finished == 0 && failed > 0 {
        Failed
    } else if finished > 0 && failed > 0 {
        PartFinished
    } else if all(Skipped) {
        Skipped
    } else {
        unreachable!("docs/design.md §3.3 gives {children:?} no status")
    }
}

fn recount(children: &[TaskStatus]) -> BatchCounts {
    let count = |s: TaskStatus| children.iter().filter(|&&c| c == s).count() as i64;
    BatchCounts {
        waiting: count(Waiting),
        processing: count(Processing),
        finished: count(Finished),
        failed: count(Failed),
        skipped: count(Skipped),
    }
}

fn check_batch(children: &[TaskStatus], counts: &BatchCounts) -> Result<(), TestCaseError> {
    prop_assert_eq!(counts, &recount(children), "children {:?}", children);
    prop_assert_eq!(counts.total(), children.len() as i64);
    // RunningChildCount = Waiting + Processing.
    let running = children
        .iter()
        .filter(|&&c| c == Waiting || c == Processing)
        .count() as i64;
    prop_assert_eq!(counts.running(), running);
    prop_assert_eq!(
        counts.status(),
        designed_batch_status(children),
        "children {:?}",
        children
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Up to 200 steps is enough for most batches of up to 60 children to end; small batches
    /// are drawn more often because only they end Finished or Skipped with any likelihood.
    #[test]
    fn batch_counters_follow_the_children(
        n in prop_oneof![1usize..=4, 1usize..=60],
        steps in prop::collection::vec((any::<Index>(), any::<Index>()), 0..=200),
    ) {
        let mut children = vec![Waiting; n];
        let mut counts = BatchCounts::new(n as i64);
        check_batch(&children, &counts)?;
        for (child, target) in steps {
            let next = |from: TaskStatus| {
                TaskStatus::ALL
                    .iter()
                    .copied()
                    .filter(move |&to| from.may_become(to))
            };
            let movable: Vec<usize> = (0..n)
                .filter(|&i| next(children[i]).next().is_some())
                .collect();
            if movable.is_empty() {
                break;
            }
            let i = *child.get(&movable);
            let targets: Vec<TaskStatus> = next(children[i]).collect();
            let to = *target.get(&targets);
            counts = counts.add(&BatchCounts::delta(children[i], to));
            children[i] = to;
            check_batch(&children, &counts)?;
        }
    }
}

// ---- Instances (docs/design.md §4) ----

/// Where a failed operation leaves the instance ("after failure").
#[derive(Clone, Copy, Debug)]
enum AfterFailure {
    /// "previous": the status the task started from.
    Previous,
    To(InstanceStatus),
}

/// One row of the table of docs/design.md §4. `during: None` is the "unchanged" row: the task never
/// moves the instance.
struct Row {
    from: &'static [InstanceStatus],
    skipped: &'static [InstanceStatus],
    during: Option<InstanceStatus>,
    success: InstanceStatus,
    failure: AfterFailure,
}

const RESETTABLE: &[InstanceStatus] = &[
    S::Running,
    S::Stopped,
    S::Unavailable,
    S::BackupFailed,
    S::RecoverFailed,
];

/// docs/design.md §4, row by row. `None` for the internal types, which the table does not cover.
fn designed_row(task: TaskType) -> Option<Row> {
    use AfterFailure::*;
    let row = match task {
        TaskType::StartInstance => Row {
            from: &[S::Stopped, S::BackupFailed, S::RecoverFailed],
            skipped: &[S::Running],
            during: Some(S::Starting),
            success: S::Running,
            failure: Previous,
        },
        TaskType::StopInstance => Row {
            from: &[S::Running, S::Unavailable],
            skipped: &[S::Stopped],
            during: Some(S::Stopping),
            success: S::Stopped,
            failure: Previous,
        },
        TaskType::RebootInstance => Row {
            from: &[
                S::Running,
                S::Unavailable,
                S::BackupFailed,
                S::RecoverFailed,
            ],
            skipped: &[],
            during: Some(S::Rebooting),
            success: S::Running,
            failure: To(S::Unavailable),
        },
        TaskType::ResetInstance | TaskType::UpdateGroupImage => Row {
            from: RESETTABLE,
            skipped: &[],
            during: Some(S::Resetting),
            success: S::Running,
            failure: To(S::Unavailable),
        },
        TaskType::BackupFile => Row {
            from: &[S::Running],
            skipped: &[],
            during: Some(S::Backuping),
            success: S::Running,
            failure: To(S::BackupFailed),
        },
        TaskType::RecoverFile => Row {
            from: &[S::Running],
            skipped: &[],
            during: Some(S::Recovering),
            success: S::Running,
            failure: To(S::RecoverFailed),
        },
        TaskType::SendFile
        | TaskType::FetchFile
        | TaskType::InstallApp
        | TaskType::UninstallApp
        | TaskType::StartApp
        | TaskType::StopApp
        | TaskType::RestartApp
        | TaskType::RunCommand
        | TaskType::Screenshot => Row {
            from: &[S::Running],
            skipped: &[],
            during: None,
            success: S::Running,
            failure: To(S::Running),
        },
        TaskType::CreateInstance | TaskType::DeleteInstance => return None,
    };
    Some(row)
}

/// The status changes the table allows `task` to make: into its "during" status from each
/// status it may start from, and out of it to "after success" and "after failure".
fn designed_edges(task: TaskType) -> Vec<(InstanceStatus, InstanceStatus)> {
    let row = designed_row(task).expect("a task of the table");
    let Some(during) = row.during else {
        return Vec::new();
    };
    let mut edges = Vec::new();
    for &from in row.from {
        edges.push((from, during));
        edges.push((during, row.success));
        edges.push(match row.failure {
            AfterFailure::Previous => (during, from),
            AfterFailure::To(to) => (during, to),
        });
    }
    edges
}

/// The sixteen vendor types; the internal ones have no row in docs/design.md §4.
fn table_types() -> Vec<TaskType> {
    TaskType::ALL
        .iter()
        .copied()
        .filter(|t| designed_row(*t).is_some())
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Finished,
    /// The worker reported a failure with this code.
    Failed(TaskErrorCode),
    /// The sweeper gave up on the task after its attempts were spent.
    Exhausted,
}

fn outcome(codes: Vec<TaskErrorCode>) -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Finished),
        prop::sample::select(codes).prop_map(Outcome::Failed),
        Just(Outcome::Exhausted),
    ]
}

/// The statuses the instance goes through when `task` starts on it in `current` and ends with
/// `outcome`, as the store applies the functions of `instance` (claim, completion, sweeper).
fn run(task: TaskType, current: InstanceStatus, outcome: Outcome) -> Vec<InstanceStatus> {
    let during = match instance::plan(task, current) {
        Plan::Run { during } => during,
        Plan::Skip | Plan::Reject => return vec![current],
    };
    let end = if !instance::moves_status(task) {
        during
    } else {
        match outcome {
            Outcome::Finished => instance::after_success(task, current),
            Outcome::Failed(code) => instance::after_failed(task, current, code),
            Outcome::Exhausted => instance::after_failure(task, current),
        }
    };
    vec![current, during, end]
}

/// [`designed_edges`], plus the way back from the "during" status to where the task started:
/// a backend that cannot do the operation (`UnsupportedOperation`) leaves the instance as it
/// was (docs/design.md §4, the rule after the table).
fn edges_when_unsupported(task: TaskType) -> Vec<(InstanceStatus, InstanceStatus)> {
    let mut edges = designed_edges(task);
    let row = designed_row(task).expect("a task of the table");
    if let Some(during) = row.during {
        edges.extend(row.from.iter().map(|&from| (during, from)));
    }
    edges
}

fn check_instance_steps(
    start: InstanceStatus,
    steps: Vec<(TaskType, Outcome)>,
    edges_of: fn(TaskType) -> Vec<(InstanceStatus, InstanceStatus)>,
) -> Result<(), TestCaseError> {
    let mut status = start;
    for (task, outcome) in steps {
        let path = run(task, status, outcome);
        let edges = edges_of(task);
        for pair in path.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            prop_assert!(
                a == b || edges.contains(&(a, b)),
                "{} moved the instance {} -> {} ({:?} from {})",
                task,
                a,
                b,
                outcome,
                status
            );
        }
        status = *path.last().unwrap();
    }
    Ok(())
}

fn any_instance_status() -> impl Strategy<Value = InstanceStatus> {
    prop::sample::select(InstanceStatus::ALL)
}

proptest! {
    #![proptest_config(config())]

    /// Failures other than `UnsupportedOperation` and `InvalidTaskParameters`, which the
    /// property below covers.
    #[test]
    fn instance_statuses_take_designed_edges(
        start in any_instance_status(),
        steps in prop::collection::vec(
            (
                prop::sample::select(table_types()),
                outcome(
                    TaskErrorCode::ALL
                        .iter()
                        .copied()
                        .filter(|&c| {
                            c != TaskErrorCode::UnsupportedOperation
                                && c != TaskErrorCode::InvalidTaskParameters
                        })
                        .collect(),
                ),
            ),
            1..=40,
        ),
    ) {
        check_instance_steps(start, steps, designed_edges)?;
    }

    /// `UnsupportedOperation` (as `InvalidTaskParameters`: neither touched the phone) takes the
    /// instance back to the status it had before the claim
    /// ([`edges_when_unsupported`]); a refused reboot of a BACKUP_FAILED phone stays
    /// BACKUP_FAILED, where the after-failure column of docs/design.md §4 (for an operation that
    /// started) says UNAVAILABLE.
    #[test]
    fn instance_statuses_take_designed_edges_when_unsupported(
        start in any_instance_status(),
        steps in prop::collection::vec(
            (
                prop::sample::select(table_types()),
                outcome(vec![
                    TaskErrorCode::UnsupportedOperation,
                    TaskErrorCode::InvalidTaskParameters,
                ]),
            ),
            1..=40,
        ),
    ) {
        check_instance_steps(start, steps, edges_when_unsupported)?;
    }
}

/// The precondition columns, for every (task, status): the table's "allowed from" runs the
/// operation in its "during" status, "(X: Skipped)" skips, anything else is rejected.
#[test]
fn preconditions_are_the_designed_ones() {
    for task in table_types() {
        let row = designed_row(task).unwrap();
        for &current in InstanceStatus::ALL {
            let want = if row.from.contains(&current) {
                Plan::Run {
                    during: row.during.unwrap_or(current),
                }
            } else if row.skipped.contains(&current) {
                Plan::Skip
            } else {
                Plan::Reject
            };
            assert_eq!(instance::plan(task, current), want, "{task} on {current}");
        }
    }
}

/// The outcome columns, exactly: the edge property accepts any designed way out of "during",
/// this one checks that success and failure each take their own.
#[test]
fn outcomes_are_the_designed_ones() {
    for task in table_types() {
        let row = designed_row(task).unwrap();
        for &from in row.from {
            let path = run(task, from, Outcome::Finished);
            assert_eq!(path.last(), Some(&row.success), "{task} from {from}");
            let failed = match row.failure {
                AfterFailure::Previous => from,
                AfterFailure::To(to) => to,
            };
            for outcome in [
                Outcome::Exhausted,
                Outcome::Failed(TaskErrorCode::OperationFailed),
            ] {
                let path = run(task, from, outcome);
                assert_eq!(
                    path.last(),
                    Some(&failed),
                    "{task} from {from}, {outcome:?}"
                );
            }
        }
    }
}
