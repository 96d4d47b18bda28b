//! Hosts of the farm: placement inside creations (spread, bin-pack, never onto a host that may
//! not take phones, nothing created when they do not fit, ports unique), leases and their
//! epochs, health with the bulk UNAVAILABLE, groups grown and shrunk, drains and moves fenced
//! on the task's attempt.

use std::sync::Arc;

use cloudphone_core::placement::{Limits, Strategy};
use cloudphone_core::resources::Instance;
use cloudphone_core::task_params::MigrateMode;
use cloudphone_core::{InstanceStatus as S, Level, TaskType};
use cloudphone_store::prelude::*;
use cloudphone_store::{
    Health, HostConfig, HostHealth, HostKind, HostRow, NewDrain, NodeInfo, PlacementAsk, StoreError,
};

use crate::support::{A, B, LEASE, group, instance, new_task};

const NOW: i64 = 1_000_000;
const IMAGE: &str = "imgc-android14";

fn node(id: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        started_ms: NOW,
        version: "test".into(),
    }
}

fn docker(name: &str, max_phones: u64, ports: Option<(u16, u16)>) -> HostConfig {
    HostConfig {
        name: name.into(),
        kind: HostKind::Docker,
        address: format!("unix:///run/{name}.sock"),
        limits: Limits {
            phones: Some(max_phones),
            ..Limits::default()
        },
        images: vec![],
        ports,
        digest: format!("d-{name}"),
        adopt_images: vec![],
    }
}

fn healthy() -> HostHealth {
    HostHealth {
        health: Health::Healthy,
        reason: String::new(),
        engine_version: Some("20.10.24".into()),
        api_version: Some("1.41".into()),
    }
}

/// Syncs `hosts` for node `n1` and makes each healthy through a lease of its own.
async fn farm(store: &dyn Store, hosts: &[HostConfig]) {
    store.sync_hosts(&node("n1"), hosts, NOW).await.unwrap();
    for h in hosts {
        let epoch = store
            .take_host_lease("n1", &h.name, NOW, 5_000)
            .await
            .unwrap()
            .expect("a free lease");
        let written = store
            .set_host_health(&h.name, epoch, &healthy(), NOW)
            .await
            .unwrap();
        assert_eq!(written, Some(0));
    }
}

fn ask(strategy: Strategy) -> Option<PlacementAsk> {
    Some(PlacementAsk {
        kind: HostKind::Docker,
        strategy,
        now_ms: NOW,
    })
}

fn phones(gid: &str, account: &str, prefix: &str, n: usize) -> Vec<Instance> {
    (0..n)
        .map(|k| {
            let id = format!("acp-{prefix}-{k:03}");
            instance(&id, account, gid, &id, S::Creating, k as i64)
        })
        .collect()
}

/// Creates group `gid` of `account` with `n` placed phones.
async fn create(
    store: &dyn Store,
    account: &str,
    gid: &str,
    n: usize,
    strategy: Strategy,
) -> Result<(), StoreError> {
    store
        .create_groups(
            &[group(gid, account, gid, 0)],
            &phones(gid, account, gid, n),
            &[],
            None,
            ask(strategy),
        )
        .await
}

async fn hosts(store: &dyn Store) -> Vec<HostRow> {
    store.list_hosts().await.unwrap()
}

async fn counts(store: &dyn Store) -> Vec<(String, u64)> {
    hosts(store)
        .await
        .into_iter()
        .map(|h| (h.name, h.used.phones))
        .collect()
}

