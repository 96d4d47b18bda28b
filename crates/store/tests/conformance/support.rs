//! The fixtures every area's checks build on: accounts, groups, instances, batches, pages and
//! filters, and the reads the checks assert with.

use cloudphone_core::resources::{Group, Instance, Task};
use cloudphone_core::{BatchCounts, InstanceStatus, Level, TaskErrorCode, TaskType};
use cloudphone_store::{
    Claim, Listing, NewBatch, NewTask, Outcome, Page, Phone, Store, TaskFilter,
};

pub(crate) const A: &str = "acct-a";

pub(crate) const B: &str = "acct-b";

pub(crate) const LEASE: i64 = 30_000;

pub(crate) fn group(id: &str, account: &str, name: &str, created_ms: i64) -> Group {
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

pub(crate) fn instance(
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
        host: None,
        adb_port: None,
    }
}

/// Creates group `gid` of `account` holding one instance per `(id, status)`, named after its id.
pub(crate) async fn fleet(
    store: &dyn Store,
    account: &str,
    gid: &str,
    phones: &[(&str, InstanceStatus)],
) {
    let instances: Vec<Instance> = phones
        .iter()
        .enumerate()
        .map(|(n, (id, status))| {
            instance(id, account, gid, &format!("name-{id}"), *status, n as i64)
        })
        .collect();
    store
        .create_groups(&[group(gid, account, gid, 0)], &instances, &[], None, None)
        .await
        .unwrap();
}

pub(crate) fn new_task(
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
pub(crate) fn phone_of(account: &str, id: &str) -> Phone {
    Phone {
        account_id: account.into(),
        name: format!("name-{id}"),
        image_id: "imgc-android14".into(),
        spec: "acp.basic.small".into(),
        ..Phone::default()
    }
}

/// The id of the child of batch `batch` on `instance`.
pub(crate) fn child(batch: &str, instance: &str) -> String {
    format!("{batch}-{instance}")
}

/// A batch `id` (InvokeId `inv-<id>`) with one child per instance, all accepted at `start_ms`.
pub(crate) fn batch(
    id: &str,
    account: &str,
    ty: TaskType,
    start_ms: i64,
    instances: &[&str],
) -> NewBatch {
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
pub(crate) fn internal(
    id: &str,
    account: &str,
    ty: TaskType,
    instance: &str,
    start_ms: i64,
) -> NewTask {
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

pub(crate) async fn get(store: &dyn Store, account: &str, id: &str) -> Task {
    store
        .task(account, id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("task {id} of {account} not found"))
}

pub(crate) async fn status_of(store: &dyn Store, instance_id: &str) -> InstanceStatus {
    store.instance(instance_id).await.unwrap().unwrap().status
}

pub(crate) fn counts(
    waiting: i64,
    processing: i64,
    finished: i64,
    failed: i64,
    skipped: i64,
) -> BatchCounts {
    BatchCounts {
        waiting,
        processing,
        finished,
        failed,
        skipped,
    }
}

pub(crate) fn page(limit: usize) -> Page {
    Page { after: None, limit }
}

pub(crate) fn filter(account: &str) -> TaskFilter {
    TaskFilter {
        account_id: account.into(),
        ..TaskFilter::default()
    }
}

pub(crate) fn sorted<S: ToString>(v: impl IntoIterator<Item = S>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Checks that the written form of the page (`describe_tasks_rendered`) has the listing's
/// tasks, every field of each, in order, after the head, with the same total and cursor.
pub(crate) async fn assert_rendered_like(
    store: &dyn Store,
    f: &TaskFilter,
    p: &Page,
    l: &Listing<Task>,
) {
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
pub(crate) async fn listed(store: &dyn Store, f: &TaskFilter) -> Vec<String> {
    let l = store.describe_tasks(f, &page(100)).await.unwrap();
    assert_rendered_like(store, f, &page(100), &l).await;
    assert_eq!(l.total, l.items.len() as i64, "total of {f:?}");
    assert!(l.next.is_none());
    sorted(l.items.into_iter().map(|t| t.id))
}

pub(crate) fn claimed_ids(claims: &[Claim]) -> Vec<String> {
    claims.iter().map(|c| c.task_id.clone()).collect()
}

pub(crate) fn finished() -> Outcome {
    Outcome::Finished {
        result: r#"{"Success":true}"#.into(),
    }
}

pub(crate) fn failed(code: TaskErrorCode) -> Outcome {
    Outcome::Failed {
        code,
        message: "it broke".into(),
    }
}

pub(crate) async fn run_all(store: &dyn Store, now: i64, outcome: Outcome) {
    for c in store.claim("w", now, LEASE, 100).await.unwrap() {
        assert!(
            store
                .complete(&c.task_id, c.attempt, &outcome, now)
                .await
                .unwrap()
        );
    }
}

/// The instance watcher's view: RUNNING instances of the watched images, of every account, and a
/// mark that only lands on an instance nobody moved since it was seen; a task that leaves the
/// status alone (a command) does not undo the mark when it ends.
/// A batch with limits (see [`batch`]).
pub(crate) fn limited(mut b: NewBatch, concurrency: Option<i64>, errors: Option<i64>) -> NewBatch {
    b.limits = cloudphone_core::BatchLimits {
        max_concurrency: concurrency,
        max_errors: errors,
    };
    b
}

pub(crate) fn counts_of(t: &Task) -> (i64, i64, i64, i64, i64) {
    let c = t.counts.expect("a batch has counters");
    (c.waiting, c.processing, c.finished, c.failed, c.skipped)
}
