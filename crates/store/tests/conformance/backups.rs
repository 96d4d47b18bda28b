//! Backup files.

use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::Backup;
use cloudphone_core::{TaskErrorCode, TaskType};
use cloudphone_store::{BackupFilter, Outcome, Page, Store};

use crate::support::{A, B, LEASE, batch, child, fleet, status_of};
use InstanceStatus as S;

pub(crate) fn backup_record(
    id: &str,
    account: &str,
    instance: &str,
    task: &str,
    created_ms: i64,
) -> Backup {
    Backup {
        id: id.into(),
        account_id: account.into(),
        instance_id: instance.into(),
        instance_name: format!("name-{instance}"),
        group_id: "ag-b".into(),
        oss_path: format!("oss://bucket/backups/{id}.tar"),
        name: format!("nightly-{id}"),
        description: format!("desc of {id}"),
        source_paths: vec!["/sdcard/Download".into()],
        exclude_paths: vec!["/sdcard/Download/tmp".into()],
        source_apps: vec!["com.example.app".into()],
        backup_all: id.ends_with('2'),
        upload_endpoint: "oss-cn-hangzhou.aliyuncs.com".into(),
        system_version: "Android 14".into(),
        status: Backup::CREATING.into(),
        size: 0,
        task_id: task.into(),
        created_ms,
        modified_ms: created_ms,
    }
}