fn named(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

pub(crate) async fn check_spread_and_bin_pack(store: &dyn Store) {
    farm(
        store,
        &[
            docker("h1", 20, None),
            docker("h2", 20, None),
            docker("h3", 20, None),
        ],
    )
    .await;
    create(store, A, "ag-s", 30, Strategy::Spread)
        .await
        .unwrap();
    assert_eq!(
        counts(store).await,
        named(&[("h1", 10), ("h2", 10), ("h3", 10)])
    );
    create(store, A, "ag-b", 15, Strategy::BinPack)
        .await
        .unwrap();
    assert_eq!(
        counts(store).await,
        named(&[("h1", 20), ("h2", 15), ("h3", 10)])
    );
    let on_h1 = store.host_phones("h1").await.unwrap();
    assert_eq!(on_h1.len(), 20);
    assert!(on_h1.iter().all(|p| p.host == "h1" && p.port.is_none()));
    let row = &hosts(store).await[0];
    assert_eq!(
        (row.used.cpu_milli, row.used.memory_mib),
        (20 * 2_000, 20 * 4_096)
    );
    assert_eq!(
        (row.engine_version.as_str(), row.api_version.as_str()),
        ("20.10.24", "1.41")
    );
    // The claim's phone carries its host.
    let t = new_task(
        "t-c",
        A,
        "inv-c",
        Level::Internal,
        TaskType::CreateInstance,
        1,
    );
    let t = cloudphone_store::NewTask {
        instance_id: Some("acp-ag-s-000".into()),
        resource_id: "acp-ag-s-000".into(),
        ..t
    };
    store
        .upgrade_group(A, "ag-s", &[], &[t], None, None)
        .await
        .unwrap();
    let claims = store.claim("w", NOW, LEASE, 10).await.unwrap();
    let phone = claims[0].phone.clone().unwrap();
    assert_eq!((phone.host.as_deref(), phone.adb_port), (Some("h1"), None));
}

pub(crate) async fn check_unschedulable_hosts_take_nothing(store: &dyn Store) {
    let mut wrong_image = docker("h5", 10, None);
    wrong_image.images = vec!["imgc-other".into()];
    farm(
        store,
        &[
            docker("h1", 10, None),
            docker("h2", 10, None),
            docker("h3", 10, None),
            docker("h4", 10, Some((20_000, 20_000))),
            wrong_image,
            docker("h6", 10, None),
            docker("ok", 10, None),
        ],
    )
    .await;
    assert!(store.set_cordon("h1", true).await.unwrap());
    assert!(!store.set_cordon("nope", true).await.unwrap());
    // h2 unhealthy; h3's health too old to trust; h4's one port held; h6 left every file.
    let epoch = store.take_host_lease("n2", "h2", NOW, 5_000).await.unwrap();
    assert_eq!(epoch, None, "n1 holds it");
    let epoch = store.renew_host_leases("n1", NOW, 5_000).await.unwrap();
    let of = |name: &str| epoch.iter().find(|(n, _)| n == name).unwrap().1;
    let bad = HostHealth {
        health: Health::Unhealthy,
        reason: "ping failed".into(),
        engine_version: None,
        api_version: None,
    };
    store
        .set_host_health("h2", of("h2"), &bad, NOW)
        .await
        .unwrap();
    store
        .set_host_health("h3", of("h3"), &healthy(), NOW - 20_000)
        .await
        .unwrap();
    create(store, B, "ag-port", 1, Strategy::BinPack)
        .await
        .unwrap();
    store
        .sync_hosts(&node("n1"), &[docker("h6", 10, None)], NOW - 40_000)
        .await
        .unwrap();
    create(store, A, "ag-x", 4, Strategy::Spread).await.unwrap();
    let used = counts(store).await;
    assert_eq!(
        used,
        named(&[
            ("h1", 0),
            ("h2", 0),
            ("h3", 0),
            ("h4", 1),
            ("h5", 0),
            ("h6", 0),
            ("ok", 4)
        ])
    );
    let h2 = hosts(store)
        .await
        .into_iter()
        .find(|h| h.name == "h2")
        .unwrap();
    assert_eq!(
        (h2.health, h2.health_reason.as_str()),
        (Health::Unhealthy, "ping failed")
    );
    assert_eq!(h2.engine_version, "20.10.24", "kept when not reported");
}

pub(crate) async fn check_no_stock_creates_nothing(store: &dyn Store) {
    farm(
        store,
        &[
            docker("h1", 5, Some((30_000, 30_009))),
            docker("h2", 3, None),
        ],
    )
    .await;
    create(store, A, "ag-1", 6, Strategy::Spread).await.unwrap();
    match create(store, A, "ag-2", 3, Strategy::Spread).await {
        Err(StoreError::NoStock { fits }) => assert_eq!(fits, 2),
        other => panic!("{other:?}"),
    }
    assert!(
        store
            .instances_by_id(A, &["acp-ag-2-000".into()])
            .await
            .unwrap()
            .is_empty()
    );
    let listed = store
        .list_groups(
            &cloudphone_store::GroupFilter {
                account_id: A.into(),
                ..Default::default()
            },
            &cloudphone_store::Page {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.total, 1, "the group is not created either");
    // Ports are unique and the lowest free ones; a deleted phone gives its port back.
    let mut ports: Vec<u16> = store
        .host_phones("h1")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.port.unwrap())
        .collect();
    ports.sort();
    assert_eq!(ports.len(), counts(store).await[0].1 as usize);
    ports.dedup();
    assert_eq!(
        ports,
        (30_000..30_000 + ports.len() as u16).collect::<Vec<_>>()
    );
    let first = store.host_phones("h1").await.unwrap()[0].clone();
    assert!(
        store
            .mark_instance(&first.id, S::Creating, S::Deleted, first.modified_ms, NOW)
            .await
            .unwrap()
    );
    create(store, A, "ag-3", 1, Strategy::Spread).await.unwrap();
    let again = store.host_phones("h1").await.unwrap();
    let newest = again.iter().find(|p| p.id == "acp-ag-3-000").unwrap();
    assert_eq!(
        newest.port, first.port,
        "the freed port is handed out again"
    );
    // A phone's reads say where it lives, for the backends that reach it outside a task.
    let read = store.instance(&newest.id).await.unwrap().unwrap();
    assert_eq!(
        (read.host.as_deref(), read.adb_port),
        (Some("h1"), newest.port)
    );
    // Without an ask nothing is placed (callers that do not place yet).
    store
        .create_groups(
            &[group("ag-free", A, "free", 0)],
            &phones("ag-free", A, "free", 20),
            &[],
            None,
            None,
        )
        .await
        .unwrap();
    let claims = hosts(store).await;
    assert_eq!(claims.iter().map(|h| h.used.phones).sum::<u64>(), 6);
}

/// Two creations at once, from two stores on one database when there are two (two nodes):
/// 2 × 20 phones into room for 30 never overfill; exactly one fails NoStock.
pub(crate) async fn check_concurrent_placements(one: Arc<dyn Store>, two: Arc<dyn Store>) {
    farm(
        &*one,
        &[
            docker("h1", 15, Some((40_000, 40_014))),
            docker("h2", 15, None),
        ],
    )
    .await;
    let a = tokio::spawn({
        let s = one.clone();
        async move { create(&*s, A, "ag-a", 20, Strategy::Spread).await }
    });
    let b = tokio::spawn({
        let s = two.clone();
        async move { create(&*s, B, "ag-b", 20, Strategy::Spread).await }
    });
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let failed = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(StoreError::NoStock { fits: 10 })))
        .count();
    assert_eq!(failed, 1, "{a:?} {b:?}");
    assert_eq!(counts(&*one).await, named(&[("h1", 10), ("h2", 10)]));
    let ports: std::collections::HashSet<_> = one
        .host_phones("h1")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.port.unwrap())
        .collect();
    assert_eq!(ports.len(), 10);
}

