//! Batches and DescribeTasks: creation, filters, order and pages, totals, cancelling, purging, account isolation.

use std::collections::{BTreeMap, HashSet};

use cloudphone_core::InstanceStatus;
use cloudphone_core::TaskStatus;
use cloudphone_core::resources::Task;
use cloudphone_core::{BatchCounts, Level, TaskErrorCode, TaskType};
use cloudphone_store::{
    Completion, Cursor, GroupFilter, InstanceChange, InstanceFilter, Lease, NewBatch, Page, Store,
    TaskFilter,
};

use crate::support::{
    A, B, LEASE, assert_rendered_like, batch, child, claimed_ids, counts, counts_of, failed,
    filter, finished, fleet, get, group, instance, internal, limited, listed, page, sorted,
};
use InstanceStatus as S;
use TaskStatus::{Failed, Finished, PartFinished, Processing, Skipped, Waiting};

pub(crate) async fn check_create_batch(store: &dyn Store) {
    fleet(
        store,
        A,
        "ag-1",
        &[("i1", S::Running), ("i2", S::Running), ("i3", S::Stopped)],
    )
    .await;
    let mut b = batch("t-b", A, TaskType::StopInstance, 1_000, &["i1", "i2", "i3"]);
    b.batch.resource_id = "ag-1".into();
    b.batch.param = r#"{"InstanceIds":["i1","i2","i3"]}"#.into();
    store.create_batch(&b).await.unwrap();

    let t = get(store, A, "t-b").await;
    assert_eq!(
        t,
        Task {
            id: "t-b".into(),
            account_id: A.into(),
            invoke_id: "inv-t-b".into(),
            parent_id: None,
            level: Level::Batch,
            task_type: TaskType::StopInstance,
            status: Waiting,
            resource_id: "ag-1".into(),
            instance_id: None,
            instance_name: None,
            instance_status: None,
            param: r#"{"InstanceIds":["i1","i2","i3"]}"#.into(),
            result: None,
            error_code: None,
            error_msg: None,
            operator: "tester".into(),
            start_ms: 1_000,
            finish_ms: None,
            counts: Some(BatchCounts::new(3)),
            attempt: 0,
        }
    );
    let c = get(store, A, &child("t-b", "i3")).await;
    assert_eq!(
        c,
        Task {
            id: child("t-b", "i3"),
            account_id: A.into(),
            invoke_id: "inv-t-b".into(),
            parent_id: Some("t-b".into()),
            level: Level::Instance,
            task_type: TaskType::StopInstance,
            status: Waiting,
            resource_id: "i3".into(),
            instance_id: Some("i3".into()),
            instance_name: Some("name-i3".into()),
            instance_status: Some(S::Stopped),
            param: "{}".into(),
            result: None,
            error_code: None,
            error_msg: None,
            operator: "tester".into(),
            start_ms: 1_000,
            finish_ms: None,
            counts: None,
            attempt: 0,
        }
    );
    let whole = TaskFilter {
        invoke_id: Some("inv-t-b".into()),
        ..filter(A)
    };
    assert_eq!(
        listed(store, &whole).await,
        sorted([
            "t-b".to_string(),
            child("t-b", "i1"),
            child("t-b", "i2"),
            child("t-b", "i3")
        ])
    );

    // A batch of no children is over at once.
    store
        .create_batch(&batch("t-empty", A, TaskType::StartInstance, 2_000, &[]))
        .await
        .unwrap();
    let e = get(store, A, "t-empty").await;
    assert_eq!(
        (e.status, e.finish_ms, e.counts),
        (Skipped, Some(2_000), Some(BatchCounts::new(0)))
    );

    // All or nothing: a duplicate child id fails the whole batch.
    let mut dup = batch("t-dup", A, TaskType::StopInstance, 3_000, &["i1", "i2"]);
    dup.children[1].id = dup.children[0].id.clone();
    assert!(store.create_batch(&dup).await.is_err());
    assert!(store.task(A, "t-dup").await.unwrap().is_none());
    let dup_filter = TaskFilter {
        invoke_id: Some("inv-t-dup".into()),
        ..filter(A)
    };
    assert!(listed(store, &dup_filter).await.is_empty());
    // ... and an id already taken fails too.
    assert!(
        store
            .create_batch(&batch("t-b", A, TaskType::StopInstance, 4_000, &[]))
            .await
            .is_err()
    );
    assert_eq!(get(store, A, "t-b").await.start_ms, 1_000);
    // Nothing became claimable from the failed batches.
    let claims = store.claim("w", 10_000, LEASE, 100).await.unwrap();
    assert_eq!(
        claimed_ids(&claims),
        [child("t-b", "i1"), child("t-b", "i2")]
    );
}

