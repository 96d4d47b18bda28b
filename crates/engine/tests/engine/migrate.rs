//! MigrateInstance and the gone host's Reset and Delete, over a real SQLite store with two
//! docker hosts and a backend that records what it is asked: a drain moves phones (readied on
//! the target, committed, started there, the source removed), a failed move is undone, a copy
//! from a host that does not answer is refused without touching anything, a Reset of a phone
//! on a gone host lands on the other host, and a Delete there needs no backend.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cloudphone_core::placement::{Limits, Strategy};
use cloudphone_core::resources::{AccessKey, Image};
use cloudphone_core::task_params::MigrateMode;
use cloudphone_core::time::now_ms;
use cloudphone_core::{InstanceStatus, Level, TaskErrorCode, TaskType, ids};
use cloudphone_engine::{
    Backend, BackendError, Engine, EngineConfig, InstanceRef, OpResult, Services,
};
use cloudphone_store::prelude::*;
use cloudphone_store::{
    Health, HostConfig, HostHealth, HostKind, NewBatch, NewDrain, NewTask, NodeInfo, PlacementAsk,
    SqliteStore,
};
use tokio_util::sync::CancellationToken;

/// Records each call as `op host` (`migrate h1>h2 copy`); `migrate` fails when asked to.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    fail_migrate: bool,
}

