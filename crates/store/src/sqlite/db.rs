//! The SQLite connections: a few reader threads that share one queue of read jobs, each with
//! its own connection, and one writer thread that owns the only write connection.
//!
//! Every store operation runs whole on one of these threads, as one job: its statements, row
//! decoding and transaction cost no hand-off per statement or per row between the async
//! runtime and a database thread (what sqlx's SQLite driver does, and what dominated the
//! profile of both the read and the write path).
//!
//! The writer commits in groups: it takes every write job waiting when it starts a
//! transaction, runs each inside its own savepoint (a job that fails is rolled back alone, as
//! if it had run in a transaction of its own), commits once, and only then answers the jobs. A
//! caller therefore learns of its write only once it is durable, and concurrent writers
//! (nonces of concurrent calls, claims, completions, heartbeats) share one commit. Writes of
//! other processes on the same file wait on SQLite's lock (`BEGIN IMMEDIATE`, busy timeout).
//!
//! Signature nonces are written to a second file the writer attaches ([`attach_nonces`]), so
//! that recording one does not empty the readers' page caches. No transaction writes both
//! files: nonce jobs and the others are committed in separate groups ([`File`]).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;
use tracing::{error, warn};

use crate::{Result, StoreError};

/// How long a connection waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader threads (each with a connection). Reads are CPU-bound: on 2 cores a third reader
/// measured no faster than two, only more contended.
const READERS: usize = 2;
/// Write jobs committed together at most.
const GROUP_MAX: usize = 512;
/// Page cache per connection, KiB (SQLite's default is 2 MiB): large enough that the hot
/// indexes of a 1M-task store stay in memory, small enough for the memory target (150 MB
/// with 1M tasks). Readers get twice the writer's: each copies from the OS what it misses.
const CACHE_KIB: i64 = 16 * 1024;
const READER_CACHE_KIB: i64 = 2 * CACHE_KIB;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// A write job runs in its own savepoint; it returns whether it succeeded and what to do once
/// the group's transaction has ended (committed, or not).
type WriteJob = Box<dyn FnOnce(WriteTurn<'_>) -> Answer + Send>;

/// Which file a write job writes. A transaction never writes both: SQLite commits attached
/// files one after the other, so a commit that failed on the second would leave the first's
/// writes kept while every job of the group was told it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum File {
    Main,
    Nonces,
}
type Answer = (
    bool,
    Box<dyn FnOnce(std::result::Result<(), &StoreError>) + Send>,
);

