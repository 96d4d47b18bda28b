//! The conformance suite of the [`Store`] trait. Every check is an `async fn check_xxx(store:
//! &dyn Store)` written against the trait only, so that each implementation runs the same
//! checks: the `sqlite` module at the bottom runs each on a fresh database in a temp dir, the
//! `postgres` module on a fresh database in a PostgreSQL cluster.
//!
//! The PostgreSQL tests need a cluster: `scripts/pg-cluster start DIR` starts a throwaway one
//! and prints its admin URL, to export as `CLOUDPHONE_TEST_DATABASE_URL` (e.g.
//! `postgres://postgres@127.0.0.1:PORT/postgres`; `scripts/test` does this). Without it they
//! fail, saying so.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cloudphone_core::resources::{AccessKey, App, Backup, Group, Instance, Task};
use cloudphone_core::{BatchCounts, InstanceStatus, Level, TaskErrorCode, TaskStatus, TaskType};
use cloudphone_store::{
    AccountDeletion, AppFilter, AuditEntry, AuditFilter, BackupFilter, Claim, Completion, Cursor,
    GroupFilter, InstanceChange, InstanceFilter, Lease, Listing, NewBatch, NewTask, Nonce, Outcome,
    Page, Phone, Store, Swept, TaskFilter,
};

use InstanceStatus as S;
use TaskStatus::{Failed, Finished, PartFinished, Processing, Skipped, Waiting};

const A: &str = "acct-a";
const B: &str = "acct-b";
const LEASE: i64 = 30_000;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn group(id: &str, account: &str, name: &str, created_ms: i64) -> Group {
    Group {
        id: id.into(),
        account_id: account.into(),
        name: name.into(),
        region_id: "cn-hangzhou".into(),
        image_id: "imgc-android14".into(),
        spec: "acp.basic.small".into(),
        charge_type: "PostPaid".into(),
        tags: vec![("team".into(), "qa".into()), ("env".into(), "test".into())],
        created_ms,
        modified_ms: created_ms,
        deleting: false,
    }
}

fn instance(
    id: &str,
    account: &str,
    group_id: &str,
    name: &str,
    status: InstanceStatus,
    created_ms: i64,
) -> Instance {
    Instance {
        id: id.into(),
        account_id: account.into(),
        group_id: group_id.into(),
        group_name: String::new(),
        name: name.into(),
        status,
        image_id: "imgc-android14".into(),
        spec: "acp.basic.small".into(),
        region_id: "cn-hangzhou".into(),
        up_bandwidth_limit: None,
        down_bandwidth_limit: None,
        charge_type: "PostPaid".into(),
        created_ms,
        modified_ms: created_ms,
    }
}

/// Creates group `gid` of `account` holding one instance per `(id, status)`, named after its id.
async fn fleet(store: &dyn Store, account: &str, gid: &str, phones: &[(&str, InstanceStatus)]) {
    let instances: Vec<Instance> = phones
        .iter()
        .enumerate()
        .map(|(n, (id, status))| {
            instance(id, account, gid, &format!("name-{id}"), *status, n as i64)
        })
        .collect();
    store
        .create_groups(&[group(gid, account, gid, 0)], &instances, &[], None)
        .await
        .unwrap();
}

fn new_task(
    id: &str,
    account: &str,
    invoke: &str,
    level: Level,
    ty: TaskType,
    start_ms: i64,
) -> NewTask {
    NewTask {
        id: id.into(),
        account_id: account.into(),
        invoke_id: invoke.into(),
        level,
        task_type: ty,
        resource_id: String::new(),
        instance_id: None,
        instance_name: None,
        param: "{}".into(),
        operator: "tester".into(),
        start_ms,
    }
}

/// The phone a claim carries for an instance made by [`fleet`].
fn phone_of(account: &str, id: &str) -> Phone {
    Phone {
        account_id: account.into(),
        name: format!("name-{id}"),
        image_id: "imgc-android14".into(),
        spec: "acp.basic.small".into(),
    }
}

/// The id of the child of batch `batch` on `instance`.
fn child(batch: &str, instance: &str) -> String {
    format!("{batch}-{instance}")
}

/// A batch `id` (InvokeId `inv-<id>`) with one child per instance, all accepted at `start_ms`.
fn batch(id: &str, account: &str, ty: TaskType, start_ms: i64, instances: &[&str]) -> NewBatch {
    let invoke = format!("inv-{id}");
    let children = instances
        .iter()
        .map(|i| NewTask {
            resource_id: i.to_string(),
            instance_id: Some(i.to_string()),
            instance_name: Some(format!("name-{i}")),
            ..new_task(
                &child(id, i),
                account,
                &invoke,
                Level::Instance,
                ty,
                start_ms,
            )
        })
        .collect();
    NewBatch {
        batch: new_task(id, account, &invoke, Level::Batch, ty, start_ms),
        children,
        limits: Default::default(),
    }
}

/// An internal (Level 0) task on an instance.
fn internal(id: &str, account: &str, ty: TaskType, instance: &str, start_ms: i64) -> NewTask {
    NewTask {
        resource_id: instance.into(),
        instance_id: Some(instance.into()),
        instance_name: Some(format!("name-{instance}")),
        ..new_task(
            id,
            account,
            &format!("inv-{id}"),
            Level::Internal,
            ty,
            start_ms,
        )
    }
}

async fn get(store: &dyn Store, account: &str, id: &str) -> Task {
    store
        .task(account, id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("task {id} of {account} not found"))
}

async fn status_of(store: &dyn Store, instance_id: &str) -> InstanceStatus {
    store.instance(instance_id).await.unwrap().unwrap().status
}

fn counts(waiting: i64, processing: i64, finished: i64, failed: i64, skipped: i64) -> BatchCounts {
    BatchCounts {
        waiting,
        processing,
        finished,
        failed,
        skipped,
    }
}

fn page(limit: usize) -> Page {
    Page { after: None, limit }
}

fn filter(account: &str) -> TaskFilter {
    TaskFilter {
        account_id: account.into(),
        ..TaskFilter::default()
    }
}

