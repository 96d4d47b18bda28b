//! The write path: a fresh server (`--sim-delay-ms 0`, high `--concurrency`) with 10,000 phones
//! created through the API; then the time one 1,000-phone `RebootAndroidInstancesInGroup` call
//! takes to return, and the end-to-end throughput of 10,000 instance tasks submitted as 100
//! calls of 100 phones (first call to last task terminal), on SQLite or PostgreSQL. As the
//! limit, the same rows inserted and updated with the store's own statements, batched, straight
//! into a fresh SQLite file.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cloudphone_core::{BatchCounts, TaskStatus, ids};
use cloudphone_store::SqliteStore;
use serde_json::Value;
use sqlx::Row;

use super::client::{Client, params, push_list};
use super::report::Samples;
use super::server::{Server, ServerSpec};

/// Sizes of the write measurements.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    pub phones: usize,
    /// Phones in the big call (the most one lifecycle call may name is 1,000).
    pub big: usize,
    pub big_repeats: usize,
    /// End to end: this many calls of `per_call` phones.
    pub calls: usize,
    pub per_call: usize,
    /// Client tasks submitting the calls at once.
    pub submitters: usize,
}

/// What one server run measured.
pub struct WriteResult {
    pub provision: Duration,
    pub big_calls: Samples,
    pub e2e: Duration,
    pub e2e_tasks: u64,
    pub finished: i64,
    pub failed: i64,
    pub peak_rss: u64,
}

impl WriteResult {
    pub fn tasks_per_s(&self) -> f64 {
        self.e2e_tasks as f64 / self.e2e.as_secs_f64()
    }
}

const TERMINAL: &[&str] = &["Finished", "PartFinished", "Failed", "Skipped"];

pub async fn run_server(spec: &ServerSpec, opts: &WriteOptions) -> anyhow::Result<WriteResult> {
    let server = Server::start(spec).await?;
    let client = Client::new(&server.address, spec.creds.clone())?;
    let result = measure(&client, opts).await;
    let peak_rss = server.peak_rss().unwrap_or(0);
    server.stop().await?;
    let mut result = result?;
    result.peak_rss = peak_rss;
    Ok(result)
}

