//! Named leases: one holder at a time, taken over once expired with a new epoch, renewed and
//! given back only by their holder.

use cloudphone_store::prelude::*;

const NOW: i64 = 1_000_000;
const TTL: i64 = 5_000;

pub async fn check_named_leases(store: &dyn Store) {
    // First use makes the lease.
    let e1 = store
        .take_lease("n1", "adb:lab", NOW, TTL)
        .await
        .unwrap()
        .expect("a new lease is free");
    // Held: neither another node nor its holder takes it (the holder renews).
    assert_eq!(
        store
            .take_lease("n2", "adb:lab", NOW + 1, TTL)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .take_lease("n1", "adb:lab", NOW + 1, TTL)
            .await
            .unwrap(),
        None
    );
    // Another name is another lease.
    let other = store
        .take_lease("n2", "adb:bench", NOW + 2, TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.renew_leases("n1", NOW + 4_000, TTL).await.unwrap(),
        vec![("adb:lab".to_string(), e1)]
    );
    // Renewed until NOW + 9_000: still held at NOW + 8_000.
    assert_eq!(
        store
            .take_lease("n2", "adb:lab", NOW + 8_000, TTL)
            .await
            .unwrap(),
        None
    );
    // n1 stops renewing: n2 takes it over once expired, with a greater epoch.
    let e2 = store
        .take_lease("n2", "adb:lab", NOW + 9_001, TTL)
        .await
        .unwrap()
        .unwrap();
    assert!(e2 > e1);
    assert!(
        store
            .renew_leases("n1", NOW + 9_002, TTL)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.renew_leases("n2", NOW + 9_002, TTL).await.unwrap(),
        vec![
            ("adb:bench".to_string(), other),
            ("adb:lab".to_string(), e2)
        ]
    );
    // Given back only by its holder at its epoch; then free at once, the epoch still grows.
    assert!(!store.release_lease("n1", "adb:lab", e2).await.unwrap());
    assert!(!store.release_lease("n2", "adb:lab", e1).await.unwrap());
    assert!(store.release_lease("n2", "adb:lab", e2).await.unwrap());
    let e3 = store
        .take_lease("n1", "adb:lab", NOW + 9_003, TTL)
        .await
        .unwrap()
        .unwrap();
    assert!(e3 > e2);
    // A node that stops gives up all it holds, and only that.
    assert_eq!(store.release_leases("n2").await.unwrap(), 1);
    assert_eq!(
        store.renew_leases("n1", NOW + 9_004, TTL).await.unwrap(),
        vec![("adb:lab".to_string(), e3)]
    );
    assert!(
        store
            .take_lease("n3", "adb:bench", NOW + 9_005, TTL)
            .await
            .unwrap()
            .is_some()
    );
}