pub(crate) async fn check_leases_and_epochs(store: &dyn Store) {
    let mut sim = docker("sim", 0, None);
    sim.kind = HostKind::Sim;
    sim.limits = Limits::default();
    store
        .sync_hosts(&node("n1"), &[docker("h1", 10, None), sim], NOW)
        .await
        .unwrap();
    assert_eq!(
        store
            .take_host_lease("n1", "sim", NOW, 5_000)
            .await
            .unwrap(),
        None,
        "never leased"
    );
    let e1 = store
        .take_host_lease("n1", "h1", NOW, 5_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .take_host_lease("n2", "h1", NOW + 4_000, 5_000)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .renew_host_leases("n1", NOW + 4_000, 5_000)
            .await
            .unwrap(),
        vec![("h1".to_string(), e1)]
    );
    // n1 stops renewing: n2 takes it over once it expired, with a new epoch.
    assert_eq!(
        store
            .take_host_lease("n2", "h1", NOW + 8_000, 5_000)
            .await
            .unwrap(),
        None
    );
    let e2 = store
        .take_host_lease("n2", "h1", NOW + 9_001, 5_000)
        .await
        .unwrap()
        .unwrap();
    assert!(e2 > e1);
    assert!(
        store
            .renew_host_leases("n1", NOW + 9_002, 5_000)
            .await
            .unwrap()
            .is_empty()
    );
    // The lost owner's health writes are refused; the new owner's are not.
    assert_eq!(
        store
            .set_host_health("h1", e1, &healthy(), NOW + 9_003)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .set_host_health("h1", e2, &healthy(), NOW + 9_003)
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(store.release_host_leases("n2").await.unwrap(), 1);
    let h1 = hosts(store)
        .await
        .into_iter()
        .find(|h| h.name == "h1")
        .unwrap();
    assert_eq!((h1.owner_node, h1.health_ms), (None, NOW + 9_003));
    // Released, it is free at once; the epoch still grows.
    let e3 = store
        .take_host_lease("n1", "h1", NOW + 9_004, 5_000)
        .await
        .unwrap()
        .unwrap();
    assert!(e3 > e2);
    // One host handed over (a node above its share): only by its holder, at its epoch.
    assert!(!store.release_host_lease("n2", "h1", e3).await.unwrap());
    assert!(!store.release_host_lease("n1", "h1", e2).await.unwrap());
    assert!(store.release_host_lease("n1", "h1", e3).await.unwrap());
    assert!(!store.release_host_lease("n1", "h1", e3).await.unwrap());
    let e3 = store
        .take_host_lease("n1", "h1", NOW + 9_004, 5_000)
        .await
        .unwrap()
        .unwrap();
    // Renewing confirms a healthy host's health, never an unhealthy one's.
    store
        .renew_host_leases("n1", NOW + 9_500, 5_000)
        .await
        .unwrap();
    let health_ms = |hs: Vec<cloudphone_store::HostRow>| {
        hs.into_iter().find(|h| h.name == "h1").unwrap().health_ms
    };
    assert_eq!(health_ms(hosts(store).await), NOW + 9_500);
    let down = cloudphone_store::HostHealth {
        health: cloudphone_store::Health::Unhealthy,
        reason: "gone".into(),
        engine_version: None,
        api_version: None,
    };
    store
        .set_host_health("h1", e3, &down, NOW + 9_600)
        .await
        .unwrap();
    store
        .renew_host_leases("n1", NOW + 9_700, 5_000)
        .await
        .unwrap();
    assert_eq!(health_ms(hosts(store).await), NOW + 9_600);
    // Nodes: alive while their heartbeat is younger than the TTL.
    store
        .sync_hosts(&node("n2"), &[docker("h1", 10, None)], NOW)
        .await
        .unwrap();
    assert!(store.node_heartbeat("n2", NOW + 6_000).await.unwrap());
    assert!(!store.node_heartbeat("n9", NOW).await.unwrap());
    let live = store.live_nodes(NOW + 7_000, 5_000).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, "n2");
    assert_eq!(live[0].hosts, vec![("h1".to_string(), "d-h1".to_string())]);
}

