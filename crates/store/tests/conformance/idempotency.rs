//! ClientToken reservations.

use cloudphone_store::Store;

use crate::support::{A, B};

pub(crate) async fn check_idempotency(store: &dyn Store) {
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
