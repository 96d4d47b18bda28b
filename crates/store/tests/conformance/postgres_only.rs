//! The PostgreSQL side: a fresh database per test in the cluster at
//! `CLOUDPHONE_TEST_DATABASE_URL`, dropped when the test passes (a failed test leaves it for a
//! look; the cluster is throwaway), and the checks only PostgreSQL has (transactions still
//! open, two nodes, LISTEN/NOTIFY).

use std::sync::Arc;
use std::time::Duration;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use cloudphone_core::{InstanceStatus as S, TaskStatus, TaskType};
use cloudphone_store::prelude::*;
use cloudphone_store::{Outcome, PgStore, TaskFilter};
use sqlx::{Connection, PgConnection};
use tokio::sync::Notify;

const URL_VAR: &str = "CLOUDPHONE_TEST_DATABASE_URL";

/// A database made for one test.
pub(crate) struct TestDb {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDb {
    /// A fresh database.
    pub(crate) async fn create() -> TestDb {
        let admin_url = std::env::var(URL_VAR).unwrap_or_else(|_| {
            panic!(
                "the PostgreSQL conformance tests need a cluster: run \
                 `scripts/pg-cluster start DIR` and `export {URL_VAR}=<the URL it prints>`"
            )
        });
        let name = format!("cp_test_{:016x}", random());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {URL_VAR} ({admin_url}): {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        TestDb {
            admin_url,
            name,
            url,
        }
    }

    pub(crate) async fn connect(&self) -> PgStore {
        PgStore::connect(&self.url).await.unwrap()
    }

    /// Drops the database, on a best-effort basis.
    pub(crate) async fn drop(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut admin)
                .await;
            admin.close().await.ok();
        }
    }
}

/// Random enough for database names that never meet twice.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    h.finish()
}

/// `url` with its database (the path) replaced by `name`, keeping any query string.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[host_start..]
        .find('/')
        .map_or(base.len(), |i| host_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[test]
fn with_database_replaces_the_path_only() {
    assert_eq!(
        with_database("postgres://u@h:5/postgres", "db"),
        "postgres://u@h:5/db"
    );
    assert_eq!(
        with_database("postgres://u:p@h/x?sslmode=disable", "db"),
        "postgres://u:p@h/db?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h:5", "db"), "postgres://h:5/db");
}

/// The event log holds back what an open transaction may still join: a reader sees no
/// event of a later transaction until every earlier one has ended, and then each event
/// once, in (transaction, row) order, even where a row id is higher than a later one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_for_transactions_still_open() {
    use cloudphone_store::EventFilter;
    let db = TestDb::create().await;
    let store = db.connect().await;
    let (a, child) = (crate::support::A, crate::support::child);
    crate::support::fleet(&store, a, "ag-1", &[("i1", S::Running), ("i2", S::Running)]).await;
    let first = crate::support::batch("t-1", a, TaskType::RebootInstance, 1_000, &["i1"]);
    store.create_batch(&first).await.unwrap();
    let all = EventFilter {
        account_id: a.into(),
        ..EventFilter::default()
    };
    // The first batch's events are readable (other tests' transactions may hold them back a
    // moment): the tail is past them.
    let before = crate::events::settled_events(&store, &all, Default::default(), 2).await;
    let tail = store.event_tail(a).await.unwrap();
    assert_eq!(tail, before.last().unwrap().position);
    let mut open = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut open).await.unwrap();
    // Its transaction id comes first; its event's row id will come last.
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut open)
        .await
        .unwrap();
    let second = crate::support::batch("t-2", a, TaskType::RebootInstance, 2_000, &["i2"]);
    store.create_batch(&second).await.unwrap();
    assert!(
        store.task_events(&all, tail, 100).await.unwrap().is_empty(),
        "held back behind the open transaction"
    );
    assert_eq!(store.event_tail(a).await.unwrap(), tail);
    sqlx::query("UPDATE tasks SET status = 'Skipped' WHERE id = $1")
        .bind(child("t-1", "i1"))
        .execute(&mut open)
        .await
        .unwrap();
    sqlx::query("COMMIT").execute(&mut open).await.unwrap();
    let events = crate::events::settled_events(&store, &all, tail, 3).await;
    let seen: Vec<(&str, TaskStatus)> = events
        .iter()
        .map(|e| (e.task_id.as_str(), e.status))
        .collect();
    let (c1, c2) = (child("t-1", "i1"), child("t-2", "i2"));
    assert_eq!(
        seen,
        [
            (c1.as_str(), TaskStatus::Skipped),
            ("t-2", TaskStatus::Waiting),
            (c2.as_str(), TaskStatus::Waiting)
        ]
    );
    assert!(events[0].position.minor > events[2].position.minor);
    for (n, e) in events.iter().enumerate() {
        let rest = store.task_events(&all, e.position, 100).await.unwrap();
        assert_eq!(rest, events[n + 1..]);
    }
    store.close().await;
    db.drop().await;
}