async fn measure(client: &Client, opts: &WriteOptions) -> anyhow::Result<WriteResult> {
    super::read::wait_ready(client).await?;
    let started = Instant::now();
    let phones = provision(client, opts.phones).await?;
    let provision = started.elapsed();

    let mut big_calls = Samples::new();
    let big: Vec<String> = phones.iter().take(opts.big).cloned().collect();
    for _ in 0..opts.big_repeats {
        let (batch, elapsed) = reboot(client, &big).await?;
        big_calls.push(elapsed);
        wait_terminal(client, &batch, Duration::from_millis(10)).await?;
    }

    let chunks: Vec<Vec<String>> = phones
        .chunks(opts.per_call)
        .take(opts.calls)
        .map(<[String]>::to_vec)
        .collect();
    let e2e_tasks: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    let chunks = Arc::new(chunks);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut submitters = Vec::new();
    for _ in 0..opts.submitters.max(1) {
        let (client, chunks, next) = (client.clone(), chunks.clone(), next.clone());
        submitters.push(tokio::spawn(async move {
            let mut batches = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(chunk) = chunks.get(i) else {
                    return anyhow::Ok(batches);
                };
                batches.push(reboot(&client, chunk).await?.0);
            }
        }));
    }
    let mut batches = Vec::new();
    for s in submitters {
        batches.extend(s.await??);
    }
    // Every batch is in; now wait until none of the account's batches is unfinished.
    let mut unfinished = params(&[("Level", "1"), ("MaxResults", "1")]);
    push_list(
        &mut unfinished,
        "TaskStatuses",
        &["Waiting".into(), "Processing".into()],
    );
    loop {
        let body = client.ok("DescribeTasks", &unfinished).await?;
        if body.get("TotalCount").and_then(Value::as_i64) == Some(0) {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the tasks did not finish within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let e2e = started.elapsed();

    let (mut finished, mut failed) = (0, 0);
    for ids in batches.chunks(100) {
        let mut p = params(&[("MaxResults", "100"), ("Level", "1")]);
        push_list(&mut p, "TaskIds", ids);
        let body = client.ok("DescribeTasks", &p).await?;
        for t in body
            .get("Data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            finished += t
                .get("SuccessChildCount")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            failed += t
                .get("FailedChildCount")
                .and_then(Value::as_i64)
                .unwrap_or(0);
        }
    }
    Ok(WriteResult {
        provision,
        big_calls,
        e2e,
        e2e_tasks,
        finished,
        failed,
        peak_rss: 0,
    })
}

/// Creates `n` phones in groups of 100 (the most one call creates) and waits until every group
/// is RUNNING; returns their ids, group after group.
async fn provision(client: &Client, n: usize) -> anyhow::Result<Vec<String>> {
    let mut phones = Vec::with_capacity(n);
    let mut groups = 0;
    let mut left = n;
    while left > 0 {
        let k = left.min(100);
        let body = client
            .ok(
                "CreateAndroidInstanceGroup",
                &params(&[
                    ("BizRegionId", "cn-hangzhou"),
                    ("ImageId", "imgc-simandroid140000"),
                    ("InstanceGroupSpec", "acp.basic.small"),
                    ("InstanceGroupName", "bench"),
                    ("NumberOfInstances", &k.to_string()),
                ]),
            )
            .await?;
        let ids = body
            .pointer("/InstanceGroupInfos/0/InstanceIds")
            .and_then(Value::as_array)
            .context("CreateAndroidInstanceGroup returned no InstanceIds")?;
        phones.extend(ids.iter().filter_map(Value::as_str).map(str::to_string));
        groups += 1;
        left -= k;
    }
    let started = Instant::now();
    loop {
        let body = client
            .ok(
                "DescribeAndroidInstanceGroups",
                &params(&[("Status", "RUNNING"), ("MaxResults", "1")]),
            )
            .await?;
        if body.get("TotalCount").and_then(Value::as_i64) == Some(groups) {
            return Ok(phones);
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the phones were not RUNNING after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One RebootAndroidInstancesInGroup call: its batch id and how long it took to return.
async fn reboot(client: &Client, phones: &[String]) -> anyhow::Result<(String, Duration)> {
    let mut p = Vec::with_capacity(phones.len());
    push_list(&mut p, "AndroidInstanceIds", phones);
    let answer = client.call("RebootAndroidInstancesInGroup", &p).await?;
    let body = answer.ok_json().context("RebootAndroidInstancesInGroup")?;
    let batch = body
        .pointer("/Tasks/ParentTaskId")
        .and_then(Value::as_str)
        .context("no ParentTaskId in the answer")?
        .to_string();
    Ok((batch, answer.elapsed))
}

async fn wait_terminal(client: &Client, batch: &str, every: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut p = params(&[("MaxResults", "1")]);
    push_list(&mut p, "TaskIds", &[batch.to_string()]);
    loop {
        let body = client.ok("DescribeTasks", &p).await?;
        let status = body
            .pointer("/Data/0/TaskStatus")
            .and_then(Value::as_str)
            .unwrap_or("");
        if TERMINAL.contains(&status) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("batch {batch} still {status} after 5 minutes");
        }
        tokio::time::sleep(every).await;
    }
}

/// The limit: the same task rows written straight into a fresh SQLite file with the store's
/// schema and pragmas (WAL, synchronous=NORMAL) and the store's statements: each batch inserted
/// in one transaction as `create_batch` does, then every task moved to Processing and then to
/// Finished with its batch's counters, `per_tx` tasks per transaction. Returns the time taken.
pub async fn sqlite_limit(
    dir: &Path,
    batches: usize,
    per_batch: usize,
    per_tx: usize,
) -> anyhow::Result<Duration> {
    std::fs::create_dir_all(dir)?;
    let store = SqliteStore::open(&dir.join("limit.db")).await?;
    let pool = store.pool().clone();
    let now = cloudphone_core::time::now_ms();
    let plan: Vec<(String, Vec<String>)> = (0..batches)
        .map(|_| {
            (
                ids::new_id(ids::TASK),
                (0..per_batch).map(|_| ids::new_id(ids::TASK)).collect(),
            )
        })
        .collect();
    const INSERT: &str = "INSERT INTO tasks (id, account_id, invoke_id, parent_id, level, \
         task_type, status, resource_id, instance_id, instance_name, param, operator, start_ms, \
         finish_ms, c_waiting, c_processing, c_finished, c_failed, c_skipped, run_state, \
         not_before_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let started = Instant::now();
    for (batch, children) in &plan {
        let invoke = ids::request_id();
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = children.len() as i64;
        sqlx::query(INSERT)
            .bind(batch)
            .bind("root")
            .bind(&invoke)
            .bind(None::<&str>)
            .bind(1i64)
            .bind("RebootInstance")
            .bind("Waiting")
            .bind("")
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(r#"{"AndroidInstanceIds":[]}"#)
            .bind("root")
            .bind(now)
            .bind(None::<i64>)
            .bind(n)
            .bind(0i64)
            .bind(0i64)
            .bind(0i64)
            .bind(0i64)
            .bind("done")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for (i, child) in children.iter().enumerate() {
            sqlx::query(INSERT)
                .bind(child)
                .bind("root")
                .bind(&invoke)
                .bind(Some(batch.as_str()))
                .bind(2i64)
                .bind("RebootInstance")
                .bind("Waiting")
                .bind(format!("acp-bench{i:012}"))
                .bind(Some(format!("acp-bench{i:012}")))
                .bind(Some(format!("cloudphone-{i}")))
                .bind("{}")
                .bind("root")
                .bind(now)
                .bind(None::<i64>)
                .bind(None::<i64>)
                .bind(None::<i64>)
                .bind(None::<i64>)
                .bind(None::<i64>)
                .bind(None::<i64>)
                .bind("queued")
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    let tasks: Vec<(&str, &str)> = plan
        .iter()
        .flat_map(|(b, cs)| cs.iter().map(move |c| (c.as_str(), b.as_str())))
        .collect();
    for (from, to) in [
        (TaskStatus::Waiting, TaskStatus::Processing),
        (TaskStatus::Processing, TaskStatus::Finished),
    ] {
        for chunk in tasks.chunks(per_tx.max(1)) {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            for (task, batch) in chunk {
                if to == TaskStatus::Processing {
                    sqlx::query(
                        "UPDATE tasks SET status = 'Processing', attempt = attempt + 1, \
                         owner = ?, lease_ms = ?, run_state = 'leased', prev_status = ? \
                         WHERE id = ?",
                    )
                    .bind("bench")
                    .bind(now + 15_000)
                    .bind("RUNNING")
                    .bind(task)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    sqlx::query(
                        "UPDATE tasks SET status = ?, result = ?, error_code = ?, \
                         error_msg = ?, finish_ms = ?, run_state = 'done', lease_ms = NULL \
                         WHERE id = ?",
                    )
                    .bind("Finished")
                    .bind(Some(r#"{"Success":true}"#))
                    .bind(None::<&str>)
                    .bind(None::<&str>)
                    .bind(now)
                    .bind(task)
                    .execute(&mut *tx)
                    .await?;
                }
                // The batch's counters, read and written as the store's `move_child` does.
                let row = sqlx::query(
                    "SELECT c_waiting, c_processing, c_finished, c_failed, c_skipped \
                     FROM tasks WHERE id = ? AND level = 1",
                )
                .bind(batch)
                .fetch_one(&mut *tx)
                .await?;
                let counts = BatchCounts {
                    waiting: row.try_get(0)?,
                    processing: row.try_get(1)?,
                    finished: row.try_get(2)?,
                    failed: row.try_get(3)?,
                    skipped: row.try_get(4)?,
                }
                .add(&BatchCounts::delta(from, to));
                let status = counts.status();
                sqlx::query(
                    "UPDATE tasks SET c_waiting = ?, c_processing = ?, c_finished = ?, \
                     c_failed = ?, c_skipped = ?, status = ?, \
                     finish_ms = CASE WHEN ? THEN COALESCE(finish_ms, ?) ELSE NULL END \
                     WHERE id = ?",
                )
                .bind(counts.waiting)
                .bind(counts.processing)
                .bind(counts.finished)
                .bind(counts.failed)
                .bind(counts.skipped)
                .bind(status.as_str())
                .bind(status.is_terminal())
                .bind(now)
                .bind(batch)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
    }
    let elapsed = started.elapsed();
    let unfinished: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE level = 1 AND status != 'Finished'")
            .fetch_one(&pool)
            .await?;
    store.close().await;
    if unfinished != 0 {
        bail!("{unfinished} batches did not end Finished in the SQLite limit run");
    }
    Ok(elapsed)
}

/// The tighter limit: the same rows and end states, written the fastest way SQLite allows. One
/// multi-row INSERT per batch (a call is a transaction, so still one transaction per batch),
/// then `per_tx` tasks per transaction moved with one `UPDATE ... WHERE id IN (...)` per state
/// and one counter update per batch touched, counters kept here. Returns the time taken.
pub async fn sqlite_set_limit(
    dir: &Path,
    batches: usize,
    per_batch: usize,
    per_tx: usize,
) -> anyhow::Result<Duration> {
    use sqlx::{QueryBuilder, Sqlite};
    std::fs::create_dir_all(dir)?;
    let store = SqliteStore::open(&dir.join("limit-set.db")).await?;
    let pool = store.pool().clone();
    let now = cloudphone_core::time::now_ms();
    let plan: Vec<(String, Vec<String>)> = (0..batches)
        .map(|_| {
            (
                ids::new_id(ids::TASK),
                (0..per_batch).map(|_| ids::new_id(ids::TASK)).collect(),
            )
        })
        .collect();
    let started = Instant::now();
    for (batch, children) in &plan {
        let invoke = ids::request_id();
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO tasks (id, account_id, invoke_id, parent_id, level, task_type, status, \
             resource_id, instance_id, instance_name, param, operator, start_ms, c_waiting, \
             c_processing, c_finished, c_failed, c_skipped, run_state, not_before_ms) ",
        );
        let rows = std::iter::once((batch, None)).chain(children.iter().map(|c| (c, Some(batch))));
        qb.push_values(rows.enumerate(), |mut b, (i, (id, parent))| {
            let child = parent.is_some();
            let phone = child.then(|| format!("acp-bench{i:012}"));
            b.push_bind(id.clone())
                .push_bind("root")
                .push_bind(invoke.clone())
                .push_bind(parent.cloned())
                .push_bind(if child { 2i64 } else { 1 })
                .push_bind("RebootInstance")
                .push_bind("Waiting")
                .push_bind(phone.clone().unwrap_or_default())
                .push_bind(phone)
                .push_bind(child.then(|| format!("cloudphone-{i}")))
                .push_bind(if child {
                    "{}"
                } else {
                    r#"{"AndroidInstanceIds":[]}"#
                })
                .push_bind("root")
                .push_bind(now)
                .push_bind((!child).then_some(children.len() as i64))
                .push_bind((!child).then_some(0i64))
                .push_bind((!child).then_some(0i64))
                .push_bind((!child).then_some(0i64))
                .push_bind((!child).then_some(0i64))
                .push_bind(if child { "queued" } else { "done" })
                .push_bind(now);
        });
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        qb.build().execute(&mut *tx).await?;
        tx.commit().await?;
    }
    let mut counts: std::collections::HashMap<&str, BatchCounts> = plan
        .iter()
        .map(|(b, cs)| (b.as_str(), BatchCounts::new(cs.len() as i64)))
        .collect();
    let tasks: Vec<(&str, &str)> = plan
        .iter()
        .flat_map(|(b, cs)| cs.iter().map(move |c| (c.as_str(), b.as_str())))
        .collect();
    for (from, to) in [
        (TaskStatus::Waiting, TaskStatus::Processing),
        (TaskStatus::Processing, TaskStatus::Finished),
    ] {
        for chunk in tasks.chunks(per_tx.max(1)) {
            let mut qb = QueryBuilder::<Sqlite>::new(if to == TaskStatus::Processing {
                "UPDATE tasks SET status = 'Processing', attempt = attempt + 1, owner = 'bench', \
                 lease_ms = 0, run_state = 'leased', prev_status = 'RUNNING' WHERE id IN ("
            } else {
                "UPDATE tasks SET status = 'Finished', result = '{\"Success\":true}', \
                 finish_ms = 0, run_state = 'done', lease_ms = NULL WHERE id IN ("
            });
            let mut list = qb.separated(", ");
            for (task, _) in chunk {
                list.push_bind(*task);
            }
            qb.push(")");
            let mut touched: Vec<&str> = Vec::new();
            for (_, batch) in chunk {
                let c = counts.get_mut(batch).context("unknown batch")?;
                *c = c.add(&BatchCounts::delta(from, to));
                if touched.last() != Some(batch) {
                    touched.push(batch);
                }
            }
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            qb.build().execute(&mut *tx).await?;
            for batch in touched {
                let c = counts[batch];
                let status = c.status();
                sqlx::query(
                    "UPDATE tasks SET c_waiting = ?, c_processing = ?, c_finished = ?, \
                     c_failed = ?, c_skipped = ?, status = ?, \
                     finish_ms = CASE WHEN ? THEN COALESCE(finish_ms, ?) ELSE NULL END \
                     WHERE id = ?",
                )
                .bind(c.waiting)
                .bind(c.processing)
                .bind(c.finished)
                .bind(c.failed)
                .bind(c.skipped)
                .bind(status.as_str())
                .bind(status.is_terminal())
                .bind(now)
                .bind(batch)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
    }
    let elapsed = started.elapsed();
    let unfinished: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tasks WHERE status != 'Finished' AND level IN (1, 2)",
    )
    .fetch_one(&pool)
    .await?;
    store.close().await;
    if unfinished != 0 {
        bail!("{unfinished} tasks did not end Finished in the set-based SQLite limit run");
    }
    Ok(elapsed)
}

/// A private PostgreSQL cluster (`scripts/pg-cluster`), stopped when dropped.
pub struct PgCluster {
    script: std::path::PathBuf,
    dir: std::path::PathBuf,
    pub admin_url: String,
}

impl PgCluster {
    pub fn start(script: &Path, dir: &Path) -> anyhow::Result<PgCluster> {
        let out = std::process::Command::new(script)
            .arg("start")
            .arg(dir)
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "pg-cluster start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let admin_url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(PgCluster {
            script: script.to_path_buf(),
            dir: dir.to_path_buf(),
            admin_url,
        })
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let out = std::process::Command::new("psql")
            .arg(&self.admin_url)
            .arg("-v")
            .arg("ON_ERROR_STOP=1")
            .arg("-q")
            .arg("-c")
            .arg(format!("DROP DATABASE IF EXISTS {name}"))
            .arg("-c")
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let base = self
            .admin_url
            .rsplit_once('/')
            .map_or(self.admin_url.as_str(), |(b, _)| b);
        Ok(format!("{base}/{name}"))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}