pub(crate) async fn check_unhealthy_host_marks_running_phones(store: &dyn Store) {
    farm(store, &[docker("h1", 10, None), docker("h2", 10, None)]).await;
    create(store, A, "ag", 6, Strategy::Spread).await.unwrap();
    let on_h1 = store.host_phones("h1").await.unwrap();
    // One RUNNING, one STOPPED, one CREATING on h1.
    let run = &on_h1[0];
    assert!(
        store
            .mark_instance(&run.id, S::Creating, S::Running, run.modified_ms, 5)
            .await
            .unwrap()
    );
    let stop = &on_h1[1];
    assert!(
        store
            .mark_instance(&stop.id, S::Creating, S::Stopped, stop.modified_ms, 5)
            .await
            .unwrap()
    );
    let on_h2 = store.host_phones("h2").await.unwrap();
    let other = &on_h2[0];
    assert!(
        store
            .mark_instance(&other.id, S::Creating, S::Running, other.modified_ms, 5)
            .await
            .unwrap()
    );
    let epoch = store.renew_host_leases("n1", NOW, 5_000).await.unwrap()[0].1;
    let gone = HostHealth {
        health: Health::Missing,
        reason: "no node has it".into(),
        engine_version: None,
        api_version: None,
    };
    assert_eq!(
        store
            .set_host_health("h1", epoch, &gone, NOW + 1)
            .await
            .unwrap(),
        Some(1)
    );
    let after = store.host_phones("h1").await.unwrap();
    let status = |id: &str| after.iter().find(|p| p.id == id).unwrap().status;
    assert_eq!(status(&run.id), S::Unavailable);
    assert_eq!(status(&stop.id), S::Stopped);
    assert_eq!(status(&on_h1[2].id), S::Creating);
    assert_eq!(store.host_phones("h2").await.unwrap()[0].status, S::Running);
}