/// What a write job gets: the connection inside the group's transaction, or the reason the
/// transaction could not begin.
enum WriteTurn<'a> {
    Run(&'a Connection),
    Refused(&'a StoreError),
}

/// The queues of the reader and writer threads. Closing drops the senders: each thread runs
/// what is queued, sees its queue disconnected and ends; later calls fail at once.
#[derive(Debug)]
pub(crate) struct Db {
    readers: std::sync::Mutex<Option<flume::Sender<ReadJob>>>,
    writer: std::sync::Mutex<Option<flume::Sender<(File, WriteJob)>>>,
    threads: std::sync::Mutex<Vec<thread::JoinHandle<()>>>,
}

fn closed() -> StoreError {
    StoreError::Closed
}

/// Queues `job` on the queue behind `sender`, unless it was closed.
fn send<J>(sender: &std::sync::Mutex<Option<flume::Sender<J>>>, job: J) -> Result<()> {
    let sender = sender.lock().unwrap_or_else(|p| p.into_inner());
    match sender.as_ref() {
        Some(s) => s.send(job).map_err(|_| closed()),
        None => Err(closed()),
    }
}

impl Db {
    /// Opens the connections on `path`, whose schema must exist already (migrations ran).
    pub(super) fn open(path: &Path) -> Result<Db> {
        let (readers, read_jobs) = flume::unbounded::<ReadJob>();
        let (writer, write_jobs) = flume::unbounded::<(File, WriteJob)>();
        let mut threads = Vec::new();
        let conn = connect(path)?;
        attach_nonces(&conn, path)?;
        let nonce_wal = nonce_wal_path(path);
        threads.push(
            thread::Builder::new()
                .name("sqlite-writer".into())
                .spawn(move || write_loop(conn, write_jobs, nonce_wal))
                .map_err(StoreError::Thread)?,
        );
        for n in 0..READERS {
            let conn = connect(path)?;
            conn.pragma_update(None, "query_only", true)?;
            conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
            let jobs = read_jobs.clone();
            threads.push(
                thread::Builder::new()
                    .name(format!("sqlite-reader-{n}"))
                    .spawn(move || {
                        while let Ok(job) = jobs.recv() {
                            job(&conn);
                        }
                    })
                    .map_err(StoreError::Thread)?,
            );
        }
        Ok(Db {
            readers: std::sync::Mutex::new(Some(readers)),
            writer: std::sync::Mutex::new(Some(writer)),
            threads: std::sync::Mutex::new(threads),
        })
    }

    /// Runs `f` on a reader connection. `f` sees one snapshot if it asks for one
    /// ([`snapshot`]); otherwise each statement sees the latest commit.
    pub(crate) async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let out = catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|_| {
                error!("a store read panicked");
                Err(StoreError::Panicked)
            });
            // A job that failed in the middle of a snapshot leaves no transaction open.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            let _ = reply.send(out);
        });
        send(&self.readers, job)?;
        answer.await.map_err(|_| closed())?
    }

    /// Runs `f` in the writer's next group transaction, in a savepoint of its own; returns
    /// once the group has committed.
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        self.write_to(File::Main, f).await
    }

    /// [`Db::write`] for a job that writes only the nonce file (it may read the main file).
    pub(crate) async fn write_nonce<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        self.write_to(File::Nonces, f).await
    }

    async fn write_to<R, F>(&self, file: File, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: WriteJob = Box::new(move |turn| match turn {
            WriteTurn::Refused(e) => {
                let _ = reply.send(Err(e.shared()));
                (false, Box::new(|_| {}))
            }
            WriteTurn::Run(conn) => {
                let out = catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|_| {
                    error!("a store write panicked");
                    Err(StoreError::Panicked)
                });
                let ok = out.is_ok();
                (
                    ok,
                    Box::new(move |ended: std::result::Result<(), &StoreError>| {
                        let out = match (out, ended) {
                            (Ok(v), Ok(())) => Ok(v),
                            (Ok(_), Err(e)) => Err(e.shared()),
                            (Err(e), _) => Err(e),
                        };
                        let _ = reply.send(out);
                    }),
                )
            }
        });
        send(&self.writer, (file, job))?;
        answer.await.map_err(|_| closed())?
    }

    /// Lets the threads finish the jobs queued and waits for them to end (the writer runs
    /// `PRAGMA optimize` as it closes). Later calls fail with [`StoreError::Closed`].
    pub(super) fn close(&self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        drop(
            self.readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        drop(self.writer.lock().unwrap_or_else(|p| p.into_inner()).take());
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.close();
    }
}

/// A connection with the store's settings.
fn connect(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Without the query planner stability guarantee SQLite plans with the values bound: a
    // `LIMIT ?` (every page, every claim) or a `?` compared with a partial index's condition
    // marks the statement, and binding that parameter again expires it, so each run parsed
    // and planned the statement afresh (`sqlite3Reprepare` under `sqlite3_step`, the readers'
    // largest cost after the query itself). No plan of the store depends on a bound value.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

/// Where the signature nonces of the database at `path` live: `cloudphone.db` keeps them in
/// `cloudphone.nonces.db` beside it.
pub(super) fn nonces_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_stem().unwrap_or_default().to_owned();
    name.push(".nonces.db");
    path.with_file_name(name)
}

