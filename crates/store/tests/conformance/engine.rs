//! The engine's side: claims in order, preconditions and batch status, fencing, MaxConcurrency and MaxErrors, group completion, the sweeper, concurrent workers.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cloudphone_core::TaskStatus;
use cloudphone_core::{InstanceStatus, TaskErrorCode, TaskType};
use cloudphone_store::{
    AccountShares, Claim, Completion, Lease, Outcome, Store, Swept, TaskFilter,
};

use crate::support::{
    A, B, LEASE, batch, child, claimed_ids, counts, counts_of, failed, filter, finished, fleet,
    get, group, instance, internal, limited, listed, page, phone_of, sorted, status_of,
};
use InstanceStatus as S;
use TaskStatus::{Failed, Finished, PartFinished, Processing, Skipped, Waiting};

pub(crate) async fn check_internal_task_lifecycle(store: &dyn Store) {
    let instances = [
        instance("acp-new", A, "ag-1", "new", S::Creating, 1),
        instance("acp-old", A, "ag-1", "old", S::Running, 1),
    ];
    let tasks = [
        internal("t-c", A, TaskType::CreateInstance, "acp-new", 1),
        internal("t-d", A, TaskType::DeleteInstance, "acp-old", 1),
    ];
    store
        .create_groups(&[group("ag-1", A, "g", 1)], &instances, &tasks, None, None)
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

pub(crate) async fn check_claim_order(store: &dyn Store) {
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

pub(crate) async fn check_preconditions_and_batch_status(store: &dyn Store) {
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

pub(crate) async fn check_fencing(store: &dyn Store) {
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

pub(crate) async fn check_max_concurrency(store: &dyn Store) {
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

pub(crate) async fn check_max_errors(store: &dyn Store) {
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

/// Shares of the node's slots (docs/design.md §5.10): a claim passes over the tasks of an
/// account at its share, leaving them queued in their place, and starts no more of an account
/// than its share leaves; per-instance order and MaxConcurrency hold within the share.
pub(crate) async fn check_account_shares(store: &dyn Store) {
    let ty = TaskType::RunCommand;
    fleet(
        store,
        A,
        "ag-a",
        &[("a1", S::Running), ("a2", S::Running), ("a3", S::Running)],
    )
    .await;
    fleet(store, B, "ag-b", &[("b1", S::Running), ("b2", S::Running)]).await;
    // A's work was accepted first: without shares it would take every slot.
    store
        .create_batch(&batch("t-a", A, ty, 1_000, &["a1", "a2", "a3"]))
        .await
        .unwrap();
    store
        .create_batch(&batch("t-a2", A, ty, 1_100, &["a1"]))
        .await
        .unwrap();
    store
        .create_batch(&limited(
            batch("t-b", B, ty, 2_000, &["b1", "b2"]),
            Some(1),
            None,
        ))
        .await
        .unwrap();
    let two_each = |held: &[(&str, usize)]| AccountShares {
        per_account: Some(2),
        held: held.iter().map(|(a, n)| (a.to_string(), *n)).collect(),
    };
    // A fills its share of two; B's batch runs one at a time (its MaxConcurrency).
    let c = store
        .claim_fair("w", 3_000, LEASE, 4, &two_each(&[]))
        .await
        .unwrap();
    assert_eq!(
        claimed_ids(&c),
        [child("t-a", "a1"), child("t-a", "a2"), child("t-b", "b1")]
    );
    assert_eq!(c[0].phone.as_ref().map(|p| p.account_id.as_str()), Some(A));
    // A at its share: its next task is passed over and stays queued in its place.
    assert!(
        store
            .claim_fair("w", 3_100, LEASE, 4, &two_each(&[(A, 2), (B, 1)]))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(get(store, A, &child("t-a", "a3")).await.status, Waiting);
    // B ends its first; A's share is still full, B's second child runs.
    assert!(
        store
            .complete(&c[2].task_id, 1, &finished(), 3_200)
            .await
            .unwrap()
    );
    let c2 = store
        .claim_fair("w", 3_300, LEASE, 4, &two_each(&[(A, 2)]))
        .await
        .unwrap();
    assert_eq!(claimed_ids(&c2), [child("t-b", "b2")]);
    // A ends its first task: one slot of its share is free again; its tasks start in
    // acceptance order, a1's second only after a3 (accepted earlier) and its own first.
    assert!(
        store
            .complete(&c[0].task_id, 1, &finished(), 3_400)
            .await
            .unwrap()
    );
    let c3 = store
        .claim_fair("w", 3_500, LEASE, 4, &two_each(&[(A, 1), (B, 1)]))
        .await
        .unwrap();
    assert_eq!(claimed_ids(&c3), [child("t-a", "a3")]);
    assert!(
        store
            .claim_fair("w", 3_600, LEASE, 4, &two_each(&[(A, 2), (B, 1)]))
            .await
            .unwrap()
            .is_empty()
    );
    // A share larger than what is held lets the rest run; no shares at all caps nothing.
    let c4 = store
        .claim_fair("w", 3_700, LEASE, 4, &AccountShares::default())
        .await
        .unwrap();
    assert_eq!(claimed_ids(&c4), [child("t-a2", "a1")]);
    assert_eq!(counts_of(&get(store, A, "t-a").await), (0, 2, 1, 0, 0));
    assert_eq!(counts_of(&get(store, B, "t-b").await), (0, 1, 1, 0, 0));
}

/// A group of outcomes in one call: each is fenced on its own, the answers come back in order,
/// and the batch counters and finish time are what one-by-one completion would give.
pub(crate) async fn check_complete_many(store: &dyn Store) {
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

/// A transfer CancelTasks asked to stop whose node then died is not tried again: the sweeper
/// ends it `Cancelled` (docs/design.md §5.4, §5.7); one nobody cancelled is re-queued as ever.
pub(crate) async fn check_sweep_of_a_cancelled_transfer(store: &dyn Store) {
    fleet(store, A, "ag-1", &[("i1", S::Running), ("i2", S::Running)]).await;
    store
        .create_batch(&batch("t-send", A, TaskType::SendFile, 100, &["i1", "i2"]))
        .await
        .unwrap();
    let (cancelled, kept) = (child("t-send", "i1"), child("t-send", "i2"));
    let c = store.claim("w1", 1_000, 100, 10).await.unwrap();
    assert_eq!(claimed_ids(&c), [cancelled.clone(), kept.clone()]);
    let out = store
        .cancel_tasks(A, std::slice::from_ref(&cancelled), 1_050)
        .await
        .unwrap();
    assert_eq!((out.interrupting, out.finishing), (1, 0));
    assert_eq!(out.interrupted, std::slice::from_ref(&cancelled));
    let swept = store.sweep_expired(2_000, 3, 500).await.unwrap();
    assert_eq!(
        swept,
        [
            Swept::Failed {
                task_id: cancelled.clone(),
                code: TaskErrorCode::Cancelled
            },
            Swept::Requeued {
                task_id: kept.clone(),
                attempt: 1
            },
        ]
    );
    let t = get(store, A, &cancelled).await;
    assert_eq!(
        (t.status, t.error_code.as_deref(), t.finish_ms),
        (Failed, Some("Cancelled"), Some(2_000))
    );
    assert_eq!(status_of(store, "i1").await, S::Running);
    assert_eq!(counts_of(&get(store, A, "t-send").await), (0, 1, 0, 1, 0));
}

pub(crate) async fn check_sweep(store: &dyn Store) {
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

pub(crate) async fn check_expire_all_leases(store: &dyn Store) {
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

/// Eight workers claim and complete 200 tasks on 20 instances while a producer is still
/// creating the batches and a reader polls DescribeTasks: every task completes exactly once,
/// never two at a time on one instance, each instance's in acceptance order, and no call fails.
pub(crate) async fn check_concurrent_workers(store: Arc<dyn Store>) {
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