pub(crate) async fn check_hosts_in_no_file_go_missing(store: &dyn Store) {
    farm(store, &[docker("h1", 10, None), docker("h2", 10, None)]).await;
    create(store, A, "ag", 4, Strategy::Spread).await.unwrap();
    for p in store.host_phones("h1").await.unwrap() {
        assert!(
            store
                .mark_instance(&p.id, S::Creating, S::Running, p.modified_ms, NOW)
                .await
                .unwrap()
        );
    }
    // A node still has h2 in its file; none has h1 any more.
    store
        .sync_hosts(&node("n2"), &[docker("h2", 10, None)], NOW + 20_000)
        .await
        .unwrap();
    assert!(
        store
            .mark_missing_hosts(NOW + 29_000, 30_000)
            .await
            .unwrap()
            .is_empty(),
        "seen within the window"
    );
    assert_eq!(
        store
            .mark_missing_hosts(NOW + 35_000, 30_000)
            .await
            .unwrap(),
        vec![("h1".to_string(), 2)]
    );
    assert!(
        store
            .mark_missing_hosts(NOW + 36_000, 30_000)
            .await
            .unwrap()
            .is_empty(),
        "once"
    );
    let hosts = hosts(store).await;
    let health = |n: &str| hosts.iter().find(|h| h.name == n).unwrap().health;
    assert_eq!(
        (health("h1"), health("h2")),
        (Health::Missing, Health::Healthy)
    );
    assert!(
        store
            .host_phones("h1")
            .await
            .unwrap()
            .iter()
            .all(|p| p.status == S::Unavailable)
    );
    // Back in a file, it is seen again; its watcher makes it healthy.
    store
        .sync_hosts(&node("n2"), &[docker("h1", 10, None)], NOW + 40_000)
        .await
        .unwrap();
    assert!(
        store
            .mark_missing_hosts(NOW + 41_000, 30_000)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn check_upgrade_and_downgrade(store: &dyn Store) {
    farm(store, &[docker("h1", 4, None)]).await;
    create(store, A, "ag", 2, Strategy::Spread).await.unwrap();
    let more = phones("ag", A, "more", 2);
    store
        .upgrade_group(A, "ag", &more, &[], Some(10), ask(Strategy::Spread))
        .await
        .unwrap();
    assert_eq!(counts(store).await, named(&[("h1", 4)]));
    match store
        .upgrade_group(
            A,
            "ag",
            &phones("ag", A, "x", 1),
            &[],
            None,
            ask(Strategy::Spread),
        )
        .await
    {
        Err(StoreError::NoStock { fits: 0 }) => {}
        other => panic!("{other:?}"),
    }
    match store
        .upgrade_group(A, "ag", &phones("ag", A, "q", 1), &[], Some(4), None)
        .await
    {
        Err(StoreError::QuotaExceeded { used: 4 }) => {}
        other => panic!("{other:?}"),
    }
    match store
        .upgrade_group(B, "ag", &phones("ag", B, "y", 1), &[], None, None)
        .await
    {
        Err(StoreError::NotFound { what: "group", .. }) => {}
        other => panic!("{other:?}"),
    }
    // Downgrade: every id must be in the group; then the deletions are queued.
    let del = |id: &str| cloudphone_store::NewTask {
        instance_id: Some(id.into()),
        resource_id: id.into(),
        ..new_task(
            &format!("t-{id}"),
            A,
            "inv-d",
            Level::Internal,
            TaskType::DeleteInstance,
            1,
        )
    };
    match store
        .downgrade_group(
            A,
            "ag",
            &["acp-more-000".into(), "acp-elsewhere".into()],
            &[del("acp-more-000")],
        )
        .await
    {
        Err(StoreError::NotFound {
            what: "instance",
            id,
        }) => assert_eq!(id, "acp-elsewhere"),
        other => panic!("{other:?}"),
    }
    assert!(
        store.claim("w", NOW, LEASE, 10).await.unwrap().is_empty(),
        "nothing queued"
    );
    let ids = vec!["acp-more-000".to_string(), "acp-more-000".to_string()];
    store
        .downgrade_group(A, "ag", &ids, &[del("acp-more-000")])
        .await
        .unwrap();
    let claims = store.claim("w", NOW, LEASE, 10).await.unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].task_type, TaskType::DeleteInstance);
    // A group being deleted takes no new phones.
    store.delete_groups(A, &["ag".into()], &[]).await.unwrap();
    match store
        .upgrade_group(A, "ag", &phones("ag", A, "z", 1), &[], None, None)
        .await
    {
        Err(StoreError::IncorrectStatus { what: "group", .. }) => {}
        other => panic!("{other:?}"),
    }
}

