//! Accounts, access keys, nonces, settings, the audit log and the old bucket owners.

use std::collections::{BTreeMap, HashSet};

use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::AccessKey;
use cloudphone_store::{AccountDeletion, AuditEntry, AuditFilter, Nonce, Store};

use crate::support::{A, B, fleet};
use InstanceStatus as S;

pub(crate) async fn check_accounts_and_keys(store: &dyn Store) {
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
pub(crate) async fn check_admin_accounts_keys_and_audit(store: &dyn Store) {
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

/// Console session generations: a logout and a disable (of the key or its account) move a
/// key's generation on, for good: enabling it again does not bring the old one back, and
/// neither does replacing the key, nor deleting it and making it again under the same id. A
/// disabled key, or a key of a disabled account, has none.
pub(crate) async fn check_session_generations(store: &dyn Store) {
    store.ensure_account(A, "Alice").await.unwrap();
    store.ensure_account(B, "Bob").await.unwrap();
    let key = |id: &str, account: &str| AccessKey {
        key_id: id.into(),
        secret: format!("secret-{id}"),
        account_id: account.into(),
        user_name: format!("user-{id}"),
    };
    let (a1, a2, b1) = (key("LTAI-g1", A), key("LTAI-g2", A), key("LTAI-g3", B));
    for k in [&a1, &a2, &b1] {
        store.put_access_key(k).await.unwrap();
    }
    let generation = |id: &'static str| async move { store.session_generation(id).await.unwrap() };
    let mut seen = HashSet::new();
    let first = generation("LTAI-g1").await.expect("an enabled key has one");
    seen.insert(first);
    assert_eq!(generation("LTAI-none").await, None);

    assert!(store.end_sessions("LTAI-g1").await.unwrap());
    assert!(!store.end_sessions("LTAI-none").await.unwrap());
    let after_logout = generation("LTAI-g1").await.unwrap();
    assert!(seen.insert(after_logout), "a logout moves it on");

    assert!(
        store
            .set_access_key_disabled("LTAI-g1", true)
            .await
            .unwrap()
    );
    assert_eq!(generation("LTAI-g1").await, None);
    assert!(
        store
            .set_access_key_disabled("LTAI-g1", false)
            .await
            .unwrap()
    );
    let after_disable = generation("LTAI-g1").await.unwrap();
    assert!(
        seen.insert(after_disable),
        "enabled again, not back where it was"
    );

    let (g2, g3) = (
        generation("LTAI-g2").await.unwrap(),
        generation("LTAI-g3").await.unwrap(),
    );
    assert!(store.set_account_disabled(A, true).await.unwrap());
    assert_eq!(generation("LTAI-g1").await, None);
    assert_eq!(generation("LTAI-g2").await, None);
    assert!(store.set_account_disabled(A, false).await.unwrap());
    let now_g1 = generation("LTAI-g1").await.unwrap();
    assert!(seen.insert(now_g1));
    assert_ne!(generation("LTAI-g2").await.unwrap(), g2);
    assert_eq!(
        generation("LTAI-g3").await.unwrap(),
        g3,
        "another account's keys keep theirs"
    );

    // Enabling what is enabled, and replacing a key (a new secret), change nothing.
    assert!(
        store
            .set_access_key_disabled("LTAI-g1", false)
            .await
            .unwrap()
    );
    let mut rotated = a1.clone();
    rotated.secret = "rotated".into();
    store.put_access_key(&rotated).await.unwrap();
    assert_eq!(generation("LTAI-g1").await.unwrap(), now_g1);

    // Deleted and made again: not the generation any of the old key's cookies carry.
    assert!(store.delete_access_key("LTAI-g1").await.unwrap());
    store.put_access_key(&a1).await.unwrap();
    assert!(!seen.contains(&generation("LTAI-g1").await.unwrap()));
}

pub(crate) fn nonce_key(key_id: &str) -> AccessKey {
    AccessKey {
        key_id: key_id.into(),
        secret: format!("secret-of-{key_id}"),
        account_id: A.into(),
        user_name: "alice".into(),
    }
}

pub(crate) async fn check_nonces(store: &dyn Store) {
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

pub(crate) async fn check_settings(store: &dyn Store) {
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

pub(crate) async fn check_buckets(store: &dyn Store) {
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