/// Two nodes, four workers each, over batches that start, stop and reboot the same phones,
/// some children ending Skipped at their precondition check inside the claim: no call fails
/// (no deadlock, no second lease on a phone), and every task ends as running them one at a
/// time in acceptance order gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contended_claims_on_two_nodes() {
    use TaskStatus::{Finished, Processing, Skipped, Waiting};
    use TaskType::{RebootInstance, StartInstance, StopInstance};
    const INSTANCES: usize = 12;
    const ROUNDS: usize = 3;
    const NOW: i64 = 1_000_000;
    let db = TestDb::create().await;
    let nodes = [Arc::new(db.connect().await), Arc::new(db.connect().await)];
    let phones: Vec<String> = (0..INSTANCES).map(|n| format!("p{n:02}")).collect();
    let specs: Vec<(&str, S)> = phones.iter().map(|p| (p.as_str(), S::Running)).collect();
    crate::support::fleet(&*nodes[0], crate::support::A, "ag-1", &specs).await;
    // From RUNNING: Start is skipped, Stop runs, a second Stop is skipped, Start runs, and
    // so does Reboot.
    let round = [
        (StartInstance, Skipped),
        (StopInstance, Finished),
        (StopInstance, Skipped),
        (StartInstance, Finished),
        (RebootInstance, Finished),
    ];
    let plan: Vec<(String, TaskType, TaskStatus)> = round
        .iter()
        .cycle()
        .take(round.len() * ROUNDS)
        .enumerate()
        .map(|(n, (ty, want))| (format!("b-{n:02}"), *ty, *want))
        .collect();
    let to_complete = INSTANCES * plan.iter().filter(|p| p.2 == Finished).count();

    let producer = {
        let (nodes, phones, plan) = (nodes.clone(), phones.clone(), plan.clone());
        tokio::spawn(async move {
            for (n, (id, ty, _)) in plan.iter().enumerate() {
                let refs: Vec<&str> = phones.iter().map(String::as_str).collect();
                let b = crate::support::batch(id, crate::support::A, *ty, 1_000 + n as i64, &refs);
                nodes[n % 2].create_batch(&b).await.unwrap();
            }
        })
    };
    let busy = Arc::new(std::sync::Mutex::new(HashSet::<String>::new()));
    let done = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let completed = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (node, other) = (nodes[w % 2].clone(), nodes[(w + 1) % 2].clone());
        let (busy, done, completed) = (busy.clone(), done.clone(), completed.clone());
        workers.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            while completed.load(Ordering::SeqCst) < to_complete {
                let claims = node
                    .claim(&owner, NOW, crate::support::LEASE, 3)
                    .await
                    .unwrap();
                if claims.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                for c in &claims {
                    assert!(
                        busy.lock().unwrap().insert(c.instance_id.clone()),
                        "two tasks on {}",
                        c.instance_id
                    );
                }
                for c in claims {
                    // The other node heartbeats, this one completes.
                    let until = NOW + 2 * crate::support::LEASE;
                    assert_eq!(
                        other.heartbeat(&c.task_id, c.attempt, until).await.unwrap(),
                        cloudphone_store::Lease::Held
                    );
                    assert!(busy.lock().unwrap().remove(&c.instance_id));
                    done.lock()
                        .unwrap()
                        .push((c.instance_id.clone(), c.task_id.clone()));
                    let outcome = Outcome::Finished {
                        result: "{}".into(),
                    };
                    let ok = node.complete(&c.task_id, c.attempt, &outcome, NOW).await;
                    assert!(ok.unwrap());
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
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("workers finish");

    let store = &*nodes[0];
    let finished: Vec<&String> = plan
        .iter()
        .filter(|p| p.2 == Finished)
        .map(|p| &p.0)
        .collect();
    let mut per_instance: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, t) in done.lock().unwrap().iter() {
        per_instance.entry(i.clone()).or_default().push(t.clone());
    }
    for phone in &phones {
        let want: Vec<String> = finished
            .iter()
            .map(|b| crate::support::child(b, phone))
            .collect();
        assert_eq!(per_instance[phone], want, "acceptance order on {phone}");
        assert_eq!(crate::support::status_of(store, phone).await, S::Running);
    }
    let n = INSTANCES as i64;
    for (id, _, want) in &plan {
        let b = crate::support::get(store, crate::support::A, id).await;
        let counts = match want {
            Finished => crate::support::counts(0, 0, n, 0, 0),
            _ => crate::support::counts(0, 0, 0, 0, n),
        };
        assert_eq!((b.status, b.counts), (*want, Some(counts)), "batch {id}");
        for phone in &phones {
            let c =
                crate::support::get(store, crate::support::A, &crate::support::child(id, phone))
                    .await;
            assert_eq!(c.status, *want, "{}", c.id);
        }
    }
    let unfinished = TaskFilter {
        statuses: vec![Waiting, Processing],
        ..crate::support::filter(crate::support::A)
    };
    assert!(crate::support::listed(store, &unfinished).await.is_empty());
    for node in nodes {
        node.close().await;
    }
    db.drop().await;
}

