//! The read benchmark's data: a SQLite data dir with 10,000 phones and any number of tasks,
//! grown in steps (10k, 100k, 1M) while no server runs.
//!
//! Loading is setup, not what is measured, so rows are written with multi-row INSERTs in big
//! transactions straight into the file that `SqliteStore::open` created (schema and migrations
//! as the server has them). The rows look like the ones the API and the engine write: batches
//! (Level 1, `run_state` 'done', counters equal to their children's statuses, status and finish
//! time as `BatchCounts` gives them) over instance tasks (Level 2), an internal CreateInstance
//! task (Level 0) per phone, all of the root account, spread over the last 25 days.
//!
//! One deliberate difference: unfinished children (about 1% of batches are still running) are
//! loaded as tasks waiting for a retry a day from now (`not_before_ms`), the state the sweeper
//! leaves a task in after its lease expired. Otherwise the server's engine would start running
//! them against phones the simulator never created, and the read measurements would race a
//! burst of writes that no steady-state server has.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use cloudphone_core::{BatchCounts, TaskErrorCode, TaskStatus, TaskType, ids};
use cloudphone_store::SqliteStore;
use cloudphone_store::prelude::*;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sqlx::{Connection, QueryBuilder, Sqlite};

/// The account of the root key, which the benchmark signs with (`root_key::ROOT_ACCOUNT`).
pub const ACCOUNT: &str = "root";
const OPERATOR: &str = "root";
const REGION: &str = "cn-hangzhou";
const IMAGE: &str = "imgc-simandroid140000";
const SPEC: &str = "acp.basic.small";
const PHONES_PER_GROUP: usize = 100;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Tasks are spread over this span before now (inside the default 30-day retention).
const SPAN_MS: i64 = 25 * DAY_MS;
/// Rows per INSERT statement (28 columns each: below SQLite's 32,766 variables).
const ROWS_PER_INSERT: usize = 500;
/// Rows per transaction.
const ROWS_PER_TX: usize = 50_000;

/// One phone.
#[derive(Clone, Debug)]
pub struct Phone {
    pub id: String,
    pub name: String,
    pub group_id: String,
}

/// A batch, for picking ids to query.
#[derive(Clone, Debug)]
pub struct BatchRef {
    pub id: String,
    pub invoke_id: String,
}

/// A `tasks` row with every column the store writes.
#[derive(Clone, Debug)]
pub struct TaskRow {
    pub id: String,
    pub invoke_id: String,
    pub parent_id: Option<String>,
    pub level: i64,
    pub task_type: &'static str,
    pub status: TaskStatus,
    pub resource_id: String,
    pub instance_id: Option<String>,
    pub instance_name: Option<String>,
    pub param: String,
    pub result: Option<String>,
    pub error_code: Option<&'static str>,
    pub error_msg: Option<&'static str>,
    pub start_ms: i64,
    pub finish_ms: Option<i64>,
    pub counts: Option<BatchCounts>,
    pub attempt: i64,
    pub run_state: &'static str,
    pub not_before_ms: i64,
    pub prev_status: Option<&'static str>,
}

impl Default for TaskRow {
    fn default() -> Self {
        TaskRow {
            id: String::new(),
            invoke_id: String::new(),
            parent_id: None,
            level: 2,
            task_type: "",
            status: TaskStatus::Waiting,
            resource_id: String::new(),
            instance_id: None,
            instance_name: None,
            param: String::new(),
            result: None,
            error_code: None,
            error_msg: None,
            start_ms: 0,
            finish_ms: None,
            counts: None,
            attempt: 0,
            run_state: "queued",
            not_before_ms: 0,
            prev_status: None,
        }
    }
}

/// The generated data set and where it stands.
pub struct Dataset {
    pub phones: Vec<Phone>,
    pub batches: Vec<BatchRef>,
    /// Level 1 and 2 rows loaded so far (what DescribeTasks can list).
    pub rows: u64,
    final_rows: u64,
    now_ms: i64,
    rng: StdRng,
}

