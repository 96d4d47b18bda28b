//! The task event log behind the watch stream.

use std::time::Duration;

use cloudphone_core::InstanceStatus;
use cloudphone_core::{Level, TaskStatus, TaskType};
use cloudphone_store::Store;

use crate::support::{A, B, LEASE, batch, child, claimed_ids, finished, fleet};
use InstanceStatus as S;
use TaskStatus::{Finished, Processing, Skipped, Waiting};

/// The events after `after`, once at least `want` of them are readable. On PostgreSQL an
/// event is readable once every transaction older than its own has ended, in any database of
/// the cluster: other tests running beside this one hold that back for a moment.
pub(crate) async fn settled_events(
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

pub(crate) async fn check_task_events(store: &dyn Store) {
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
