//! The engine over a real SQLite store: tasks run to completion in order, expired leases are
//! taken over, and a worker that lost its lease cannot write its result.

// MigrateInstance and the gone host's Reset and Delete (one test binary per crate).
#[path = "engine/migrate.rs"]
mod migrate;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cloudphone_core::resources::{AccessKey, Group, Image, Instance};
use cloudphone_core::time::now_ms;
use cloudphone_core::{InstanceStatus, Level, TaskErrorCode, TaskStatus, TaskType, ids};
use cloudphone_engine::{
    Backend, BackendError, Engine, EngineConfig, InstanceRef, OpResult, Services, Sweeper,
    SweeperConfig,
};
use cloudphone_store::prelude::*;
use cloudphone_store::{NewBatch, NewTask, Page, SqliteStore, TaskFilter};
use tokio_util::sync::CancellationToken;

/// A backend for engine tests: every call is counted; the first `slow_calls` calls take `slow`
/// and then fail, the rest succeed at once. Not a phone: the sim backend is tested on its own.
struct ScriptedBackend {
    calls: AtomicUsize,
    slow_calls: usize,
    slow: Duration,
}

#[async_trait]
impl Backend for ScriptedBackend {
    fn images(&self) -> Vec<Image> {
        Vec::new()
    }
    async fn create(&self, _: &InstanceRef) -> OpResult<()> {
        self.op().await
    }
    async fn delete(&self, _: &InstanceRef) -> OpResult<()> {
        self.op().await
    }
    async fn start(&self, _: &InstanceRef) -> OpResult<()> {
        self.op().await
    }
    async fn stop(&self, _: &InstanceRef, _: bool) -> OpResult<()> {
        self.op().await
    }
    async fn reboot(&self, _: &InstanceRef, _: bool) -> OpResult<()> {
        self.op().await
    }
    async fn reset(&self, _: &InstanceRef, _: &str) -> OpResult<()> {
        self.op().await
    }
}