/// Where the time of one loading step went.
#[derive(Clone, Debug)]
pub struct LoadStats {
    pub rows: u64,
    pub elapsed: Duration,
    pub file_bytes: u64,
}

/// Task types with their weight (percent of batches) and the most phones one call may name.
const TYPES: &[(TaskType, u32, usize)] = &[
    (TaskType::RunCommand, 25, 50),
    (TaskType::RebootInstance, 15, 1000),
    (TaskType::StartInstance, 8, 1000),
    (TaskType::StopInstance, 8, 1000),
    (TaskType::ResetInstance, 4, 1000),
    (TaskType::InstallApp, 8, 100),
    (TaskType::UninstallApp, 3, 100),
    (TaskType::StartApp, 5, 100),
    (TaskType::StopApp, 3, 100),
    (TaskType::RestartApp, 2, 100),
    (TaskType::SendFile, 6, 100),
    (TaskType::FetchFile, 4, 100),
    (TaskType::Screenshot, 5, 100),
    (TaskType::BackupFile, 2, 100),
    (TaskType::RecoverFile, 1, 100),
    (TaskType::UpdateGroupImage, 1, 1000),
];

/// The 16 public task types.
pub fn public_types() -> Vec<TaskType> {
    TYPES.iter().map(|(t, _, _)| *t).collect()
}

impl Dataset {
    /// A data set of `phones` phones that will grow to `final_rows` tasks.
    pub fn new(phones: usize, final_rows: u64, seed: u64) -> Dataset {
        let mut rng = StdRng::seed_from_u64(seed);
        let groups = phones.div_ceil(PHONES_PER_GROUP);
        let mut list = Vec::with_capacity(phones);
        for g in 0..groups {
            let group_id = seeded_id(&mut rng, ids::GROUP);
            for n in 0..PHONES_PER_GROUP.min(phones - g * PHONES_PER_GROUP) {
                list.push(Phone {
                    id: seeded_id(&mut rng, ids::INSTANCE),
                    name: format!("cloudphone-{}", n + 1),
                    group_id: group_id.clone(),
                });
            }
        }
        Dataset {
            phones: list,
            batches: Vec::new(),
            rows: 0,
            final_rows: final_rows.max(1),
            now_ms: cloudphone_core::time::now_ms(),
            rng,
        }
    }

