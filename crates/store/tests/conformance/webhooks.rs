//! Webhooks and their deliveries.

use cloudphone_core::InstanceStatus;
use cloudphone_core::TaskType;
use cloudphone_store::Store;

use crate::support::{A, B, LEASE, batch, finished, fleet};
use InstanceStatus as S;

pub(crate) async fn check_webhooks(store: &dyn Store) {
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