pub(crate) async fn check_drains_and_moves(store: &dyn Store) {
    farm(
        store,
        &[
            docker("h1", 10, Some((20_000, 20_009))),
            docker("h2", 10, Some((21_000, 21_009))),
            docker("h3", 10, Some((22_000, 22_009))),
        ],
    )
    .await;
    create(store, A, "ag", 6, Strategy::Spread).await.unwrap();
    assert_eq!(
        counts(store).await,
        named(&[("h1", 2), ("h2", 2), ("h3", 2)])
    );
    store.set_cordon("h3", true).await.unwrap();
    let drain = |id: &str, host: &str, partial: bool| NewDrain {
        id: id.into(),
        host: host.into(),
        mode: MigrateMode::Copy,
        partial,
        strategy: Strategy::Spread,
        operator: "admin".into(),
        now_ms: NOW,
    };
    // With h2 cordoned too, h1's phones fit nowhere: all or nothing refuses.
    store.set_cordon("h2", true).await.unwrap();
    match store.start_drain(&drain("dr-0", "h1", false)).await {
        Err(StoreError::NoStock { fits: 0 }) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        !hosts(store).await[0].cordoned,
        "a refused drain changes nothing"
    );
    store.set_cordon("h2", false).await.unwrap();
    let plan = store
        .start_drain(&drain("dr-1", "h1", false))
        .await
        .unwrap();
    assert_eq!((plan.moves.len(), plan.left), (2, 0));
    assert!(plan.moves.iter().all(|m| m.to == "h2" && m.port.is_some()));
    let rows = hosts(store).await;
    assert!(rows[0].cordoned && rows[0].drain_id.as_deref() == Some("dr-1"));
    assert_eq!((rows[0].moving_out, rows[1].moving_in), (2, 2));
    assert_eq!(rows[1].used.phones, 4, "room held on the target meanwhile");
    assert_eq!(rows[0].used.phones, 2, "and on the source");
    let progress = store.drain_progress("dr-1").await.unwrap().unwrap();
    assert_eq!((progress.phones, progress.waiting), (2, 2));
    assert_eq!(store.drain_progress("dr-x").await.unwrap(), None);

    // The phones' tasks (MigrateInstance needs a movable status).
    for m in &plan.moves {
        let seen = store.instance(&m.instance_id).await.unwrap().unwrap();
        store
            .mark_instance(&m.instance_id, S::Creating, S::Running, seen.modified_ms, 5)
            .await
            .unwrap();
    }
    let claims = store.claim("w", NOW, LEASE, 10).await.unwrap();
    assert_eq!(claims.len(), 2);
    assert!(
        claims
            .iter()
            .all(|c| c.task_type == TaskType::MigrateInstance)
    );
    let phone = claims[0].phone.clone().unwrap();
    assert_eq!(phone.host.as_deref(), Some("h1"));
    assert!(phone.adb_port.is_some() && phone.moving_port.is_some());
    assert_eq!(phone.moving_to.as_deref(), Some("h2"));

    let (c0, c1) = (&claims[0], &claims[1]);
    // Fenced: another attempt, or another task, moves nothing.
    assert!(
        !store
            .commit_move(&c0.instance_id, &c0.task_id, c0.attempt + 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .commit_move(&c0.instance_id, &c1.task_id, c1.attempt)
            .await
            .unwrap()
    );
    assert!(
        store
            .commit_move(&c0.instance_id, &c0.task_id, c0.attempt)
            .await
            .unwrap()
    );
    assert!(
        !store
            .commit_move(&c0.instance_id, &c0.task_id, c0.attempt)
            .await
            .unwrap(),
        "once"
    );
    assert!(
        store
            .abandon_move(&c1.instance_id, &c1.task_id, c1.attempt)
            .await
            .unwrap()
    );
    let on_h2 = store.host_phones("h2").await.unwrap();
    let moved = on_h2.iter().find(|p| p.id == c0.instance_id).unwrap();
    assert_eq!(
        (moved.host.as_str(), moved.moving_to.as_deref()),
        ("h2", None)
    );
    assert_eq!(moved.port, phone.moving_port);
    let back = store.host_phones("h1").await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(
        (back[0].id.as_str(), back[0].moving_to.as_deref()),
        (c1.instance_id.as_str(), None)
    );
    assert!(back[0].port.is_some(), "it keeps its port on its host");
    assert_eq!(
        counts(store).await,
        named(&[("h1", 1), ("h2", 3), ("h3", 2)])
    );

    // Relocation: fenced the same way; the phone leaves h1 for the least used other host.
    assert_eq!(
        store
            .relocate(&c1.instance_id, &c1.task_id, c1.attempt + 1, IMAGE, NOW)
            .await
            .unwrap(),
        None
    );
    let (to, port) = store
        .relocate(&c1.instance_id, &c1.task_id, c1.attempt, IMAGE, NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(to, "h2");
    assert!(port.is_some_and(|p| (21_000..=21_009).contains(&p)));
    assert!(store.host_phones("h1").await.unwrap().is_empty());

    // The drain ends once its moves did: its host, still cordoned, may be placed on again
    // when uncordoned.
    assert!(!store.end_drain("dr-1", NOW).await.unwrap(), "moves run");
    for c in [c0, c1] {
        let done = cloudphone_store::Completion {
            task_id: c.task_id.clone(),
            attempt: c.attempt,
            outcome: cloudphone_store::Outcome::Finished {
                result: "{}".into(),
            },
            now_ms: NOW,
        };
        store.complete_many(&[done]).await.unwrap();
    }
    assert!(store.end_drain("dr-1", NOW).await.unwrap());
    let rows = hosts(store).await;
    assert!(rows[0].cordoned && rows[0].drain_id.is_none());
    assert!(
        !store.end_drain("dr-x", NOW).await.unwrap(),
        "no such drain"
    );
}