    /// Creates the data dir's database with the server's schema and loads the account, the
    /// groups, the phones and their provisioning tasks.
    pub async fn create(&mut self, data_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(data_dir)?;
        let store = SqliteStore::open(&data_dir.join("cloudphone.db"))
            .await
            .context("creating the database")?;
        store.ensure_account(ACCOUNT, ACCOUNT).await?;
        let created = self.now_ms - SPAN_MS - DAY_MS;
        let mut conn = store.pool().acquire().await?;
        let mut tx = conn.begin().await?;
        let mut groups: Vec<&str> = self.phones.iter().map(|p| p.group_id.as_str()).collect();
        groups.dedup();
        for chunk in groups.chunks(ROWS_PER_INSERT) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO instance_groups (id, account_id, name, region_id, image_id, spec, \
                 charge_type, tags, created_ms, modified_ms, deleting) ",
            );
            qb.push_values(chunk, |mut b, g| {
                b.push_bind(*g)
                    .push_bind(ACCOUNT)
                    .push_bind("")
                    .push_bind(REGION)
                    .push_bind(IMAGE)
                    .push_bind(SPEC)
                    .push_bind("PostPaid")
                    .push_bind("[]")
                    .push_bind(created)
                    .push_bind(created)
                    .push_bind(0i64);
            });
            qb.build().execute(&mut *tx).await?;
        }
        for chunk in self.phones.chunks(ROWS_PER_INSERT) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO instances (id, account_id, group_id, name, status, image_id, spec, \
                 region_id, up_bw, down_bw, created_ms, modified_ms) ",
            );
            qb.push_values(chunk, |mut b, p| {
                b.push_bind(p.id.as_str())
                    .push_bind(ACCOUNT)
                    .push_bind(p.group_id.as_str())
                    .push_bind(p.name.as_str())
                    .push_bind("RUNNING")
                    .push_bind(IMAGE)
                    .push_bind(SPEC)
                    .push_bind(REGION)
                    .push_bind(None::<i64>)
                    .push_bind(None::<i64>)
                    .push_bind(created)
                    .push_bind(created + 4000);
            });
            qb.build().execute(&mut *tx).await?;
        }
        // The provisioning task of each phone (Level 0: never listed, but in the table).
        let mut per_group: std::collections::HashMap<&str, String> = Default::default();
        let provisioning: Vec<TaskRow> = self
            .phones
            .iter()
            .map(|p| TaskRow {
                id: ids::new_id(ids::TASK),
                invoke_id: per_group
                    .entry(p.group_id.as_str())
                    .or_insert_with(ids::request_id)
                    .clone(),
                level: 0,
                task_type: TaskType::CreateInstance.as_str(),
                status: TaskStatus::Finished,
                resource_id: p.id.clone(),
                instance_id: Some(p.id.clone()),
                instance_name: Some(p.name.clone()),
                param: "{}".into(),
                result: Some(r#"{"Success":true}"#.into()),
                start_ms: created,
                finish_ms: Some(created + 4000),
                attempt: 1,
                run_state: "done",
                not_before_ms: created,
                prev_status: Some("CREATING"),
                ..TaskRow::default()
            })
            .collect();
        insert_tasks(&mut tx, &provisioning).await?;
        tx.commit().await?;
        drop(conn);
        store.close().await;
        Ok(())
    }

    /// Adds batches until `target` Level 1 and 2 rows are stored. The server must be stopped.
    pub async fn grow_to(&mut self, data_dir: &Path, target: u64) -> anyhow::Result<LoadStats> {
        let started = Instant::now();
        let path = data_dir.join("cloudphone.db");
        // Opened as the server opens it: the schema is checked, and closing runs the same
        // `PRAGMA optimize` that keeps the planner's statistics fresh.
        let store = SqliteStore::open(&path)
            .await
            .context("opening the database")?;
        let mut conn = store.pool().acquire().await?;
        // Setup only: no need to survive a power cut while loading.
        sqlx::query("PRAGMA synchronous = OFF")
            .execute(&mut *conn)
            .await?;
        sqlx::query("PRAGMA cache_size = -262144")
            .execute(&mut *conn)
            .await?;
        let mut pending: Vec<TaskRow> = Vec::with_capacity(ROWS_PER_TX + 1001);
        let before = self.rows;
        while self.rows < target {
            let remaining = target - self.rows;
            let rows = self.next_batch(remaining);
            self.rows += rows.len() as u64;
            pending.extend(rows);
            if pending.len() >= ROWS_PER_TX || self.rows >= target {
                let mut tx = conn.begin().await?;
                insert_tasks(&mut tx, &pending).await?;
                tx.commit().await?;
                pending.clear();
            }
        }
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await?;
        // Fresh planner statistics, sampled as the store's `PRAGMA optimize` samples them
        // (analysis_limit 400): what a server that has been running on this data would have.
        // Left alone, the statistics would be those of whatever size `PRAGMA optimize` last
        // looked at (it re-analyses only after the table grew 25-fold), an accident of loading.
        sqlx::query("PRAGMA analysis_limit = 400")
            .execute(&mut *conn)
            .await?;
        sqlx::query("ANALYZE").execute(&mut *conn).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *conn)
            .await?;
        drop(conn);
        store.close().await;
        let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok(LoadStats {
            rows: self.rows - before,
            elapsed: started.elapsed(),
            file_bytes,
        })
    }

    /// The rows of the next batch: the batch row first, then its children; at most `room` rows.
    fn next_batch(&mut self, room: u64) -> Vec<TaskRow> {
        let position = self.rows as f64 / self.final_rows as f64;
        let start_ms = self.now_ms - SPAN_MS
            + (position * SPAN_MS as f64) as i64
            + self.rng.random_range(0..1000);
        let far_future = self.now_ms + DAY_MS;
        let (rows, batch) = generate_batch(
            &mut self.rng,
            &self.phones,
            start_ms,
            far_future,
            usize::try_from(room.saturating_sub(1)).unwrap_or(usize::MAX),
        );
        self.batches.push(batch);
        rows
    }

    pub fn random_batch(&mut self) -> &BatchRef {
        let i = self.rng.random_range(0..self.batches.len());
        &self.batches[i]
    }

    pub fn random_phone(&mut self) -> &Phone {
        let i = self.rng.random_range(0..self.phones.len());
        &self.phones[i]
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }
}