pub(crate) async fn check_backups(store: &dyn Store) {
    fleet(
        store,
        A,
        "ag-b",
        &[("i1", S::Running), ("i2", S::Running), ("i3", S::Stopped)],
    )
    .await;
    fleet(store, B, "ag-bb", &[("j1", S::Running)]).await;
    let b = batch("t-bk", A, TaskType::BackupFile, 100, &["i1", "i2", "i3"]);
    let backups = [
        backup_record("bf-1", A, "i1", &child("t-bk", "i1"), 100),
        backup_record("bf-2", A, "i2", &child("t-bk", "i2"), 100),
        backup_record("bf-3", A, "i3", &child("t-bk", "i3"), 100),
    ];
    store.create_backup_batch(&b, &backups).await.unwrap();
    let theirs = batch("t-bk-b", B, TaskType::BackupFile, 150, &["j1"]);
    store
        .create_backup_batch(
            &theirs,
            &[backup_record("bf-9", B, "j1", &child("t-bk-b", "j1"), 150)],
        )
        .await
        .unwrap();
    // The batch and the records exist together.
    assert!(store.task(A, "t-bk").await.unwrap().is_some());
    let all = |account: &str| BackupFilter {
        account_id: account.into(),
        ..Default::default()
    };
    let page = |limit| Page { after: None, limit };
    let listed = store.list_backups(&all(A), &page(10)).await.unwrap();
    assert_eq!(listed.total, 3);
    assert_eq!(listed.items[0], backups[2].clone());
    assert!(listed.items.iter().all(|b| b.status == Backup::CREATING));

    // Running them settles each backup in the transaction that ends its task: i1 finishes, i2
    // fails, i3 is refused at its precondition (STOPPED).
    let claims = store.claim("w", 1_000, LEASE, 10).await.unwrap();
    assert_eq!(claims.len(), 3); // i1, i2 and the other account's j1
    assert_eq!(status_of(store, "i1").await, S::Backuping);
    let ok = Outcome::Finished {
        result: r#"{"BackupFileId":"bf-1","FileSize":4096}"#.into(),
    };
    assert!(
        store
            .complete(&child("t-bk", "i1"), 1, &ok, 2_000)
            .await
            .unwrap()
    );
    let failed = Outcome::Failed {
        code: TaskErrorCode::BackupFileFailed,
        message: "No such file".into(),
    };
    assert!(
        store
            .complete(&child("t-bk", "i2"), 1, &failed, 2_000)
            .await
            .unwrap()
    );
    assert_eq!(status_of(store, "i1").await, S::Running);
    assert_eq!(status_of(store, "i2").await, S::BackupFailed);
    let ids = [
        "bf-1".to_string(),
        "bf-2".into(),
        "bf-3".into(),
        "bf-9".into(),
    ];
    let mut got = store.backups_by_id(A, &ids).await.unwrap();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    let states: Vec<(&str, &str, i64)> = got
        .iter()
        .map(|b| (b.id.as_str(), b.status.as_str(), b.size))
        .collect();
    assert_eq!(
        states,
        [
            ("bf-1", Backup::AVAILABLE, 4096),
            ("bf-2", Backup::FAILED, 0),
            ("bf-3", Backup::FAILED, 0)
        ]
    );
    assert_eq!(got[0].modified_ms, 2_000);

    // Filters.
    let count =
        |f: BackupFilter| async move { store.list_backups(&f, &page(100)).await.unwrap().total };
    let f = |change: fn(&mut BackupFilter)| {
        let mut f = all(A);
        change(&mut f);
        f
    };
    assert_eq!(count(f(|f| f.id = Some("bf-2".into()))).await, 1);
    assert_eq!(count(f(|f| f.id = Some("bf-9".into()))).await, 0);
    assert_eq!(count(f(|f| f.instance_id = Some("i3".into()))).await, 1);
    assert_eq!(
        count(f(|f| f.instance_name = Some("name-i".into()))).await,
        3
    );
    assert_eq!(count(f(|f| f.name = Some("ly-bf-1".into()))).await, 1);
    assert_eq!(count(f(|f| f.name = Some("%".into()))).await, 0);
    assert_eq!(
        count(f(|f| f.description = Some("of bf-3".into()))).await,
        1
    );
    assert_eq!(count(f(|f| f.group_id = Some("ag-b".into()))).await, 3);
    assert_eq!(count(f(|f| f.group_id = Some("ag-bb".into()))).await, 0);
    assert_eq!(
        count(f(
            |f| f.statuses = vec![Backup::AVAILABLE.into(), Backup::FAILED.into()]
        ))
        .await,
        3
    );
    assert_eq!(
        count(f(|f| f.statuses = vec![Backup::AVAILABLE.into()])).await,
        1
    );
    assert_eq!(
        count(f(|f| f.statuses = vec!["RECOVERING".into()])).await,
        0
    );
    assert_eq!(count(f(|f| f.start_ms = Some(100))).await, 3);
    assert_eq!(count(f(|f| f.start_ms = Some(101))).await, 0);
    assert_eq!(count(f(|f| f.end_ms = Some(100))).await, 3);
    assert_eq!(count(f(|f| f.end_ms = Some(99))).await, 0);
    assert_eq!(count(f(|f| f.backup_all = Some(true))).await, 1);
    assert_eq!(count(f(|f| f.backup_all = Some(false))).await, 2);

    // Keyset pages walk every backup once, newest first.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let l = store
            .list_backups(&all(A), &Page { after, limit: 2 })
            .await
            .unwrap();
        assert_eq!(l.total, 3);
        seen.extend(l.items.iter().map(|b| b.id.clone()));
        match l.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["bf-3", "bf-2", "bf-1"]);

    // Another account's backups are invisible and cannot be deleted.
    assert_eq!(
        store.list_backups(&all(B), &page(10)).await.unwrap().total,
        1
    );
    assert!(store.backups_by_id(B, &ids[..3]).await.unwrap().is_empty());
    assert_eq!(store.delete_backups(B, &ids[..3]).await.unwrap(), 0);
    assert_eq!(store.delete_backups(A, &ids).await.unwrap(), 3);
    assert_eq!(
        store.list_backups(&all(A), &page(10)).await.unwrap().total,
        0
    );
    assert_eq!(store.backups_by_id(B, &ids).await.unwrap().len(), 1);
    // The sweeper settles a backup whose task it fails (j1's lease ran out, attempts spent).
    assert_eq!(
        store.backups_by_id(B, &ids).await.unwrap()[0].status,
        Backup::CREATING
    );
    store.sweep_expired(1_000 + LEASE + 1, 1, 0).await.unwrap();
    let swept = store.backups_by_id(B, &ids).await.unwrap();
    assert_eq!(swept[0].status, Backup::FAILED);
}
