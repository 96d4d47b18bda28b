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

use super::report::Samples;
use super::server::{Server, ServerSpec};
use cloudphone_client::{Client, params, push_list};

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
        let body = client.call::<Value>("DescribeTasks", &unfinished).await?;
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
        let body = client.call::<Value>("DescribeTasks", &p).await?;
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
pub(crate) async fn provision(client: &Client, n: usize) -> anyhow::Result<Vec<String>> {
    let mut phones = Vec::with_capacity(n);
    let mut groups = 0;
    let mut left = n;
    while left > 0 {
        let k = left.min(100);
        let body = client
            .call::<Value>(
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
            .call::<Value>(
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
    let answer = client.call_raw("RebootAndroidInstancesInGroup", &p).await?;
    let body: Value = answer.result().context("RebootAndroidInstancesInGroup")?;
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
        let body = client.call::<Value>("DescribeTasks", &p).await?;
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

/// A fresh SQLite file with the store's schema (made by `SqliteStore::open`, then closed), and
/// one rusqlite connection on it with the store's pragmas (WAL, synchronous=NORMAL): the limits
/// run their statements in this process, with no thread hop, as tight as SQLite allows.
async fn limit_db(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let store = SqliteStore::open(path).await?;
    store.close().await;
    drop(store);
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -16 * 1024)?;
    // As the store's connections plan (crates/store/src/sqlite/db.rs, `connect`).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(conn)
}

/// Batch and child ids of the limits' runs.
fn limit_plan(batches: usize, per_batch: usize) -> Vec<(String, Vec<String>)> {
    (0..batches)
        .map(|_| {
            (
                ids::new_id(ids::TASK),
                (0..per_batch).map(|_| ids::new_id(ids::TASK)).collect(),
            )
        })
        .collect()
}

/// Every (child, batch) of a plan, in order.
fn limit_tasks(plan: &[(String, Vec<String>)]) -> Vec<(&str, &str)> {
    plan.iter()
        .flat_map(|(b, cs)| cs.iter().map(move |c| (c.as_str(), b.as_str())))
        .collect()
}

const LIMIT_INSERT: &str = "INSERT INTO tasks (id, account_id, invoke_id, parent_id, level, \
     task_type, status, resource_id, instance_id, instance_name, param, operator, start_ms, \
     finish_ms, c_waiting, c_processing, c_finished, c_failed, c_skipped, run_state, \
     not_before_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

const LIMIT_COUNTERS: &str = "UPDATE tasks SET c_waiting = ?, c_processing = ?, \
     c_finished = ?, c_failed = ?, c_skipped = ?, status = ?, \
     finish_ms = CASE WHEN ? THEN COALESCE(finish_ms, ?) ELSE NULL END WHERE id = ?";

/// Writes a batch's counters (and the status and finish time they give).
fn write_counters(
    tx: &rusqlite::Transaction<'_>,
    batch: &str,
    c: BatchCounts,
    now: i64,
) -> anyhow::Result<()> {
    let status = c.status();
    tx.prepare_cached(LIMIT_COUNTERS)?
        .execute(rusqlite::params![
            c.waiting,
            c.processing,
            c.finished,
            c.failed,
            c.skipped,
            status.as_str(),
            status.is_terminal(),
            now,
            batch
        ])?;
    Ok(())
}

fn unfinished(conn: &rusqlite::Connection) -> anyhow::Result<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM tasks WHERE status != 'Finished' AND level IN (1, 2)",
        [],
        |r| r.get(0),
    )?)
}