/// A task accepted first (the lower acceptance number) whose transaction commits only after
/// a later task of the same phone has started waits for that one to end: the claim passes
/// it over instead of leasing a second task on the phone (or failing on the index that
/// forbids it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_task_committed_late_waits_for_the_running_one() {
    const NOW: i64 = 1_000_000;
    let db = TestDb::create().await;
    let store = db.connect().await;
    crate::support::fleet(&store, crate::support::A, "ag-1", &[("i1", S::Running)]).await;
    let mut early = store.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO tasks (id, account_id, invoke_id, level, task_type, status, \
         instance_id, run_state, start_ms) \
         VALUES ('early', $1, 'inv-early', 0, $2, 'Waiting', 'i1', 'queued', 1)",
    )
    .bind(crate::support::A)
    .bind(TaskType::RebootInstance.as_str())
    .execute(&mut *early)
    .await
    .unwrap();
    let late = crate::support::batch(
        "late",
        crate::support::A,
        TaskType::RebootInstance,
        2,
        &["i1"],
    );
    store.create_batch(&late).await.unwrap();
    let claims = store
        .claim("w", NOW, crate::support::LEASE, 10)
        .await
        .unwrap();
    let ids: Vec<&str> = claims.iter().map(|c| c.task_id.as_str()).collect();
    assert_eq!(ids, [crate::support::child("late", "i1")]);
    early.commit().await.unwrap();

    assert!(
        store
            .claim("w", NOW, crate::support::LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let outcome = Outcome::Finished {
        result: "{}".into(),
    };
    let c = &claims[0];
    assert!(
        store
            .complete(&c.task_id, c.attempt, &outcome, NOW)
            .await
            .unwrap()
    );
    let claims = store
        .claim("w", NOW, crate::support::LEASE, 10)
        .await
        .unwrap();
    let ids: Vec<&str> = claims.iter().map(|c| c.task_id.as_str()).collect();
    assert_eq!(ids, ["early"]);
    store.close().await;
    db.drop().await;
}

/// Connecting again (migrations already applied) keeps the data and runs no migration
/// twice.
#[tokio::test]
async fn reconnect_keeps_data() {
    let db = TestDb::create().await;
    let store = db.connect().await;
    store.setting_or_init("k", "v1").await.unwrap();
    store.close().await;
    drop(store);
    let store = db.connect().await;
    assert_eq!(store.setting_or_init("k", "v2").await.unwrap(), "v1");
    store.close().await;
    db.drop().await;
}

/// A batch created through one node wakes the engine of another within moments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_signals_reach_other_nodes() {
    let db = TestDb::create().await;
    let producer = db.connect().await;
    let consumer = Arc::new(db.connect().await);
    assert!(consumer.shared());
    let wake = Arc::new(Notify::new());
    let forwarder = tokio::spawn({
        let (consumer, wake) = (consumer.clone(), wake.clone());
        async move { consumer.forward_work_signals(wake).await }
    });
    // The forwarder listens once its connection's last statement is the LISTEN.
    let listening = async {
        loop {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND query LIKE 'LISTEN %'",
            )
            .fetch_one(producer.pool())
            .await
            .unwrap();
            if n > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), listening)
        .await
        .expect("the forwarder listens");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), wake.notified())
            .await
            .is_err(),
        "no wake-up before any work"
    );

    let batch = crate::support::batch(
        "t-1",
        crate::support::A,
        TaskType::RebootInstance,
        1,
        &["i-1"],
    );
    producer.create_batch(&batch).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), wake.notified())
        .await
        .expect("the notification from create_batch wakes the other node");
    assert!(!forwarder.is_finished(), "{:?}", forwarder.await);

    forwarder.abort();
    let _ = forwarder.await;
    producer.close().await;
    consumer.close().await;
    db.drop().await;
}