/// The WAL of the nonce file of the database at `path`.
fn nonce_wal_path(path: &Path) -> PathBuf {
    let mut wal = nonces_path(path).into_os_string();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Attaches the nonce file to the writer's connection as `nonce_store`, creating its table,
/// and moves in the nonces an older version kept in the main file.
///
/// Nonces live apart because every call records one: in WAL mode a reader that starts a
/// transaction after any commit to its file drops its whole page cache, so with the nonces in
/// the main file every DescribeTasks read its pages afresh from the OS (the profile showed the
/// readers in `pcache1TruncateUnsafe`, `pread` and malloc). A commit that writes only to the
/// attached file leaves the main file, and the readers' caches, as they were.
fn attach_nonces(conn: &Connection, path: &Path) -> Result<()> {
    let nonces = nonces_path(path);
    conn.execute(
        "ATTACH DATABASE ? AS nonce_store",
        [nonces.to_string_lossy().as_ref()],
    )?;
    conn.pragma_update(Some("nonce_store"), "journal_mode", "WAL")?;
    // NORMAL, with the writer syncing this file's WAL before each group of main-file writes
    // (`write_loop`): FULL would sync at every commit, on every read call's path.
    conn.pragma_update(Some("nonce_store"), "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS nonce_store.nonces (
             key_id     TEXT NOT NULL,
             nonce      TEXT NOT NULL,
             expires_ms INTEGER NOT NULL,
             PRIMARY KEY (key_id, nonce)
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS nonce_store.nonces_by_expiry
             ON nonces (expires_ms);",
    )?;
    move_old_nonces(conn, &nonce_wal_path(path))
}

/// Moves the nonces of migration 0008's `nonces_moved` into the nonce file, in two
/// transactions that each touch one file and check again under the write lock (another process
/// may be opening the same files): first the copy, committed and synced in the nonce file, then
/// the old table's drop in the main file. A crash between them leaves a copy made
/// already, which the next open repeats harmlessly.
fn move_old_nonces(conn: &Connection, nonce_wal: &Path) -> Result<()> {
    let pending = |conn: &Connection| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM main.sqlite_master WHERE name = 'nonces_moved')",
            [],
            |r| r.get(0),
        )
    };
    for (n, step) in [
        "INSERT OR IGNORE INTO nonce_store.nonces SELECT key_id, nonce, expires_ms \
         FROM main.nonces_moved",
        "DROP TABLE main.nonces_moved",
    ]
    .into_iter()
    .enumerate()
    {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let done = pending(conn).and_then(|p| if p { conn.execute_batch(step) } else { Ok(()) });
        match done {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
        if n == 0 {
            sync_file(nonce_wal).map_err(StoreError::Sync)?;
        }
    }
    Ok(())
}