/// The limit: the same task rows written straight into a fresh SQLite file with the store's
/// schema and pragmas and the store's statements, one row at a time: each batch and its
/// children inserted in one transaction, then every task moved to Processing and then to
/// Finished with its batch's counters read and written, `per_tx` tasks per transaction.
/// Returns the time taken.
pub async fn sqlite_limit(
    dir: &Path,
    batches: usize,
    per_batch: usize,
    per_tx: usize,
) -> anyhow::Result<Duration> {
    let mut conn = limit_db(&dir.join("limit.db")).await?;
    let now = cloudphone_core::time::now_ms();
    let plan = limit_plan(batches, per_batch);
    let started = Instant::now();
    for (batch, children) in &plan {
        let invoke = ids::request_id();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(LIMIT_INSERT)?;
            let n = children.len() as i64;
            insert.execute(rusqlite::params![
                batch,
                "root",
                invoke,
                None::<&str>,
                1i64,
                "RebootInstance",
                "Waiting",
                "",
                None::<&str>,
                None::<&str>,
                r#"{"AndroidInstanceIds":[]}"#,
                "root",
                now,
                None::<i64>,
                n,
                0i64,
                0i64,
                0i64,
                0i64,
                "done",
                now
            ])?;
            for (i, child) in children.iter().enumerate() {
                let phone = format!("acp-bench{i:012}");
                insert.execute(rusqlite::params![
                    child,
                    "root",
                    invoke,
                    batch,
                    2i64,
                    "RebootInstance",
                    "Waiting",
                    phone,
                    phone,
                    format!("cloudphone-{i}"),
                    "{}",
                    "root",
                    now,
                    None::<i64>,
                    None::<i64>,
                    None::<i64>,
                    None::<i64>,
                    None::<i64>,
                    None::<i64>,
                    "queued",
                    now
                ])?;
            }
        }
        tx.commit()?;
    }
    let tasks = limit_tasks(&plan);
    for (from, to) in [
        (TaskStatus::Waiting, TaskStatus::Processing),
        (TaskStatus::Processing, TaskStatus::Finished),
    ] {
        for chunk in tasks.chunks(per_tx.max(1)) {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for (task, batch) in chunk {
                if to == TaskStatus::Processing {
                    tx.prepare_cached(
                        "UPDATE tasks SET status = 'Processing', attempt = attempt + 1, \
                         owner = ?, lease_ms = ?, run_state = 'leased', prev_status = ? \
                         WHERE id = ?",
                    )?
                    .execute(rusqlite::params![
                        "bench",
                        now + 15_000,
                        "RUNNING",
                        task
                    ])?;
                } else {
                    tx.prepare_cached(
                        "UPDATE tasks SET status = ?, result = ?, error_code = ?, \
                         error_msg = ?, finish_ms = ?, run_state = 'done', lease_ms = NULL \
                         WHERE id = ?",
                    )?
                    .execute(rusqlite::params![
                        "Finished",
                        r#"{"Success":true}"#,
                        None::<&str>,
                        None::<&str>,
                        now,
                        task
                    ])?;
                }
                // The batch's counters, read and written as the store does.
                let counts = tx
                    .prepare_cached(
                        "SELECT c_waiting, c_processing, c_finished, c_failed, c_skipped \
                         FROM tasks WHERE id = ? AND level = 1",
                    )?
                    .query_row([batch], |r| {
                        Ok(BatchCounts {
                            waiting: r.get(0)?,
                            processing: r.get(1)?,
                            finished: r.get(2)?,
                            failed: r.get(3)?,
                            skipped: r.get(4)?,
                        })
                    })?
                    .add(&BatchCounts::delta(from, to));
                write_counters(&tx, batch, counts, now)?;
            }
            tx.commit()?;
        }
    }
    let elapsed = started.elapsed();
    let left = unfinished(&conn)?;
    if left != 0 {
        bail!("{left} tasks did not end Finished in the SQLite limit run");
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
    use rusqlite::types::Value as V;
    let mut conn = limit_db(&dir.join("limit-set.db")).await?;
    let now = cloudphone_core::time::now_ms();
    let plan = limit_plan(batches, per_batch);
    let text = |s: &str| V::Text(s.to_string());
    let started = Instant::now();
    for (batch, children) in &plan {
        let invoke = ids::request_id();
        let mut sql = String::from(
            "INSERT INTO tasks (id, account_id, invoke_id, parent_id, level, task_type, status, \
             resource_id, instance_id, instance_name, param, operator, start_ms, c_waiting, \
             c_processing, c_finished, c_failed, c_skipped, run_state, not_before_ms) VALUES ",
        );
        let mut args: Vec<V> = Vec::new();
        let rows = std::iter::once((batch, None)).chain(children.iter().map(|c| (c, Some(batch))));
        for (i, (id, parent)) in rows.enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
            let child = parent.is_some();
            let phone = child.then(|| format!("acp-bench{i:012}"));
            let counter = |n: i64| if child { V::Null } else { V::Integer(n) };
            args.extend([
                text(id),
                text("root"),
                text(&invoke),
                parent.map_or(V::Null, |p| text(p)),
                V::Integer(if child { 2 } else { 1 }),
                text("RebootInstance"),
                text("Waiting"),
                text(phone.as_deref().unwrap_or_default()),
                phone.as_deref().map_or(V::Null, text),
                if child {
                    text(&format!("cloudphone-{i}"))
                } else {
                    V::Null
                },
                text(if child {
                    "{}"
                } else {
                    r#"{"AndroidInstanceIds":[]}"#
                }),
                text("root"),
                V::Integer(now),
                counter(children.len() as i64),
                counter(0),
                counter(0),
                counter(0),
                counter(0),
                text(if child { "queued" } else { "done" }),
                V::Integer(now),
            ]);
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(args.iter()))?;
        tx.commit()?;
    }
    let mut counts: std::collections::HashMap<&str, BatchCounts> = plan
        .iter()
        .map(|(b, cs)| (b.as_str(), BatchCounts::new(cs.len() as i64)))
        .collect();
    let tasks = limit_tasks(&plan);
    for (from, to) in [
        (TaskStatus::Waiting, TaskStatus::Processing),
        (TaskStatus::Processing, TaskStatus::Finished),
    ] {
        for chunk in tasks.chunks(per_tx.max(1)) {
            let mut sql = String::from(if to == TaskStatus::Processing {
                "UPDATE tasks SET status = 'Processing', attempt = attempt + 1, owner = 'bench', \
                 lease_ms = 0, run_state = 'leased', prev_status = 'RUNNING' WHERE id IN ("
            } else {
                "UPDATE tasks SET status = 'Finished', result = '{\"Success\":true}', \
                 finish_ms = 0, run_state = 'done', lease_ms = NULL WHERE id IN ("
            });
            for i in 0..chunk.len() {
                sql.push_str(if i == 0 { "?" } else { ", ?" });
            }
            sql.push(')');
            let mut touched: Vec<&str> = Vec::new();
            for (_, batch) in chunk {
                let c = counts.get_mut(batch).context("unknown batch")?;
                *c = c.add(&BatchCounts::delta(from, to));
                if touched.last() != Some(batch) {
                    touched.push(batch);
                }
            }
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.prepare_cached(&sql)?
                .execute(rusqlite::params_from_iter(chunk.iter().map(|(t, _)| *t)))?;
            for batch in touched {
                write_counters(&tx, batch, counts[batch], now)?;
            }
            tx.commit()?;
        }
    }
    let elapsed = started.elapsed();
    let left = unfinished(&conn)?;
    if left != 0 {
        bail!("{left} tasks did not end Finished in the set-based SQLite limit run");
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