impl Recorder {
    fn note(&self, op: &str, phone: &InstanceRef) -> OpResult<()> {
        let host = phone.host.clone().unwrap_or_default();
        self.calls.lock().unwrap().push(format!("{op} {host}"));
        Ok(())
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Backend for Recorder {
    fn images(&self) -> Vec<Image> {
        Vec::new()
    }
    async fn create(&self, p: &InstanceRef) -> OpResult<()> {
        self.note("create", p)
    }
    async fn delete(&self, p: &InstanceRef) -> OpResult<()> {
        self.note("delete", p)
    }
    async fn start(&self, p: &InstanceRef) -> OpResult<()> {
        self.note("start", p)
    }
    async fn stop(&self, p: &InstanceRef, _: bool) -> OpResult<()> {
        self.note("stop", p)
    }
    async fn reboot(&self, p: &InstanceRef, _: bool) -> OpResult<()> {
        self.note("reboot", p)
    }
    async fn reset(&self, p: &InstanceRef, _: &str) -> OpResult<()> {
        self.note("reset", p)
    }
    async fn migrate(&self, p: &InstanceRef, to: &InstanceRef, mode: MigrateMode) -> OpResult<()> {
        assert!(to.adb_port.is_some(), "the target's port travels with it");
        let what = format!(
            "migrate {}>{} {mode:?}",
            p.host.clone().unwrap_or_default(),
            to.host.clone().unwrap_or_default()
        );
        self.calls.lock().unwrap().push(what);
        if self.fail_migrate {
            return Err(BackendError::new(
                TaskErrorCode::OperationFailed,
                "copy broke",
            ));
        }
        Ok(())
    }
}

fn docker(name: &str, low: u16) -> HostConfig {
    HostConfig {
        name: name.into(),
        kind: HostKind::Docker,
        address: format!("unix:///run/{name}.sock"),
        limits: Limits {
            phones: Some(10),
            ..Limits::default()
        },
        images: vec![],
        ports: Some((low, low + 9)),
        digest: name.into(),
        adopt_images: vec![],
    }
}

fn health(h: Health) -> HostHealth {
    HostHealth {
        health: h,
        reason: String::new(),
        engine_version: None,
        api_version: None,
    }
}

/// A store with hosts h1 and h2, both healthy (their epochs returned), and `n` RUNNING phones
/// of account `a`, all on h1.
async fn farm(dir: &tempfile::TempDir, n: usize) -> (Arc<dyn Store>, Vec<String>, Vec<i64>) {
    let store = SqliteStore::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    store.ensure_account("a", "a").await.unwrap();
    store
        .put_access_key(&AccessKey {
            key_id: "k".into(),
            secret: "s".into(),
            account_id: "a".into(),
            user_name: "u".into(),
        })
        .await
        .unwrap();
    let now = now_ms();
    let node = NodeInfo {
        id: "n1".into(),
        started_ms: now,
        version: "t".into(),
    };
    store
        .sync_hosts(&node, &[docker("h1", 20_000), docker("h2", 21_000)], now)
        .await
        .unwrap();
    let mut epochs = Vec::new();
    for h in ["h1", "h2"] {
        let epoch = store
            .take_host_lease("n1", h, now, 60_000)
            .await
            .unwrap()
            .unwrap();
        store
            .set_host_health(h, epoch, &health(Health::Healthy), now)
            .await
            .unwrap();
        epochs.push(epoch);
    }
    store.set_cordon("h2", true).await.unwrap();
    let (group, instances) = super::running_group(n, now);
    let ask = PlacementAsk {
        kind: HostKind::Docker,
        strategy: Strategy::Spread,
        now_ms: now,
    };
    store
        .create_groups(&[group], &instances, &[], None, Some(ask))
        .await
        .unwrap();
    store.set_cordon("h2", false).await.unwrap();
    let ids = instances.into_iter().map(|i| i.id).collect();
    (Arc::new(store), ids, epochs)
}

async fn services(store: &Arc<dyn Store>, dir: &tempfile::TempDir) -> Services {
    let objects = cloudphone_objects::Objects::local(
        dir.path().join("objects"),
        &**store,
        b"link-key",
        "http://127.0.0.1:1".into(),
    )
    .await
    .unwrap();
    let scratch = dir.path().join("tmp");
    std::fs::create_dir_all(&scratch).unwrap();
    Services {
        objects: Arc::new(objects),
        fetch: cloudphone_outbound::Outbound::new(
            Default::default(),
            cloudphone_client::tls::builder(None).unwrap(),
        )
        .unwrap(),
        scratch,
        link_ttl: Duration::from_secs(60),
        region: "r".into(),
    }
}

/// Runs an engine over `store` until `done` holds (at most 10 s).
async fn run_until<F, Fut>(
    store: &Arc<dyn Store>,
    dir: &tempfile::TempDir,
    backend: Arc<Recorder>,
    done: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let config = EngineConfig {
        node_id: "test".into(),
        concurrency: 4,
        account_slots: None,
        lease: Duration::from_secs(10),
        heartbeat: Duration::from_secs(3),
        poll: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(1),
    };
    let engine = Engine::new(store.clone(), backend, services(store, dir).await, config);
    let stop = CancellationToken::new();
    let running = tokio::spawn(engine.run(stop.clone()));
    let mut held = false;
    for _ in 0..400 {
        if done().await {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.cancel();
    running.await.unwrap();
    assert!(held, "the tasks did not end in time");
}

async fn drain(store: &Arc<dyn Store>, mode: MigrateMode) -> String {
    let plan = store
        .start_drain(&NewDrain {
            id: ids::new_id("dr-"),
            host: "h1".into(),
            mode,
            partial: false,
            strategy: Strategy::Spread,
            operator: "admin".into(),
            now_ms: now_ms(),
        })
        .await
        .unwrap();
    plan.id
}

async fn drain_ended(store: &Arc<dyn Store>, id: &str) -> bool {
    let p = store.drain_progress(id).await.unwrap().unwrap();
    p.waiting == 0 && p.processing == 0
}

async fn status(store: &Arc<dyn Store>, id: &str) -> InstanceStatus {
    store.instance(id).await.unwrap().unwrap().status
}

#[tokio::test]
async fn a_drain_moves_each_phone_commits_starts_and_removes_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let (store, phones, _) = farm(&dir, 2).await;
    let backend = Arc::new(Recorder::default());
    let id = drain(&store, MigrateMode::Copy).await;
    run_until(&store, &dir, backend.clone(), || drain_ended(&store, &id)).await;
    let p = store.drain_progress(&id).await.unwrap().unwrap();
    assert_eq!((p.finished, p.failed), (2, 0));
    let mut calls = backend.calls();
    calls.sort();
    assert_eq!(
        calls,
        [
            "delete h1",
            "delete h1",
            "migrate h1>h2 Copy",
            "migrate h1>h2 Copy",
            "start h2",
            "start h2"
        ]
    );
    let on_h2 = store.host_phones("h2").await.unwrap();
    assert_eq!(on_h2.len(), 2);
    assert!(
        on_h2
            .iter()
            .all(|p| p.host == "h2" && p.moving_to.is_none() && p.port.is_some())
    );
    assert!(store.host_phones("h1").await.unwrap().is_empty());
    for p in &phones {
        assert_eq!(status(&store, p).await, InstanceStatus::Running);
    }
}

#[tokio::test]
async fn a_failed_move_is_undone_and_the_phone_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (store, phones, _) = farm(&dir, 1).await;
    let backend = Arc::new(Recorder {
        fail_migrate: true,
        ..Recorder::default()
    });
    let id = drain(&store, MigrateMode::Copy).await;
    run_until(&store, &dir, backend.clone(), || drain_ended(&store, &id)).await;
    assert_eq!(store.drain_progress(&id).await.unwrap().unwrap().failed, 1);
    assert_eq!(
        backend.calls(),
        ["migrate h1>h2 Copy", "delete h2", "start h1"]
    );
    let on_h1 = store.host_phones("h1").await.unwrap();
    assert_eq!(on_h1.len(), 1);
    assert_eq!(
        (on_h1[0].host.as_str(), on_h1[0].moving_to.as_deref()),
        ("h1", None)
    );
    assert!(
        store.host_phones("h2").await.unwrap().is_empty(),
        "its room given back"
    );
    // A move that broke looks like a reboot that did: the watchers bring it back if it runs.
    assert_eq!(
        status(&store, &phones[0]).await,
        InstanceStatus::Unavailable
    );
}

#[tokio::test]
async fn a_copy_from_a_host_that_does_not_answer_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, epochs) = farm(&dir, 1).await;
    let id = drain(&store, MigrateMode::Copy).await;
    store
        .set_host_health("h1", epochs[0], &health(Health::Unhealthy), now_ms())
        .await
        .unwrap();
    let backend = Arc::new(Recorder::default());
    run_until(&store, &dir, backend.clone(), || drain_ended(&store, &id)).await;
    assert!(backend.calls().is_empty(), "{:?}", backend.calls());
    let tasks = store
        .describe_tasks(
            &cloudphone_store::TaskFilter {
                account_id: "a".into(),
                invoke_id: Some(id.clone()),
                level: Some(Level::Internal),
                ..Default::default()
            },
            &cloudphone_store::Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    let t = &tasks.items[0];
    assert_eq!(t.error_code.as_deref(), Some("OperationFailed"));
    assert_eq!(
        t.error_msg.as_deref(),
        Some("host h1 does not answer; drain with --recreate")
    );
    assert!(store.host_phones("h2").await.unwrap().is_empty());
}

/// Queues one internal task of `task_type` on `instance`.
async fn queue(store: &Arc<dyn Store>, task_type: TaskType, instance: &str) -> String {
    let now = now_ms();
    let task = |level, instance: Option<&str>| NewTask {
        id: ids::new_id(ids::TASK),
        account_id: "a".into(),
        invoke_id: ids::request_id(),
        level,
        task_type,
        resource_id: instance.unwrap_or_default().into(),
        instance_id: instance.map(str::to_owned),
        instance_name: instance.map(|_| "p".to_owned()),
        param: "{}".into(),
        operator: "u".into(),
        start_ms: now,
    };
    let batch = NewBatch {
        batch: task(Level::Batch, None),
        children: vec![task(Level::Instance, Some(instance))],
        limits: Default::default(),
    };
    store.create_batch(&batch).await.unwrap();
    batch.batch.id
}

async fn batch_ended(store: &Arc<dyn Store>, id: &str) -> bool {
    store
        .task("a", id)
        .await
        .unwrap()
        .unwrap()
        .status
        .is_terminal()
}

#[tokio::test]
async fn a_reset_on_a_gone_host_lands_elsewhere_and_a_delete_needs_no_engine() {
    let dir = tempfile::tempdir().unwrap();
    let (store, phones, epochs) = farm(&dir, 2).await;
    let gone = store
        .set_host_health("h1", epochs[0], &health(Health::Unhealthy), now_ms())
        .await
        .unwrap();
    assert_eq!(gone, Some(2), "its RUNNING phones turn UNAVAILABLE");
    let backend = Arc::new(Recorder::default());
    let reset = queue(&store, TaskType::ResetInstance, &phones[0]).await;
    let delete = queue(&store, TaskType::DeleteInstance, &phones[1]).await;
    run_until(&store, &dir, backend.clone(), || async {
        batch_ended(&store, &reset).await && batch_ended(&store, &delete).await
    })
    .await;
    assert_eq!(backend.calls(), ["reset h2"]);
    assert_eq!(status(&store, &phones[0]).await, InstanceStatus::Running);
    assert_eq!(status(&store, &phones[1]).await, InstanceStatus::Deleted);
    let on_h2 = store.host_phones("h2").await.unwrap();
    assert_eq!(on_h2.len(), 1);
    assert!(on_h2[0].id == phones[0] && on_h2[0].port.is_some());
}