/// Runs one of the transaction-control statements, prepared once per connection (they run
/// several times per job: parsing them each time showed in the profile).
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs `f` in one read transaction: every statement in it sees the same commit.
pub(crate) fn snapshot<R>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<R>,
) -> Result<R> {
    control(conn, "BEGIN")?;
    let out = f(conn);
    control(conn, if out.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    out
}

/// The writer: takes every job waiting (up to [`GROUP_MAX`]) and commits the nonce jobs in one
/// group and the others in another.
///
/// The nonce file commits with `synchronous=NORMAL`, like the main file, and is synced on its
/// own before the next group of main-file writes: a call's effects come after its nonce, so
/// whatever a power cut keeps of the main file, the nonces of the calls behind it are on disk
/// (two WAL files are not synced together). Reads, which write nothing else, pay no sync.
fn write_loop(conn: Connection, jobs: flume::Receiver<(File, WriteJob)>, nonce_wal: PathBuf) {
    let mut main: Vec<WriteJob> = Vec::with_capacity(GROUP_MAX);
    let mut nonces: Vec<WriteJob> = Vec::with_capacity(GROUP_MAX);
    let mut nonces_unsynced = false;
    while let Ok(first) = jobs.recv() {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some((file, job)) = next.take() {
            match file {
                File::Main => main.push(job),
                File::Nonces => nonces.push(job),
            }
            taken += 1;
            if taken < GROUP_MAX {
                next = jobs.try_recv().ok();
            }
        }
        // Nonces first: the calls waiting on them have their work still to do.
        if !nonces.is_empty() {
            run_group(&conn, &mut nonces);
            nonces_unsynced = true;
        }
        if main.is_empty() {
            continue;
        }
        if nonces_unsynced {
            match sync_file(&nonce_wal) {
                Ok(()) => nonces_unsynced = false,
                Err(e) => {
                    let e = StoreError::Sync(e);
                    error!(error = %e, jobs = main.len(), "refusing a group of writes");
                    for job in main.drain(..) {
                        let _ = job(WriteTurn::Refused(&e));
                    }
                    continue;
                }
            }
        }
        run_group(&conn, &mut main);
    }
    if let Err(e) = conn.execute_batch("PRAGMA optimize") {
        warn!(error = %e, "PRAGMA optimize at close failed");
    }
}

/// Flushes `path` to disk (a WAL file another handle wrote: the flush is of the file, not of
/// the handle). A file not there yet has nothing to flush.
fn sync_file(path: &Path) -> std::io::Result<()> {
    match std::fs::File::open(path) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs a group of write jobs in one transaction, each in a savepoint, then answers them.
///
/// Some failures (a full disk, an I/O error) make SQLite roll back the whole transaction, not
/// just the failing statement, and a savepoint that cannot be ended leaves the transaction in
/// an unknown state. Either way the group is abandoned: the transaction is rolled back, every
/// job that ran is answered with the error (none of its writes is kept) and the jobs not run
/// yet are refused; nothing runs outside the group's transaction.
fn run_group(conn: &Connection, group: &mut Vec<WriteJob>) {
    if let Err(e) = control(conn, "BEGIN IMMEDIATE") {
        let e = StoreError::from(e);
        warn!(error = %e, jobs = group.len(), "a write transaction could not begin");
        for job in group.drain(..) {
            let _ = job(WriteTurn::Refused(&e));
        }
        return;
    }
    let mut answers = Vec::with_capacity(group.len());
    let mut abandoned: Option<StoreError> = None;
    for job in group.drain(..) {
        if let Some(e) = &abandoned {
            let _ = job(WriteTurn::Refused(e));
            continue;
        }
        if let Err(e) = control(conn, "SAVEPOINT job") {
            let e = StoreError::from(e);
            let _ = job(WriteTurn::Refused(&e));
            abandoned = Some(e);
            continue;
        }
        let (ok, answer) = job(WriteTurn::Run(conn));
        answers.push(answer);
        let ended = if ok {
            control(conn, "RELEASE job")
        } else {
            control(conn, "ROLLBACK TO job").and_then(|()| control(conn, "RELEASE job"))
        };
        if let Err(e) = ended {
            abandoned = Some(e.into());
        } else if conn.is_autocommit() {
            abandoned = Some(StoreError::Shared {
                message: "the database rolled the write transaction back".into(),
                unavailable: false,
            });
        }
    }
    let ended = match abandoned {
        Some(e) => Err(e),
        None => control(conn, "COMMIT").map_err(StoreError::from),
    };
    if let Err(e) = &ended {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        error!(error = %e, jobs = answers.len(), "a group of writes failed and was rolled back");
    }
    for answer in answers {
        answer(ended.as_ref().map(|_| ()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Nonce;
    use std::sync::Arc;

    fn open_db() -> (tempfile::TempDir, Arc<Db>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)",
        )
        .unwrap();
        with_key(&conn);
        drop(conn);
        (dir, Arc::new(Db::open(&path).unwrap()))
    }

    /// The access key the nonce tests record nonces for, in tables shaped as the store's.
    fn with_key(conn: &Connection) {
        conn.execute_batch(
            "CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT, disabled INTEGER DEFAULT 0);
             CREATE TABLE access_keys (key_id TEXT PRIMARY KEY, secret TEXT, account_id TEXT,
                                       user_name TEXT, disabled INTEGER DEFAULT 0);
             INSERT INTO accounts (id, name) VALUES ('acc', 'acc');
             INSERT INTO access_keys (key_id, secret, account_id, user_name)
                 VALUES ('key', 's', 'acc', 'u');",
        )
        .unwrap();
    }

    fn key() -> cloudphone_core::resources::AccessKey {
        cloudphone_core::resources::AccessKey {
            key_id: "key".into(),
            secret: "s".into(),
            account_id: "acc".into(),
            user_name: "u".into(),
        }
    }

    fn count(conn: &Connection, sql: &str) -> Result<i64> {
        Ok(conn.query_row(sql, [], |r| r.get(0))?)
    }

    /// Recording a nonce commits to the nonce file only: another connection on the main file
    /// sees no change (its page cache stays valid), while a write to the main file is seen.
    #[tokio::test]
    async fn nonces_leave_the_main_file_unchanged() {
        use super::super::by_store::record_nonce as remember_nonce;
        let (dir, db) = open_db();
        let observer = Connection::open(dir.path().join("t.db")).unwrap();
        let version = || count(&observer, "PRAGMA data_version").unwrap();
        let before = version();
        let fresh = db
            .write_nonce(|c| remember_nonce(c, &key(), "n1", i64::MAX))
            .await
            .unwrap();
        let replay = db
            .write_nonce(|c| remember_nonce(c, &key(), "n1", i64::MAX))
            .await
            .unwrap();
        assert_eq!(
            (fresh, replay),
            (Nonce::Fresh, Nonce::Replay),
            "a nonce is accepted once"
        );
        assert_eq!(version(), before, "the main file did not change");
        assert!(dir.path().join("t.nonces.db").exists());
        db.write(|c| Ok(c.execute("INSERT INTO t (k, v) VALUES (1, 'x')", [])?))
            .await
            .unwrap();
        assert_ne!(version(), before, "a write to the main file is seen");
    }

    /// Nonces an older version kept in the main file are moved to the nonce file: a replay of
    /// one is still refused after the upgrade.
    #[tokio::test]
    async fn nonces_of_the_main_file_are_moved() {
        use super::super::by_store::record_nonce as remember_nonce;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE nonces_moved (key_id TEXT, nonce TEXT, expires_ms INTEGER);
             INSERT INTO nonces_moved VALUES ('key', 'seen', 9999999999999);",
        )
        .unwrap();
        with_key(&conn);
        drop(conn);
        let db = Db::open(&path).unwrap();
        let replay = db
            .write_nonce(|c| remember_nonce(c, &key(), "seen", i64::MAX))
            .await
            .unwrap();
        assert_eq!(replay, Nonce::Replay, "the moved nonce is still known");
        let left = db
            .read(|c| {
                count(
                    c,
                    "SELECT COUNT(*) FROM sqlite_master WHERE name = 'nonces_moved'",
                )
            })
            .await
            .unwrap();
        assert_eq!(left, 0, "the old table is gone");
    }

    /// Jobs that share a group commit: one that fails after a first write leaves nothing, one
    /// that panics leaves nothing and the writer goes on, and every other job is committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_job_in_a_group_is_rolled_back_alone() {
        let (_dir, db) = open_db();
        let mut jobs = Vec::new();
        for k in 0..300i64 {
            let db = db.clone();
            jobs.push(tokio::spawn(async move {
                db.write(move |c| {
                    c.execute("INSERT INTO t (k, v) VALUES (?, 'x')", [k])?;
                    match k % 3 {
                        // The second write of this job breaks the primary key: the first must go.
                        1 => {
                            c.execute("INSERT INTO t (k, v) VALUES (?, 'dup')", [k])?;
                        }
                        2 if k % 30 == 2 => panic!("job {k} panics"),
                        _ => {}
                    }
                    Ok(k)
                })
                .await
            }));
        }
        let mut ok = Vec::new();
        for job in jobs {
            if let Ok(k) = job.await.unwrap() {
                ok.push(k);
            }
        }
        let expected: Vec<i64> = (0..300).filter(|k| k % 3 != 1 && k % 30 != 2).collect();
        ok.sort();
        assert_eq!(ok, expected);
        let stored: Vec<i64> = db
            .read(|c| {
                let mut s = c.prepare("SELECT k FROM t ORDER BY k")?;
                let ks = s
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(ks)
            })
            .await
            .unwrap();
        assert_eq!(
            stored, expected,
            "exactly the jobs that succeeded are stored"
        );
        // The writer survived the panics.
        db.write(|c| Ok(c.execute("INSERT INTO t (k, v) VALUES (1000, 'after')", [])?))
            .await
            .unwrap();
        let n = db
            .read(|c| count(c, "SELECT COUNT(*) FROM t WHERE k = 1000"))
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    /// A job after which the group's transaction is gone (as when SQLite rolls a whole
    /// transaction back on a full disk; here the job does it itself) abandons the group: no job
    /// of it is answered Ok or keeps its writes, and the writer goes on with the next group.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_group_whose_transaction_is_lost_is_abandoned_whole() {
        let (_dir, db) = open_db();
        // Holds the writer so that the next three jobs wait together for one group.
        let (held, hold) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let db = db.clone();
            async move {
                db.write(move |_| {
                    let _ = hold.recv_timeout(std::time::Duration::from_secs(10));
                    Ok(())
                })
                .await
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let insert = |k: i64| {
            let db = db.clone();
            tokio::spawn(async move {
                db.write(move |c| Ok(c.execute("INSERT INTO t (k, v) VALUES (?, 'x')", [k])?))
                    .await
            })
        };
        let first = insert(1);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let lost = tokio::spawn({
            let db = db.clone();
            async move { db.write(|c| Ok(c.execute_batch("ROLLBACK")?)).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let last = insert(3);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        held.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        assert!(first.await.unwrap().is_err(), "its write was rolled back");
        assert!(lost.await.unwrap().is_err());
        assert!(
            last.await.unwrap().is_err(),
            "refused, not run outside the transaction"
        );
        let n = db
            .read(|c| count(c, "SELECT COUNT(*) FROM t"))
            .await
            .unwrap();
        assert_eq!(n, 0);
        db.write(|c| Ok(c.execute("INSERT INTO t (k, v) VALUES (4, 'y')", [])?))
            .await
            .unwrap();
        let n = db
            .read(|c| count(c, "SELECT COUNT(*) FROM t"))
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    /// A read sees one snapshot; a failed read leaves no transaction open on its reader.
    #[tokio::test]
    async fn snapshots_and_closing() {
        let (_dir, db) = open_db();
        db.write(|c| Ok(c.execute("INSERT INTO t (k, v) VALUES (1, 'a')", [])?))
            .await
            .unwrap();
        for _ in 0..(2 * READERS) {
            let failed = db
                .read(|c| snapshot(c, |c| count(c, "SELECT COUNT(*) FROM missing")))
                .await;
            assert!(failed.is_err());
        }
        for _ in 0..(2 * READERS) {
            assert!(db.read(|c| Ok(c.is_autocommit())).await.unwrap());
        }
        let n = db
            .read(|c| snapshot(c, |c| count(c, "SELECT COUNT(*) FROM t")))
            .await
            .unwrap();
        assert_eq!(n, 1);
        db.close();
        let late = db.read(|c| count(c, "SELECT COUNT(*) FROM t")).await;
        assert!(matches!(late, Err(StoreError::Closed)));
        assert!(late.unwrap_err().is_unavailable());
    }
}
