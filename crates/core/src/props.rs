//! Property tests of the task and instance state machines, of batch aggregation and of
//! placement. The expected
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
        TaskType::CreateInstance | TaskType::DeleteInstance | TaskType::MigrateInstance => {
            return None;
        }
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

// ---- MigrateInstance (issue 24's design §6.1) ----

/// The statuses a move runs from; it shows REBOOTING meanwhile, ends STOPPED if it started
/// STOPPED and RUNNING otherwise, and UNAVAILABLE when it broke (the status it had when it
/// never touched the phone).
const MOVABLE: &[InstanceStatus] = RESETTABLE;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_move_takes_the_designed_edges(
        start in any_instance_status(),
        outcome in outcome(TaskErrorCode::ALL.to_vec()),
    ) {
        let path = run(TaskType::MigrateInstance, start, outcome);
        if !MOVABLE.contains(&start) {
            prop_assert_eq!(path, vec![start]);
            return Ok(());
        }
        prop_assert_eq!(path[1], S::Rebooting);
        let want = match outcome {
            Outcome::Finished if start == S::Stopped => S::Stopped,
            Outcome::Finished => S::Running,
            Outcome::Failed(
                TaskErrorCode::UnsupportedOperation | TaskErrorCode::InvalidTaskParameters,
            ) => start,
            Outcome::Failed(_) | Outcome::Exhausted => S::Unavailable,
        };
        prop_assert_eq!(path[2], want, "from {} with {:?}", start, outcome);
    }
}

// ---- Placement (issue 24's design §4.1) ----

mod placement_props {
    use super::config;
    use crate::placement::{Limits, NoRoom, Room, Strategy, Usage, place, room_for};
    use crate::resources::{SPECS, Spec};
    use proptest::prelude::*;
    use proptest::strategy::Strategy as _;

    /// A host with random limits (any of the three may be absent), random usage within them
    /// (or over: a host whose limit was lowered), ports and schedulability.
    fn room(i: usize) -> impl proptest::strategy::Strategy<Value = Room> {
        (
            prop::option::of(0u64..=12),
            prop::option::of(0u64..=48_000),
            prop::option::of(0u64..=96 * 1024),
            0u64..=8,
            prop::option::of(0u32..=10),
            prop::bool::weighted(0.85),
        )
            .prop_map(move |(phones, cpu, mem, used, ports, schedulable)| Room {
                name: format!("h{i:02}"),
                limits: Limits {
                    phones,
                    cpu_milli: cpu,
                    memory_mib: mem,
                },
                used: Usage::of(&SPECS[0], used),
                free_ports: ports,
                schedulable,
            })
    }

    fn rooms() -> impl proptest::strategy::Strategy<Value = Vec<Room>> {
        (1usize..=6).prop_flat_map(|n| (0..n).map(room).collect::<Vec<_>>())
    }

    fn spec() -> impl proptest::strategy::Strategy<Value = &'static Spec> {
        prop::sample::select(SPECS.iter().collect::<Vec<_>>())
    }

    fn strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
        prop_oneof![Just(Strategy::Spread), Just(Strategy::BinPack)]
    }

    fn over(limit: Option<u64>, used: u64) -> bool {
        limit.is_some_and(|l| used > l)
    }

    fn equal(n: usize, max: u64) -> Vec<Room> {
        (0..n)
            .map(|i| Room {
                name: format!("h{i}"),
                limits: Limits {
                    phones: Some(max),
                    ..Limits::default()
                },
                used: Usage::default(),
                free_ports: None,
                schedulable: true,
            })
            .collect()
    }

    proptest! {
        #![proptest_config(config())]

        /// A placement never takes a host over a limit it was within, never uses an
        /// unschedulable host or a port that is not free; a refusal changes nothing and says
        /// exactly how many would have fit.
        #[test]
        fn never_over_a_limit_and_all_or_nothing(
            before in rooms(),
            spec in spec(),
            n in 0usize..=40,
            strategy in strategy(),
        ) {
            let mut after = before.clone();
            let fits = room_for(&before, spec);
            match place(&mut after, spec, n, strategy) {
                Ok(at) => {
                    prop_assert_eq!(at.len(), n);
                    prop_assert!(fits >= n as u64);
                    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                        let got = at.iter().filter(|&&h| h == i).count() as u64;
                        prop_assert_eq!(a.used, {
                            let mut u = b.used;
                            for _ in 0..got { u = u.plus(spec); }
                            u
                        });
                        if got == 0 { continue; }
                        prop_assert!(b.schedulable, "{} is not schedulable", b.name);
                        prop_assert!(!over(a.limits.phones, a.used.phones));
                        prop_assert!(!over(a.limits.cpu_milli, a.used.cpu_milli));
                        prop_assert!(!over(a.limits.memory_mib, a.used.memory_mib));
                        if let Some(p) = b.free_ports {
                            prop_assert!(u64::from(p) >= got);
                            prop_assert_eq!(a.free_ports, Some(p - got as u32));
                        }
                    }
                }
                Err(NoRoom { fits: f }) => {
                    prop_assert_eq!(&after, &before, "a refusal places nothing");
                    prop_assert!(f < n as u64);
                    prop_assert_eq!(f, fits);
                }
            }
        }

        /// Spread keeps equal hosts within one phone of each other, whatever the number asked
        /// and however it is cut into calls.
        #[test]
        fn spread_is_even_on_equal_hosts(
            hosts in 1usize..=8,
            calls in prop::collection::vec(1usize..=15, 1..=6),
        ) {
            let mut rooms = equal(hosts, 1_000);
            for n in calls {
                place(&mut rooms, &SPECS[0], n, Strategy::Spread).unwrap();
                let counts: Vec<u64> = rooms.iter().map(|r| r.used.phones).collect();
                let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
                prop_assert!(hi - lo <= 1, "{:?}", counts);
            }
        }

        /// Bin-pack fills equal hosts in name order: every host before the last one used is full.
        #[test]
        fn bin_pack_fills_hosts_in_order(
            hosts in 1usize..=6,
            max in 1u64..=10,
            calls in prop::collection::vec(1usize..=12, 1..=5),
        ) {
            let mut rooms = equal(hosts, max);
            for n in calls {
                let _ = place(&mut rooms, &SPECS[1], n, Strategy::BinPack);
                let counts: Vec<u64> = rooms.iter().map(|r| r.used.phones).collect();
                let used = counts.iter().rposition(|&c| c > 0).map_or(0, |i| i);
                prop_assert!(counts[..used].iter().all(|&c| c == max), "{:?}", counts);
            }
        }
    }

    #[test]
    fn thirty_phones_on_three_equal_hosts_land_ten_ten_ten() {
        for strategy_max in [10u64, 20, 1_000] {
            let mut rooms = equal(3, strategy_max);
            place(&mut rooms, &SPECS[0], 30, Strategy::Spread).unwrap();
            let counts: Vec<u64> = rooms.iter().map(|r| r.used.phones).collect();
            assert_eq!(counts, [10, 10, 10]);
        }
    }
}