impl ScriptedBackend {
    async fn op(&self) -> OpResult<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.slow_calls {
            tokio::time::sleep(self.slow).await;
            return Err(BackendError::new(
                TaskErrorCode::OperationFailed,
                "stale attempt",
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(())
    }
}

async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
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
    Arc::new(store)
}

/// Creates `n` RUNNING instances and one RebootInstance batch over them, `per_instance` times.
async fn fleet_and_batches(
    store: &dyn Store,
    n: usize,
    per_instance: usize,
) -> (Vec<String>, Vec<String>) {
    fleet_and_batches_with(store, n, per_instance, |_| "{}".into()).await
}

/// As [`fleet_and_batches`], the child on the `i`th instance with `Param` `child_param(i)`.
async fn fleet_and_batches_with(
    store: &dyn Store,
    n: usize,
    per_instance: usize,
    child_param: impl Fn(usize) -> String,
) -> (Vec<String>, Vec<String>) {
    fleet_and_batches_of(
        store,
        TaskType::RebootInstance,
        n,
        per_instance,
        child_param,
    )
    .await
}

/// As [`fleet_and_batches_with`], with batches of type `task_type`.
async fn fleet_and_batches_of(
    store: &dyn Store,
    task_type: TaskType,
    n: usize,
    per_instance: usize,
    child_param: impl Fn(usize) -> String,
) -> (Vec<String>, Vec<String>) {
    let now = now_ms();
    let (group, instances) = running_group(n, now);
    store
        .create_groups(&[group], &instances, &[], None, None)
        .await
        .unwrap();
    let task = |level, instance: Option<&Instance>, start_ms, param| NewTask {
        id: ids::new_id(ids::TASK),
        account_id: "a".into(),
        invoke_id: ids::request_id(),
        level,
        task_type,
        resource_id: instance.map(|i| i.id.clone()).unwrap_or_default(),
        instance_id: instance.map(|i| i.id.clone()),
        instance_name: instance.map(|i| i.name.clone()),
        param,
        operator: "u".into(),
        start_ms,
    };
    let mut batches = Vec::new();
    for round in 0..per_instance {
        let batch = NewBatch {
            batch: task(Level::Batch, None, now + round as i64, "{}".into()),
            children: instances
                .iter()
                .enumerate()
                .map(|(n, i)| task(Level::Instance, Some(i), now + round as i64, child_param(n)))
                .collect(),
            limits: Default::default(),
        };
        store.create_batch(&batch).await.unwrap();
        batches.push(batch.batch.id);
    }
    (instances.into_iter().map(|i| i.id).collect(), batches)
}

async fn wait_terminal(store: &dyn Store, batch: &str) -> cloudphone_core::resources::Task {
    for _ in 0..400 {
        let t = store.task("a", batch).await.unwrap().unwrap();
        if t.status.is_terminal() {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("batch {batch} did not finish");
}

/// Real services over a temp dir: the object store and scratch space.
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
        // reqwest is built with `rustls-no-provider` in this workspace: a client built without
        // the client crate's TLS setup would panic.
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

fn fast_engine() -> EngineConfig {
    EngineConfig {
        node_id: "test".into(),
        concurrency: 8,
        account_slots: None,
        lease: Duration::from_secs(10),
        heartbeat: Duration::from_secs(3),
        poll: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(1),
    }
}

#[tokio::test]
async fn runs_every_task_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let (_, batches) = fleet_and_batches(store.as_ref(), 5, 3).await;
    let (backend, ended) = run_to_the_end(&store, &dir, &batches).await;
    for t in ended {
        assert_eq!(t.status, TaskStatus::Finished);
        assert_eq!(t.counts.unwrap().finished, 5);
    }
    // Each instance ran its three tasks one after another, in acceptance order.
    let finish = |b: &str| {
        let store = store.clone();
        let b = b.to_string();
        async move {
            store
                .task("a", &b)
                .await
                .unwrap()
                .unwrap()
                .finish_ms
                .unwrap()
        }
    };
    assert!(finish(&batches[0]).await <= finish(&batches[1]).await);
    assert!(finish(&batches[1]).await <= finish(&batches[2]).await);
    assert_eq!(backend.calls.load(Ordering::SeqCst), 15);
}

/// Runs an engine over a backend that does each task at once until every batch of `batches`
/// ended; the backend (its calls counted) and the batches as they ended.
async fn run_to_the_end(
    store: &Arc<dyn Store>,
    dir: &tempfile::TempDir,
    batches: &[String],
) -> (Arc<ScriptedBackend>, Vec<cloudphone_core::resources::Task>) {
    let backend = Arc::new(ScriptedBackend {
        calls: AtomicUsize::new(0),
        slow_calls: 0,
        slow: Duration::ZERO,
    });
    let shutdown = CancellationToken::new();
    let engine = Engine::new(
        store.clone(),
        backend.clone(),
        services(store, dir).await,
        fast_engine(),
    );
    let running = tokio::spawn(engine.run(shutdown.clone()));
    let mut ended = Vec::new();
    for b in batches {
        ended.push(wait_terminal(store.as_ref(), b).await);
    }
    shutdown.cancel();
    running.await.unwrap();
    (backend, ended)
}

/// Tasks past retention go in batches (design §5), and one sweep round goes on past a full
/// batch: 1,220 tasks, more than one batch, all gone after one round.
#[tokio::test]
async fn tasks_past_retention_go_in_batches_all_in_one_round() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let (_, batches) = fleet_and_batches(store.as_ref(), 60, 20).await;
    let (_, finished) = run_to_the_end(&store, &dir, &batches).await;
    assert!(finished.iter().all(|t| t.status == TaskStatus::Finished));
    assert!(60 * 20 + 20 > cloudphone_engine::PURGE_BATCH as usize);
    let sweeper = Sweeper::new(
        store.clone(),
        SweeperConfig {
            task_retention: Duration::ZERO,
            ..SweeperConfig::default()
        },
        Arc::new(tokio::sync::Notify::new()),
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    sweeper.sweep_once().await;
    for b in &batches {
        assert!(store.task("a", b).await.unwrap().is_none(), "{b} purged");
    }
    let left: i64 = store
        .task_counts()
        .await
        .unwrap()
        .iter()
        .map(|c| c.count)
        .sum();
    assert_eq!(left, 0, "every child purged too");
}

/// An account at its share starts its next task as soon as one of its own ends, not at the next
/// poll: the slot and the share are given back after the completer's wake-up, so giving them
/// back must wake the claim loop too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_at_its_share_goes_on_when_its_task_ends_without_a_poll() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let backend = Arc::new(ScriptedBackend {
        calls: AtomicUsize::new(0),
        slow_calls: 0,
        slow: Duration::ZERO,
    });
    let (_, batches) = fleet_and_batches(store.as_ref(), 12, 1).await;
    let shutdown = CancellationToken::new();
    let config = EngineConfig {
        concurrency: 2,
        account_slots: Some(1),
        // Only wake-ups start tasks here.
        poll: Duration::from_secs(3600),
        ..fast_engine()
    };
    let engine = Engine::new(
        store.clone(),
        backend.clone(),
        services(&store, &dir).await,
        config,
    );
    let running = tokio::spawn(engine.run(shutdown.clone()));
    let t = wait_terminal(store.as_ref(), &batches[0]).await;
    assert_eq!(t.counts.unwrap().finished, 12);
    shutdown.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_stale_result_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    // The first attempt outlives its lease (no heartbeat comes in time) and then fails; the
    // second attempt succeeds. The stale failure must not overwrite the success.
    let backend = Arc::new(ScriptedBackend {
        calls: AtomicUsize::new(0),
        slow_calls: 1,
        slow: Duration::from_millis(1500),
    });
    let (instances, batches) = fleet_and_batches(store.as_ref(), 1, 1).await;
    let shutdown = CancellationToken::new();
    let config = EngineConfig {
        lease: Duration::from_millis(300),
        heartbeat: Duration::from_secs(60),
        ..fast_engine()
    };
    let engine = Engine::new(
        store.clone(),
        backend.clone(),
        services(&store, &dir).await,
        config,
    );
    let sweeper = Sweeper::new(
        store.clone(),
        SweeperConfig {
            interval: Duration::from_millis(50),
            max_attempts: 3,
            retry_delay: Duration::from_millis(10),
            ..SweeperConfig::default()
        },
        engine.waker(),
    );
    let running = tokio::spawn(engine.run(shutdown.clone()));
    let sweeping = tokio::spawn(sweeper.run(shutdown.clone()));
    let batch = wait_terminal(store.as_ref(), &batches[0]).await;
    assert_eq!(batch.status, TaskStatus::Finished);
    // Let the stale attempt finish and try to write.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(backend.calls.load(Ordering::SeqCst), 2);
    let batch = store.task("a", &batches[0]).await.unwrap().unwrap();
    assert_eq!(
        batch.status,
        TaskStatus::Finished,
        "the stale attempt's failure was refused"
    );
    let instance = store.instance(&instances[0]).await.unwrap().unwrap();
    assert_eq!(instance.status, InstanceStatus::Running);
    shutdown.cancel();
    running.await.unwrap();
    sweeping.await.unwrap();
}