fn sorted<S: ToString>(v: impl IntoIterator<Item = S>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Checks that the written form of the page (`describe_tasks_rendered`) has the listing's
/// tasks, every field of each, in order, after the head, with the same total and cursor.
async fn assert_rendered_like(store: &dyn Store, f: &TaskFilter, p: &Page, l: &Listing<Task>) {
    let render: cloudphone_store::TaskRender = std::sync::Arc::new(|out, n, t| {
        out.extend_from_slice(format!("{n}:{t:?};").as_bytes());
    });
    let r = store
        .describe_tasks_rendered(f, p, b"head;".to_vec(), render)
        .await
        .unwrap();
    let mut expected = String::from("head;");
    for (n, t) in l.items.iter().enumerate() {
        expected.push_str(&format!("{n}:{:?};", t.view()));
    }
    assert_eq!(String::from_utf8(r.bytes).unwrap(), expected, "{f:?}");
    assert_eq!(
        (r.count, r.total, &r.next),
        (l.items.len(), l.total, &l.next)
    );
}

/// The ids DescribeTasks lists for `f` (one page), sorted; checks that the total agrees.
async fn listed(store: &dyn Store, f: &TaskFilter) -> Vec<String> {
    let l = store.describe_tasks(f, &page(100)).await.unwrap();
    assert_rendered_like(store, f, &page(100), &l).await;
    assert_eq!(l.total, l.items.len() as i64, "total of {f:?}");
    assert!(l.next.is_none());
    sorted(l.items.into_iter().map(|t| t.id))
}

fn claimed_ids(claims: &[Claim]) -> Vec<String> {
    claims.iter().map(|c| c.task_id.clone()).collect()
}

fn finished() -> Outcome {
    Outcome::Finished {
        result: r#"{"Success":true}"#.into(),
    }
}

fn failed(code: TaskErrorCode) -> Outcome {
    Outcome::Failed {
        code,
        message: "it broke".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Accounts, keys, nonces, settings
// ---------------------------------------------------------------------------------------------

async fn check_accounts_and_keys(store: &dyn Store) {
    store.ensure_account(A, "Alice").await.unwrap();
    store.ensure_account(A, "Alice again").await.unwrap();
    assert_eq!(store.access_key("LTAI-none").await.unwrap(), None);

    let mut key = AccessKey {
        key_id: "LTAI-1".into(),
        secret: "s3cret".into(),
        account_id: A.into(),
        user_name: "alice".into(),
    };
    store.put_access_key(&key).await.unwrap();
    assert_eq!(store.access_key("LTAI-1").await.unwrap(), Some(key.clone()));

    key.secret = "rotated".into();
    key.user_name = "alice2".into();
    store.put_access_key(&key).await.unwrap();
    assert_eq!(store.access_key("LTAI-1").await.unwrap(), Some(key));
}

/// The admin's view: accounts and keys listed, disabled (a disabled key, and every key of a
/// disabled account, authenticates nothing, its nonces included), enabled again, deleted; an
/// account with instances is not deleted. The audit log keeps entries in order, filtered.
async fn check_admin_accounts_keys_and_audit(store: &dyn Store) {
    store.ensure_account(A, "Alice").await.unwrap();
    store.ensure_account(B, "Bob").await.unwrap();
    let key = |id: &str, account: &str| AccessKey {
        key_id: id.into(),
        secret: format!("secret-{id}"),
        account_id: account.into(),
        user_name: format!("user-{id}"),
    };
    let (a1, a2, b1) = (key("LTAI-a1", A), key("LTAI-a2", A), key("LTAI-b1", B));
    for k in [&a1, &a2, &b1] {
        store.put_access_key(k).await.unwrap();
    }
    let accounts = store.list_accounts().await.unwrap();
    let a = accounts.iter().find(|r| r.id == A).unwrap();
    assert_eq!(
        (a.name.as_str(), a.disabled, a.keys, a.instances),
        ("Alice", false, 2, 0)
    );
    assert!(a.created_ms > 0);
    let keys: Vec<String> = store
        .list_access_keys(Some(A))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key.key_id)
        .collect();
    assert_eq!(keys, ["LTAI-a1", "LTAI-a2"]);

    assert!(
        store
            .set_access_key_disabled("LTAI-a1", true)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_access_key_disabled("LTAI-none", true)
            .await
            .unwrap()
    );
    assert_eq!(store.access_key("LTAI-a1").await.unwrap(), None);
    assert_eq!(
        store.remember_nonce(&a1, "n1", i64::MAX).await.unwrap(),
        Nonce::KeyChanged
    );
    assert_eq!(store.access_key("LTAI-a2").await.unwrap(), Some(a2.clone()));
    let listed = store.list_access_keys(Some(A)).await.unwrap();
    assert!(listed[0].disabled && !listed[1].disabled);

    assert!(store.set_account_disabled(A, true).await.unwrap());
    assert_eq!(store.access_key("LTAI-a2").await.unwrap(), None);
    assert_eq!(
        store.remember_nonce(&a2, "n2", i64::MAX).await.unwrap(),
        Nonce::KeyChanged
    );
    assert_eq!(store.access_key("LTAI-b1").await.unwrap(), Some(b1.clone()));
    assert!(store.list_access_keys(Some(A)).await.unwrap()[1].account_disabled);
    assert!(store.set_account_disabled(A, false).await.unwrap());
    assert!(
        store
            .set_access_key_disabled("LTAI-a1", false)
            .await
            .unwrap()
    );
    assert_eq!(store.access_key("LTAI-a1").await.unwrap(), Some(a1.clone()));
    assert_eq!(
        store.remember_nonce(&a1, "n3", i64::MAX).await.unwrap(),
        Nonce::Fresh
    );

    assert!(store.delete_access_key("LTAI-a2").await.unwrap());
    assert!(!store.delete_access_key("LTAI-a2").await.unwrap());
    assert_eq!(store.access_key("LTAI-a2").await.unwrap(), None);

    fleet(store, A, "ag-admin", &[("i-adm", S::Running)]).await;
    assert_eq!(
        store.delete_account(A).await.unwrap(),
        AccountDeletion::HasInstances(1)
    );
    assert_eq!(store.access_key("LTAI-a1").await.unwrap(), Some(a1));
    assert_eq!(
        store.delete_account("acct-none").await.unwrap(),
        AccountDeletion::NotFound
    );
    assert_eq!(
        store.delete_account(B).await.unwrap(),
        AccountDeletion::Deleted
    );
    assert_eq!(store.access_key("LTAI-b1").await.unwrap(), None);
    assert!(
        store
            .list_accounts()
            .await
            .unwrap()
            .iter()
            .all(|r| r.id != B)
    );

    let entry = |n: i64, account: &str, action: &str| AuditEntry {
        id: 0,
        at_ms: 1000 + n,
        account_id: account.into(),
        user_name: "u".into(),
        key_id: "k".into(),
        action: action.into(),
        resource_ids: vec![format!("acp-{n}"), "ag-x".into()],
        request_id: format!("req-{n}"),
        source: "127.0.0.1:5000".into(),
        outcome: if n == 2 {
            "IncorrectStatus".into()
        } else {
            "Success".into()
        },
    };
    store
        .append_audit(&[entry(1, A, "RunCommand"), entry(2, B, "RunCommand")])
        .await
        .unwrap();
    store
        .append_audit(&[entry(3, A, "StopAndroidInstance")])
        .await
        .unwrap();
    let all = store
        .audit(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .map(|e| e.request_id.as_str())
            .collect::<Vec<_>>(),
        ["req-1", "req-2", "req-3"]
    );
    assert!(all[0].id < all[1].id && all[1].id < all[2].id);
    assert_eq!(all[1].resource_ids, ["acp-2", "ag-x"]);
    assert_eq!(all[1].outcome, "IncorrectStatus");
    let mine = store
        .audit(&AuditFilter {
            account_id: Some(A.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.len(), 2);
    let after = store
        .audit(&AuditFilter {
            account_id: Some(A.into()),
            action: Some("StopAndroidInstance".into()),
            after_id: all[0].id,
            limit: 1,
        })
        .await
        .unwrap();
    assert_eq!(after.iter().map(|e| e.at_ms).collect::<Vec<_>>(), [1003]);
}

fn nonce_key(key_id: &str) -> AccessKey {
    AccessKey {
        key_id: key_id.into(),
        secret: format!("secret-of-{key_id}"),
        account_id: A.into(),
        user_name: "alice".into(),
    }
}

async fn check_nonces(store: &dyn Store) {
    store.ensure_account(A, "Alice").await.unwrap();
    let (k1, k2, k3) = (nonce_key("k1"), nonce_key("k2"), nonce_key("k3"));
    for k in [&k1, &k2, &k3] {
        store.put_access_key(k).await.unwrap();
    }
    let fresh = |k: &AccessKey, n: &str, exp: i64| {
        let (k, n) = (k.clone(), n.to_string());
        async move { store.remember_nonce(&k, &n, exp).await.unwrap() }
    };
    assert_eq!(fresh(&k1, "n1", 1_000).await, Nonce::Fresh);
    assert_eq!(fresh(&k1, "n1", 1_000).await, Nonce::Replay);
    assert_eq!(fresh(&k1, "n1", 9_000).await, Nonce::Replay);
    assert_eq!(
        fresh(&k2, "n1", 1_000).await,
        Nonce::Fresh,
        "nonces are per key"
    );
    assert_eq!(fresh(&k1, "n2", 5_000).await, Nonce::Fresh);

    assert_eq!(store.purge_nonces(2_000).await.unwrap(), 2);
    assert_eq!(store.purge_nonces(2_000).await.unwrap(), 0);
    assert_eq!(
        fresh(&k1, "n2", 5_000).await,
        Nonce::Replay,
        "not expired yet"
    );
    assert_eq!(fresh(&k1, "n1", 3_000).await, Nonce::Fresh, "forgotten");

    // A key that is not stored as the caller has it records nothing: unknown, or with another
    // secret, account or user than the stored one.
    let mut stale = k2.clone();
    stale.secret = "old-secret".into();
    let mut moved = k2.clone();
    moved.user_name = "bob".into();
    for k in [nonce_key("k-unknown"), stale, moved] {
        assert_eq!(fresh(&k, "n9", 9_000).await, Nonce::KeyChanged, "{k:?}");
    }
    assert_eq!(
        fresh(&k2, "n9", 9_000).await,
        Nonce::Fresh,
        "nothing was recorded"
    );
    let mut rotated = k2.clone();
    rotated.secret = "rotated".into();
    store.put_access_key(&rotated).await.unwrap();
    assert_eq!(fresh(&k2, "n10", 9_000).await, Nonce::KeyChanged);
    assert_eq!(fresh(&rotated, "n10", 9_000).await, Nonce::Fresh);

    // Calls arriving together (a store may write their nonces in one group): each nonce is
    // new exactly once, however many calls carry it.
    let calls = (0..64).map(|i| {
        let nonce = format!("c{}", i % 16);
        let k3 = k3.clone();
        async move {
            (
                nonce.clone(),
                store.remember_nonce(&k3, &nonce, 9_000).await.unwrap(),
            )
        }
    });
    let answers = futures::future::join_all(calls).await;
    let mut fresh: BTreeMap<String, usize> = BTreeMap::new();
    for (nonce, answer) in answers {
        *fresh.entry(nonce).or_default() += usize::from(answer == Nonce::Fresh);
    }
    assert_eq!(fresh.len(), 16);
    assert!(fresh.values().all(|&n| n == 1), "{fresh:?}");
}

async fn check_settings(store: &dyn Store) {
    assert_eq!(
        store.setting_or_init("token-key", "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        store.setting_or_init("token-key", "second").await.unwrap(),
        "first"
    );
    assert_eq!(store.setting_or_init("other", "x").await.unwrap(), "x");
    assert_eq!(
        store.setting_or_init("token-key", "third").await.unwrap(),
        "first"
    );
}

// ---------------------------------------------------------------------------------------------
// Object-store buckets
// ---------------------------------------------------------------------------------------------

async fn check_buckets(store: &dyn Store) {
    assert_eq!(store.bucket_owner("media").await.unwrap(), None);
    assert_eq!(store.claim_bucket("media", A).await.unwrap(), A);
    assert_eq!(
        store.claim_bucket("media", A).await.unwrap(),
        A,
        "idempotent"
    );
    assert_eq!(
        store.claim_bucket("media", B).await.unwrap(),
        A,
        "first writer wins"
    );
    assert_eq!(store.bucket_owner("media").await.unwrap(), Some(A.into()));
    assert_eq!(store.claim_bucket("logs", B).await.unwrap(), B);
    assert_eq!(store.bucket_owner("logs").await.unwrap(), Some(B.into()));
    assert_eq!(
        store.bucket_owner("Media").await.unwrap(),
        None,
        "names are exact"
    );
    // Racing claims of a new bucket (polled together): one owner, the same for every claimant.
    for round in 0..5 {
        let bucket = format!("race-{round}");
        let (a1, b1, a2, b2) = tokio::join!(
            store.claim_bucket(&bucket, A),
            store.claim_bucket(&bucket, B),
            store.claim_bucket(&bucket, A),
            store.claim_bucket(&bucket, B),
        );
        let owners: HashSet<String> = [a1, b1, a2, b2].into_iter().map(Result::unwrap).collect();
        assert_eq!(owners.len(), 1, "{owners:?}");
        let owner = owners.into_iter().next().unwrap();
        assert_eq!(store.bucket_owner(&bucket).await.unwrap(), Some(owner));
    }
}

// ---------------------------------------------------------------------------------------------
// Groups and instances
// ---------------------------------------------------------------------------------------------

async fn check_groups_and_instances(store: &dyn Store) {
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

async fn check_internal_task_lifecycle(store: &dyn Store) {
    let instances = [
        instance("acp-new", A, "ag-1", "new", S::Creating, 1),
        instance("acp-old", A, "ag-1", "old", S::Running, 1),
    ];
    let tasks = [
        internal("t-c", A, TaskType::CreateInstance, "acp-new", 1),
        internal("t-d", A, TaskType::DeleteInstance, "acp-old", 1),
    ];
    store
        .create_groups(&[group("ag-1", A, "g", 1)], &instances, &tasks, None)
        .await
        .unwrap();
    let claims = store.claim("w", 100, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&claims), ["t-c", "t-d"]);
    assert_eq!(claims[0].previous_status, S::Creating);
    assert_eq!(status_of(store, "acp-new").await, S::Creating);
    assert_eq!(status_of(store, "acp-old").await, S::Deleting);
    assert!(store.complete("t-c", 1, &finished(), 200).await.unwrap());
    assert!(store.complete("t-d", 1, &finished(), 200).await.unwrap());
    assert_eq!(status_of(store, "acp-new").await, S::Running);
    assert_eq!(status_of(store, "acp-old").await, S::Deleted);
    let live = store
        .instances_by_id(A, &["acp-new".into(), "acp-old".into()])
        .await
        .unwrap();
    assert_eq!(sorted(live.iter().map(|i| &i.id)), ["acp-new"]);
    let t = get(store, A, "t-d").await;
    assert_eq!(
        (t.status, t.finish_ms, t.counts),
        (Finished, Some(200), None)
    );
    assert!(
        listed(store, &filter(A)).await.is_empty(),
        "internal tasks are never listed"
    );
}

// ---------------------------------------------------------------------------------------------
// Task creation and DescribeTasks
// ---------------------------------------------------------------------------------------------

async fn check_create_batch(store: &dyn Store) {
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

async fn check_describe_filters(store: &dyn Store) {
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

async fn check_describe_order_and_pages(store: &dyn Store) {
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

// ---------------------------------------------------------------------------------------------
// The engine: claims, preconditions, batch status, fencing, sweeping, purging
// ---------------------------------------------------------------------------------------------

async fn check_claim_order(store: &dyn Store) {
    fleet(
        store,
        A,
        "ag-1",
        &[("i1", S::Running), ("i2", S::Running), ("i3", S::Running)],
    )
    .await;
    let ty = TaskType::RunCommand;
    store
        .create_batch(&batch("t-1", A, ty, 1_000, &["i1", "i2"]))
        .await
        .unwrap();
    store
        .create_batch(&batch("t-2", A, ty, 2_000, &["i1"]))
        .await
        .unwrap();
    store
        .create_batch(&batch("t-3", A, ty, 3_000, &["i2", "i1"]))
        .await
        .unwrap();
    // Accepted later but due only at 50_000.
    store
        .create_batch(&batch("t-4", A, ty, 50_000, &["i3"]))
        .await
        .unwrap();

    let now = 10_000;
    let first = store.claim("w1", now, LEASE, 10).await.unwrap();
    assert_eq!(
        claimed_ids(&first),
        [child("t-1", "i1"), child("t-1", "i2")],
        "one per instance"
    );
    assert_eq!(
        first[0],
        Claim {
            task_id: child("t-1", "i1"),
            task_type: ty,
            instance_id: "i1".into(),
            param: "{}".into(),
            attempt: 1,
            previous_status: S::Running,
            phone: Some(phone_of(A, "i1")),
        }
    );
    let t = get(store, A, &child("t-1", "i1")).await;
    assert_eq!((t.status, t.attempt, t.finish_ms), (Processing, 1, None));
    assert_eq!(get(store, A, "t-1").await.status, Processing);
    assert!(
        store.claim("w2", now, LEASE, 10).await.unwrap().is_empty(),
        "both busy"
    );

    assert!(
        store
            .complete(&child("t-1", "i1"), 1, &finished(), now + 1)
            .await
            .unwrap()
    );
    let c = store.claim("w2", now + 2, LEASE, 10).await.unwrap();
    assert_eq!(
        claimed_ids(&c),
        [child("t-2", "i1")],
        "i1's next, in acceptance order"
    );
    assert!(
        store
            .complete(&child("t-2", "i1"), 1, &finished(), now + 3)
            .await
            .unwrap()
    );
    let c = store.claim("w2", now + 4, LEASE, 10).await.unwrap();
    assert_eq!(
        claimed_ids(&c),
        [child("t-3", "i1")],
        "i2 is still busy with t-1"
    );
    assert!(
        store
            .complete(&child("t-1", "i2"), 1, &finished(), now + 5)
            .await
            .unwrap()
    );
    assert_eq!(get(store, A, "t-1").await.status, Finished);
    let c = store.claim("w2", now + 6, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-3", "i2")]);
    assert!(
        store
            .claim("w2", now + 7, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // not_before: t-4 is due at its accept time.
    assert!(
        store
            .claim("w3", 49_999, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let c = store.claim("w3", 50_000, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-4", "i3")]);

    // The limit: three idle instances, a limit of two, acceptance order.
    store
        .create_batch(&batch("t-5", A, ty, 60_000, &["i3"]))
        .await
        .unwrap();
    assert!(
        store
            .complete(&child("t-4", "i3"), 1, &finished(), 60_001)
            .await
            .unwrap()
    );
    assert!(
        store
            .complete(&child("t-3", "i1"), 1, &finished(), 60_001)
            .await
            .unwrap()
    );
    assert!(
        store
            .complete(&child("t-3", "i2"), 1, &finished(), 60_001)
            .await
            .unwrap()
    );
    store
        .create_batch(&batch("t-6", A, ty, 60_000, &["i2", "i1"]))
        .await
        .unwrap();
    assert!(
        store
            .claim("w4", 70_000, LEASE, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let c = store.claim("w4", 70_000, LEASE, 2).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-5", "i3"), child("t-6", "i2")]);
    let c = store.claim("w4", 70_000, LEASE, 2).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-6", "i1")]);
}

async fn check_preconditions_and_batch_status(store: &dyn Store) {
    let phones = [
        ("ia", S::Running),
        ("ib", S::Stopped),
        ("ic", S::Stopped),
        ("id", S::Rebooting),
        ("ie", S::Running),
    ];
    fleet(store, A, "ag-1", &phones).await;

    // Skip, Run and Reject in one batch: PartFinished in the end.
    store
        .create_batch(&batch(
            "t-start",
            A,
            TaskType::StartInstance,
            1_000,
            &["ia", "ib", "id"],
        ))
        .await
        .unwrap();
    let c = store.claim("w", 2_000, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-start", "ib")]);
    assert_eq!(c[0].previous_status, S::Stopped);
    assert_eq!(status_of(store, "ib").await, S::Starting);
    let skipped = get(store, A, &child("t-start", "ia")).await;
    assert_eq!(
        (skipped.status, skipped.finish_ms, skipped.error_code),
        (Skipped, Some(2_000), None)
    );
    assert_eq!(skipped.attempt, 0);
    assert_eq!(status_of(store, "ia").await, S::Running);
    let rejected = get(store, A, &child("t-start", "id")).await;
    assert_eq!((rejected.status, rejected.finish_ms), (Failed, Some(2_000)));
    assert_eq!(
        rejected.error_code.as_deref(),
        Some("IncorrectInstanceStatus")
    );
    let msg = rejected.error_msg.unwrap();
    assert!(
        msg.contains(TaskErrorCode::IncorrectInstanceStatus.default_message()),
        "{msg}"
    );
    assert!(msg.contains("REBOOTING"), "{msg}");
    assert_eq!(
        status_of(store, "id").await,
        S::Rebooting,
        "a rejected task changes nothing"
    );
    let b = get(store, A, "t-start").await;
    assert_eq!(
        (b.status, b.counts, b.finish_ms),
        (Processing, Some(counts(0, 1, 0, 1, 1)), None)
    );

    assert!(
        store
            .complete(&child("t-start", "ib"), 1, &finished(), 3_000)
            .await
            .unwrap()
    );
    assert_eq!(status_of(store, "ib").await, S::Running);
    let done = get(store, A, &child("t-start", "ib")).await;
    assert_eq!((done.status, done.finish_ms), (Finished, Some(3_000)));
    assert_eq!(done.result.as_deref(), Some(r#"{"Success":true}"#));
    let b = get(store, A, "t-start").await;
    assert_eq!(
        (b.status, b.counts, b.finish_ms),
        (PartFinished, Some(counts(0, 0, 1, 1, 1)), Some(3_000))
    );

    // Finished: one ran, one skipped.
    store
        .create_batch(&batch(
            "t-stop",
            A,
            TaskType::StopInstance,
            4_000,
            &["ia", "ic"],
        ))
        .await
        .unwrap();
    let c = store.claim("w", 5_000, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-stop", "ia")]);
    assert_eq!(status_of(store, "ia").await, S::Stopping);
    assert_eq!(
        get(store, A, "t-stop").await.counts,
        Some(counts(0, 1, 0, 0, 1))
    );
    assert!(
        store
            .complete(&child("t-stop", "ia"), 1, &finished(), 6_000)
            .await
            .unwrap()
    );
    assert_eq!(status_of(store, "ia").await, S::Stopped);
    let b = get(store, A, "t-stop").await;
    assert_eq!(
        (b.status, b.counts, b.finish_ms),
        (Finished, Some(counts(0, 0, 1, 0, 1)), Some(6_000))
    );

    // Failed: one rejected, one ran and failed (the instance takes its after-failure status).
    store
        .create_batch(&batch(
            "t-reboot",
            A,
            TaskType::RebootInstance,
            7_000,
            &["ic", "ie"],
        ))
        .await
        .unwrap();
    let c = store.claim("w", 8_000, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-reboot", "ie")]);
    assert_eq!(status_of(store, "ie").await, S::Rebooting);
    assert_eq!(get(store, A, "t-reboot").await.status, Processing);
    let outcome = failed(TaskErrorCode::OperationFailed);
    assert!(
        store
            .complete(&child("t-reboot", "ie"), 1, &outcome, 9_000)
            .await
            .unwrap()
    );
    assert_eq!(status_of(store, "ie").await, S::Unavailable);
    let f = get(store, A, &child("t-reboot", "ie")).await;
    assert_eq!(f.error_code.as_deref(), Some("OperationFailed"));
    assert_eq!(f.error_msg.as_deref(), Some("it broke"));
    assert_eq!(f.result, None);
    let b = get(store, A, "t-reboot").await;
    assert_eq!(
        (b.status, b.counts, b.finish_ms),
        (Failed, Some(counts(0, 0, 0, 2, 0)), Some(9_000))
    );

    // Skipped: every child had nothing to do; the batch ends at the claim.
    store
        .create_batch(&batch(
            "t-again",
            A,
            TaskType::StartInstance,
            10_000,
            &["ib"],
        ))
        .await
        .unwrap();
    assert!(
        store
            .claim("w", 11_000, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let b = get(store, A, "t-again").await;
    assert_eq!(
        (b.status, b.counts, b.finish_ms),
        (Skipped, Some(counts(0, 0, 0, 0, 1)), Some(11_000))
    );

    // An instance that does not exist is rejected too.
    store
        .create_batch(&batch(
            "t-ghost",
            A,
            TaskType::InstallApp,
            12_000,
            &["acp-ghost"],
        ))
        .await
        .unwrap();
    assert!(
        store
            .claim("w", 13_000, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let g = get(store, A, &child("t-ghost", "acp-ghost")).await;
    assert_eq!(
        (g.status, g.error_code.as_deref()),
        (Failed, Some("IncorrectInstanceStatus"))
    );
    assert_eq!(g.instance_status, None);
    assert_eq!(get(store, A, "t-ghost").await.status, Failed);

    // A skipped or rejected task makes way for the next task of its instance in the same claim.
    store
        .create_batch(&batch("t-s1", A, TaskType::StopInstance, 14_000, &["ic"]))
        .await
        .unwrap();
    store
        .create_batch(&batch("t-s2", A, TaskType::StartInstance, 14_001, &["ic"]))
        .await
        .unwrap();
    let c = store.claim("w", 15_000, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-s2", "ic")]);
    assert_eq!(get(store, A, &child("t-s1", "ic")).await.status, Skipped);
}

async fn check_fencing(store: &dyn Store) {
    fleet(store, A, "ag-1", &[("i1", S::Running)]).await;
    store
        .create_batch(&batch("t-r", A, TaskType::RebootInstance, 1_000, &["i1"]))
        .await
        .unwrap();
    let id = child("t-r", "i1");
    assert!(
        store.heartbeat(&id, 0, 5_000).await.unwrap() == Lease::Lost,
        "not leased yet"
    );
    assert!(
        !store.complete(&id, 0, &finished(), 1_500).await.unwrap(),
        "not leased yet"
    );
    assert_eq!(get(store, A, &id).await.status, Waiting);

    let c = store.claim("w", 2_000, 1_000, 10).await.unwrap();
    assert_eq!(c[0].attempt, 1);
    assert!(store.heartbeat(&id, 2, 9_000).await.unwrap() == Lease::Lost);
    assert!(store.heartbeat("t-none", 1, 9_000).await.unwrap() == Lease::Lost);
    assert_eq!(store.heartbeat(&id, 1, 9_000).await.unwrap(), Lease::Held);
    // The heartbeat moved the lease past the sweep time.
    assert!(store.sweep_expired(8_000, 5, 0).await.unwrap().is_empty());

    assert!(
        !store.complete(&id, 2, &finished(), 3_000).await.unwrap(),
        "a stale attempt"
    );
    let t = get(store, A, &id).await;
    assert_eq!(
        (t.status, t.result.clone(), t.finish_ms),
        (Processing, None, None)
    );
    assert_eq!(status_of(store, "i1").await, S::Rebooting);
    assert_eq!(get(store, A, "t-r").await.status, Processing);

    let outcome = failed(TaskErrorCode::OperationFailed);
    assert!(store.complete(&id, 1, &outcome, 4_000).await.unwrap());
    assert!(
        !store.complete(&id, 1, &finished(), 5_000).await.unwrap(),
        "already ended"
    );
    assert!(
        store.heartbeat(&id, 1, 9_000).await.unwrap() == Lease::Lost,
        "already ended"
    );
    let t = get(store, A, &id).await;
    assert_eq!(
        (t.status, t.finish_ms, t.result),
        (Failed, Some(4_000), None)
    );
    assert_eq!(status_of(store, "i1").await, S::Unavailable);
    let b = get(store, A, "t-r").await;
    assert_eq!((b.status, b.counts), (Failed, Some(counts(0, 0, 0, 1, 0))));
}

/// The instance watcher's view: RUNNING instances of the watched images, of every account, and a
/// mark that only lands on an instance nobody moved since it was seen; a task that leaves the
/// status alone (a command) does not undo the mark when it ends.
/// A batch with limits (see [`batch`]).
fn limited(mut b: NewBatch, concurrency: Option<i64>, errors: Option<i64>) -> NewBatch {
    b.limits = cloudphone_core::BatchLimits {
        max_concurrency: concurrency,
        max_errors: errors,
    };
    b
}

fn counts_of(t: &Task) -> (i64, i64, i64, i64, i64) {
    let c = t.counts.expect("a batch has counters");
    (c.waiting, c.processing, c.finished, c.failed, c.skipped)
}

async fn check_max_concurrency(store: &dyn Store) {
    let phones: Vec<String> = (0..5).map(|n| format!("i{n}")).collect();
    let fleet_of: Vec<(&str, InstanceStatus)> =
        phones.iter().map(|p| (p.as_str(), S::Running)).collect();
    fleet(store, A, "ag-1", &fleet_of).await;
    let names: Vec<&str> = phones.iter().map(String::as_str).collect();
    let b = limited(
        batch("t-c", A, TaskType::RunCommand, 1_000, &names),
        Some(2),
        None,
    );
    store.create_batch(&b).await.unwrap();
    // An unlimited batch behind it is not held up by the limited one.
    fleet(store, A, "ag-2", &[("j1", S::Running)]).await;
    store
        .create_batch(&batch("t-free", A, TaskType::RunCommand, 1_500, &["j1"]))
        .await
        .unwrap();
    let c = store.claim("w", 2_000, LEASE, 10).await.unwrap();
    assert_eq!(
        claimed_ids(&c),
        [
            child("t-c", "i0"),
            child("t-c", "i1"),
            child("t-free", "j1")
        ]
    );
    assert!(store.claim("w", 2_100, LEASE, 10).await.unwrap().is_empty());
    assert_eq!(counts_of(&get(store, A, "t-c").await), (3, 2, 0, 0, 0));
    assert!(
        store
            .complete(&c[0].task_id, 1, &finished(), 2_200)
            .await
            .unwrap()
    );
    let c = store.claim("w", 2_300, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-c", "i2")]);
    // A claim of one at a time stops at the limit just the same.
    assert!(store.claim("w", 2_400, LEASE, 1).await.unwrap().is_empty());
}

async fn check_max_errors(store: &dyn Store) {
    let phones: Vec<String> = (0..5).map(|n| format!("i{n}")).collect();
    let fleet_of: Vec<(&str, InstanceStatus)> =
        phones.iter().map(|p| (p.as_str(), S::Running)).collect();
    fleet(store, A, "ag-1", &fleet_of).await;
    let names: Vec<&str> = phones.iter().map(String::as_str).collect();
    let b = limited(
        batch("t-e", A, TaskType::RunCommand, 1_000, &names),
        Some(2),
        Some(1),
    );
    store.create_batch(&b).await.unwrap();
    let oops = failed(TaskErrorCode::CommandTimeout);
    let c = store.claim("w", 2_000, LEASE, 10).await.unwrap();
    assert_eq!(c.len(), 2);
    // One failure is within MaxErrors = 1.
    assert!(
        store
            .complete(&c[0].task_id, 1, &oops, 2_100)
            .await
            .unwrap()
    );
    assert_eq!(counts_of(&get(store, A, "t-e").await), (3, 1, 0, 1, 0));
    let more = store.claim("w", 2_200, LEASE, 10).await.unwrap();
    assert_eq!(claimed_ids(&more), [child("t-e", "i2")]);
    // The second goes past it: the two children not yet started are Skipped; the running
    // ones run on.
    assert!(
        store
            .complete(&c[1].task_id, 1, &oops, 2_300)
            .await
            .unwrap()
    );
    let t = get(store, A, "t-e").await;
    assert_eq!((counts_of(&t), t.status), ((0, 1, 0, 2, 2), Processing));
    for i in ["i3", "i4"] {
        let c = get(store, A, &child("t-e", i)).await;
        assert_eq!(c.status, Skipped);
        assert_eq!(c.error_code.as_deref(), Some("MaxErrorsExceeded"));
    }
    assert!(store.claim("w", 2_400, LEASE, 10).await.unwrap().is_empty());
    assert!(
        store
            .complete(&more[0].task_id, 1, &finished(), 2_500)
            .await
            .unwrap()
    );
    let t = get(store, A, "t-e").await;
    assert_eq!((counts_of(&t), t.status), ((0, 0, 1, 2, 2), PartFinished));
    assert_eq!(t.finish_ms, Some(2_500));
}

async fn check_cancel(store: &dyn Store) {
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

async fn check_idempotency(store: &dyn Store) {
    async fn begin(
        store: &dyn Store,
        account: &str,
        token: &str,
        fingerprint: &str,
        now_ms: i64,
        stale_ms: i64,
    ) -> cloudphone_store::Idempotent {
        store
            .begin_idempotent(account, token, fingerprint, now_ms, stale_ms)
            .await
            .unwrap()
    }
    use cloudphone_store::Idempotent;
    let fresh = begin(store, A, "tok", "fp1", 1_000, 0).await;
    assert_eq!(fresh, Idempotent::Fresh);
    assert_eq!(
        begin(store, A, "tok", "fp1", 1_100, 0).await,
        Idempotent::InFlight
    );
    assert_eq!(
        begin(store, A, "tok", "fp2", 1_100, 0).await,
        Idempotent::Mismatch
    );
    // Tokens are per account.
    assert_eq!(
        begin(store, B, "tok", "fp2", 1_100, 0).await,
        Idempotent::Fresh
    );
    store
        .finish_idempotent(A, "tok", 1_000, Some("{\"RequestId\":\"r1\"}"))
        .await
        .unwrap();
    assert_eq!(
        begin(store, A, "tok", "fp1", 1_200, 0).await,
        Idempotent::Replay("{\"RequestId\":\"r1\"}".into())
    );
    // A failed call frees its token; a reservation gone stale is taken over.
    // A finish of another reservation (one taken over since) changes nothing.
    store.finish_idempotent(B, "tok", 999, None).await.unwrap();
    assert_eq!(
        begin(store, B, "tok", "fp2", 1_150, 0).await,
        Idempotent::InFlight
    );
    store
        .finish_idempotent(B, "tok", 1_100, None)
        .await
        .unwrap();
    assert_eq!(
        begin(store, B, "tok", "fp3", 1_300, 0).await,
        Idempotent::Fresh
    );
    assert_eq!(
        begin(store, B, "tok", "fp3", 1_400, 1_350).await,
        Idempotent::Fresh
    );
    assert_eq!(store.purge_idempotency(1_350).await.unwrap(), 1);
    assert_eq!(
        begin(store, A, "tok", "fp9", 1_500, 0).await,
        Idempotent::Fresh
    );
}

/// The events after `after`, once at least `want` of them are readable. On PostgreSQL an
/// event is readable once every transaction older than its own has ended, in any database of
/// the cluster: other tests running beside this one hold that back for a moment.
async fn settled_events(
    store: &dyn Store,
    filter: &cloudphone_store::EventFilter,
    after: cloudphone_store::EventPosition,
    want: usize,
) -> Vec<cloudphone_store::TaskEvent> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = store.task_events(filter, after, 100).await.unwrap();
        if found.len() >= want || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn check_task_events(store: &dyn Store) {
    use cloudphone_store::{EventFilter, EventPosition};
    let all = |account: &str| EventFilter {
        account_id: account.into(),
        ..EventFilter::default()
    };
    assert_eq!(store.event_tail(A).await.unwrap(), EventPosition::default());
    fleet(store, A, "ag-1", &[("i1", S::Running), ("i2", S::Running)]).await;
    fleet(store, B, "bg-1", &[("j1", S::Running)]).await;
    let start = store.event_tail(A).await.unwrap();
    store
        .create_batch(&batch(
            "t-w",
            A,
            TaskType::RebootInstance,
            1_000,
            &["i1", "i2"],
        ))
        .await
        .unwrap();
    store
        .create_batch(&batch("t-b", B, TaskType::RebootInstance, 1_000, &["j1"]))
        .await
        .unwrap();
    let c = store.claim("w", 2_000, LEASE, 1).await.unwrap();
    assert_eq!(claimed_ids(&c), [child("t-w", "i1")]);
    assert!(
        store
            .complete(&c[0].task_id, 1, &finished(), 2_100)
            .await
            .unwrap()
    );
    type Seen = (String, TaskStatus, Option<(i64, i64, i64)>);
    let seen: Vec<Seen> = settled_events(store, &all(A), start, 7)
        .await
        .into_iter()
        .map(|e| {
            (
                e.task_id,
                e.status,
                e.counts.map(|c| (c.waiting, c.processing, c.finished)),
            )
        })
        .collect();
    let (w1, w2) = (child("t-w", "i1"), child("t-w", "i2"));
    assert_eq!(
        seen,
        [
            ("t-w".to_string(), Waiting, Some((2, 0, 0))),
            (w1.clone(), Waiting, None),
            (w2.clone(), Waiting, None),
            (w1.clone(), Processing, None),
            ("t-w".to_string(), Processing, Some((1, 1, 0))),
            (w1.clone(), Finished, None),
            ("t-w".to_string(), Processing, Some((1, 0, 1))),
        ],
        "every transition once, in order; nothing of account B"
    );
    // Resuming after any event gives exactly the rest, and filters narrow.
    let events = store.task_events(&all(A), start, 100).await.unwrap();
    for (n, e) in events.iter().enumerate() {
        let rest = store.task_events(&all(A), e.position, 100).await.unwrap();
        assert_eq!(rest, events[n + 1..], "after event {n}");
        assert!(e.position > start);
    }
    let pages: Vec<_> = store.task_events(&all(A), start, 3).await.unwrap();
    assert_eq!(pages, events[..3]);
    let one = EventFilter {
        task_ids: vec![w1.clone()],
        ..all(A)
    };
    let mine = store.task_events(&one, start, 100).await.unwrap();
    assert_eq!(
        mine.iter().map(|e| e.status).collect::<Vec<_>>(),
        [Waiting, Processing, Finished]
    );
    let batches = EventFilter {
        level: Some(Level::Batch),
        statuses: vec![Processing],
        ..all(A)
    };
    assert_eq!(
        store.task_events(&batches, start, 100).await.unwrap().len(),
        2
    );
    assert_eq!(
        store
            .task_events(&all(B), EventPosition::default(), 100)
            .await
            .unwrap()
            .len(),
        2
    );
    // The tail is the last event: a watch from there sees only what comes next.
    let tail = store.event_tail(A).await.unwrap();
    assert_eq!(tail, events.last().unwrap().position);
    assert!(
        store
            .task_events(&all(A), tail, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let ids = vec!["t-w".to_string()];
    store.cancel_tasks(A, &ids, 2_200).await.unwrap();
    let after: Vec<_> = settled_events(store, &all(A), tail, 2).await;
    assert_eq!(
        after
            .iter()
            .map(|e| (e.task_id.as_str(), e.status))
            .collect::<Vec<_>>(),
        [(w2.as_str(), Skipped), ("t-w", Finished)]
    );
    assert_eq!(after[0].error_code.as_deref(), Some("Cancelled"));
    // Events are purged by age.
    let far = cloudphone_core::time::now_ms() + 60_000;
    assert!(store.purge_task_events(far).await.unwrap() >= 9);
    assert!(
        store
            .task_events(&all(A), EventPosition::default(), 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn check_webhooks(store: &dyn Store) {
    use cloudphone_store::{DeliveryEnd, Webhook};
    let hook = |id: &str, account: &str| Webhook {
        id: id.into(),
        account_id: account.into(),
        url: format!("http://127.0.0.1:9/{id}"),
        secret: "0123456789abcdef".into(),
        created_ms: 1_000,
    };
    assert!(store.create_webhook(&hook("wh-1", A), 2).await.unwrap());
    assert!(store.create_webhook(&hook("wh-2", A), 2).await.unwrap());
    assert!(
        !store.create_webhook(&hook("wh-3", A), 2).await.unwrap(),
        "at the limit"
    );
    assert!(store.create_webhook(&hook("wh-b", B), 2).await.unwrap());
    let listed: Vec<String> = store
        .list_webhooks(A)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(listed, ["wh-1", "wh-2"]);

    fleet(store, A, "ag-1", &[("i1", S::Running)]).await;
    store
        .create_batch(&batch("t-h", A, TaskType::RebootInstance, 1_000, &["i1"]))
        .await
        .unwrap();
    let now = cloudphone_core::time::now_ms();
    assert!(
        store
            .claim_deliveries(now + 60_000, 5_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "not ended yet"
    );
    let c = store.claim("w", 2_000, LEASE, 10).await.unwrap();
    assert!(
        store
            .complete(&c[0].task_id, 1, &finished(), 2_100)
            .await
            .unwrap()
    );

    // One delivery per webhook of the account, none for B's.
    let later = now + 60_000;
    let due = store.claim_deliveries(later, 5_000, 10).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|d| d.webhook_id.as_str())
            .collect::<Vec<_>>(),
        ["wh-1", "wh-2"]
    );
    assert!(
        due.iter()
            .all(|d| d.attempt == 1 && d.url.ends_with(&d.webhook_id))
    );
    let body: serde_json::Value = serde_json::from_str(&due[0].body).unwrap();
    assert_eq!(
        (
            &body["Event"],
            &body["TaskId"],
            &body["TaskStatus"],
            &body["SuccessChildCount"]
        ),
        (
            &serde_json::json!("BatchEnded"),
            &serde_json::json!("t-h"),
            &serde_json::json!("Finished"),
            &serde_json::json!(1)
        )
    );
    assert!(
        store
            .claim_deliveries(later, 5_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );

    // The first fails and waits; the second is delivered.
    let retry = DeliveryEnd::Retry {
        status: Some(500),
        error: "HTTP 500".into(),
        at_ms: later + 1_000,
    };
    assert!(
        store
            .end_delivery(due[0].seq, 1, &retry, later)
            .await
            .unwrap()
    );
    let ok = DeliveryEnd::Delivered { status: 204 };
    assert!(store.end_delivery(due[1].seq, 1, &ok, later).await.unwrap());
    assert!(
        !store.end_delivery(due[1].seq, 1, &ok, later).await.unwrap(),
        "ended already"
    );
    assert!(
        store
            .claim_deliveries(later + 500, 5_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let again = store
        .claim_deliveries(later + 1_000, 5_000, 10)
        .await
        .unwrap();
    assert_eq!(
        (again.len(), again[0].seq, again[0].attempt),
        (1, due[0].seq, 2)
    );
    assert!(
        !store.end_delivery(due[0].seq, 1, &ok, later).await.unwrap(),
        "a stale attempt"
    );
    // A lease that ran out gives the delivery to the next claim, as a new attempt.
    let third = store
        .claim_deliveries(later + 7_000, 5_000, 10)
        .await
        .unwrap();
    assert_eq!(third[0].attempt, 3);
    let gave_up = DeliveryEnd::GaveUp {
        status: None,
        error: "unreachable".into(),
    };
    assert!(
        store
            .end_delivery(due[0].seq, 3, &gave_up, later + 7_100)
            .await
            .unwrap()
    );

    let records = store.list_deliveries(A, None, None, 10).await.unwrap();
    let seen: Vec<(&str, &str, i64, Option<i64>)> = records
        .iter()
        .map(|r| {
            (
                r.webhook_id.as_str(),
                r.state.as_str(),
                r.attempts,
                r.last_status,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("wh-2", "delivered", 1, Some(204)),
            ("wh-1", "failed", 3, None)
        ]
    );
    assert_eq!(records[1].last_error.as_deref(), Some("unreachable"));
    assert_eq!(
        store
            .list_deliveries(A, Some("wh-2"), None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list_deliveries(A, None, Some("t-none"), 10)
            .await
            .unwrap()
            .len(),
        0
    );
    assert!(
        store
            .list_deliveries(B, None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store.delete_webhook(B, "wh-1").await.unwrap(),
        "another account's"
    );
    assert!(store.delete_webhook(A, "wh-1").await.unwrap());
    assert_eq!(
        store
            .list_deliveries(A, None, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store.create_webhook(&hook("wh-3", A), 2).await.unwrap(),
        "room again"
    );
}

async fn check_watcher_marks(store: &dyn Store) {
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

/// The counts behind `/metrics`: every task of every account, by type, level and status.
async fn check_task_counts(store: &dyn Store) {
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

/// An instance quota: a creation that would pass it creates nothing and says how many the
/// account has; DELETED instances and other accounts do not count; concurrent creations cannot
/// both take the last place.
async fn check_instance_quota(store: &dyn Store) {
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
        )
        .await
        .unwrap();
    store
        .create_groups(
            &[group("ag-qd", A, "q", 0)],
            &phones("ag-qd", A, 5, S::Deleted),
            &[],
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
        store.create_groups(std::slice::from_ref(&g1), &i1, &[], Some(3)),
        store.create_groups(std::slice::from_ref(&g2), &i2, &[], Some(3)),
        store.create_groups(std::slice::from_ref(&g3), &i3, &[], Some(3)),
    );
    let made = [r1, r2, r3].into_iter().filter(Result::is_ok).count();
    assert_eq!(made, 1, "three racing creations for the last place");
}

/// Devices found by discovery: the group once, each instance once; one stored before (also a
/// DELETED one) is left as it is.
async fn check_adopted_instances(store: &dyn Store) {
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

/// A group of outcomes in one call: each is fenced on its own, the answers come back in order,
/// and the batch counters and finish time are what one-by-one completion would give.
async fn check_complete_many(store: &dyn Store) {
    fleet(
        store,
        A,
        "ag-1",
        &[("i1", S::Running), ("i2", S::Running), ("i3", S::Running)],
    )
    .await;
    store
        .create_batch(&batch(
            "t-m",
            A,
            TaskType::RebootInstance,
            1_000,
            &["i1", "i2", "i3"],
        ))
        .await
        .unwrap();
    let c = store.claim("w", 2_000, 60_000, 10).await.unwrap();
    assert_eq!(c.len(), 3);
    let item = |instance: &str, attempt: i64, outcome: Outcome, now_ms: i64| Completion {
        task_id: child("t-m", instance),
        attempt,
        outcome,
        now_ms,
    };
    let done = store
        .complete_many(&[
            item("i1", 1, finished(), 3_000),
            item("i2", 7, finished(), 3_100),
            item("i3", 1, failed(TaskErrorCode::OperationFailed), 3_200),
            item("i1", 1, finished(), 3_300),
        ])
        .await
        .unwrap();
    assert_eq!(
        done,
        [true, false, true, false],
        "fenced one by one, in order"
    );
    assert_eq!(store.complete_many(&[]).await.unwrap(), Vec::<bool>::new());
    let t1 = get(store, A, &child("t-m", "i1")).await;
    assert_eq!((t1.status, t1.finish_ms), (Finished, Some(3_000)));
    assert_eq!(get(store, A, &child("t-m", "i2")).await.status, Processing);
    assert_eq!(get(store, A, &child("t-m", "i3")).await.status, Failed);
    assert_eq!(status_of(store, "i1").await, S::Running);
    assert_eq!(status_of(store, "i2").await, S::Rebooting);
    assert_eq!(status_of(store, "i3").await, S::Unavailable);
    let b = get(store, A, "t-m").await;
    assert_eq!(
        (b.status, b.counts),
        (Processing, Some(counts(0, 1, 1, 1, 0)))
    );
    assert_eq!(b.finish_ms, None);

    let done = store
        .complete_many(&[item("i2", 1, finished(), 4_000)])
        .await
        .unwrap();
    assert_eq!(done, [true]);
    let b = get(store, A, "t-m").await;
    assert_eq!(
        (b.status, b.counts, b.finish_ms),
        (PartFinished, Some(counts(0, 0, 2, 1, 0)), Some(4_000))
    );
}

/// Walks every page of `f` (small pages) and checks that each page's total equals the number
/// of rows walked: a store may keep the totals of broad filters apart from the rows.
async fn assert_total_walks(store: &dyn Store, f: &TaskFilter) {
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
async fn check_broad_totals_follow_transitions(store: &dyn Store) {
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
    store.purge_tasks(i64::MAX).await.unwrap();
    check().await;
}

async fn check_sweep(store: &dyn Store) {
    fleet(
        store,
        A,
        "ag-1",
        &[("i1", S::Running), ("i2", S::Running), ("i3", S::Running)],
    )
    .await;
    store
        .create_batch(&batch("t-stop", A, TaskType::StopInstance, 100, &["i1"]))
        .await
        .unwrap();
    store
        .create_batch(&batch("t-cmd", A, TaskType::RunCommand, 200, &["i2"]))
        .await
        .unwrap();
    store
        .create_batch(&batch("t-rb", A, TaskType::RebootInstance, 300, &["i3"]))
        .await
        .unwrap();
    let (stop, cmd, rb) = (
        child("t-stop", "i1"),
        child("t-cmd", "i2"),
        child("t-rb", "i3"),
    );

    let c = store.claim("w1", 1_000, 100, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), [stop.clone(), cmd.clone(), rb.clone()]);
    assert_eq!(store.heartbeat(&rb, 1, 100_000).await.unwrap(), Lease::Held);
    assert_eq!(status_of(store, "i1").await, S::Stopping);

    // Nothing has expired yet at the lease's end.
    assert!(store.sweep_expired(1_100, 2, 500).await.unwrap().is_empty());
    let swept = store.sweep_expired(2_000, 2, 500).await.unwrap();
    assert_eq!(
        swept,
        [
            Swept::Requeued {
                task_id: stop.clone(),
                attempt: 1
            },
            Swept::Failed {
                task_id: cmd.clone(),
                code: TaskErrorCode::InstanceUnreachable
            },
        ]
    );

    // The command is not run again: it failed, and its batch with it.
    let t = get(store, A, &cmd).await;
    assert_eq!((t.status, t.finish_ms), (Failed, Some(2_000)));
    assert_eq!(t.error_code.as_deref(), Some("InstanceUnreachable"));
    assert_eq!(
        t.error_msg.as_deref(),
        Some(TaskErrorCode::InstanceUnreachable.default_message())
    );
    assert_eq!(status_of(store, "i2").await, S::Running);
    let b = get(store, A, "t-cmd").await;
    assert_eq!(
        (b.status, b.counts, b.finish_ms),
        (Failed, Some(counts(0, 0, 0, 1, 0)), Some(2_000))
    );

    // The stop is queued again, still Processing, after the retry delay.
    let t = get(store, A, &stop).await;
    assert_eq!((t.status, t.attempt, t.finish_ms), (Processing, 1, None));
    assert_eq!(
        get(store, A, "t-stop").await.counts,
        Some(counts(0, 1, 0, 0, 0))
    );
    assert!(
        !store.complete(&stop, 1, &finished(), 2_100).await.unwrap(),
        "the lost attempt is fenced off"
    );
    assert!(store.heartbeat(&stop, 1, 9_000).await.unwrap() == Lease::Lost);
    assert!(store.claim("w2", 2_499, 100, 10).await.unwrap().is_empty());
    // The retry does not check the precondition again (STOPPING would reject a stop) and keeps
    // the status from before the first attempt.
    let c = store.claim("w2", 2_500, 100, 10).await.unwrap();
    assert_eq!(
        c,
        [Claim {
            task_id: stop.clone(),
            task_type: TaskType::StopInstance,
            instance_id: "i1".into(),
            param: "{}".into(),
            attempt: 2,
            previous_status: S::Running,
            phone: Some(phone_of(A, "i1")),
        }]
    );
    assert_eq!(status_of(store, "i1").await, S::Stopping);
    assert_eq!(get(store, A, &stop).await.attempt, 2);

    // Out of attempts: AttemptsExhausted, the instance back to its after-failure status.
    let swept = store.sweep_expired(5_000, 2, 500).await.unwrap();
    assert_eq!(
        swept,
        [Swept::Failed {
            task_id: stop.clone(),
            code: TaskErrorCode::AttemptsExhausted
        }]
    );
    let t = get(store, A, &stop).await;
    assert_eq!(
        (t.status, t.error_code.as_deref()),
        (Failed, Some("AttemptsExhausted"))
    );
    assert_eq!(
        status_of(store, "i1").await,
        S::Running,
        "a failed stop leaves it as it was"
    );
    assert_eq!(get(store, A, "t-stop").await.status, Failed);
    assert!(!store.complete(&stop, 2, &finished(), 5_001).await.unwrap());

    // A failed reboot leaves the phone UNAVAILABLE.
    let swept = store.sweep_expired(200_000, 1, 0).await.unwrap();
    assert_eq!(
        swept,
        [Swept::Failed {
            task_id: rb.clone(),
            code: TaskErrorCode::AttemptsExhausted
        }]
    );
    assert_eq!(status_of(store, "i3").await, S::Unavailable);
    assert_eq!(get(store, A, "t-rb").await.status, Failed);
    assert!(store.sweep_expired(300_000, 1, 0).await.unwrap().is_empty());
}

async fn check_expire_all_leases(store: &dyn Store) {
    fleet(store, A, "ag-1", &[("i1", S::Running), ("i2", S::Running)]).await;
    store
        .create_batch(&batch("t-1", A, TaskType::InstallApp, 100, &["i1", "i2"]))
        .await
        .unwrap();
    assert_eq!(
        store.claim("w", 1_000, 1_000_000, 10).await.unwrap().len(),
        2
    );
    assert!(store.sweep_expired(2_000, 3, 0).await.unwrap().is_empty());
    assert_eq!(store.expire_all_leases().await.unwrap(), 2);
    let swept = store.sweep_expired(2_000, 3, 0).await.unwrap();
    assert_eq!(
        swept,
        [
            Swept::Requeued {
                task_id: child("t-1", "i1"),
                attempt: 1
            },
            Swept::Requeued {
                task_id: child("t-1", "i2"),
                attempt: 1
            },
        ]
    );
    let c = store.claim("w2", 2_000, 1_000, 10).await.unwrap();
    assert!(
        c.iter()
            .all(|c| c.attempt == 2 && c.previous_status == S::Running)
    );
    assert_eq!(c.len(), 2);
    assert_eq!(store.expire_all_leases().await.unwrap(), 2);
    for c in &c {
        assert!(
            store
                .complete(&c.task_id, 2, &finished(), 3_000)
                .await
                .unwrap()
        );
    }
    assert_eq!(store.expire_all_leases().await.unwrap(), 0);
    assert_eq!(get(store, A, "t-1").await.status, Finished);
}

async fn check_purge(store: &dyn Store) {
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
    assert_eq!(store.purge_tasks(1_800).await.unwrap(), 6);
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
    assert_eq!(store.purge_tasks(10_000).await.unwrap(), 2);
    assert!(store.task(A, "t-old").await.unwrap().is_none());
    assert!(
        store.task(A, "t-mixed").await.unwrap().is_some(),
        "an unfinished batch stays"
    );
    assert!(store.task(A, "t-mixed-b").await.unwrap().is_some());
    assert_eq!(store.purge_tasks(i64::MAX).await.unwrap(), 0);
    assert_eq!(listed(store, &filter(A)).await, ["t-mixed", "t-mixed-b"]);
}

async fn check_account_isolation(store: &dyn Store) {
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

/// Eight workers claim and complete 200 tasks on 20 instances while a producer is still
/// creating the batches and a reader polls DescribeTasks: every task completes exactly once,
/// never two at a time on one instance, each instance's in acceptance order, and no call fails.
async fn check_concurrent_workers(store: Arc<dyn Store>) {
    const INSTANCES: usize = 20;
    const BATCHES: usize = 10;
    const TOTAL: usize = INSTANCES * BATCHES;
    const NOW: i64 = 1_000_000;
    let phones: Vec<String> = (0..INSTANCES).map(|n| format!("i{n:02}")).collect();
    let specs: Vec<(&str, InstanceStatus)> =
        phones.iter().map(|p| (p.as_str(), S::Running)).collect();
    fleet(&*store, A, "ag-1", &specs).await;

    let busy = Arc::new(std::sync::Mutex::new(HashSet::<String>::new()));
    let done = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let completed = Arc::new(AtomicUsize::new(0));

    let producer = {
        let store = store.clone();
        let phones = phones.clone();
        tokio::spawn(async move {
            for b in 0..BATCHES {
                let refs: Vec<&str> = phones.iter().map(String::as_str).collect();
                let id = format!("t-{b:02}");
                store
                    .create_batch(&batch(
                        &id,
                        A,
                        TaskType::InstallApp,
                        1_000 + b as i64,
                        &refs,
                    ))
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let reader = {
        let store = store.clone();
        let completed = completed.clone();
        tokio::spawn(async move {
            while completed.load(Ordering::SeqCst) < TOTAL {
                let l = store.describe_tasks(&filter(A), &page(10)).await.unwrap();
                assert!(l.total <= (TOTAL + BATCHES) as i64);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut workers = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        let (busy, done, completed) = (busy.clone(), done.clone(), completed.clone());
        workers.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            while completed.load(Ordering::SeqCst) < TOTAL {
                let claims = store.claim(&owner, NOW, LEASE, 4).await.unwrap();
                if claims.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                for c in &claims {
                    assert_eq!(c.attempt, 1, "{c:?}");
                    assert!(
                        busy.lock().unwrap().insert(c.instance_id.clone()),
                        "two tasks on {}",
                        c.instance_id
                    );
                }
                tokio::task::yield_now().await;
                for c in claims {
                    assert!(busy.lock().unwrap().remove(&c.instance_id));
                    done.lock()
                        .unwrap()
                        .push((c.instance_id.clone(), c.task_id.clone()));
                    let outcome = Outcome::Finished {
                        result: format!(r#"{{"By":"{owner}"}}"#),
                    };
                    assert!(
                        store
                            .complete(&c.task_id, c.attempt, &outcome, NOW)
                            .await
                            .unwrap()
                    );
                    completed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let all = async {
        producer.await.unwrap();
        for w in workers {
            w.await.unwrap();
        }
        reader.await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("workers finish");

    let done = done.lock().unwrap().clone();
    assert_eq!(done.len(), TOTAL);
    let unique: HashSet<&String> = done.iter().map(|(_, t)| t).collect();
    assert_eq!(unique.len(), TOTAL, "every task exactly once");
    let mut per_instance: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (i, t) in &done {
        per_instance.entry(i).or_default().push(t);
    }
    for (i, tasks) in per_instance {
        let want: Vec<String> = (0..BATCHES)
            .map(|b| child(&format!("t-{b:02}"), i))
            .collect();
        assert_eq!(tasks, want, "acceptance order on {i}");
    }
    for b in 0..BATCHES {
        let t = get(&*store, A, &format!("t-{b:02}")).await;
        assert_eq!(
            (t.status, t.counts),
            (Finished, Some(counts(0, 0, INSTANCES as i64, 0, 0)))
        );
    }
    let unfinished = TaskFilter {
        statuses: vec![Waiting, Processing],
        ..filter(A)
    };
    assert!(listed(&*store, &unfinished).await.is_empty());
    assert!(
        store
            .claim("late", NOW, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Backup files
// ---------------------------------------------------------------------------------------------

fn backup_record(id: &str, account: &str, instance: &str, task: &str, created_ms: i64) -> Backup {
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

async fn check_backups(store: &dyn Store) {
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

// ---------------------------------------------------------------------------------------------
// Implementations
async fn run_all(store: &dyn Store, now: i64, outcome: Outcome) {
    for c in store.claim("w", now, LEASE, 100).await.unwrap() {
        assert!(
            store
                .complete(&c.task_id, c.attempt, &outcome, now)
                .await
                .unwrap()
        );
    }
}

fn app(account: &str, package: &str) -> App {
    App {
        id: 0,
        account_id: account.into(),
        name: format!("App {package}"),
        package: package.into(),
        version_name: "1.0".into(),
        version_code: "1".into(),
        md5: "0123456789abcdef0123456789ABCDEF".into(),
        size: 2048,
        source: format!("oss://b/{package}.apk"),
        description: "d".into(),
        icon_url: String::new(),
        install_param: String::new(),
        created_ms: 1_000,
        modified_ms: 1_000,
        installation_status: String::new(),
    }
}

async fn apps_of(store: &dyn Store, filter: AppFilter) -> Vec<App> {
    store.list_apps(&filter, &page(100)).await.unwrap().items
}

async fn check_apps(store: &dyn Store) {
    fleet(store, A, "ag-1", &[("i1", S::Running)]).await;
    let one = store.create_app(&app(A, "com.example.one")).await.unwrap();
    let two = store.create_app(&app(A, "com.example.two")).await.unwrap();
    let theirs = store
        .create_app(&app(B, "com.example.theirs"))
        .await
        .unwrap();
    assert!(one < two && two < theirs, "ids grow");
    let of_a = AppFilter {
        account_id: A.into(),
        ..AppFilter::default()
    };
    let listed = apps_of(store, of_a.clone()).await;
    assert_eq!(
        listed.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![two, one],
        "newest first, own only"
    );
    assert!(
        listed
            .iter()
            .all(|a| a.installation_status == "UNINSTALLED")
    );
    assert_eq!(listed[1].package, "com.example.one");
    // Filters: ids, name substring, MD5 in any case.
    let by = |f: AppFilter| async move {
        apps_of(store, f)
            .await
            .iter()
            .map(|a| a.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by(AppFilter {
            ids: vec![one, theirs],
            ..of_a.clone()
        })
        .await,
        vec![one]
    );
    assert_eq!(
        by(AppFilter {
            name: Some("two".into()),
            ..of_a.clone()
        })
        .await,
        vec![two]
    );
    assert_eq!(
        by(AppFilter {
            md5: Some("0123456789ABCDEF0123456789abcdef".into()),
            ..of_a.clone()
        })
        .await
        .len(),
        2
    );
    // Pages of one.
    let first = store.list_apps(&of_a, &page(1)).await.unwrap();
    assert_eq!((first.items.len(), first.total), (1, 2));
    let second = store
        .list_apps(
            &of_a,
            &Page {
                after: first.next.clone(),
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items[0].id, one);
    assert!(second.next.is_none());
    // An install batch over app one: INSTALLING, then INSTALLED; then a failed uninstall.
    let mut b = batch("t-in", A, TaskType::InstallApp, 2_000, &["i1"]);
    b.children[0].param = format!(r#"{{"AppId":{one}}}"#);
    store.create_app_batch(&b, &[one], true).await.unwrap();
    let status = |id| async move {
        apps_of(
            store,
            AppFilter {
                ids: vec![id],
                ..AppFilter {
                    account_id: A.into(),
                    ..AppFilter::default()
                }
            },
        )
        .await[0]
            .installation_status
            .clone()
    };
    assert_eq!(status(one).await, "INSTALLING");
    assert_eq!(status(two).await, "UNINSTALLED");
    run_all(
        store,
        3_000,
        Outcome::Finished {
            result: "{}".into(),
        },
    )
    .await;
    assert_eq!(status(one).await, "INSTALLED");
    assert_eq!(
        by(AppFilter {
            installation_status: Some("INSTALLED".into()),
            ..of_a.clone()
        })
        .await,
        vec![one]
    );
    store
        .create_app_batch(
            &batch("t-un", A, TaskType::UninstallApp, 4_000, &["i1"]),
            &[one],
            false,
        )
        .await
        .unwrap();
    assert_eq!(status(one).await, "UNINSTALLING");
    run_all(
        store,
        5_000,
        Outcome::Failed {
            code: TaskErrorCode::UninstallAppFailed,
            message: "no".into(),
        },
    )
    .await;
    assert_eq!(status(one).await, "UNINSTALLFAILED");
    // Deleting: only the account's own.
    assert_eq!(store.delete_apps(A, &[one, theirs]).await.unwrap(), 1);
    assert_eq!(by(of_a).await, vec![two]);
    assert_eq!(
        apps_of(
            store,
            AppFilter {
                account_id: B.into(),
                ..AppFilter::default()
            }
        )
        .await
        .len(),
        1
    );
}

async fn check_group_images(store: &dyn Store) {
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

// ---------------------------------------------------------------------------------------------

mod sqlite {
    use std::sync::Arc;

    use cloudphone_store::{SqliteStore, Store};

    async fn store() -> (tempfile::TempDir, Arc<SqliteStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("cloudphone.db"))
            .await
            .unwrap();
        (dir, Arc::new(store))
    }

    macro_rules! checks {
        ($($check:ident),* $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (_dir, store) = store().await;
                super::$check(&*store).await;
            }
        )*};
    }

    checks!(
        check_accounts_and_keys,
        check_nonces,
        check_settings,
        check_buckets,
        check_groups_and_instances,
        check_internal_task_lifecycle,
        check_create_batch,
        check_describe_filters,
        check_describe_order_and_pages,
        check_claim_order,
        check_preconditions_and_batch_status,
        check_fencing,
        check_max_concurrency,
        check_max_errors,
        check_cancel,
        check_idempotency,
        check_task_events,
        check_webhooks,
        check_watcher_marks,
        check_task_counts,
        check_adopted_instances,
        check_instance_quota,
        check_admin_accounts_keys_and_audit,
        check_complete_many,
        check_broad_totals_follow_transitions,
        check_sweep,
        check_expire_all_leases,
        check_purge,
        check_account_isolation,
        check_backups,
        check_apps,
        check_group_images,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn check_concurrent_workers() {
        let (_dir, store) = store().await;
        let dyn_store: Arc<dyn Store> = store.clone();
        super::check_concurrent_workers(dyn_store).await;
    }

    /// Re-opening a database keeps its data and runs no migration twice.
    #[tokio::test]
    async fn reopen_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloudphone.db");
        let store = SqliteStore::open(&path).await.unwrap();
        store.setting_or_init("k", "v1").await.unwrap();
        store.close().await;
        drop(store);
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.setting_or_init("k", "v2").await.unwrap(), "v1");
    }
}

mod postgres {
    //! Each test creates a database `cp_test_<random hex>` in the cluster at
    //! `CLOUDPHONE_TEST_DATABASE_URL` and drops it when it passes (a failed test leaves it for a
    //! look; the cluster is throwaway).

    use std::sync::Arc;
    use std::time::Duration;

    use std::collections::{BTreeMap, HashSet};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use cloudphone_core::{InstanceStatus as S, TaskStatus, TaskType};
    use cloudphone_store::{Outcome, PgStore, Store, TaskFilter};
    use sqlx::{Connection, PgConnection};
    use tokio::sync::Notify;

    const URL_VAR: &str = "CLOUDPHONE_TEST_DATABASE_URL";

    /// A database made for one test.
    struct TestDb {
        admin_url: String,
        name: String,
        url: String,
    }

    impl TestDb {
        /// A fresh database.
        async fn create() -> TestDb {
            let admin_url = std::env::var(URL_VAR).unwrap_or_else(|_| {
                panic!(
                    "the PostgreSQL conformance tests need a cluster: run \
                     `scripts/pg-cluster start DIR` and `export {URL_VAR}=<the URL it prints>`"
                )
            });
            let name = format!("cp_test_{:016x}", random());
            let mut admin = PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("connecting to {URL_VAR} ({admin_url}): {e}"));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .unwrap();
            admin.close().await.ok();
            let url = with_database(&admin_url, &name);
            TestDb {
                admin_url,
                name,
                url,
            }
        }

        async fn connect(&self) -> PgStore {
            PgStore::connect(&self.url).await.unwrap()
        }

        /// Drops the database, on a best-effort basis.
        async fn drop(self) {
            if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut admin)
                    .await;
                admin.close().await.ok();
            }
        }
    }

    /// Random enough for database names that never meet twice.
    fn random() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        h.write_u128(now.as_nanos());
        h.write_u32(std::process::id());
        h.finish()
    }

    /// `url` with its database (the path) replaced by `name`, keeping any query string.
    fn with_database(url: &str, name: &str) -> String {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        let host_start = base.find("://").map_or(0, |i| i + 3);
        let path_start = base[host_start..]
            .find('/')
            .map_or(base.len(), |i| host_start + i);
        let mut out = format!("{}/{name}", &base[..path_start]);
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        out
    }

    #[test]
    fn with_database_replaces_the_path_only() {
        assert_eq!(
            with_database("postgres://u@h:5/postgres", "db"),
            "postgres://u@h:5/db"
        );
        assert_eq!(
            with_database("postgres://u:p@h/x?sslmode=disable", "db"),
            "postgres://u:p@h/db?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:5", "db"), "postgres://h:5/db");
    }

    macro_rules! checks {
        ($($check:ident),* $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let db = TestDb::create().await;
                let store = db.connect().await;
                super::$check(&store).await;
                store.close().await;
                db.drop().await;
            }
        )*};
    }

    checks!(
        check_accounts_and_keys,
        check_nonces,
        check_settings,
        check_buckets,
        check_groups_and_instances,
        check_internal_task_lifecycle,
        check_create_batch,
        check_describe_filters,
        check_describe_order_and_pages,
        check_claim_order,
        check_preconditions_and_batch_status,
        check_fencing,
        check_max_concurrency,
        check_max_errors,
        check_cancel,
        check_idempotency,
        check_task_events,
        check_webhooks,
        check_watcher_marks,
        check_task_counts,
        check_adopted_instances,
        check_instance_quota,
        check_admin_accounts_keys_and_audit,
        check_complete_many,
        check_broad_totals_follow_transitions,
        check_sweep,
        check_expire_all_leases,
        check_purge,
        check_account_isolation,
        check_backups,
        check_apps,
        check_group_images,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn check_concurrent_workers() {
        let db = TestDb::create().await;
        let store = Arc::new(db.connect().await);
        let dyn_store: Arc<dyn Store> = store.clone();
        super::check_concurrent_workers(dyn_store).await;
        store.close().await;
        db.drop().await;
    }

    /// The event log holds back what an open transaction may still join: a reader sees no
    /// event of a later transaction until every earlier one has ended, and then each event
    /// once, in (transaction, row) order, even where a row id is higher than a later one's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_wait_for_transactions_still_open() {
        use cloudphone_store::EventFilter;
        let db = TestDb::create().await;
        let store = db.connect().await;
        let (a, child) = (super::A, super::child);
        super::fleet(&store, a, "ag-1", &[("i1", S::Running), ("i2", S::Running)]).await;
        let first = super::batch("t-1", a, TaskType::RebootInstance, 1_000, &["i1"]);
        store.create_batch(&first).await.unwrap();
        let all = EventFilter {
            account_id: a.into(),
            ..EventFilter::default()
        };
        // The first batch's events are readable (other tests' transactions may hold them back a
        // moment): the tail is past them.
        let before = super::settled_events(&store, &all, Default::default(), 2).await;
        let tail = store.event_tail(a).await.unwrap();
        assert_eq!(tail, before.last().unwrap().position);
        let mut open = PgConnection::connect(&db.url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut open).await.unwrap();
        // Its transaction id comes first; its event's row id will come last.
        sqlx::query("SELECT pg_current_xact_id()")
            .execute(&mut open)
            .await
            .unwrap();
        let second = super::batch("t-2", a, TaskType::RebootInstance, 2_000, &["i2"]);
        store.create_batch(&second).await.unwrap();
        assert!(
            store.task_events(&all, tail, 100).await.unwrap().is_empty(),
            "held back behind the open transaction"
        );
        assert_eq!(store.event_tail(a).await.unwrap(), tail);
        sqlx::query("UPDATE tasks SET status = 'Skipped' WHERE id = $1")
            .bind(child("t-1", "i1"))
            .execute(&mut open)
            .await
            .unwrap();
        sqlx::query("COMMIT").execute(&mut open).await.unwrap();
        let events = super::settled_events(&store, &all, tail, 3).await;
        let seen: Vec<(&str, TaskStatus)> = events
            .iter()
            .map(|e| (e.task_id.as_str(), e.status))
            .collect();
        let (c1, c2) = (child("t-1", "i1"), child("t-2", "i2"));
        assert_eq!(
            seen,
            [
                (c1.as_str(), TaskStatus::Skipped),
                ("t-2", TaskStatus::Waiting),
                (c2.as_str(), TaskStatus::Waiting)
            ]
        );
        assert!(events[0].position.minor > events[2].position.minor);
        for (n, e) in events.iter().enumerate() {
            let rest = store.task_events(&all, e.position, 100).await.unwrap();
            assert_eq!(rest, events[n + 1..]);
        }
        store.close().await;
        db.drop().await;
    }

    /// Two nodes, four workers each, over batches that start, stop and reboot the same phones,
    /// some children ending Skipped at their precondition check inside the claim: no call fails
    /// (no deadlock, no second lease on a phone), and every task ends as running them one at a
    /// time in acceptance order gives.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn contended_claims_on_two_nodes() {
        use TaskStatus::{Finished, Processing, Skipped, Waiting};
        use TaskType::{RebootInstance, StartInstance, StopInstance};
        const INSTANCES: usize = 12;
        const ROUNDS: usize = 3;
        const NOW: i64 = 1_000_000;
        let db = TestDb::create().await;
        let nodes = [Arc::new(db.connect().await), Arc::new(db.connect().await)];
        let phones: Vec<String> = (0..INSTANCES).map(|n| format!("p{n:02}")).collect();
        let specs: Vec<(&str, S)> = phones.iter().map(|p| (p.as_str(), S::Running)).collect();
        super::fleet(&*nodes[0], super::A, "ag-1", &specs).await;
        // From RUNNING: Start is skipped, Stop runs, a second Stop is skipped, Start runs, and
        // so does Reboot.
        let round = [
            (StartInstance, Skipped),
            (StopInstance, Finished),
            (StopInstance, Skipped),
            (StartInstance, Finished),
            (RebootInstance, Finished),
        ];
        let plan: Vec<(String, TaskType, TaskStatus)> = round
            .iter()
            .cycle()
            .take(round.len() * ROUNDS)
            .enumerate()
            .map(|(n, (ty, want))| (format!("b-{n:02}"), *ty, *want))
            .collect();
        let to_complete = INSTANCES * plan.iter().filter(|p| p.2 == Finished).count();

        let producer = {
            let (nodes, phones, plan) = (nodes.clone(), phones.clone(), plan.clone());
            tokio::spawn(async move {
                for (n, (id, ty, _)) in plan.iter().enumerate() {
                    let refs: Vec<&str> = phones.iter().map(String::as_str).collect();
                    let b = super::batch(id, super::A, *ty, 1_000 + n as i64, &refs);
                    nodes[n % 2].create_batch(&b).await.unwrap();
                }
            })
        };
        let busy = Arc::new(std::sync::Mutex::new(HashSet::<String>::new()));
        let done = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
        let completed = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for w in 0..8 {
            let (node, other) = (nodes[w % 2].clone(), nodes[(w + 1) % 2].clone());
            let (busy, done, completed) = (busy.clone(), done.clone(), completed.clone());
            workers.push(tokio::spawn(async move {
                let owner = format!("worker-{w}");
                while completed.load(Ordering::SeqCst) < to_complete {
                    let claims = node.claim(&owner, NOW, super::LEASE, 3).await.unwrap();
                    if claims.is_empty() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    for c in &claims {
                        assert!(
                            busy.lock().unwrap().insert(c.instance_id.clone()),
                            "two tasks on {}",
                            c.instance_id
                        );
                    }
                    for c in claims {
                        // The other node heartbeats, this one completes.
                        let until = NOW + 2 * super::LEASE;
                        assert_eq!(
                            other.heartbeat(&c.task_id, c.attempt, until).await.unwrap(),
                            cloudphone_store::Lease::Held
                        );
                        assert!(busy.lock().unwrap().remove(&c.instance_id));
                        done.lock()
                            .unwrap()
                            .push((c.instance_id.clone(), c.task_id.clone()));
                        let outcome = Outcome::Finished {
                            result: "{}".into(),
                        };
                        let ok = node.complete(&c.task_id, c.attempt, &outcome, NOW).await;
                        assert!(ok.unwrap());
                        completed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
        let all = async {
            producer.await.unwrap();
            for w in workers {
                w.await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("workers finish");

        let store = &*nodes[0];
        let finished: Vec<&String> = plan
            .iter()
            .filter(|p| p.2 == Finished)
            .map(|p| &p.0)
            .collect();
        let mut per_instance: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (i, t) in done.lock().unwrap().iter() {
            per_instance.entry(i.clone()).or_default().push(t.clone());
        }
        for phone in &phones {
            let want: Vec<String> = finished.iter().map(|b| super::child(b, phone)).collect();
            assert_eq!(per_instance[phone], want, "acceptance order on {phone}");
            assert_eq!(super::status_of(store, phone).await, S::Running);
        }
        let n = INSTANCES as i64;
        for (id, _, want) in &plan {
            let b = super::get(store, super::A, id).await;
            let counts = match want {
                Finished => super::counts(0, 0, n, 0, 0),
                _ => super::counts(0, 0, 0, 0, n),
            };
            assert_eq!((b.status, b.counts), (*want, Some(counts)), "batch {id}");
            for phone in &phones {
                let c = super::get(store, super::A, &super::child(id, phone)).await;
                assert_eq!(c.status, *want, "{}", c.id);
            }
        }
        let unfinished = TaskFilter {
            statuses: vec![Waiting, Processing],
            ..super::filter(super::A)
        };
        assert!(super::listed(store, &unfinished).await.is_empty());
        for node in nodes {
            node.close().await;
        }
        db.drop().await;
    }

    /// A task accepted first (the lower acceptance number) whose transaction commits only after
    /// a later task of the same phone has started waits for that one to end: the claim passes
    /// it over instead of leasing a second task on the phone (or failing on the index that
    /// forbids it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_earlier_task_committed_late_waits_for_the_running_one() {
        const NOW: i64 = 1_000_000;
        let db = TestDb::create().await;
        let store = db.connect().await;
        super::fleet(&store, super::A, "ag-1", &[("i1", S::Running)]).await;
        let mut early = store.pool().begin().await.unwrap();
        sqlx::query(
            "INSERT INTO tasks (id, account_id, invoke_id, level, task_type, status, \
             instance_id, run_state, start_ms) \
             VALUES ('early', $1, 'inv-early', 0, $2, 'Waiting', 'i1', 'queued', 1)",
        )
        .bind(super::A)
        .bind(TaskType::RebootInstance.as_str())
        .execute(&mut *early)
        .await
        .unwrap();
        let late = super::batch("late", super::A, TaskType::RebootInstance, 2, &["i1"]);
        store.create_batch(&late).await.unwrap();
        let claims = store.claim("w", NOW, super::LEASE, 10).await.unwrap();
        let ids: Vec<&str> = claims.iter().map(|c| c.task_id.as_str()).collect();
        assert_eq!(ids, [super::child("late", "i1")]);
        early.commit().await.unwrap();

        assert!(
            store
                .claim("w", NOW, super::LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let outcome = Outcome::Finished {
            result: "{}".into(),
        };
        let c = &claims[0];
        assert!(
            store
                .complete(&c.task_id, c.attempt, &outcome, NOW)
                .await
                .unwrap()
        );
        let claims = store.claim("w", NOW, super::LEASE, 10).await.unwrap();
        let ids: Vec<&str> = claims.iter().map(|c| c.task_id.as_str()).collect();
        assert_eq!(ids, ["early"]);
        store.close().await;
        db.drop().await;
    }

    /// Connecting again (migrations already applied) keeps the data and runs no migration
    /// twice.
    #[tokio::test]
    async fn reconnect_keeps_data() {
        let db = TestDb::create().await;
        let store = db.connect().await;
        store.setting_or_init("k", "v1").await.unwrap();
        store.close().await;
        drop(store);
        let store = db.connect().await;
        assert_eq!(store.setting_or_init("k", "v2").await.unwrap(), "v1");
        store.close().await;
        db.drop().await;
    }

    /// A batch created through one node wakes the engine of another within moments.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_signals_reach_other_nodes() {
        let db = TestDb::create().await;
        let producer = db.connect().await;
        let consumer = Arc::new(db.connect().await);
        assert!(consumer.shared());
        let wake = Arc::new(Notify::new());
        let forwarder = tokio::spawn({
            let (consumer, wake) = (consumer.clone(), wake.clone());
            async move { consumer.forward_work_signals(wake).await }
        });
        // The forwarder listens once its connection's last statement is the LISTEN.
        let listening = async {
            loop {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND query LIKE 'LISTEN %'",
                )
                .fetch_one(producer.pool())
                .await
                .unwrap();
                if n > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), listening)
            .await
            .expect("the forwarder listens");
        assert!(
            tokio::time::timeout(Duration::from_millis(200), wake.notified())
                .await
                .is_err(),
            "no wake-up before any work"
        );

        let batch = super::batch("t-1", super::A, TaskType::RebootInstance, 1, &["i-1"]);
        producer.create_batch(&batch).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), wake.notified())
            .await
            .expect("the notification from create_batch wakes the other node");
        assert!(!forwarder.is_finished(), "{:?}", forwarder.await);

        forwarder.abort();
        let _ = forwarder.await;
        producer.close().await;
        consumer.close().await;
        db.drop().await;
    }
}
