//! ADB endpoints and key pairs: key pairs per account (names unique, all-or-none deletion that
//! detaches), attachment (one key per instance, replacing), authentication, port allocation
//! (unique, in range, round-robin, reclaimed from DELETED phones, all or none), the listings and
//! filters, and what the gateway reads for a port.

use std::collections::HashSet;
use std::sync::Arc;

use cloudphone_core::resources::KeyPair;
use cloudphone_core::{InstanceStatus as S, TaskType};
use cloudphone_store::{
    AdbFilter, AdbPorts, GroupFilter, InstanceFilter, KeyPairCreated, KeyPairFilter,
    KeyPairsDeleted, Page, Rename, StartAdb, Store,
};

/// Key pairs an account may have, where a test does not exercise the limit.
const MAX: u64 = 1_000;

use crate::support::{A, B, fleet, group, instance, internal, page};

fn key(id: &str, account: &str, name: &str, created_ms: i64) -> KeyPair {
    KeyPair {
        id: id.into(),
        account_id: account.into(),
        name: name.into(),
        public_key: format!("QUFB{id} user@host"),
        fingerprint: format!("FP-{id}"),
        created_ms,
    }
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn key_names(store: &dyn Store, filter: &KeyPairFilter, limit: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut after = None;
    loop {
        let l = store
            .list_key_pairs(filter, &Page { after, limit })
            .await
            .unwrap();
        names.extend(l.items.into_iter().map(|k| k.name));
        match l.next {
            Some(n) => after = Some(n),
            None => return names,
        }
    }
}

async fn attached(store: &dyn Store, account: &str, instance: &str) -> (Option<String>, bool) {
    let rows = store
        .instances_adb(account, &ids(&[instance]))
        .await
        .unwrap();
    match rows.as_slice() {
        [] => (None, false),
        [r] => (r.key_pair_id.clone(), r.secure),
        more => panic!("{more:?}"),
    }
}

pub(crate) async fn check_key_pairs(store: &dyn Store) {
    for (n, name) in ["alpha", "beta", "gamma"].iter().enumerate() {
        let k = key(&format!("kp-{n}"), A, name, 1_000 + n as i64);
        assert_eq!(
            store.create_key_pair(&k, MAX).await.unwrap(),
            KeyPairCreated::Created
        );
    }
    // Names are unique within an account, not across accounts.
    assert_eq!(
        store
            .create_key_pair(&key("kp-x", A, "beta", 9), MAX)
            .await
            .unwrap(),
        KeyPairCreated::NameTaken
    );
    assert_eq!(
        store
            .create_key_pair(&key("kp-b", B, "beta", 9), MAX)
            .await
            .unwrap(),
        KeyPairCreated::Created
    );
    // An account at its most: nothing stored, whatever the name; another account unaffected.
    assert_eq!(
        store
            .create_key_pair(&key("kp-y", A, "omega", 9), 3)
            .await
            .unwrap(),
        KeyPairCreated::Full { used: 3 }
    );
    assert_eq!(
        store
            .create_key_pair(&key("kp-y", A, "beta", 9), 3)
            .await
            .unwrap(),
        KeyPairCreated::Full { used: 3 }
    );
    assert_eq!(
        store
            .create_key_pair(&key("kp-b2", B, "omega", 9), 1)
            .await
            .unwrap(),
        KeyPairCreated::Full { used: 1 },
        "B's count is B's own"
    );

    let of_a = KeyPairFilter {
        account_id: A.into(),
        ..KeyPairFilter::default()
    };
    assert_eq!(key_names(store, &of_a, 2).await, ["gamma", "beta", "alpha"]);
    let l = store.list_key_pairs(&of_a, &page(10)).await.unwrap();
    assert_eq!(l.total, 3);
    assert_eq!(l.items[0], key("kp-2", A, "gamma", 1_002));
    let by_name = KeyPairFilter {
        name: Some("mm".into()),
        ..of_a.clone()
    };
    assert_eq!(key_names(store, &by_name, 10).await, ["gamma"]);
    let by_id = KeyPairFilter {
        ids: ids(&["kp-0", "kp-b"]),
        ..of_a.clone()
    };
    assert_eq!(
        key_names(store, &by_id, 10).await,
        ["alpha"],
        "B's is not A's"
    );

    // Renames: to a free name, to its own, to a taken one, another account's.
    assert_eq!(
        store.rename_key_pair(A, "kp-0", "delta").await.unwrap(),
        Rename::Renamed
    );
    assert_eq!(
        store.rename_key_pair(A, "kp-0", "delta").await.unwrap(),
        Rename::Renamed
    );
    assert_eq!(
        store.rename_key_pair(A, "kp-0", "gamma").await.unwrap(),
        Rename::NameTaken
    );
    assert_eq!(
        store.rename_key_pair(A, "kp-b", "other").await.unwrap(),
        Rename::NotFound
    );
    assert_eq!(
        key_names(store, &of_a, 10).await,
        ["gamma", "beta", "delta"]
    );

    // Deletion is all or none: one id of another account deletes nothing.
    assert_eq!(
        store
            .delete_key_pairs(A, &ids(&["kp-0", "kp-b"]))
            .await
            .unwrap(),
        KeyPairsDeleted::Missing("kp-b".into())
    );
    assert_eq!(key_names(store, &of_a, 10).await.len(), 3);
    // A deleted key pair is detached from its phones first; they stay secure.
    fleet(store, A, "ag-1", &[("i1", S::Running), ("i2", S::Running)]).await;
    let attach = store
        .attach_key_pair(A, "kp-0", &ids(&["i1", "i2"]), 5_000)
        .await
        .unwrap();
    assert_eq!(attach, Some(ids(&["i1", "i2"])));
    assert_eq!(
        store
            .delete_key_pairs(A, &ids(&["kp-0", "kp-1"]))
            .await
            .unwrap(),
        KeyPairsDeleted::Deleted {
            detached: ids(&["i1", "i2"])
        }
    );
    assert_eq!(attached(store, A, "i1").await, (None, true));
    assert_eq!(key_names(store, &of_a, 10).await, ["gamma"]);
    // The name of a deleted key pair is free again.
    assert_eq!(
        store
            .create_key_pair(&key("kp-5", A, "delta", 9), MAX)
            .await
            .unwrap(),
        KeyPairCreated::Created
    );
    let of_b = KeyPairFilter {
        account_id: B.into(),
        ..KeyPairFilter::default()
    };
    assert_eq!(key_names(store, &of_b, 10).await, ["beta"]);
}

pub(crate) async fn check_attach_and_secure(store: &dyn Store) {
    store
        .create_key_pair(&key("kp-1", A, "one", 1), MAX)
        .await
        .unwrap();
    store
        .create_key_pair(&key("kp-2", A, "two", 2), MAX)
        .await
        .unwrap();
    store
        .create_key_pair(&key("kp-b", B, "bee", 3), MAX)
        .await
        .unwrap();
    fleet(
        store,
        A,
        "ag-1",
        &[("i1", S::Running), ("i2", S::Stopped), ("i3", S::Running)],
    )
    .await;
    fleet(store, A, "ag-2", &[("i4", S::Running)]).await;
    fleet(store, B, "ag-b", &[("ib", S::Running)]).await;

    // Nothing set: no key, not secure.
    assert_eq!(attached(store, A, "i1").await, (None, false));
    // Another account's key pair is unknown; nothing changes.
    assert_eq!(
        store
            .attach_key_pair(A, "kp-b", &ids(&["i1"]), 10)
            .await
            .unwrap(),
        None
    );
    assert_eq!(attached(store, A, "i1").await, (None, false));
    // Another account's instance is passed over.
    let changed = store
        .attach_key_pair(A, "kp-1", &ids(&["i1", "i2", "ib"]), 10)
        .await
        .unwrap();
    assert_eq!(changed, Some(ids(&["i1", "i2"])));
    assert_eq!(attached(store, A, "i1").await, (Some("kp-1".into()), true));
    assert_eq!(attached(store, B, "ib").await, (None, false));
    // Attaching it again changes nothing; another key replaces it.
    assert_eq!(
        store
            .attach_key_pair(A, "kp-1", &ids(&["i1"]), 11)
            .await
            .unwrap(),
        Some(vec![])
    );
    assert_eq!(
        store
            .attach_key_pair(A, "kp-2", &ids(&["i2", "i4"]), 12)
            .await
            .unwrap(),
        Some(ids(&["i2", "i4"]))
    );
    assert_eq!(attached(store, A, "i2").await, (Some("kp-2".into()), true));

    // Authentication off, then a key attached turns it on again.
    assert_eq!(
        store
            .set_adb_secure(A, &ids(&["i1", "i3", "ib"]), false, 13)
            .await
            .unwrap(),
        ids(&["i1"]),
        "i3 was off already, ib is B's"
    );
    assert_eq!(attached(store, A, "i1").await, (Some("kp-1".into()), false));
    assert_eq!(attached(store, A, "i3").await, (None, false));
    assert_eq!(
        store
            .attach_key_pair(A, "kp-1", &ids(&["i1"]), 14)
            .await
            .unwrap(),
        Some(ids(&["i1"]))
    );
    assert_eq!(attached(store, A, "i1").await, (Some("kp-1".into()), true));
    assert_eq!(
        store
            .set_adb_secure(A, &ids(&["i3"]), true, 15)
            .await
            .unwrap(),
        ids(&["i3"])
    );
    assert_eq!(attached(store, A, "i3").await, (None, true));

    // Detach: only from those that have it; authentication stays on.
    assert_eq!(
        store
            .detach_key_pair(A, "kp-1", &ids(&["i1", "i2", "i3"]), 16)
            .await
            .unwrap(),
        Some(ids(&["i1"]))
    );
    assert_eq!(attached(store, A, "i1").await, (None, true));
    assert_eq!(attached(store, A, "i2").await, (Some("kp-2".into()), true));
    assert_eq!(
        store
            .detach_key_pair(A, "kp-b", &ids(&["ib"]), 16)
            .await
            .unwrap(),
        None
    );

    // The KeyPairId filters.
    let with = |key: &str| InstanceFilter {
        account_id: A.into(),
        key_pair_id: Some(key.into()),
        ..InstanceFilter::default()
    };
    let listed = |f: InstanceFilter| async move {
        let l = store.list_instances(&f, &page(100)).await.unwrap();
        let mut v: Vec<String> = l.items.into_iter().map(|i| i.id).collect();
        v.sort();
        v
    };
    assert_eq!(listed(with("kp-2")).await, ids(&["i2", "i4"]));
    assert_eq!(listed(with("kp-1")).await, Vec::<String>::new());
    assert_eq!(listed(with("kp-b")).await, Vec::<String>::new());
    let groups_with = |key: &str| GroupFilter {
        account_id: A.into(),
        key_pair_id: Some(key.into()),
        ..GroupFilter::default()
    };
    let groups = |f: GroupFilter| async move {
        let l = store.list_groups(&f, &page(100)).await.unwrap();
        let mut v: Vec<String> = l.items.into_iter().map(|g| g.group.id).collect();
        v.sort();
        v
    };
    assert_eq!(groups(groups_with("kp-2")).await, ids(&["ag-1", "ag-2"]));
    assert!(groups(groups_with("kp-1")).await.is_empty());

    // A group created with a key pair: every new phone has it; an unknown (or another
    // account's) key pair creates nothing.
    let g = group("ag-k", A, "keyed", 50);
    let phones = [
        instance("ik1", A, "ag-k", "k1", S::Creating, 50),
        instance("ik2", A, "ag-k", "k2", S::Creating, 50),
    ];
    let tasks = [internal("t-k1", A, TaskType::CreateInstance, "ik1", 50)];
    assert!(
        !store
            .create_groups_with_key_pair(
                std::slice::from_ref(&g),
                &phones,
                &tasks,
                None,
                "kp-b",
                None
            )
            .await
            .unwrap()
    );
    assert!(
        store.instance("ik1").await.unwrap().is_none(),
        "nothing made"
    );
    assert!(
        store
            .create_groups_with_key_pair(&[g], &phones, &tasks, None, "kp-2", None)
            .await
            .unwrap()
    );
    assert_eq!(attached(store, A, "ik1").await, (Some("kp-2".into()), true));
    assert_eq!(attached(store, A, "ik2").await, (Some("kp-2".into()), true));
    assert_eq!(listed(with("kp-2")).await, ids(&["i2", "i4", "ik1", "ik2"]));
    // B sees none of A's settings.
    assert!(
        store
            .instances_adb(B, &ids(&["i1", "i2", "ik1"]))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn open_ports(store: &dyn Store, account: &str) -> Vec<(String, u16)> {
    let l = store
        .list_adb(
            &AdbFilter {
                account_id: account.into(),
                ..AdbFilter::default()
            },
            &page(100),
        )
        .await
        .unwrap();
    let mut v: Vec<(String, u16)> = l
        .items
        .into_iter()
        .map(|a| {
            assert!(a.started);
            (a.instance_id, a.port.unwrap())
        })
        .collect();
    v.sort();
    v
}

fn started(r: StartAdb) -> Vec<(String, u16)> {
    match r {
        StartAdb::Started { ports, .. } => ports,
        StartAdb::NoFreePort => panic!("no free port"),
    }
}

pub(crate) async fn check_adb_ports(store: &dyn Store) {
    let range = AdbPorts {
        low: 20_000,
        high: 20_003,
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
            ("i5", S::Running),
        ],
    )
    .await;
    fleet(store, B, "ag-b", &[("ib", S::Running)]).await;
    store
        .create_key_pair(&key("kp-1", A, "one", 1), MAX)
        .await
        .unwrap();

    // Ports in the order asked, round-robin from the start of the range; B's instance is
    // passed over.
    let r = store
        .start_adb(A, &ids(&["i2", "i1", "ib"]), range, 100)
        .await
        .unwrap();
    assert_eq!(
        r,
        StartAdb::Started {
            ports: vec![("i2".into(), 20_000), ("i1".into(), 20_001)],
            opened: ids(&["i2", "i1"]),
        }
    );
    assert!(open_ports(store, B).await.is_empty());
    // Starting again keeps the ports and opens nothing.
    let again = store
        .start_adb(A, &ids(&["i1", "i2"]), range, 200)
        .await
        .unwrap();
    assert_eq!(
        again,
        StartAdb::Started {
            ports: vec![("i1".into(), 20_001), ("i2".into(), 20_000)],
            opened: vec![],
        }
    );
    let listed = store
        .list_adb(
            &AdbFilter {
                account_id: A.into(),
                instance_ids: ids(&["i1"]),
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(listed.total, 1);
    assert_eq!(
        listed.items[0].started_ms,
        Some(100),
        "opened at the first start"
    );

    // The gateway's view of a port.
    store
        .attach_key_pair(A, "kp-1", &ids(&["i1"]), 300)
        .await
        .unwrap();
    let e = store.adb_endpoint(20_001).await.unwrap().unwrap();
    assert_eq!(
        (e.instance_id.as_str(), e.account_id.as_str(), e.status),
        ("i1", A, S::Running)
    );
    assert!(e.started && e.secure);
    assert_eq!(e.key_pair_id.as_deref(), Some("kp-1"));
    assert_eq!(e.public_keys, ["QUFBkp-1 user@host"]);
    assert_eq!(e.image_id, "imgc-android14");
    let e2 = store.adb_endpoint(20_000).await.unwrap().unwrap();
    assert!(!e2.secure && e2.public_keys.is_empty());
    assert!(store.adb_endpoint(20_002).await.unwrap().is_none());
    // Several at once, in port order; a port nobody has is left out.
    let both = store
        .adb_endpoints(&[20_002, 20_001, 20_000])
        .await
        .unwrap();
    assert_eq!(both, [e2.clone(), e.clone()]);
    assert!(store.adb_endpoints(&[]).await.unwrap().is_empty());

    // Stop keeps the port; the listing shows open endpoints only; the gateway sees it closed.
    assert_eq!(
        store
            .stop_adb(A, &ids(&["i1", "i3", "ib"]), 400)
            .await
            .unwrap(),
        ids(&["i1"])
    );
    assert_eq!(open_ports(store, A).await, [("i2".into(), 20_000)]);
    assert!(!store.adb_endpoint(20_001).await.unwrap().unwrap().started);

    // Three more phones, two free ports: none of them starts, and nothing changes.
    let full = store
        .start_adb(A, &ids(&["i3", "i4", "i5"]), range, 500)
        .await
        .unwrap();
    assert_eq!(full, StartAdb::NoFreePort);
    assert_eq!(open_ports(store, A).await, [("i2".into(), 20_000)]);
    assert!(
        store
            .instances_adb(A, &ids(&["i3", "i4"]))
            .await
            .unwrap()
            .is_empty()
    );
    // i1 opens again on its own port; i3 takes the next after the last given (20_001), 20_002.
    let r = started(
        store
            .start_adb(A, &ids(&["i1", "i3"]), range, 600)
            .await
            .unwrap(),
    );
    assert_eq!(r, [("i1".into(), 20_001), ("i3".into(), 20_002)]);
    let l = store
        .list_adb(
            &AdbFilter {
                account_id: A.into(),
                instance_ids: ids(&["i1"]),
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(l.items[0].started_ms, Some(600), "opened again now");

    // A DELETED phone's port is free again, but handed out last (round-robin).
    let i2 = store.instance("i2").await.unwrap().unwrap();
    assert!(
        store
            .mark_instance("i2", S::Running, S::Deleted, i2.modified_ms, 700)
            .await
            .unwrap()
    );
    let r = started(
        store
            .start_adb(A, &ids(&["i4", "i5"]), range, 800)
            .await
            .unwrap(),
    );
    assert_eq!(r, [("i4".into(), 20_003), ("i5".into(), 20_000)]);
    assert!(open_ports(store, A).await.iter().all(|(i, _)| i != "i2"));
    let e = store.adb_endpoint(20_000).await.unwrap().unwrap();
    assert_eq!(e.instance_id, "i5");

    // A smaller range: a phone whose port is outside it gets one inside.
    let narrow = AdbPorts {
        low: 20_000,
        high: 20_001,
    };
    store.stop_adb(A, &ids(&["i1"]), 900).await.unwrap();
    let r = store
        .start_adb(A, &ids(&["i4"]), narrow, 1_000)
        .await
        .unwrap();
    assert_eq!(r, StartAdb::NoFreePort, "both taken (i5 open, i1 stopped)");
    let wide = AdbPorts {
        low: 20_000,
        high: 20_010,
    };
    let r = started(
        store
            .start_adb(A, &ids(&["i4"]), wide, 1_100)
            .await
            .unwrap(),
    );
    assert_eq!(r, [("i4".into(), 20_003)], "inside the wide range: kept");

    // Every port given is unique.
    let ports: Vec<u16> = open_ports(store, A)
        .await
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(ports.iter().collect::<HashSet<_>>().len(), ports.len());
}

/// Many concurrent StartInstanceAdb calls (several connections on PostgreSQL, as several nodes
/// would make them) never give one port twice.
pub(crate) async fn check_concurrent_ports(store: Arc<dyn Store>, other: Arc<dyn Store>) {
    let phones: Vec<(String, S)> = (0..40).map(|n| (format!("c{n:02}"), S::Running)).collect();
    let refs: Vec<(&str, S)> = phones.iter().map(|(i, s)| (i.as_str(), *s)).collect();
    fleet(&*store, A, "ag-c", &refs).await;
    let range = AdbPorts {
        low: 30_000,
        high: 30_039,
    };
    let mut calls = Vec::new();
    for (n, (id, _)) in phones.iter().enumerate() {
        let s = if n % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        let id = id.clone();
        calls.push(tokio::spawn(async move {
            started(s.start_adb(A, &[id], range, 1).await.unwrap())
        }));
    }
    let mut ports = HashSet::new();
    for call in calls {
        for (_, port) in call.await.unwrap() {
            assert!(range.contains(port));
            assert!(ports.insert(port), "port {port} given twice");
        }
    }
    assert_eq!(ports.len(), 40);
    assert_eq!(open_ports(&*store, A).await.len(), 40);
    // One more phone: the range is full.
    fleet(&*store, A, "ag-d", &[("c99", S::Running)]).await;
    assert_eq!(
        store.start_adb(A, &ids(&["c99"]), range, 2).await.unwrap(),
        StartAdb::NoFreePort
    );
}