#[tokio::test]
async fn leases_left_by_a_dead_node_are_resumed_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let (_, batches) = fleet_and_batches(store.as_ref(), 3, 1).await;
    // A node claims everything and dies without a word.
    let claimed = store.claim("dead", now_ms(), 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert_eq!(store.expire_all_leases().await.unwrap(), 3);
    let backend = Arc::new(ScriptedBackend {
        calls: AtomicUsize::new(0),
        slow_calls: 0,
        slow: Duration::ZERO,
    });
    let engine = Engine::new(
        store.clone(),
        backend.clone(),
        services(&store, &dir).await,
        fast_engine(),
    );
    let sweeper = Sweeper::new(
        store.clone(),
        SweeperConfig {
            interval: Duration::from_millis(50),
            retry_delay: Duration::ZERO,
            ..SweeperConfig::default()
        },
        engine.waker(),
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(engine.run(shutdown.clone()));
    let sweeping = tokio::spawn(sweeper.run(shutdown.clone()));
    let batch = wait_terminal(store.as_ref(), &batches[0]).await;
    assert_eq!(batch.status, TaskStatus::Finished);
    assert_eq!(backend.calls.load(Ordering::SeqCst), 3);
    shutdown.cancel();
    running.await.unwrap();
    sweeping.await.unwrap();
}

#[tokio::test]
async fn a_task_whose_param_does_not_parse_fails_without_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let backend = Arc::new(ScriptedBackend {
        calls: AtomicUsize::new(0),
        slow_calls: 0,
        slow: Duration::ZERO,
    });
    // Bad JSON, a value of the wrong type, and a good one.
    let params = [
        "not json",
        r#"{"ForceStop":"yes"}"#,
        r#"{"ForceStop":true}"#,
    ];
    let (instances, batches) =
        fleet_and_batches_with(store.as_ref(), 3, 1, |i| params[i].to_string()).await;
    let shutdown = CancellationToken::new();
    let engine = Engine::new(
        store.clone(),
        backend.clone(),
        services(&store, &dir).await,
        fast_engine(),
    );
    let running = tokio::spawn(engine.run(shutdown.clone()));
    let batch = wait_terminal(store.as_ref(), &batches[0]).await;
    assert_eq!(batch.status, TaskStatus::PartFinished);
    let counts = batch.counts.unwrap();
    assert_eq!((counts.finished, counts.failed), (1, 2));
    // Only the good one reached the backend.
    assert_eq!(backend.calls.load(Ordering::SeqCst), 1);
    let children = store
        .describe_tasks(
            &TaskFilter {
                account_id: "a".into(),
                parent_task_id: Some(batches[0].clone()),
                ..TaskFilter::default()
            },
            &Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap()
        .items;
    let child = |i: usize| {
        children
            .iter()
            .find(|t| t.instance_id.as_deref() == Some(instances[i].as_str()))
            .unwrap()
    };
    for (i, reason) in [(0, "expected ident"), (1, "invalid type: string \"yes\"")] {
        let t = child(i);
        assert_eq!(t.status, TaskStatus::Failed);
        assert_eq!(t.error_code.as_deref(), Some("InvalidTaskParameters"));
        let message = t.error_msg.as_deref().unwrap();
        assert!(
            message.starts_with("The task's Param is not valid for RebootInstance: ")
                && message.contains(reason),
            "{message}"
        );
        // The phone was never touched: it keeps its status.
        let phone = store.instance(&instances[i]).await.unwrap().unwrap();
        assert_eq!(phone.status, InstanceStatus::Running);
    }
    assert_eq!(child(2).status, TaskStatus::Finished);
    shutdown.cancel();
    running.await.unwrap();
}

/// A backend whose phones hand over the first bytes of a file and then never the rest.
struct StuckPull;

#[async_trait]
impl Backend for StuckPull {
    fn images(&self) -> Vec<Image> {
        Vec::new()
    }
    async fn create(&self, _: &InstanceRef) -> OpResult<()> {
        Ok(())
    }
    async fn delete(&self, _: &InstanceRef) -> OpResult<()> {
        Ok(())
    }
    async fn start(&self, _: &InstanceRef) -> OpResult<()> {
        Ok(())
    }
    async fn stop(&self, _: &InstanceRef, _: bool) -> OpResult<()> {
        Ok(())
    }
    async fn reboot(&self, _: &InstanceRef, _: bool) -> OpResult<()> {
        Ok(())
    }
    async fn reset(&self, _: &InstanceRef, _: &str) -> OpResult<()> {
        Ok(())
    }
    async fn pull_file(&self, _: &InstanceRef, _: &str, local: &std::path::Path) -> OpResult<u64> {
        tokio::fs::write(local, b"the first bytes").await.unwrap();
        std::future::pending().await
    }
}

/// CancelTasks stops a transfer that is reading its source (docs/design.md §5.7): the attempt
/// ends Failed with `Cancelled` at once on its node (no heartbeat comes in the test's time), its
/// scratch file is removed and nothing reaches the object store.
#[tokio::test]
async fn a_cancelled_transfer_stops_reading_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let param = |i: usize| {
        format!(
            r#"{{"Destination":"oss://out-bucket/f/p{i}/big.bin","SourceFilePath":"/sdcard/big.bin"}}"#
        )
    };
    let (_, batches) = fleet_and_batches_of(store.as_ref(), TaskType::FetchFile, 2, 1, param).await;
    let services = services(&store, &dir).await;
    let (objects, scratch) = (services.objects.clone(), services.scratch.clone());
    let shutdown = CancellationToken::new();
    let config = EngineConfig {
        heartbeat: Duration::from_secs(60),
        lease: Duration::from_secs(180),
        ..fast_engine()
    };
    let engine = Engine::new(store.clone(), Arc::new(StuckPull), services, config);
    let stops = engine.stops();
    let running = tokio::spawn(engine.run(shutdown.clone()));
    for _ in 0..400 {
        let b = store.task("a", &batches[0]).await.unwrap().unwrap();
        if b.counts.unwrap().processing == 2 && std::fs::read_dir(&scratch).unwrap().count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelled = store
        .cancel_tasks("a", &batches[..1], now_ms())
        .await
        .unwrap();
    assert_eq!((cancelled.interrupting, cancelled.finishing), (2, 0));
    stops.ring(&cancelled.interrupted);
    let batch = tokio::time::timeout(
        Duration::from_secs(5),
        wait_terminal(store.as_ref(), &batches[0]),
    )
    .await
    .expect("the transfers stopped at once");
    assert_eq!(batch.status, TaskStatus::Failed);
    for child in &cancelled.interrupted {
        let t = store.task("a", child).await.unwrap().unwrap();
        assert_eq!(t.error_code.as_deref(), Some("Cancelled"));
    }
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "scratch left"
    );
    for i in 0..2 {
        let path = cloudphone_objects::OssPath::parse(&format!("oss://out-bucket/f/p{i}/big.bin"))
            .unwrap();
        assert!(
            objects.head("a", &path).await.is_err(),
            "an object was stored"
        );
    }
    shutdown.cancel();
    running.await.unwrap();
}

/// A group of account `a` with `n` RUNNING phones `p0..`, not stored yet.
fn running_group(n: usize, now: i64) -> (Group, Vec<Instance>) {
    let group = Group {
        id: ids::new_id(ids::GROUP),
        account_id: "a".into(),
        name: "g".into(),
        region_id: "r".into(),
        image_id: "img".into(),
        spec: "acp.basic.small".into(),
        charge_type: "PostPaid".into(),
        tags: vec![],
        created_ms: now,
        modified_ms: now,
        deleting: false,
    };
    let instances = (0..n)
        .map(|i| Instance {
            name: format!("p{i}"),
            status: InstanceStatus::Running,
            ..group.new_phone(i as u64, now)
        })
        .collect();
    (group, instances)
}
