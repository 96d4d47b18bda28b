//! Groups and instances: creation, listings and group status, changes, the watcher's and discovery's writes, quotas, images.

use cloudphone_core::InstanceStatus;
use cloudphone_core::TaskStatus;
use cloudphone_core::resources::Instance;
use cloudphone_core::{Level, TaskErrorCode, TaskType};
use cloudphone_store::{Cursor, GroupFilter, InstanceChange, InstanceFilter, Outcome, Page, Store};

use crate::support::{
    A, B, LEASE, batch, child, claimed_ids, failed, filter, fleet, get, group, instance, internal,
    listed, page, sorted, status_of,
};
use InstanceStatus as S;
use TaskStatus::Waiting;

pub(crate) async fn check_groups_and_instances(store: &dyn Store) {
    let g1 = group("ag-1", A, "team-red", 1_000);
    let g2 = group("ag-2", A, "team-blue", 2_000);
    let g3 = group("ag-3", A, "other", 3_000);
    let gb = group("ag-b", B, "team-red", 1_500);
    let instances = [
        instance("acp-11", A, "ag-1", "red-one", S::Running, 1_001),
        instance("acp-12", A, "ag-1", "red-two", S::Creating, 1_002),
        instance("acp-13", A, "ag-1", "red-three", S::Deleted, 1_003),
        instance("acp-21", A, "ag-2", "blue-one", S::Running, 2_001),
        instance("acp-22", A, "ag-2", "blue_two%", S::Stopped, 2_002),
        instance("acp-31", A, "ag-3", "gone", S::Deleted, 3_001),
        instance("acp-b1", B, "ag-b", "red-one", S::Running, 1_501),
    ];
    let create = internal("t-create-12", A, TaskType::CreateInstance, "acp-12", 1_002);
    store
        .create_groups(
            &[g1.clone(), g2.clone(), g3.clone(), gb],
            &instances,
            &[create],
            None,
            None,
        )
        .await
        .unwrap();

    let ids = |l: &[Instance]| l.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    let list = |f: InstanceFilter, limit| async move {
        store.list_instances(&f, &page(limit)).await.unwrap()
    };
    let of_a = InstanceFilter {
        account_id: A.into(),
        ..InstanceFilter::default()
    };

    // Default: newest first, DELETED hidden, another account's never.
    let all = list(of_a.clone(), 100).await;
    assert_eq!(ids(&all.items), ["acp-22", "acp-21", "acp-12", "acp-11"]);
    assert_eq!(all.total, 4);
    assert!(all.next.is_none());
    let one = &all.items[3];
    assert_eq!(one.group_name, "team-red");
    assert_eq!(
        one,
        &Instance {
            group_name: "team-red".into(),
            ..instances[0].clone()
        }
    );
    let asc = list(
        InstanceFilter {
            ascending: true,
            ..of_a.clone()
        },
        100,
    )
    .await;
    assert_eq!(ids(&asc.items), ["acp-11", "acp-12", "acp-21", "acp-22"]);

    let f = |change: fn(&mut InstanceFilter)| {
        let mut f = of_a.clone();
        change(&mut f);
        f
    };
    let cases: Vec<(InstanceFilter, Vec<&str>)> = vec![
        (
            f(|f| {
                f.ids = vec![
                    "acp-11".into(),
                    "acp-22".into(),
                    "acp-b1".into(),
                    "acp-13".into(),
                ]
            }),
            vec!["acp-22", "acp-11"],
        ),
        (f(|f| f.name = Some("one".into())), vec!["acp-21", "acp-11"]),
        (f(|f| f.name = Some("_two%".into())), vec!["acp-22"]),
        (
            f(|f| f.group_ids = vec!["ag-1".into(), "ag-b".into()]),
            vec!["acp-12", "acp-11"],
        ),
        (
            f(|f| f.group_name = Some("blue".into())),
            vec!["acp-22", "acp-21"],
        ),
        (f(|f| f.status = Some(S::Deleted)), vec!["acp-31", "acp-13"]),
        (f(|f| f.status = Some(S::Running)), vec!["acp-21", "acp-11"]),
        (
            f(|f| {
                f.group_name = Some("red".into());
                f.name = Some("two".into());
            }),
            vec!["acp-12"],
        ),
        (
            f(|f| {
                f.group_ids = vec!["ag-2".into()];
                f.status = Some(S::Creating);
            }),
            vec![],
        ),
    ];
    for (filter, want) in cases {
        let got = list(filter.clone(), 100).await;
        assert_eq!(ids(&got.items), want, "{filter:?}");
        assert_eq!(got.total, want.len() as i64, "{filter:?}");
    }

    // Keyset pages of one, both directions.
    for ascending in [false, true] {
        let filter = InstanceFilter {
            ascending,
            ..of_a.clone()
        };
        let mut after = None;
        let mut walked = Vec::new();
        for round in 0.. {
            assert!(round < 100, "pagination does not end");
            let l = store
                .list_instances(
                    &filter,
                    &Page {
                        after: after.clone(),
                        limit: 1,
                    },
                )
                .await
                .unwrap();
            assert_eq!(l.total, 4);
            assert_eq!(l.items.len(), 1);
            walked.push(l.items[0].id.clone());
            match l.next {
                Some(next) => {
                    assert_eq!(
                        next,
                        Cursor {
                            ms: l.items[0].created_ms,
                            id: l.items[0].id.clone()
                        }
                    );
                    after = Some(next);
                }
                None => break,
            }
        }
        let want = if ascending {
            ids(&asc.items)
        } else {
            ids(&all.items)
        };
        assert_eq!(walked, want);
    }

    // Lookups.
    let by_id = store
        .instances_by_id(
            A,
            &[
                "acp-11".into(),
                "acp-13".into(),
                "acp-b1".into(),
                "acp-22".into(),
                "nope".into(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(sorted(by_id.iter().map(|i| &i.id)), ["acp-11", "acp-22"]);
    assert!(by_id.iter().all(|i| !i.group_name.is_empty()));
    assert!(store.instances_by_id(A, &[]).await.unwrap().is_empty());
    assert_eq!(
        status_of(store, "acp-13").await,
        S::Deleted,
        "instance() sees every status"
    );
    assert_eq!(
        store.instance("acp-b1").await.unwrap().unwrap().account_id,
        B
    );
    assert!(store.instance("acp-none").await.unwrap().is_none());

    // Changes: only the fields given, only live instances of the account.
    let rename = InstanceChange {
        name: Some("renamed".into()),
        up_bandwidth_limit: Some(10),
        down_bandwidth_limit: None,
    };
    let n = store
        .modify_instances(
            A,
            &["acp-11".into(), "acp-13".into(), "acp-b1".into()],
            &rename,
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let only_down = InstanceChange {
        down_bandwidth_limit: Some(20),
        ..InstanceChange::default()
    };
    assert_eq!(
        store
            .modify_instances(A, &["acp-11".into()], &only_down)
            .await
            .unwrap(),
        1
    );
    let i11 = store.instance("acp-11").await.unwrap().unwrap();
    assert_eq!(
        (
            i11.name.as_str(),
            i11.up_bandwidth_limit,
            i11.down_bandwidth_limit
        ),
        ("renamed", Some(10), Some(20))
    );
    assert_eq!(
        store.instance("acp-13").await.unwrap().unwrap().name,
        "red-three"
    );
    assert_eq!(
        store.instance("acp-b1").await.unwrap().unwrap().name,
        "red-one"
    );

    // Groups: counts, order, filters, pages.
    let groups =
        |f: GroupFilter, limit| async move { store.list_groups(&f, &page(limit)).await.unwrap() };
    let gids = |l: &[cloudphone_core::resources::GroupSummary]| {
        l.iter().map(|g| g.group.id.clone()).collect::<Vec<_>>()
    };
    let groups_of_a = GroupFilter {
        account_id: A.into(),
        ..GroupFilter::default()
    };
    let gl = groups(groups_of_a.clone(), 100).await;
    assert_eq!(
        gids(&gl.items),
        ["ag-3", "ag-2", "ag-1"],
        "ag-3 is not deleting yet"
    );
    assert_eq!(gl.total, 3);
    let s1 = &gl.items[2];
    assert_eq!(s1.group, g1, "tags and fields round-trip");
    assert_eq!((s1.instances, s1.creating, s1.deleted), (3, 1, 1));
    let s2 = &gl.items[1];
    assert_eq!((s2.instances, s2.creating, s2.deleted), (2, 0, 0));
    let asc = groups(
        GroupFilter {
            ascending: true,
            ..groups_of_a.clone()
        },
        100,
    )
    .await;
    assert_eq!(gids(&asc.items), ["ag-1", "ag-2", "ag-3"]);
    let by_name = groups(
        GroupFilter {
            name: Some("team".into()),
            ..groups_of_a.clone()
        },
        100,
    )
    .await;
    assert_eq!(gids(&by_name.items), ["ag-2", "ag-1"]);
    let by_ids = groups(
        GroupFilter {
            ids: vec!["ag-1".into(), "ag-b".into()],
            ..groups_of_a.clone()
        },
        100,
    )
    .await;
    assert_eq!(gids(&by_ids.items), ["ag-1"]);
    let first = groups(groups_of_a.clone(), 2).await;
    assert_eq!(gids(&first.items), ["ag-3", "ag-2"]);
    assert_eq!(first.total, 3);
    let next = first.next.clone().expect("a second page");
    assert_eq!(
        next,
        Cursor {
            ms: 2_000,
            id: "ag-2".into()
        }
    );
    let second = store
        .list_groups(
            &groups_of_a,
            &Page {
                after: Some(next),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(gids(&second.items), ["ag-1"]);
    assert!(second.next.is_none());

    // Deleting: the flag is set, the tasks are queued; a deleting group whose instances are all
    // DELETED is hidden unless asked for.
    let del = internal("t-del-21", A, TaskType::DeleteInstance, "acp-21", 4_000);
    store
        .delete_groups(A, &["ag-3".into(), "ag-b".into()], &[del])
        .await
        .unwrap();
    let gl = groups(groups_of_a.clone(), 100).await;
    assert_eq!(gids(&gl.items), ["ag-2", "ag-1"]);
    assert_eq!(gl.total, 2);
    let with_deleted = groups(
        GroupFilter {
            include_deleted: true,
            ..groups_of_a.clone()
        },
        100,
    )
    .await;
    assert_eq!(gids(&with_deleted.items), ["ag-3", "ag-2", "ag-1"]);
    assert!(with_deleted.items[0].group.deleting);
    assert!(!with_deleted.items[1].group.deleting);
    let b_groups = groups(
        GroupFilter {
            account_id: B.into(),
            ..GroupFilter::default()
        },
        100,
    )
    .await;
    assert_eq!(gids(&b_groups.items), ["ag-b"]);
    assert!(
        !b_groups.items[0].group.deleting,
        "another account's group is untouched"
    );

    // The internal tasks exist, are never listed, and run.
    let t = get(store, A, "t-del-21").await;
    assert_eq!(
        (t.level, t.status, t.task_type),
        (Level::Internal, Waiting, TaskType::DeleteInstance)
    );
    assert!(listed(store, &filter(A)).await.is_empty());
    let claims = store.claim("w", 10_000, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&claims), ["t-create-12", "t-del-21"]);
}

pub(crate) async fn check_watcher_marks(store: &dyn Store) {
    fleet(
        store,
        A,
        "ag-1",
        &[("i1", S::Running), ("i2", S::Stopped), ("i3", S::Running)],
    )
    .await;
    fleet(store, B, "ag-2", &[("j1", S::Running)]).await;
    let watched = ["imgc-android14".to_string()];
    let mut seen = store.running_instances_on(&watched).await.unwrap();
    seen.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<&str> = seen.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["i1", "i3", "j1"]);
    assert!(
        store
            .running_instances_on(&["imgc-other".to_string()])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.running_instances_on(&[]).await.unwrap().is_empty());

    let i1 = &seen[0];
    assert!(
        !store
            .mark_instance("i1", S::Running, S::Unavailable, i1.modified_ms + 1, 5_000)
            .await
            .unwrap(),
        "moved since it was seen"
    );
    assert!(
        !store
            .mark_instance("i2", S::Running, S::Unavailable, 1, 5_000)
            .await
            .unwrap(),
        "not RUNNING"
    );
    assert!(
        !store
            .mark_instance("i-none", S::Running, S::Unavailable, 0, 5_000)
            .await
            .unwrap()
    );
    assert_eq!(status_of(store, "i1").await, S::Running);

    // A command starts on i1, the phone dies meanwhile, the command ends: i1 stays UNAVAILABLE.
    store
        .create_batch(&batch("t-c", A, TaskType::RunCommand, 1_000, &["i1"]))
        .await
        .unwrap();
    let c = store.claim("w", 2_000, 1_000, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-c", "i1")]);
    let now = store.instance("i1").await.unwrap().unwrap();
    assert!(
        store
            .mark_instance("i1", S::Running, S::Unavailable, now.modified_ms, 6_000)
            .await
            .unwrap()
    );
    let i1 = store.instance("i1").await.unwrap().unwrap();
    assert_eq!((i1.status, i1.modified_ms), (S::Unavailable, 6_000));
    let failure = failed(TaskErrorCode::InstanceUnreachable);
    assert!(
        store
            .complete(&c[0].task_id, c[0].attempt, &failure, 7_000)
            .await
            .unwrap()
    );
    assert_eq!(status_of(store, "i1").await, S::Unavailable);
    let ids: Vec<String> = store
        .running_instances_on(&watched)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(sorted(ids), ["i3", "j1"]);

    // Back again (a device that returned to its ADB server).
    let i1 = store.instance("i1").await.unwrap().unwrap();
    assert!(
        store
            .mark_instance("i1", S::Unavailable, S::Running, i1.modified_ms, 8_000)
            .await
            .unwrap()
    );
    assert_eq!(status_of(store, "i1").await, S::Running);
}

/// An instance quota: a creation that would pass it creates nothing and says how many the
/// account has; DELETED instances and other accounts do not count; concurrent creations cannot
/// both take the last place.
pub(crate) async fn check_instance_quota(store: &dyn Store) {
    let phones = |gid: &str, account: &str, n: usize, status: S| -> Vec<Instance> {
        (0..n)
            .map(|i| {
                instance(
                    &format!("{gid}-{i}"),
                    account,
                    gid,
                    &format!("q-{i}"),
                    status,
                    0,
                )
            })
            .collect()
    };
    store
        .create_groups(
            &[group("ag-q1", A, "q", 0)],
            &phones("ag-q1", A, 2, S::Running),
            &[],
            Some(3),
            None,
        )
        .await
        .unwrap();
    store
        .create_groups(
            &[group("ag-qd", A, "q", 0)],
            &phones("ag-qd", A, 5, S::Deleted),
            &[],
            None,
            None,
        )
        .await
        .unwrap();
    match store
        .create_groups(
            &[group("ag-q2", A, "q", 0)],
            &phones("ag-q2", A, 2, S::Creating),
            &[],
            Some(3),
            None,
        )
        .await
    {
        Err(cloudphone_store::StoreError::QuotaExceeded { used }) => assert_eq!(used, 2),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    let refused = ["ag-q2-0".to_string(), "ag-q2-1".to_string()];
    assert!(
        store.instances_by_id(A, &refused).await.unwrap().is_empty(),
        "a refused creation wrote its instances"
    );
    store
        .create_groups(
            &[group("ag-qb", B, "q", 0)],
            &phones("ag-qb", B, 3, S::Running),
            &[],
            Some(3),
            None,
        )
        .await
        .unwrap();
    let one = |n: usize| {
        let gid = format!("ag-qr{n}");
        (group(&gid, A, "q", 0), phones(&gid, A, 1, S::Creating))
    };
    let (g1, i1) = one(1);
    let (g2, i2) = one(2);
    let (g3, i3) = one(3);
    let (r1, r2, r3) = tokio::join!(
        store.create_groups(std::slice::from_ref(&g1), &i1, &[], Some(3), None),
        store.create_groups(std::slice::from_ref(&g2), &i2, &[], Some(3), None),
        store.create_groups(std::slice::from_ref(&g3), &i3, &[], Some(3), None),
    );
    let made = [r1, r2, r3].into_iter().filter(Result::is_ok).count();
    assert_eq!(made, 1, "three racing creations for the last place");
}

/// Devices found by discovery: the group once, each instance once; one stored before (also a
/// DELETED one) is left as it is.
pub(crate) async fn check_adopted_instances(store: &dyn Store) {
    let g = group("ag-adb", A, "lab", 10);
    let found = |ids: &[&str]| -> Vec<Instance> {
        ids.iter()
            .map(|id| instance(id, A, "ag-adb", id, S::Running, 20))
            .collect()
    };
    assert_eq!(
        store
            .adopt_instances(&g, &found(&["d1", "d2"]))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .adopt_instances(&g, &found(&["d1", "d2", "d3"]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.adopt_instances(&g, &[]).await.unwrap(), 0);
    let i = store.instance("d1").await.unwrap().unwrap();
    assert!(
        store
            .mark_instance("d1", S::Running, S::Unavailable, i.modified_ms, 30)
            .await
            .unwrap()
    );
    assert_eq!(store.adopt_instances(&g, &found(&["d1"])).await.unwrap(), 0);
    assert_eq!(
        status_of(store, "d1").await,
        S::Unavailable,
        "adoption leaves a stored instance alone"
    );
    let groups = store
        .list_groups(
            &GroupFilter {
                account_id: A.into(),
                ..Default::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(groups.items.len(), 1);
    assert_eq!(groups.items[0].group.name, "lab");

    // A group being deleted takes no new devices.
    store
        .delete_groups(A, &["ag-adb".to_string()], &[])
        .await
        .unwrap();
    assert_eq!(store.adopt_instances(&g, &found(&["d9"])).await.unwrap(), 0);
    assert!(store.instance("d9").await.unwrap().is_none());
}

pub(crate) async fn check_group_images(store: &dyn Store) {
    fleet(store, A, "ag-1", &[("i1", S::Running), ("i2", S::Running)]).await;
    let groups = |status: Option<&str>| {
        let filter = GroupFilter {
            account_id: A.into(),
            status: status.map(str::to_string),
            ..GroupFilter::default()
        };
        async move { store.list_groups(&filter, &page(10)).await.unwrap().items }
    };
    assert_eq!(groups(None).await[0].status(), "RUNNING");
    let mut b = batch("t-img", A, TaskType::UpdateGroupImage, 2_000, &["i1", "i2"]);
    b.batch.resource_id = "ag-1".into();
    for c in &mut b.children {
        c.param = r#"{"ImageId":"imgc-new"}"#.into();
    }
    store
        .update_group_images(A, "imgc-new", std::slice::from_ref(&b), 2_000)
        .await
        .unwrap();
    let g = &groups(None).await[0];
    assert_eq!(
        (g.group.image_id.as_str(), g.status()),
        ("imgc-new", "UPDATING")
    );
    assert_eq!(groups(Some("UPDATING")).await.len(), 1);
    assert!(groups(Some("RUNNING")).await.is_empty());
    // One phone takes the image, the other fails: the group shows UPDATING_FAILED, and only the
    // phone that finished runs the new image.
    let claims = store.claim("w", 3_000, LEASE, 10).await.unwrap();
    assert_eq!(claims.len(), 2);
    let (ok, bad) = if claims[0].instance_id == "i1" {
        (&claims[0], &claims[1])
    } else {
        (&claims[1], &claims[0])
    };
    assert!(
        store
            .complete(
                &ok.task_id,
                ok.attempt,
                &Outcome::Finished {
                    result: "{}".into()
                },
                3_000
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .complete(
                &bad.task_id,
                bad.attempt,
                &Outcome::Failed {
                    code: TaskErrorCode::OperationFailed,
                    message: "x".into()
                },
                3_000
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.instance("i1").await.unwrap().unwrap().image_id,
        "imgc-new"
    );
    let i2 = store.instance("i2").await.unwrap().unwrap();
    assert_ne!(i2.image_id, "imgc-new");
    assert_eq!(i2.status, S::Unavailable);
    assert_eq!(groups(None).await[0].status(), "UPDATING_FAILED");
    assert_eq!(groups(Some("UPDATING_FAILED")).await.len(), 1);
}