pub(crate) async fn check_describe_filters(store: &dyn Store) {
    fleet(
        store,
        A,
        "ag-x",
        &[("i1", S::Stopped), ("i2", S::Running), ("i3", S::Running)],
    )
    .await;
    fleet(store, B, "ag-b", &[("ib", S::Running)]).await;
    let names = [("i1", "alpha-1"), ("i2", "alpha-2"), ("i3", "beta_%3")];
    let with_names = |mut b: NewBatch| {
        for c in &mut b.children {
            let id = c.instance_id.clone().unwrap();
            let name = names.iter().find(|(i, _)| *i == id).map(|(_, n)| *n);
            c.instance_name = name.map(String::from);
        }
        b
    };
    let mut b1 = with_names(batch(
        "t-b1",
        A,
        TaskType::StartInstance,
        1_000,
        &["i1", "i2"],
    ));
    b1.batch.resource_id = "ag-x".into();
    let mut b2 = with_names(batch("t-b2", A, TaskType::RunCommand, 2_000, &["i2", "i3"]));
    b2.batch.param = r#"{"CommandContent":"echo 100%"}"#.into();
    b2.children[0].param = r#"{"CommandContent":"echo 100%"}"#.into();
    b2.children[1].param = r#"{"CommandContent":"ls a_b"}"#.into();
    let mut b3 = with_names(batch("t-b3", A, TaskType::Screenshot, 3_000, &["i1"]));
    b3.children[0].param = r#"{"x":"axb 100"}"#.into();
    // Another account's batch with a colliding InvokeId.
    let mut bb = batch("t-bb", B, TaskType::StartInstance, 1_500, &["ib"]);
    bb.batch.invoke_id = "inv-t-b1".into();
    bb.children[0].invoke_id = "inv-t-b1".into();
    for b in [&b1, &b2, &b3, &bb] {
        store.create_batch(b).await.unwrap();
    }
    // An internal task, never listed.
    store
        .create_groups(
            &[group("ag-y", A, "y", 0)],
            &[instance("i4", A, "ag-y", "alpha-4", S::Creating, 0)],
            &[internal("t-int", A, TaskType::CreateInstance, "i4", 500)],
            None,
            None,
        )
        .await
        .unwrap();

    // One claim round: i1 starts (STOPPED -> STARTING), i2's StartInstance is skipped (already
    // RUNNING), which lets i2's command start; i3's command starts; i1's screenshot waits.
    let claims = store.claim("w", 5_000, LEASE, 100).await.unwrap();
    assert_eq!(
        sorted(claimed_ids(&claims)),
        sorted([
            "t-int".to_string(),
            child("t-b1", "i1"),
            child("t-b2", "i2"),
            child("t-b2", "i3")
        ])
    );

    let b1c1 = child("t-b1", "i1");
    let b1c2 = child("t-b1", "i2");
    let b2c1 = child("t-b2", "i2");
    let b2c2 = child("t-b2", "i3");
    let b3c1 = child("t-b3", "i1");
    let every: Vec<&str> = vec!["t-b1", &b1c1, &b1c2, "t-b2", &b2c1, &b2c2, "t-b3", &b3c1];

    type Case = (&'static str, Box<dyn Fn(&mut TaskFilter)>, Vec<String>);
    let s = |v: &[&str]| sorted(v.iter().copied());
    let cases: Vec<Case> = vec![
        ("none", Box::new(|_| {}), s(&every)),
        (
            "invoke",
            Box::new(|f| f.invoke_id = Some("inv-t-b1".into())),
            s(&["t-b1", &b1c1, &b1c2]),
        ),
        (
            "resource ids",
            Box::new(|f| f.resource_ids = vec!["ag-x".into(), "i3".into(), "ib".into()]),
            s(&["t-b1", &b2c2]),
        ),
        (
            "task ids",
            Box::new(|f| {
                f.task_ids = vec![
                    "t-b1".into(),
                    child("t-b2", "i3"),
                    "t-int".into(),
                    "t-bb".into(),
                    "nope".into(),
                ]
            }),
            s(&["t-b1", &b2c2]),
        ),
        (
            "parent",
            Box::new(|f| f.parent_task_id = Some("t-b2".into())),
            s(&[&b2c1, &b2c2]),
        ),
        (
            "types",
            Box::new(|f| f.task_types = vec![TaskType::Screenshot, TaskType::RunCommand]),
            s(&["t-b2", &b2c1, &b2c2, "t-b3", &b3c1]),
        ),
        (
            "types: internal",
            Box::new(|f| f.task_types = vec![TaskType::CreateInstance]),
            vec![],
        ),
        (
            "status",
            Box::new(|f| f.statuses = vec![Processing]),
            s(&["t-b1", &b1c1, "t-b2", &b2c1, &b2c2]),
        ),
        (
            "statuses",
            Box::new(|f| f.statuses = vec![Skipped, Waiting]),
            s(&[&b1c2, "t-b3", &b3c1]),
        ),
        (
            "level 1",
            Box::new(|f| f.level = Some(Level::Batch)),
            s(&["t-b1", "t-b2", "t-b3"]),
        ),
        (
            "level 2",
            Box::new(|f| f.level = Some(Level::Instance)),
            s(&[&b1c1, &b1c2, &b2c1, &b2c2, &b3c1]),
        ),
        (
            "instance",
            Box::new(|f| f.instance_id = Some("i1".into())),
            s(&[&b1c1, &b3c1]),
        ),
        (
            "instance: internal only",
            Box::new(|f| f.instance_id = Some("i4".into())),
            vec![],
        ),
        (
            "instance name",
            Box::new(|f| f.instance_name = Some("alpha".into())),
            s(&[&b1c1, &b1c2, &b2c1, &b3c1]),
        ),
        (
            "instance name, literal",
            Box::new(|f| f.instance_name = Some("_%".into())),
            s(&[&b2c2]),
        ),
        (
            "instance name, no match",
            Box::new(|f| f.instance_name = Some("a%1".into())),
            vec![],
        ),
        (
            "param",
            Box::new(|f| f.param = Some("100%".into())),
            s(&["t-b2", &b2c1]),
        ),
        (
            "param, literal _",
            Box::new(|f| f.param = Some("a_b".into())),
            s(&[&b2c2]),
        ),
        (
            "invoke + status + name",
            Box::new(|f| {
                f.invoke_id = Some("inv-t-b2".into());
                f.statuses = vec![Processing];
                f.instance_name = Some("alpha".into());
            }),
            s(&[&b2c1]),
        ),
        (
            "level + type + status",
            Box::new(|f| {
                f.level = Some(Level::Instance);
                f.task_types = vec![TaskType::StartInstance];
                f.statuses = vec![Skipped];
            }),
            s(&[&b1c2]),
        ),
        (
            "instance + parent",
            Box::new(|f| {
                f.instance_id = Some("i2".into());
                f.parent_task_id = Some("t-b1".into());
            }),
            s(&[&b1c2]),
        ),
        (
            "instance + level 1",
            Box::new(|f| {
                f.instance_id = Some("i1".into());
                f.level = Some(Level::Batch);
            }),
            vec![],
        ),
        (
            "ids + types",
            Box::new(|f| {
                f.task_ids = vec!["t-b1".into(), "t-b2".into(), "t-b3".into()];
                f.task_types = vec![TaskType::StartInstance, TaskType::Screenshot];
            }),
            s(&["t-b1", "t-b3"]),
        ),
        (
            "empty lists do not filter",
            Box::new(|f| {
                f.task_ids = vec![];
                f.statuses = vec![];
            }),
            s(&every),
        ),
    ];
    for (name, change, want) in cases {
        let mut f = filter(A);
        change(&mut f);
        assert_eq!(listed(store, &f).await, want, "filter {name}: {f:?}");
    }

    // The other account sees only its own.
    assert_eq!(
        listed(store, &filter(B)).await,
        s(&["t-bb", &child("t-bb", "ib")])
    );
    let f = TaskFilter {
        invoke_id: Some("inv-t-b1".into()),
        ..filter(B)
    };
    assert_eq!(listed(store, &f).await, s(&["t-bb", &child("t-bb", "ib")]));

    // Rows carry the instance's status now and the batch counters.
    let l = store.describe_tasks(&filter(A), &page(100)).await.unwrap();
    let by_id: BTreeMap<_, _> = l.items.iter().map(|t| (t.id.clone(), t)).collect();
    assert_eq!(by_id[&b1c1].instance_status, Some(S::Starting));
    assert_eq!(by_id[&b3c1].instance_status, Some(S::Starting));
    assert_eq!(by_id[&b1c2].instance_status, Some(S::Running));
    assert_eq!(by_id["t-b1"].instance_status, None);
    assert_eq!(by_id["t-b1"].counts, Some(counts(0, 1, 0, 0, 1)));
    assert_eq!(by_id["t-b2"].counts, Some(counts(0, 2, 0, 0, 0)));
    assert_eq!(by_id["t-b3"].counts, Some(counts(1, 0, 0, 0, 0)));
    assert_eq!(by_id[&b1c1].counts, None);
    assert_eq!(by_id[&b1c2].finish_ms, Some(5_000));
}

pub(crate) async fn check_describe_order_and_pages(store: &dyn Store) {
    fleet(store, A, "ag-1", &[("i1", S::Running)]).await;
    // Ties on the accept time are broken by the id, descending.
    let starts = [
        ("t-a", 1_000),
        ("t-c", 1_000),
        ("t-b", 1_000),
        ("t-e", 2_000),
        ("t-d", 2_000),
        ("t-f", 3_000),
        ("t-h", 500),
        ("t-g", 4_000),
    ];
    for (id, ms) in starts {
        store
            .create_batch(&batch(id, A, TaskType::InstallApp, ms, &["i1"]))
            .await
            .unwrap();
    }
    let mut want: Vec<(i64, String)> = starts
        .iter()
        .flat_map(|(id, ms)| [(*ms, id.to_string()), (*ms, child(id, "i1"))])
        .collect();
    want.sort();
    want.reverse();
    let want: Vec<String> = want.into_iter().map(|(_, id)| id).collect();
    assert_eq!(want.len(), 16);

    let all = store.describe_tasks(&filter(A), &page(100)).await.unwrap();
    assert_eq!(
        all.items.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        want
    );

    // Walk pages of 1 and of 5.
    for limit in [1, 5] {
        let mut after = None;
        let mut walked = Vec::new();
        let mut pages = 0;
        for round in 0.. {
            assert!(round < 100, "pagination does not end");
            let l = store
                .describe_tasks(
                    &filter(A),
                    &Page {
                        after: after.clone(),
                        limit,
                    },
                )
                .await
                .unwrap();
            pages += 1;
            assert_eq!(l.total, 16, "total is over every page");
            assert!(l.items.len() <= limit);
            walked.extend(l.items.iter().map(|t| t.id.clone()));
            match l.next {
                Some(next) => {
                    let last = l.items.last().unwrap();
                    assert_eq!(
                        next,
                        Cursor {
                            ms: last.start_ms,
                            id: last.id.clone()
                        }
                    );
                    after = Some(next);
                }
                None => break,
            }
        }
        assert_eq!(walked, want, "pages of {limit}");
        assert_eq!(pages, 16usize.div_ceil(limit));
    }

    // A filtered walk: pages of 2 over batches only.
    let batches = TaskFilter {
        level: Some(Level::Batch),
        ..filter(A)
    };
    let mut after = None;
    let mut walked = Vec::new();
    for round in 0.. {
        assert!(round < 100, "pagination does not end");
        let l = store
            .describe_tasks(
                &batches,
                &Page {
                    after: after.clone(),
                    limit: 2,
                },
            )
            .await
            .unwrap();
        assert_eq!(l.total, 8);
        walked.extend(l.items.iter().map(|t| t.id.clone()));
        after = l.next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(
        walked,
        ["t-g", "t-f", "t-e", "t-d", "t-c", "t-b", "t-a", "t-h"]
    );

    // Pages stay stable while new tasks arrive: tasks accepted after the walk began come before
    // its cursor and never show up in, shift or repeat within the rest of the walk.
    let mut after = None;
    let mut walked = Vec::new();
    let mut added = 0;
    for round in 0.. {
        assert!(round < 100, "pagination does not end");
        let l = store
            .describe_tasks(
                &filter(A),
                &Page {
                    after: after.clone(),
                    limit: 3,
                },
            )
            .await
            .unwrap();
        assert_eq!(l.total, 16 + 2 * added);
        walked.extend(l.items.iter().map(|t| t.id.clone()));
        added += 1;
        let id = format!("t-new{added}");
        store
            .create_batch(&batch(
                &id,
                A,
                TaskType::InstallApp,
                10_000 + added,
                &["i1"],
            ))
            .await
            .unwrap();
        after = l.next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(walked, want);
    let fresh = store.describe_tasks(&filter(A), &page(2)).await.unwrap();
    let newest = format!("t-new{added}");
    assert_eq!(
        fresh.items.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        [child(&newest, "i1"), newest]
    );
    assert_eq!(fresh.total, 16 + 2 * added);

    // A cursor past the end gives an empty last page; the total still counts every match.
    let end = store
        .describe_tasks(
            &filter(A),
            &Page {
                after: Some(Cursor {
                    ms: 0,
                    id: String::new(),
                }),
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(end.items.is_empty());
    assert!(end.next.is_none());
    assert_eq!(end.total, 16 + 2 * added);
}

/// The counts behind `/metrics`: every task of every account, by type, level and status.
pub(crate) async fn check_task_counts(store: &dyn Store) {
    assert!(store.task_counts().await.unwrap().is_empty());
    fleet(
        store,
        A,
        "ag-1",
        &[("i1", S::Running), ("i2", S::Running), ("i3", S::Running)],
    )
    .await;
    fleet(store, B, "ag-2", &[("j1", S::Running)]).await;
    store
        .create_batch(&batch(
            "t-r",
            A,
            TaskType::RebootInstance,
            1_000,
            &["i1", "i2", "i3"],
        ))
        .await
        .unwrap();
    store
        .create_batch(&batch("t-s", B, TaskType::RebootInstance, 1_000, &["j1"]))
        .await
        .unwrap();
    let c = store.claim("w", 2_000, 1_000, 1).await.unwrap();
    assert!(
        store
            .complete(&c[0].task_id, c[0].attempt, &finished(), 3_000)
            .await
            .unwrap()
    );
    let mut counts: Vec<(String, i64, String, i64)> = store
        .task_counts()
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            (
                c.task_type.to_string(),
                c.level as i64,
                c.status.to_string(),
                c.count,
            )
        })
        .collect();
    counts.sort();
    let expected = [
        ("RebootInstance", 1, "Processing", 1),
        ("RebootInstance", 1, "Waiting", 1),
        ("RebootInstance", 2, "Finished", 1),
        ("RebootInstance", 2, "Waiting", 3),
    ];
    let expected: Vec<(String, i64, String, i64)> = expected
        .iter()
        .map(|(t, l, s, n)| (t.to_string(), *l, s.to_string(), *n))
        .collect();
    assert_eq!(counts, expected);
}

/// Walks every page of `f` (small pages) and checks that each page's total equals the number
/// of rows walked: a store may keep the totals of broad filters apart from the rows.
pub(crate) async fn assert_total_walks(store: &dyn Store, f: &TaskFilter) {
    let mut after = None;
    let mut walked = 0;
    let mut totals = HashSet::new();
    loop {
        let p = Page { after, limit: 3 };
        let l = store.describe_tasks(f, &p).await.unwrap();
        assert_rendered_like(store, f, &p, &l).await;
        walked += l.items.len();
        totals.insert(l.total);
        match l.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!(totals.len(), 1, "one total on every page of {f:?}");
    assert_eq!(totals.into_iter().next(), Some(walked as i64), "{f:?}");
}

/// The totals of broad filters (only level, type and status) against the rows, after every
/// kind of change: creation, claims, precondition skips and rejections, completions, the
/// sweeper, the purge, and in another account.
pub(crate) async fn check_broad_totals_follow_transitions(store: &dyn Store) {
    let broad = || {
        let mut filters = vec![filter(A), filter(B)];
        for level in [Level::Batch, Level::Instance] {
            let mut f = filter(A);
            f.level = Some(level);
            filters.push(f.clone());
            f.task_types = vec![TaskType::RebootInstance, TaskType::StartInstance];
            filters.push(f);
        }
        for status in [Waiting, Processing, Finished, Failed, Skipped, PartFinished] {
            let mut f = filter(A);
            f.statuses = vec![status];
            filters.push(f.clone());
            f.level = Some(Level::Instance);
            f.task_types = vec![TaskType::RebootInstance];
            filters.push(f);
        }
        let mut f = filter(A);
        f.statuses = vec![Finished, Failed];
        f.task_types = vec![TaskType::StopInstance, TaskType::RebootInstance];
        filters.push(f);
        filters
    };
    let check = || async {
        for f in broad() {
            assert_total_walks(store, &f).await;
        }
    };
    fleet(
        store,
        A,
        "ag-1",
        &[
            ("i1", S::Running),
            ("i2", S::Running),
            ("i3", S::Stopped),
            ("i4", S::Running),
        ],
    )
    .await;
    fleet(store, B, "bg-1", &[("j1", S::Running)]).await;
    check().await;
    let all = ["i1", "i2", "i3", "i4"];
    store
        .create_batch(&batch("t-reboot", A, TaskType::RebootInstance, 1_000, &all))
        .await
        .unwrap();
    store
        .create_batch(&batch("t-start", A, TaskType::StartInstance, 1_100, &all))
        .await
        .unwrap();
    store
        .create_batch(&batch("t-b", B, TaskType::StopInstance, 1_200, &["j1"]))
        .await
        .unwrap();
    check().await;
    // Reboots of running phones run, the stopped one is rejected; B's stop runs.
    let claims = store.claim("w", 2_000, 1_000, 100).await.unwrap();
    check().await;
    let items: Vec<Completion> = claims
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 3 != 2)
        .map(|(n, c)| Completion {
            task_id: c.task_id.clone(),
            attempt: c.attempt,
            outcome: if n % 3 == 0 {
                finished()
            } else {
                failed(TaskErrorCode::OperationFailed)
            },
            now_ms: 2_500,
        })
        .collect();
    store.complete_many(&items).await.unwrap();
    check().await;
    // The rest's leases expire: re-queued, then claimed and ended; the starts follow.
    store.sweep_expired(10_000, 1, 0).await.unwrap();
    check().await;
    for round in 0..4 {
        let now = 20_000 + round * 1_000;
        let claims = store.claim("w", now, 1_000, 100).await.unwrap();
        let items: Vec<Completion> = claims
            .iter()
            .map(|c| Completion {
                task_id: c.task_id.clone(),
                attempt: c.attempt,
                outcome: finished(),
                now_ms: now + 10,
            })
            .collect();
        store.complete_many(&items).await.unwrap();
        check().await;
    }
    store.purge_tasks(i64::MAX, u64::MAX).await.unwrap();
    check().await;
}

pub(crate) async fn check_purge(store: &dyn Store) {
    fleet(store, A, "ag-1", &[("i1", S::Running), ("i2", S::Running)]).await;
    store
        .create_batch(&batch("t-old", A, TaskType::InstallApp, 100, &["i1", "i2"]))
        .await
        .unwrap();
    store.claim("w", 1_000, LEASE, 10).await.unwrap();
    assert!(
        store
            .complete(&child("t-old", "i1"), 1, &finished(), 1_500)
            .await
            .unwrap()
    );
    assert!(
        store
            .complete(&child("t-old", "i2"), 1, &finished(), 2_000)
            .await
            .unwrap()
    );
    // A batch still running: one child done long ago, one still waiting.
    store
        .create_batch(&batch("t-run", A, TaskType::InstallApp, 1_200, &["i1"]))
        .await
        .unwrap();
    store
        .create_batch(&batch("t-run2", A, TaskType::InstallApp, 1_200, &["i1"]))
        .await
        .unwrap();
    let mut run = batch("t-run", A, TaskType::InstallApp, 1_200, &["i1", "i2"]);
    run.batch.id = "t-mixed".into();
    run.children[0].id = "t-mixed-a".into();
    run.children[1].id = "t-mixed-b".into();
    run.children[1].start_ms = 1_000_000; // not due for a long while
    store.create_batch(&run).await.unwrap();
    let c = store.claim("w", 1_300, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-run", "i1")]);
    assert!(
        store
            .complete(&child("t-run", "i1"), 1, &finished(), 1_400)
            .await
            .unwrap()
    );
    let c = store.claim("w", 1_400, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-run2", "i1")]);
    assert!(
        store
            .complete(&child("t-run2", "i1"), 1, &finished(), 1_450)
            .await
            .unwrap()
    );
    let c = store.claim("w", 1_450, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), ["t-mixed-a"]);
    assert!(
        store
            .complete("t-mixed-a", 1, &finished(), 1_460)
            .await
            .unwrap()
    );
    assert_eq!(get(store, A, "t-mixed").await.status, Processing);

    // Before 1_800: the children finished at 1_400..1_500 and the batches t-run, t-run2 (1_400,
    // 1_450); t-old (2_000) and the unfinished t-mixed stay.
    // In batches, the oldest first: t-run and its child (both finished at 1_400) go first.
    assert_eq!(store.purge_tasks(1_800, 2).await.unwrap(), 2);
    assert!(
        store
            .task(A, &child("t-run", "i1"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.task(A, "t-run").await.unwrap().is_none());
    assert!(store.task(A, "t-run2").await.unwrap().is_some());
    assert!(
        store
            .task(A, &child("t-old", "i1"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.purge_tasks(1_800, 1_000).await.unwrap(), 4);
    for gone in [
        child("t-old", "i1"),
        child("t-run", "i1"),
        child("t-run2", "i1"),
        "t-mixed-a".into(),
        "t-run".into(),
        "t-run2".into(),
    ] {
        assert!(
            store.task(A, &gone).await.unwrap().is_none(),
            "{gone} purged"
        );
    }
    for kept in [
        "t-old".to_string(),
        child("t-old", "i2"),
        "t-mixed".into(),
        "t-mixed-b".into(),
    ] {
        assert!(store.task(A, &kept).await.unwrap().is_some(), "{kept} kept");
    }
    assert_eq!(store.purge_tasks(10_000, 1_000).await.unwrap(), 2);
    assert!(store.task(A, "t-old").await.unwrap().is_none());
    assert!(
        store.task(A, "t-mixed").await.unwrap().is_some(),
        "an unfinished batch stays"
    );
    assert!(store.task(A, "t-mixed-b").await.unwrap().is_some());
    assert_eq!(store.purge_tasks(i64::MAX, 1_000).await.unwrap(), 0);
    assert_eq!(listed(store, &filter(A)).await, ["t-mixed", "t-mixed-b"]);
}

pub(crate) async fn check_cancel(store: &dyn Store) {
    fleet(
        store,
        A,
        "ag-1",
        &[("i1", S::Running), ("i2", S::Running), ("i3", S::Running)],
    )
    .await;
    let b = limited(
        batch("t-k", A, TaskType::RunCommand, 1_000, &["i1", "i2", "i3"]),
        Some(1),
        None,
    );
    store.create_batch(&b).await.unwrap();
    let reboot = batch("t-rb", A, TaskType::RebootInstance, 1_100, &["i3"]);
    store.create_batch(&reboot).await.unwrap();
    let c = store.claim("w", 2_000, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-k", "i1")]);
    assert_eq!(
        store.heartbeat(&c[0].task_id, 1, 9_000).await.unwrap(),
        Lease::Held
    );

    // An id that is not the account's: nothing is done.
    let ids = vec!["t-k".to_string(), "t-none".to_string()];
    let out = store.cancel_tasks(A, &ids, 2_100).await.unwrap();
    assert_eq!(out.unknown, ["t-none"]);
    let ids = vec!["t-k".to_string()];
    assert_eq!(
        store.cancel_tasks(B, &ids, 2_100).await.unwrap().unknown,
        ["t-k"]
    );
    assert_eq!(counts_of(&get(store, A, "t-k").await), (2, 1, 0, 0, 0));

    let out = store.cancel_tasks(A, &ids, 2_200).await.unwrap();
    assert_eq!(
        (out.skipped, out.interrupting, out.finishing, out.ended),
        (2, 1, 0, 0)
    );
    let t = get(store, A, "t-k").await;
    assert_eq!((counts_of(&t), t.status), ((0, 1, 0, 0, 2), Processing));
    let skipped = get(store, A, &child("t-k", "i2")).await;
    assert_eq!(
        (skipped.status, skipped.error_code.as_deref()),
        (Skipped, Some("Cancelled"))
    );
    // The running command learns it at its heartbeat; the worker then ends it.
    assert_eq!(
        store.heartbeat(&c[0].task_id, 1, 9_500).await.unwrap(),
        Lease::CancelRequested
    );
    let stopped = failed(TaskErrorCode::Cancelled);
    assert!(
        store
            .complete(&c[0].task_id, 1, &stopped, 2_300)
            .await
            .unwrap()
    );
    let t = get(store, A, "t-k").await;
    assert_eq!((counts_of(&t), t.status), ((0, 0, 0, 1, 2), Failed));
    // A second cancel finds everything ended; the reboot queued behind on i3 now runs, and a
    // running reboot cannot be cut: it finishes.
    let out = store.cancel_tasks(A, &ids, 2_400).await.unwrap();
    assert_eq!((out.skipped, out.ended), (0, 3));
    let c = store.claim("w", 2_500, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-rb", "i3")]);
    let ids = vec![child("t-rb", "i3")];
    let out = store.cancel_tasks(A, &ids, 2_600).await.unwrap();
    assert_eq!((out.interrupting, out.finishing), (0, 1));
    assert_eq!(
        store.heartbeat(&c[0].task_id, 1, 9_000).await.unwrap(),
        Lease::Held
    );
}

pub(crate) async fn check_account_isolation(store: &dyn Store) {
    fleet(store, A, "ag-a", &[("ia", S::Running)]).await;
    fleet(store, B, "ag-b", &[("ib", S::Running)]).await;
    store
        .create_batch(&batch("t-a", A, TaskType::Screenshot, 100, &["ia"]))
        .await
        .unwrap();
    store
        .create_batch(&batch("t-b", B, TaskType::Screenshot, 100, &["ib"]))
        .await
        .unwrap();

    assert_eq!(
        listed(store, &filter(A)).await,
        ["t-a", &child("t-a", "ia")]
    );
    assert_eq!(
        listed(store, &filter(B)).await,
        ["t-b", &child("t-b", "ib")]
    );
    let probe = TaskFilter {
        task_ids: vec!["t-b".into(), child("t-b", "ib")],
        ..filter(A)
    };
    assert!(listed(store, &probe).await.is_empty());
    let probe = TaskFilter {
        instance_id: Some("ib".into()),
        ..filter(A)
    };
    assert!(listed(store, &probe).await.is_empty());
    let probe = TaskFilter {
        invoke_id: Some("inv-t-b".into()),
        ..filter(A)
    };
    assert!(listed(store, &probe).await.is_empty());
    assert!(store.task(A, "t-b").await.unwrap().is_none());
    assert!(store.task(A, &child("t-b", "ib")).await.unwrap().is_none());
    assert!(store.task(B, "t-b").await.unwrap().is_some());
    assert!(listed(store, &filter("acct-nobody")).await.is_empty());

    assert!(
        store
            .instances_by_id(A, &["ib".into()])
            .await
            .unwrap()
            .is_empty()
    );
    let of = |account: &str| InstanceFilter {
        account_id: account.into(),
        ..InstanceFilter::default()
    };
    let l = store.list_instances(&of(A), &page(10)).await.unwrap();
    assert_eq!(
        (l.total, l.items.len(), l.items[0].id.as_str()),
        (1, 1, "ia")
    );
    let probe = InstanceFilter {
        ids: vec!["ib".into()],
        ..of(A)
    };
    assert_eq!(
        store.list_instances(&probe, &page(10)).await.unwrap().total,
        0
    );
    let gf = GroupFilter {
        account_id: A.into(),
        ids: vec!["ag-b".into()],
        ..GroupFilter::default()
    };
    assert_eq!(store.list_groups(&gf, &page(10)).await.unwrap().total, 0);
    let change = InstanceChange {
        name: Some("hijacked".into()),
        ..InstanceChange::default()
    };
    assert_eq!(
        store
            .modify_instances(A, &["ib".into()], &change)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.instance("ib").await.unwrap().unwrap().name, "name-ib");
}