/// An id of the vendor's shape from a seeded generator.
fn seeded_id(rng: &mut StdRng, prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut id = prefix.to_string();
    for _ in 0..16 {
        id.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    id
}

/// How many children: mostly 1-100 (log-uniform, so small batches are the most common), one
/// batch in ten 100-1,000.
fn batch_size(rng: &mut StdRng) -> usize {
    let u: f64 = rng.random();
    if rng.random_bool(0.9) {
        (100f64.powf(u)).floor().max(1.0) as usize
    } else {
        (100.0 * 10f64.powf(u)).floor().min(1000.0) as usize
    }
}

fn pick_type(rng: &mut StdRng, size: usize) -> TaskType {
    let mut roll = rng.random_range(0..100u32);
    for (t, weight, max) in TYPES {
        if roll < *weight {
            // A call of this type cannot name that many phones: the big ones are lifecycle calls.
            return if size <= *max {
                *t
            } else {
                TaskType::RebootInstance
            };
        }
        roll -= weight;
    }
    TaskType::RebootInstance
}

/// The batch's `Param` (the call's parameters) and each child's.
fn params(t: TaskType, phones: &[&Phone]) -> (String, String) {
    let ids: Vec<&str> = phones.iter().map(|p| p.id.as_str()).collect();
    match t {
        TaskType::RunCommand => (
            json!({"CommandContent": "getprop ro.build.version.release", "InstanceIds": ids, "Timeout": 60})
                .to_string(),
            json!({"CommandContent": "getprop ro.build.version.release", "Timeout": 60}).to_string(),
        ),
        TaskType::SendFile => (
            json!({"AndroidInstanceIdList": ids, "SourceFilePath": "oss://cloudphone-saved-bucket-cn-hangzhou-root/in/app.cfg",
                   "TargetFileName": "app.cfg", "AndroidPath": "/sdcard/Download", "UploadType": "OSS"}).to_string(),
            json!({"SourceFilePath": "oss://cloudphone-saved-bucket-cn-hangzhou-root/in/app.cfg",
                   "AndroidPath": "/sdcard/Download/app.cfg"}).to_string(),
        ),
        TaskType::FetchFile => (
            json!({"AndroidInstanceIdList": ids, "SourceFilePath": "/sdcard/Download/log.txt",
                   "UploadEndpoint": "oss-cn-hangzhou.aliyuncs.com", "UploadType": "OSS"}).to_string(),
            json!({"SourceFilePath": "/sdcard/Download/log.txt"}).to_string(),
        ),
        TaskType::InstallApp | TaskType::UninstallApp => (
            json!({"AppIdList": ["10234"], "InstanceIdList": ids}).to_string(),
            json!({"AppId": 10234, "PackageName": "com.example.app"}).to_string(),
        ),
        TaskType::StartApp | TaskType::StopApp | TaskType::RestartApp => (
            json!({"AppName": "com.example.app", "InstanceIdList": ids}).to_string(),
            json!({"PackageName": "com.example.app"}).to_string(),
        ),
        TaskType::Screenshot => (
            json!({"AndroidInstanceIdList": ids}).to_string(),
            json!({"ScreenshotId": "ss-1"}).to_string(),
        ),
        TaskType::BackupFile | TaskType::RecoverFile => (
            json!({"AndroidInstanceIdList": ids, "UploadEndpoint": "oss-cn-hangzhou.aliyuncs.com",
                   "SourceFilePathList": ["/sdcard/DCIM"], "UploadType": "OSS_BUCKET"}).to_string(),
            json!({"SourceFilePathList": ["/sdcard/DCIM"]}).to_string(),
        ),
        TaskType::UpdateGroupImage => (
            json!({"ImageId": "imgc-simandroid120000", "InstanceGroupIds": [phones.first().map(|p| p.group_id.as_str())]})
                .to_string(),
            json!({"ImageId": "imgc-simandroid120000"}).to_string(),
        ),
        _ => (json!({"AndroidInstanceIds": ids}).to_string(), "{}".into()),
    }
}

fn result_of(t: TaskType, phone: &Phone) -> String {
    match t {
        TaskType::RunCommand => json!({"Output": "14\n", "ExitCode": 0, "Truncated": false}).to_string(),
        TaskType::FetchFile => json!({
            "Url": format!("http://127.0.0.1:9723/files/cloudphone-saved-bucket-cn-hangzhou-root/out/{}/log.txt?expires=1&signature=00", phone.id),
            "OssPath": format!("oss://cloudphone-saved-bucket-cn-hangzhou-root/out/{}/log.txt", phone.id),
            "FileSize": 1024, "Md5": "0cc175b9c0f1b6a831c399e269772661"}).to_string(),
        _ => r#"{"Success":true}"#.to_string(),
    }
}

fn error_of(t: TaskType, rng: &mut StdRng) -> TaskErrorCode {
    match t {
        TaskType::RunCommand => TaskErrorCode::CommandTimeout,
        TaskType::SendFile => TaskErrorCode::DownloadFailed,
        TaskType::FetchFile => TaskErrorCode::FetchFileFailed,
        TaskType::InstallApp => TaskErrorCode::InstallAppFailed,
        TaskType::UninstallApp => TaskErrorCode::UninstallAppFailed,
        TaskType::StartApp | TaskType::StopApp | TaskType::RestartApp => {
            TaskErrorCode::OperateAppFailed
        }
        TaskType::Screenshot => TaskErrorCode::ScreenshotFailed,
        TaskType::BackupFile => TaskErrorCode::BackupFileFailed,
        TaskType::RecoverFile => TaskErrorCode::RecoverFileFailed,
        _ if rng.random_bool(0.5) => TaskErrorCode::IncorrectInstanceStatus,
        _ => TaskErrorCode::InstanceUnreachable,
    }
}

/// One batch and its children (at most `max_children`), with statuses drawn so that about 1%
/// of batches are still running and the finished ones are mostly Finished, some PartFinished,
/// Failed or Skipped. Returns the rows (batch first) and the batch's ids.
pub fn generate_batch(
    rng: &mut StdRng,
    phones: &[Phone],
    start_ms: i64,
    retry_at_ms: i64,
    max_children: usize,
) -> (Vec<TaskRow>, BatchRef) {
    let size = batch_size(rng).min(phones.len()).min(max_children);
    let task_type = pick_type(rng, size);
    let chosen: Vec<&Phone> = sample(rng, phones.len(), size)
        .into_iter()
        .map(|i| &phones[i])
        .collect();
    let (batch_param, child_param) = params(task_type, &chosen);
    let invoke_id = ids::request_id();
    let batch_id = ids::new_id(ids::TASK);

    #[derive(Clone, Copy)]
    enum Outcome {
        Running,
        AllWaiting,
        Finished,
        PartFinished,
        Failed,
        Skipped,
    }
    let roll: f64 = rng.random();
    let outcome = match roll {
        r if r < 0.003 => Outcome::AllWaiting,
        r if r < 0.010 => Outcome::Running,
        r if r < 0.910 => Outcome::Finished,
        r if r < 0.960 => Outcome::PartFinished,
        r if r < 0.990 => Outcome::Failed,
        _ => Outcome::Skipped,
    };
    let mut counts = BatchCounts::default();
    let mut children = Vec::with_capacity(size);
    for (n, phone) in chosen.iter().enumerate() {
        let status = match outcome {
            Outcome::AllWaiting => TaskStatus::Waiting,
            Outcome::Running if n == 0 => TaskStatus::Processing,
            Outcome::Running => match rng.random_range(0..100) {
                0..30 => TaskStatus::Finished,
                30..33 => TaskStatus::Failed,
                33..53 => TaskStatus::Processing,
                _ => TaskStatus::Waiting,
            },
            Outcome::Finished if rng.random_bool(0.03) => TaskStatus::Skipped,
            Outcome::Finished => TaskStatus::Finished,
            Outcome::PartFinished if n == 0 => TaskStatus::Finished,
            Outcome::PartFinished if n == 1 => TaskStatus::Failed,
            Outcome::PartFinished if rng.random_bool(0.2) => TaskStatus::Failed,
            Outcome::PartFinished => TaskStatus::Finished,
            Outcome::Failed => TaskStatus::Failed,
            Outcome::Skipped => TaskStatus::Skipped,
        };
        counts = counts.add(&BatchCounts::delta(TaskStatus::Waiting, status));
        counts.waiting += 1;
        let took = rng.random_range(500..60_000);
        let mut row = TaskRow {
            id: ids::new_id(ids::TASK),
            invoke_id: invoke_id.clone(),
            parent_id: Some(batch_id.clone()),
            level: 2,
            task_type: task_type.as_str(),
            status,
            resource_id: phone.id.clone(),
            instance_id: Some(phone.id.clone()),
            instance_name: Some(phone.name.clone()),
            param: child_param.clone(),
            start_ms,
            not_before_ms: start_ms,
            ..TaskRow::default()
        };
        match status {
            TaskStatus::Waiting => {
                row.run_state = "queued";
                row.not_before_ms = retry_at_ms;
            }
            TaskStatus::Processing => {
                row.run_state = "queued";
                row.attempt = 1;
                row.not_before_ms = retry_at_ms;
                row.prev_status = Some("RUNNING");
            }
            TaskStatus::Finished => {
                row.run_state = "done";
                row.attempt = 1;
                row.result = Some(result_of(task_type, phone));
                row.finish_ms = Some(start_ms + took);
                row.prev_status = Some("RUNNING");
            }
            TaskStatus::Failed => {
                let code = error_of(task_type, rng);
                row.run_state = "done";
                row.attempt = 1;
                row.error_code = Some(code.as_str());
                row.error_msg = Some(code.default_message());
                row.finish_ms = Some(start_ms + took);
                row.prev_status = Some("RUNNING");
            }
            TaskStatus::Skipped | TaskStatus::PartFinished => {
                row.run_state = "done";
                row.finish_ms = Some(start_ms + took / 100);
            }
        }
        children.push(row);
    }
    let status = counts.status();
    let finish_ms = status
        .is_terminal()
        .then(|| children.iter().filter_map(|c| c.finish_ms).max())
        .map(|f| f.unwrap_or(start_ms));
    let resource_id = match task_type {
        TaskType::UpdateGroupImage => chosen
            .first()
            .map(|p| p.group_id.clone())
            .unwrap_or_default(),
        _ => String::new(),
    };
    let batch = TaskRow {
        id: batch_id.clone(),
        invoke_id: invoke_id.clone(),
        parent_id: None,
        level: 1,
        task_type: task_type.as_str(),
        status,
        resource_id,
        param: batch_param,
        start_ms,
        finish_ms,
        counts: Some(counts),
        run_state: "done",
        not_before_ms: start_ms,
        ..TaskRow::default()
    };
    let mut rows = Vec::with_capacity(children.len() + 1);
    rows.push(batch);
    rows.extend(children);
    (
        rows,
        BatchRef {
            id: batch_id,
            invoke_id,
        },
    )
}

async fn insert_tasks(conn: &mut sqlx::SqliteConnection, rows: &[TaskRow]) -> anyhow::Result<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO tasks (id, account_id, invoke_id, parent_id, level, task_type, status, \
             resource_id, instance_id, instance_name, param, result, error_code, error_msg, \
             operator, start_ms, finish_ms, c_waiting, c_processing, c_finished, c_failed, \
             c_skipped, attempt, run_state, owner, lease_ms, not_before_ms, prev_status) ",
        );
        qb.push_values(chunk, |mut b, r| {
            let c = r.counts;
            b.push_bind(r.id.as_str())
                .push_bind(ACCOUNT)
                .push_bind(r.invoke_id.as_str())
                .push_bind(r.parent_id.as_deref())
                .push_bind(r.level)
                .push_bind(r.task_type)
                .push_bind(r.status.as_str())
                .push_bind(r.resource_id.as_str())
                .push_bind(r.instance_id.as_deref())
                .push_bind(r.instance_name.as_deref())
                .push_bind(r.param.as_str())
                .push_bind(r.result.as_deref())
                .push_bind(r.error_code)
                .push_bind(r.error_msg)
                .push_bind(OPERATOR)
                .push_bind(r.start_ms)
                .push_bind(r.finish_ms)
                .push_bind(c.map(|c| c.waiting))
                .push_bind(c.map(|c| c.processing))
                .push_bind(c.map(|c| c.finished))
                .push_bind(c.map(|c| c.failed))
                .push_bind(c.map(|c| c.skipped))
                .push_bind(r.attempt)
                .push_bind(r.run_state)
                .push_bind(None::<String>)
                .push_bind(None::<i64>)
                .push_bind(r.not_before_ms)
                .push_bind(r.prev_status);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_consistent_with_their_children() {
        let mut data = Dataset::new(300, 100_000, 7);
        assert_eq!(data.phones.len(), 300);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let (rows, batch) = generate_batch(&mut data.rng, &data.phones, 1_000, 9_000, 1000);
            let (head, children) = rows.split_first().unwrap();
            assert_eq!(head.id, batch.id);
            assert_eq!(head.level, 1);
            assert_eq!(head.run_state, "done");
            let mut counts = BatchCounts::default();
            let mut instances = std::collections::HashSet::new();
            for c in children {
                assert_eq!(c.level, 2);
                assert_eq!(c.parent_id.as_deref(), Some(batch.id.as_str()));
                assert_eq!(c.invoke_id, batch.invoke_id);
                assert_eq!(c.task_type, head.task_type);
                assert!(
                    instances.insert(c.instance_id.clone()),
                    "one task per phone"
                );
                assert_eq!(c.run_state == "done", c.status.is_terminal());
                assert_eq!(c.finish_ms.is_some(), c.status.is_terminal());
                assert_eq!(c.error_code.is_some(), c.status == TaskStatus::Failed);
                counts = counts.add(&BatchCounts::delta(TaskStatus::Waiting, c.status));
                counts.waiting += 1;
            }
            assert_eq!(head.counts, Some(counts));
            assert_eq!(head.status, counts.status());
            assert_eq!(head.finish_ms.is_some(), head.status.is_terminal());
            assert!(children.len() <= 1000);
            if head.task_type == "RunCommand" {
                assert!(children.len() <= 50);
            }
            seen.insert(head.status);
        }
        for s in TaskStatus::ALL {
            assert!(seen.contains(s), "no batch ended {s}");
        }
    }

    #[test]
    fn sizes_are_mostly_small_some_large() {
        let mut rng = StdRng::seed_from_u64(1);
        let sizes: Vec<usize> = (0..10_000).map(|_| batch_size(&mut rng)).collect();
        assert!(sizes.iter().all(|&s| (1..=1000).contains(&s)));
        let small = sizes.iter().filter(|&&s| s <= 100).count();
        assert!((8500..9600).contains(&small), "{small}");
        assert!(sizes.iter().any(|&s| s > 500));
    }

    #[test]
    fn every_public_type_has_a_weight() {
        let types = public_types();
        assert_eq!(types.len(), 16);
        assert!(types.iter().all(|t| t.is_public()));
        assert_eq!(TYPES.iter().map(|(_, w, _)| w).sum::<u32>(), 100);
    }
}
