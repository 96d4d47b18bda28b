//! `cloudphone-bench`: the benchmark of issue 6, in one run and one table. It measures the read
//! path (DescribeTasks over HTTP against the same statements run directly in SQLite, at growing
//! sizes, plus requests per second with wrk), the write path (one 1,000-phone call, end-to-end
//! throughput on SQLite and PostgreSQL, the raw SQLite limit), a Celery + Redis peer, and the
//! ADB gateway of issue 22 (stock `adb push` against a plain loopback copy, many `adb shell`
//! sessions and the server's memory), and writes the results as Markdown; `stream` measures
//! the live screens of issue 23 on their own. Every number comes from the real `cloudphone
//! serve` binary, started as a child process and called through the signed API (and, for the
//! gateway, Debian's stock `adb`; for the screens, the stream's WebSocket), as a user would.
//!
//! [`load`] makes the data, [`server`] runs the server, [`read`], [`write`], [`wrk`], [`peer`],
//! [`adb`] and [`stream`] measure, [`report`] writes the table; calls are signed by
//! [`cloudphone_client`].

mod adb;
mod adbhost;
mod cpu;
mod farm;
mod load;
mod peer;
mod proxy;
mod push;
mod read;
mod refadbd;
mod report;
mod server;
mod shells;
mod shellv2;
mod smart;
mod stream;
mod viewer;
mod write;
mod wrk;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use cloudphone_client::{Client, Credentials};
use load::Dataset;
use read::{Query, Shape};
use report::{Report, Table, Verdict, ms, rate, short_count, thousands};
use server::{Server, ServerSpec, fresh_dir};

/// Benchmark the read path, the write path, the SQLite limit and a Celery peer against a real
/// server started as a child process, and write one table (see bench/README.md; run it through
/// bench/run, which installs wrk, Redis and Celery).
#[derive(Parser)]
#[command(name = "cloudphone-bench", version)]
struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

fn main() -> anyhow::Result<()> {
    let args = BenchArgs::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // As `cloudphone` builds its runtime: the SQL columns' blocking work runs on the same
        // kind of pool as before the benchmark had a binary of its own.
        .max_blocking_threads(64)
        .build()
        .context("starting the async runtime")?
        .block_on(run(args))
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Everything: read path, write path, the SQLite limit, the Celery peer and the ADB
    /// gateway; one table.
    All(Options),
    /// The read path only: load, DescribeTasks over HTTP and in SQL at each size, wrk.
    Read(Options),
    /// The write path only: SQLite and PostgreSQL servers, the SQLite limit, the Celery peer.
    Write(Options),
    /// The ADB gateway only: `adb push` through it against a plain loopback copy, and many
    /// `adb shell` sessions held open with the server's memory (report: bench/results/adb-latest.md
    /// unless --out says otherwise).
    Adb(Options),
    /// The live screens only: one stream's frames and bytes a second, input to frame by the
    /// frame header, 20 viewers of 20 simulated phones with the server's CPU and memory, and
    /// 20 viewers of one phone beside a stalled one (report: bench/results/stream-latest.md
    /// unless --out says otherwise).
    Stream(StreamArgs),
    /// The phone farm (issue 24): three private Docker engines behind counting proxies, the
    /// idle server's Docker requests a second with 30 and with 300 phones, the time to place
    /// and start 300 phones, and an engine killed (report: bench/results/farm-latest.md unless
    /// --out says otherwise). Needs dockerd, docker, adb and busybox-static.
    Farm(FarmArgs),
}

#[derive(Args, Clone, Debug)]
struct FarmArgs {
    /// Server nodes: 1 (SQLite) or more over PostgreSQL (scripts/pg-cluster).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Phones per host (the hosts' max_phones); the big measurement fills all three hosts.
    #[arg(long, default_value_t = 100)]
    per_host: usize,
    /// Phones of the small idle measurement.
    #[arg(long, default_value_t = 30)]
    small: usize,
    /// Each idle window, seconds.
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// The test-adbd binary built into the phone image (default: beside this one).
    #[arg(long)]
    test_adbd: Option<PathBuf>,
    /// Keep the work dir (the servers' data dirs and logs, the engines' logs).
    #[arg(long)]
    keep: bool,
    /// Scratch space (default: a new directory of its own under the temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Where the Markdown report goes.
    #[arg(long, default_value = FARM_OUT)]
    out: PathBuf,
    /// The server binary (default: `cloudphone` beside this one, as cargo builds them).
    #[arg(long)]
    binary: Option<PathBuf>,
}

#[derive(Args, Clone, Debug)]
struct StreamArgs {
    /// How long the single stream is watched, seconds.
    #[arg(long, default_value_t = 10)]
    one_secs: u64,
    /// Taps timed from input to frame.
    #[arg(long, default_value_t = 200)]
    taps: usize,
    /// Phones watched at once, one viewer each.
    #[arg(long, default_value_t = 20)]
    phones: usize,
    /// Viewers of one phone in the fan-out, besides the stalled one.
    #[arg(long, default_value_t = 20)]
    fanout: usize,
    /// How long the many-phones and fan-out measurements watch, seconds.
    #[arg(long, default_value_t = 30)]
    window_secs: u64,
    /// The server's --stream-fps.
    #[arg(long, default_value_t = 20)]
    fps: u8,
    /// The server's --stream-max-size.
    #[arg(long, default_value_t = 1280)]
    max_size: u16,
    /// A small run for a smoke test: 3 s, 40 taps, 5 phones, 5 viewers, 5 s windows.
    #[arg(long)]
    quick: bool,
    /// Keep the work dir (the server's data dir and log) instead of removing it at the end.
    #[arg(long)]
    keep: bool,
    /// Scratch space (default: a new directory of its own under the temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Where the Markdown report goes.
    #[arg(long, default_value = STREAM_OUT)]
    out: PathBuf,
    /// The server binary (default: `cloudphone` beside this one, as cargo builds them).
    #[arg(long)]
    binary: Option<PathBuf>,
}

#[derive(Args, Clone, Debug)]
struct Options {
    /// Tasks (Levels 1 and 2) in the read benchmark's store at its largest size.
    #[arg(long, default_value_t = 1_000_000)]
    tasks: u64,
    /// Sizes to measure on the way up (those above --tasks are left out; --tasks always is).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    growth: Vec<u64>,
    /// Phones the read benchmark's tasks run on.
    #[arg(long, default_value_t = 10_000)]
    phones: usize,
    /// Measured DescribeTasks calls per shape (after the warm-up).
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Warm-up calls per shape (not timed; they also check the SQL against the API's totals).
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// MaxResults of every DescribeTasks call (100, the largest page, unless told).
    #[arg(long, default_value_t = 100)]
    page_size: usize,
    /// Pre-signed requests written for each wrk run (each may be sent once).
    #[arg(long, default_value_t = 300_000)]
    wrk_requests: u64,
    #[arg(long, default_value_t = 10)]
    wrk_seconds: u32,
    #[arg(long, default_value_t = 16)]
    wrk_connections: u32,
    #[arg(long, default_value_t = 2)]
    wrk_threads: u32,
    /// Phones the write benchmark creates through the API.
    #[arg(long, default_value_t = 10_000)]
    write_phones: usize,
    /// Phones in the single big call (the API allows 1,000 at most).
    #[arg(long, default_value_t = 1000)]
    big: usize,
    /// How many times the big call is made (each after the previous batch ended).
    #[arg(long, default_value_t = 10)]
    big_repeats: usize,
    /// End to end: this many RebootAndroidInstancesInGroup calls ...
    #[arg(long, default_value_t = 100)]
    calls: usize,
    /// ... of this many phones each.
    #[arg(long, default_value_t = 100)]
    per_call: usize,
    /// Client tasks submitting those calls at once.
    #[arg(long, default_value_t = 4)]
    submitters: usize,
    /// The write benchmark server's --concurrency.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Tasks per transaction in the raw SQLite limit.
    #[arg(long, default_value_t = 500)]
    limit_per_tx: usize,
    /// Processes of the Celery worker.
    #[arg(long, default_value_t = 2)]
    celery_concurrency: u32,
    #[arg(long)]
    skip_postgres: bool,
    #[arg(long)]
    skip_peer: bool,
    #[arg(long)]
    skip_wrk: bool,
    /// Leave the ADB gateway out of `all`.
    #[arg(long)]
    skip_adb: bool,
    /// The file `adb push` sends through the gateway (and the loopback copy beside it), MiB.
    #[arg(long, default_value_t = 200)]
    adb_push_mib: u64,
    /// Rounds of the copies (taking turns going first); the medians are reported.
    #[arg(long, default_value_t = 7)]
    adb_push_rounds: usize,
    /// `adb shell` sessions held open, on one phone and then on as many phones.
    #[arg(long, default_value_t = 200)]
    adb_shells: usize,
    /// How long the sessions are held open before they answer again and memory is read.
    #[arg(long, default_value_t = 2)]
    adb_hold_secs: u64,
    /// The stock adb client (Debian's `adb` package).
    #[arg(long, default_value = "/usr/bin/adb")]
    adb: PathBuf,
    /// The plain adbd the push is also compared with (default: `test-adbd` beside this binary,
    /// if there: `cargo build --release -p test-adbd`).
    #[arg(long)]
    test_adbd: Option<PathBuf>,
    /// Keep the work dir (data dirs, databases, logs) instead of removing it at the end.
    #[arg(long)]
    keep: bool,
    /// A small run for a smoke test: 20k tasks (10k, 20k), 200 calls per shape, 1,000 write
    /// tasks, short wrk runs, a 32 MiB push in 3 rounds and 50 shells.
    #[arg(long)]
    quick: bool,
    /// Scratch space: data dirs, the PostgreSQL cluster, Redis, request files (emptied first,
    /// removed at the end unless --keep). Default: a new directory of its own under the
    /// system's temporary directory for each run, so two runs never share one.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Where the Markdown report goes.
    #[arg(long, default_value = DEFAULT_OUT)]
    out: PathBuf,
    /// The server binary (default: `cloudphone` beside this one, as cargo builds them).
    #[arg(long)]
    binary: Option<PathBuf>,
    #[arg(long, default_value = "bench/.venv/bin/python")]
    python: PathBuf,
    #[arg(long, default_value = "bench/celery_peer.py")]
    celery_script: PathBuf,
    #[arg(long, default_value = "scripts/pg-cluster")]
    pg_cluster: PathBuf,
}

const DEFAULT_OUT: &str = "bench/results/latest.md";
const ADB_OUT: &str = "bench/results/adb-latest.md";
const STREAM_OUT: &str = "bench/results/stream-latest.md";
const FARM_OUT: &str = "bench/results/farm-latest.md";

impl Options {
    fn apply_quick(&mut self) {
        if !self.quick {
            return;
        }
        self.tasks = self.tasks.min(20_000);
        self.growth = vec![10_000];
        self.requests = self.requests.min(200);
        self.warmup = self.warmup.min(20);
        self.wrk_requests = self.wrk_requests.min(60_000);
        self.wrk_seconds = self.wrk_seconds.min(3);
        self.write_phones = self.write_phones.min(1000);
        self.big_repeats = self.big_repeats.min(3);
        self.calls = self.calls.min(10);
        self.adb_push_mib = self.adb_push_mib.min(32);
        self.adb_push_rounds = self.adb_push_rounds.min(3);
        self.adb_shells = self.adb_shells.min(50);
    }

    fn sizes(&self) -> Vec<u64> {
        let mut sizes: Vec<u64> = self
            .growth
            .iter()
            .copied()
            .filter(|&s| s > 0 && s < self.tasks)
            .chain([self.tasks])
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }
}

/// The server binary: `--binary`, else `cloudphone` beside this one.
fn server_binary(given: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(b) => Ok(b.clone()),
        None => Ok(std::env::current_exe()
            .context("finding this binary")?
            .with_file_name("cloudphone")),
    }
}

/// The run's scratch space: `--work-dir` emptied, else a new directory of its own.
fn work_dir(given: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(dir) => fresh_dir(dir),
        None => Ok(tempfile::Builder::new()
            .prefix("cloudphone-bench.")
            .tempdir()
            .context("creating the work dir")?
            .keep()),
    }
}

fn new_credentials() -> Credentials {
    Credentials {
        key_id: format!("LTAIbench{}", cloudphone_core::ids::secret(12)),
        secret: cloudphone_core::ids::secret(30),
    }
}

fn write_out(out: &Path, markdown: &str) -> anyhow::Result<()> {
    println!("{markdown}");
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, markdown).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("cloudphone-bench: report written to {}", out.display());
    Ok(())
}

/// `cloudphone-bench stream`: the live screens on a server of their own.
async fn stream_only(args: StreamArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let load_at_start = load_average();
    let work = work_dir(&args.work_dir)?;
    eprintln!("cloudphone-bench: work dir {}", work.display());
    let spec = ServerSpec {
        binary: server_binary(&args.binary)?,
        data_dir: work.join("stream"),
        database_url: None,
        sim_delay_ms: Some(0),
        concurrency: None,
        creds: new_credentials(),
        extra_args: Vec::new(),
    };
    let q = |full: u64, quick: u64| if args.quick { full.min(quick) } else { full };
    let opts = stream::StreamOptions {
        one_secs: q(args.one_secs, 3).max(1),
        taps: q(args.taps as u64, 40).max(1) as usize,
        phones: q(args.phones as u64, 5).max(1) as usize,
        fanout: q(args.fanout as u64, 5).max(1) as usize,
        window_secs: q(args.window_secs, 5).max(1),
        fps: args.fps.max(1),
        max_size: args.max_size,
    };
    let mut report = Report::default();
    match stream::run(&spec, &opts).await {
        Ok(r) => stream::write_report(&r, &opts, &mut report),
        Err(e) => {
            eprintln!("cloudphone-bench: live screens failed: {e:#}");
            report.line(
                "live screens",
                format!("failed: {}", format!("{e:#}").replace('|', "/")),
                "",
                Verdict::Miss,
            );
        }
    }
    let markdown = report.markdown(
        "cloudphone benchmark: live screens (issue 23)",
        &preamble(
            args.quick,
            Parts {
                read: false,
                adb: false,
            },
            started.elapsed().as_secs_f64(),
            &load_at_start,
        ),
    );
    write_out(&args.out, &markdown)?;
    if !args.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}

/// `cloudphone-bench farm`: the phone farm on three private engines.
async fn farm_only(args: FarmArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let load_at_start = load_average();
    let work = work_dir(&args.work_dir)?;
    eprintln!("cloudphone-bench: work dir {}", work.display());
    let spec = ServerSpec {
        binary: server_binary(&args.binary)?,
        data_dir: work.join("node-0"),
        database_url: None,
        sim_delay_ms: None,
        concurrency: None,
        creds: new_credentials(),
        extra_args: Vec::new(),
    };
    let opts = farm::FarmOptions {
        repo: Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("the repository")?
            .to_path_buf(),
        test_adbd: args
            .test_adbd
            .clone()
            .or_else(refadbd::beside_us)
            .context("no test-adbd beside cloudphone-bench (cargo build --release -p test-adbd), and no --test-adbd")?,
        adb: PathBuf::from("adb"),
        per_host: args.per_host.clamp(1, 100),
        small: args.small.max(1),
        idle_secs: args.idle_secs.max(1),
        nodes: args.nodes.max(1),
    };
    let mut report = Report::default();
    match farm::run(&spec, &work, &opts).await {
        Ok(r) => farm::write_report(&r, &opts, &mut report),
        Err(e) => {
            eprintln!("cloudphone-bench: the farm failed: {e:#}");
            report.line(
                "phone farm",
                format!("failed: {}", format!("{e:#}").replace('|', "/")),
                "",
                Verdict::Miss,
            );
        }
    }
    let markdown = report.markdown(
        "cloudphone benchmark: a phone farm on three Docker engines (issue 24)",
        &preamble(
            false,
            Parts {
                read: false,
                adb: false,
            },
            started.elapsed().as_secs_f64(),
            &load_at_start,
        ),
    );
    write_out(&args.out, &markdown)?;
    if !args.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}

async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (mut opts, read, write, adb_only) = match args.command {
        BenchCommand::All(o) => (o, true, true, false),
        BenchCommand::Read(o) => (o, true, false, false),
        BenchCommand::Write(o) => (o, false, true, false),
        BenchCommand::Adb(o) => (o, false, false, true),
        BenchCommand::Stream(s) => return stream_only(s).await,
        BenchCommand::Farm(f) => return farm_only(f).await,
    };
    let adb = adb_only || (read && write && !opts.skip_adb);
    if adb_only && opts.out == Path::new(DEFAULT_OUT) {
        // `adb` alone must not replace the full run's report.
        opts.out = PathBuf::from(ADB_OUT);
    }
    opts.apply_quick();
    let started = Instant::now();
    let load_at_start = load_average();
    let binary = server_binary(&opts.binary)?;
    let work = work_dir(&opts.work_dir)?;
    eprintln!("cloudphone-bench: work dir {}", work.display());
    let creds = new_credentials();
    let mut bench = Bench {
        opts: opts.clone(),
        binary,
        work: work.clone(),
        creds,
        report: Report::default(),
        timings: Table::new(
            "Where the time went",
            &["phase", "seconds", "load average (1, 5, 15 min) at its end"],
        ),
    };
    if read {
        let t = Instant::now();
        if let Err(e) = bench.read_path().await {
            bench.failed("read path", &e);
        }
        bench.timed("read path, all sizes", t);
    }
    if write {
        bench.write_path().await;
    }
    if adb {
        let t = Instant::now();
        if let Err(e) = bench.adb_gateway().await {
            bench.failed("ADB gateway", &e);
        }
        bench.timed("ADB gateway", t);
    }
    bench.timed("whole run", started);
    let Bench {
        report, timings, ..
    } = &mut bench;
    report.tables.push(timings.clone());
    let markdown = report.markdown(
        if adb_only {
            "cloudphone benchmark: the ADB gateway (issue 22)"
        } else {
            "cloudphone benchmark (issue 6)"
        },
        &preamble(
            opts.quick,
            Parts { read, adb },
            started.elapsed().as_secs_f64(),
            &load_at_start,
        ),
    );
    write_out(&opts.out, &markdown)?;
    if !opts.keep {
        // The 1M-task database alone takes about 1 GB.
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}

struct Bench {
    opts: Options,
    binary: PathBuf,
    work: PathBuf,
    creds: Credentials,
    report: Report,
    timings: Table,
}

/// One cell of the write table, from one server's results.
type Cell = Box<dyn Fn(&write::WriteResult) -> String>;

/// The issue's targets.
const P99_TARGET_MS: f64 = 5.0;
const SQL_RATIO_TARGET: f64 = 3.0;
const RPS_TARGET: f64 = 10_000.0;
/// The API's page size when a call sets no `MaxResults`.
const DEFAULT_PAGE: usize = 10;
/// Threads of the SQL limit of a wrk run: as many as the server's SQLite readers.
const SQL_THREADS: usize = 2;
const BIG_CALL_TARGET_MS: f64 = 50.0;
const E2E_TARGET: f64 = 20_000.0;
const PEER_RATIO_TARGET: f64 = 30.0;
const RSS_TARGET_MB: f64 = 150.0;

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl Bench {
    fn failed(&mut self, what: &str, e: &anyhow::Error) {
        eprintln!("cloudphone-bench: {what} failed: {e:#}");
        self.report.line(
            what,
            format!("failed: {}", format!("{e:#}").replace('|', "/")),
            "",
            Verdict::Miss,
        );
    }

    fn timed(&mut self, phase: &str, since: Instant) {
        let secs = since.elapsed().as_secs_f64();
        let load = load_average();
        eprintln!("cloudphone-bench: {phase}: {secs:.1} s (load average {load})");
        self.timings
            .row(vec![phase.to_string(), format!("{secs:.1}"), load]);
    }

    fn spec(&self, data_dir: PathBuf) -> ServerSpec {
        ServerSpec {
            binary: self.binary.clone(),
            data_dir,
            database_url: None,
            sim_delay_ms: None,
            concurrency: None,
            creds: self.creds.clone(),
            extra_args: Vec::new(),
        }
    }

    async fn read_path(&mut self) -> anyhow::Result<()> {
        let opts = self.opts.clone();
        let data_dir = self.work.join("read");
        let db = data_dir.join("cloudphone.db");
        let sizes = opts.sizes();
        let mut data = Dataset::new(opts.phones, opts.tasks, 42);
        let t = Instant::now();
        data.create(&data_dir).await?;
        self.timed("create the read data dir (phones)", t);

        let mut growth = Table::new(
            "Growth: DescribeTasks p99 over HTTP (SQL p99) at each size",
            &["shape"],
        );
        growth
            .header
            .extend(sizes.iter().map(|s| format!("{} tasks", short_count(*s))));
        let mut growth_rows: Vec<Vec<String>> = Shape::ALL
            .iter()
            .map(|s| vec![s.name().to_string()])
            .collect();
        let mut rss_row = vec!["server peak RSS (VmHWM)".to_string()];
        let mut load_row = vec!["load time, file size".to_string()];
        let largest = *sizes.last().unwrap_or(&opts.tasks);

        for &size in &sizes {
            let t = Instant::now();
            let stats = data.grow_to(&data_dir, size).await?;
            self.timed(&format!("load to {}", short_count(size)), t);
            load_row.push(format!(
                "+{} rows in {:.1} s, {:.0} MB",
                thousands(stats.rows),
                stats.elapsed.as_secs_f64(),
                mb(stats.file_bytes)
            ));

            let t = Instant::now();
            let server = Server::start(&self.spec(data_dir.clone())).await?;
            let client = Client::new(&server.address, self.creds.clone())?;
            read::wait_ready(&client).await?;
            self.timed(&format!("start the server at {}", short_count(size)), t);
            let pool = read::SqlLimit::open(&db)?;

            let mut table = Table::new(
                &format!(
                    "DescribeTasks at {} tasks (MaxResults={}, {} calls per shape after {} warm-up)",
                    thousands(size),
                    opts.page_size,
                    thousands(opts.requests as u64),
                    opts.warmup
                ),
                &[
                    "shape",
                    "HTTP p50",
                    "HTTP p99",
                    "SQL p50",
                    "SQL p99",
                    "HTTP p99 / SQL p99",
                    "mean TotalCount",
                ],
            );
            let mut plans = String::new();
            for (i, &shape) in Shape::ALL.iter().enumerate() {
                let t = Instant::now();
                let r = read::measure_shape(
                    shape,
                    &mut data,
                    &client,
                    &pool,
                    opts.warmup,
                    opts.requests,
                    opts.page_size,
                )
                .await
                .with_context(|| format!("measuring {} at {size}", shape.name()))?;
                self.timed(&format!("{} at {}", shape.name(), short_count(size)), t);
                let ratio = r.http.p99() / r.sql.p99();
                table.row(vec![
                    shape.name().to_string(),
                    ms(r.http.p50()),
                    ms(r.http.p99()),
                    ms(r.sql.p50()),
                    ms(r.sql.p99()),
                    format!("{ratio:.1}x"),
                    thousands(r.mean_total.round() as u64),
                ]);
                growth_rows[i].push(format!("{} ({})", ms(r.http.p99()), ms(r.sql.p99())));
                if r.mismatches > 0 {
                    table.note.push_str(&format!(
                        "{}: {} warm-up answers had a TotalCount other than the SQL count. ",
                        shape.name(),
                        r.mismatches
                    ));
                }
                plans.push_str(&format!("{}\n{}\n", shape.name(), r.plan));
                if size == largest {
                    let pass = r.http.p99() <= P99_TARGET_MS && ratio <= SQL_RATIO_TARGET;
                    self.report.line(
                        &format!(
                            "DescribeTasks p99, {}, {} tasks",
                            shape.name(),
                            short_count(size)
                        ),
                        format!(
                            "{} (p50 {}; SQL p99 {}, {ratio:.1}x)",
                            ms(r.http.p99()),
                            ms(r.http.p50()),
                            ms(r.sql.p99())
                        ),
                        "<= 5 ms and <= 3x SQL",
                        Verdict::of(pass),
                    );
                }
            }
            if size == largest && !opts.skip_wrk {
                let t = Instant::now();
                if let Err(e) = self.wrk_runs(&mut data, &server.address, &db).await {
                    self.failed("wrk", &e);
                }
                self.timed("wrk (signing the request files and both runs)", t);
            }
            drop(pool);
            let rss = server.peak_rss().unwrap_or(0);
            server.stop().await?;
            rss_row.push(format!("{:.0} MB", mb(rss)));
            if size == largest {
                self.report.line(
                    &format!("server peak RSS with {} tasks", short_count(size)),
                    format!("{:.0} MB", mb(rss)),
                    "<= 150 MB",
                    Verdict::of(mb(rss) <= RSS_TARGET_MB),
                );
                self.report.sections.push((
                    format!(
                        "Query plans at {} tasks (EXPLAIN QUERY PLAN)",
                        thousands(size)
                    ),
                    format!("```\n{plans}```"),
                ));
            }
            self.report.tables.push(table);
        }
        for row in growth_rows {
            growth.row(row);
        }
        growth.row(rss_row);
        growth.row(load_row);
        growth.note = "Each size is measured on a server started afresh after loading; peak RSS \
                       is read after that size's measurements (at the largest size, after wrk)."
            .into();
        self.report.tables.push(growth);
        Ok(())
    }

    /// The wrk runs at 16 connections: every shape but the NextToken walk (whose tokens depend
    /// on the previous answer), and the polling shapes alone; each with the benchmark's page size
    /// and with the API's default page (what a client that sets no `MaxResults` gets). After
    /// each run, its own calls answered by the store's SQL alone on as many threads as the
    /// server has readers: the limit of that run.
    async fn wrk_runs(
        &mut self,
        data: &mut Dataset,
        address: &str,
        db: &std::path::Path,
    ) -> anyhow::Result<()> {
        let opts = self.opts.clone();
        let mixes: [(&str, &[Shape]); 2] = [
            (
                "six shapes mixed (all but NextToken)",
                &[
                    Shape::InvokeId,
                    Shape::ParentTaskId,
                    Shape::InstanceId,
                    Shape::Processing,
                    Shape::TypeLevel1,
                    Shape::NoFilter,
                ],
            ),
            (
                "polling shapes (InvokeId, ParentTaskId, InstanceId)",
                &[Shape::InvokeId, Shape::ParentTaskId, Shape::InstanceId],
            ),
        ];
        let mut page_sizes = vec![opts.page_size];
        if opts.page_size != DEFAULT_PAGE {
            page_sizes.push(DEFAULT_PAGE);
        }
        let mut table = Table::new(
            &format!(
                "Requests per second: wrk -t{} -c{} -d{}s, pre-signed DescribeTasks; the limit: the same calls' SQL alone on {SQL_THREADS} threads",
                opts.wrk_threads, opts.wrk_connections, opts.wrk_seconds
            ),
            &[
                "mix",
                "MaxResults",
                "requests/s",
                "SQL alone, pages/s",
                "HTTP / SQL",
                "requests",
                "non-2xx",
                "socket errors",
                "wrk p50",
                "wrk p99",
                "sample line",
            ],
        );
        for &page_size in &page_sizes {
            for (name, shapes) in mixes {
                let file = self.work.join("presigned.txt");
                let date = cloudphone_client::date_now();
                let host = address.to_string();
                let creds = self.creds.clone();
                let queries: Vec<Query> = (0..opts.wrk_requests)
                    .map(|i| Query::pick(shapes[i as usize % shapes.len()], data))
                    .collect();
                let calls = queries.iter().map(|q| {
                    cloudphone_client::sign(
                        &creds,
                        &host,
                        "DescribeTasks",
                        &q.params(page_size, None),
                        &date,
                        &cloudphone_client::nonce(),
                    )
                });
                let last = wrk::write_file(&file, calls)?;
                // The file's last line, sent as wrk's script would build it, must be answered 200.
                let sample = wrk::send_raw(address, &wrk::raw_request(&last)).await?;
                let (r, _out) = wrk::run(
                    address,
                    &self.work,
                    &file,
                    opts.wrk_threads,
                    opts.wrk_connections,
                    opts.wrk_seconds,
                )
                .await?;
                let _ = std::fs::remove_file(&file);
                // Only the calls wrk sent, so that the SQL answers the same mix of ids.
                let sent = (r.requests as usize).clamp(1, queries.len());
                let db = db.to_path_buf();
                let seconds = f64::from(opts.wrk_seconds);
                let sql = tokio::task::spawn_blocking(move || {
                    read::sql_rate(&db, &queries[..sent], page_size, SQL_THREADS, seconds)
                })
                .await??;
                let pass =
                    r.rps() >= RPS_TARGET && r.non2xx == 0 && r.socket_errors == 0 && sample == 200;
                self.report.line(
                    &format!(
                        "DescribeTasks requests/s, {} connections, {name}, MaxResults={page_size}",
                        opts.wrk_connections
                    ),
                    format!(
                        "{} ({} non-2xx, {} socket errors; SQL alone {}, {:.1}x)",
                        rate(r.rps()),
                        thousands(r.non2xx),
                        thousands(r.socket_errors),
                        rate(sql),
                        sql / r.rps().max(1e-9)
                    ),
                    ">= 10,000, all 2xx",
                    Verdict::of(pass),
                );
                table.row(vec![
                    name.to_string(),
                    page_size.to_string(),
                    rate(r.rps()),
                    rate(sql),
                    format!("{:.1}x", sql / r.rps().max(1e-9)),
                    thousands(r.requests),
                    thousands(r.non2xx),
                    thousands(r.socket_errors),
                    ms(r.p50_ms),
                    ms(r.p99_ms),
                    format!("HTTP {sample}"),
                ]);
            }
        }
        table.note = format!(
            "Each request carries its own nonce, so each line of the request file can be sent \
             once; a run that used them all up would show replays as non-2xx. The sample line is \
             the file's last one, sent as the Lua script builds it. \"SQL alone\" runs the calls \
             wrk sent (their count and statements, every column of every row read, as in the \
             latency tables) on {SQL_THREADS} threads in this process, each with its own read-only \
             connection, for as long as wrk ran, with the server up and idle: as many pages a \
             second as SQLite gives with nothing else to do, the ceiling of the server's two \
             reader threads on these cores. `HTTP / SQL` is how far below it the server stays."
        );
        self.report.tables.push(table);
        Ok(())
    }

    /// The ADB gateway on a server of its own (see [`adb`]).
    async fn adb_gateway(&mut self) -> anyhow::Result<()> {
        let opts = adb::AdbOptions {
            adb: self.opts.adb.clone(),
            reference: self.opts.test_adbd.clone().or_else(refadbd::beside_us),
            push_bytes: self.opts.adb_push_mib << 20,
            rounds: self.opts.adb_push_rounds.max(1),
            shells: self.opts.adb_shells.max(1),
            hold: std::time::Duration::from_secs(self.opts.adb_hold_secs),
        };
        let work = fresh_dir(&self.work.join("adb"))?;
        let spec = self.spec(work.join("server"));
        let result = adb::run(&spec, &work, &opts).await;
        // 200 MiB files: gone whatever happened (unless --keep, for the logs).
        if !self.opts.keep {
            let _ = std::fs::remove_dir_all(&work);
        }
        adb::write_report(&result?, &opts, &mut self.report);
        Ok(())
    }

    async fn write_path(&mut self) {
        let opts = self.opts.clone();
        let wopts = write::WriteOptions {
            phones: opts.write_phones,
            big: opts.big.min(opts.write_phones),
            big_repeats: opts.big_repeats,
            calls: opts.calls,
            per_call: opts.per_call,
            submitters: opts.submitters,
        };
        let tasks = (opts.calls * opts.per_call).min(opts.write_phones) as u64;
        let mut table = Table::new(
            &format!(
                "Write path: --sim-delay-ms 0 --concurrency {}, {} phones",
                opts.concurrency,
                thousands(opts.write_phones as u64)
            ),
            &["measurement", "SQLite", "PostgreSQL"],
        );
        let mut results: Vec<Option<write::WriteResult>> = Vec::new();
        for pg in [false, true] {
            let label = if pg { "PostgreSQL" } else { "SQLite" };
            if pg && opts.skip_postgres {
                results.push(None);
                continue;
            }
            let t = Instant::now();
            let outcome = self.write_server(pg, &wopts).await;
            self.timed(&format!("write path on {label}"), t);
            match outcome {
                Ok(r) => results.push(Some(r)),
                Err(e) => {
                    self.failed(&format!("write path on {label}"), &e);
                    results.push(None);
                }
            }
        }
        let cell = |f: &dyn Fn(&write::WriteResult) -> String, r: &Option<write::WriteResult>| {
            r.as_ref().map_or("-".to_string(), f)
        };
        let rows: Vec<(String, Cell)> = vec![
            (
                format!(
                    "create {} phones, until all RUNNING",
                    thousands(opts.write_phones as u64)
                ),
                Box::new(|r| format!("{:.1} s", r.provision.as_secs_f64())),
            ),
            (
                format!(
                    "one {}-phone call returns: p50 / max of {}",
                    wopts.big, opts.big_repeats
                ),
                Box::new(|r| format!("{} / {}", ms(r.big_calls.p50()), ms(r.big_calls.max_ms()))),
            ),
            (
                format!(
                    "{} tasks as {} calls of {} ({} submitters): first call to last task terminal",
                    thousands(tasks),
                    opts.calls,
                    opts.per_call,
                    opts.submitters
                ),
                Box::new(|r| format!("{:.2} s", r.e2e.as_secs_f64())),
            ),
            (
                "end-to-end throughput".into(),
                Box::new(|r| format!("{} tasks/s", rate(r.tasks_per_s()))),
            ),
            (
                "children Finished / Failed".into(),
                Box::new(|r| {
                    format!(
                        "{} / {}",
                        thousands(r.finished as u64),
                        thousands(r.failed as u64)
                    )
                }),
            ),
            (
                "server peak RSS".into(),
                Box::new(|r| format!("{:.0} MB", mb(r.peak_rss))),
            ),
        ];
        for (name, f) in &rows {
            table.row(vec![
                name.clone(),
                cell(f.as_ref(), &results[0]),
                cell(f.as_ref(), &results[1]),
            ]);
        }
        table.note =
            "PostgreSQL runs in a private cluster from scripts/pg-cluster, which starts it \
                      with fsync=off (a throwaway test cluster); SQLite runs with the server's \
                      own settings (WAL, synchronous=NORMAL)."
                .into();
        self.report.tables.push(table);

        let t = Instant::now();
        let limit = write::sqlite_limit(
            &self.work.join("limit"),
            opts.calls,
            opts.per_call,
            opts.limit_per_tx,
        )
        .await;
        self.timed("raw SQLite limit, the store's statements", t);
        let statements_rate = match limit {
            Ok(d) => Some(tasks as f64 / d.as_secs_f64()),
            Err(e) => {
                self.failed("raw SQLite limit, the store's statements", &e);
                None
            }
        };
        let t = Instant::now();
        let limit = write::sqlite_set_limit(
            &self.work.join("limit"),
            opts.calls,
            opts.per_call,
            opts.limit_per_tx,
        )
        .await;
        self.timed("raw SQLite limit, set-based", t);
        let limit_rate = match limit {
            Ok(d) => Some(tasks as f64 / d.as_secs_f64()),
            Err(e) => {
                self.failed("raw SQLite limit, set-based", &e);
                None
            }
        };

        let mut peer_rate = None;
        if !opts.skip_peer {
            let t = Instant::now();
            let outcome = peer::run(
                &self.work.join("peer"),
                &peer::PeerOptions {
                    python: opts.python.clone(),
                    script: opts.celery_script.clone(),
                    tasks,
                    concurrency: opts.celery_concurrency,
                },
            )
            .await;
            self.timed("Celery peer", t);
            match outcome {
                Ok(r) => peer_rate = Some((r.tasks_per_s(), r.seconds)),
                Err(e) => self.failed("Celery peer", &e),
            }
        }

        if let Some(r) = &results[0] {
            let max = r.big_calls.max_ms();
            self.report.line(
                &format!("one {}-phone call returns, SQLite (p50 / max)", wopts.big),
                format!("{} / {}", ms(r.big_calls.p50()), ms(max)),
                "<= 50 ms",
                Verdict::of(max <= BIG_CALL_TARGET_MS),
            );
        }
        if let Some(r) = &results[1] {
            let max = r.big_calls.max_ms();
            self.report.line(
                &format!(
                    "one {}-phone call returns, PostgreSQL (p50 / max)",
                    wopts.big
                ),
                format!("{} / {}", ms(r.big_calls.p50()), ms(max)),
                "<= 50 ms",
                Verdict::of(max <= BIG_CALL_TARGET_MS),
            );
        }
        if let Some(r) = &results[0] {
            let tps = r.tasks_per_s();
            self.report.line(
                &format!("end to end, {} tasks, SQLite", thousands(tasks)),
                format!("{} tasks/s", rate(tps)),
                ">= 20,000 tasks/s",
                Verdict::of(tps >= E2E_TARGET && r.failed == 0),
            );
            if let Some((peer, _)) = peer_rate {
                let ratio = tps / peer;
                self.report.line(
                    "end to end SQLite / Celery peer",
                    format!("{ratio:.1}x"),
                    ">= 30x",
                    Verdict::of(ratio >= PEER_RATIO_TARGET),
                );
            }
            if let Some(limit) = limit_rate {
                self.report.line(
                    "end to end SQLite / raw SQLite limit",
                    format!("{:.0}%", 100.0 * tps / limit),
                    "",
                    Verdict::None,
                );
            }
        }
        if let Some(r) = &results[1] {
            self.report.line(
                &format!("end to end, {} tasks, PostgreSQL", thousands(tasks)),
                format!("{} tasks/s", rate(r.tasks_per_s())),
                "",
                Verdict::None,
            );
        }
        if let Some(limit) = limit_rate {
            self.report.line(
                &format!(
                    "limit: raw SQLite, same rows, set-based statements, {} tasks a transaction",
                    opts.limit_per_tx
                ),
                format!("{} tasks/s", rate(limit)),
                "",
                Verdict::None,
            );
        }
        if let Some(r) = statements_rate {
            self.report.line(
                &format!(
                    "raw SQLite, same rows, the store's per-row statements, {} tasks a transaction",
                    opts.limit_per_tx
                ),
                format!("{} tasks/s", rate(r)),
                "",
                Verdict::None,
            );
        }
        if let Some((peer, secs)) = peer_rate {
            self.report.line(
                &format!(
                    "peer: Celery + Redis, {} no-op tasks, {} worker processes",
                    thousands(tasks),
                    opts.celery_concurrency
                ),
                format!("{} tasks/s ({secs:.1} s)", rate(peer)),
                "",
                Verdict::None,
            );
        }
    }

    async fn write_server(
        &mut self,
        pg: bool,
        wopts: &write::WriteOptions,
    ) -> anyhow::Result<write::WriteResult> {
        let name = if pg { "write-pg" } else { "write-sqlite" };
        let mut spec = self.spec(fresh_dir(&self.work.join(name))?);
        spec.sim_delay_ms = Some(0);
        spec.concurrency = Some(self.opts.concurrency);
        if !pg {
            return write::run_server(&spec, wopts).await;
        }
        let cluster = write::PgCluster::start(&self.opts.pg_cluster, &self.work.join("pg"))?;
        spec.database_url = Some(cluster.create_database("cloudphone_bench")?);
        let r = write::run_server(&spec, wopts).await;
        drop(cluster);
        r
    }
}

/// The machine's load average (1, 5, 15 minutes): on a 2-core machine anything above 2 means
/// other work competed with the measurement.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// What, where and how: printed above the summary.
/// Which parts a run measured.
struct Parts {
    read: bool,
    adb: bool,
}

fn preamble(quick: bool, parts: Parts, seconds: f64, load_at_start: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| server::parse_status_kib(&t, "MemTotal:"))
        .map_or("?".into(), |k| {
            format!("{:.0} GiB", k as f64 / 1024.0 / 1024.0)
        });
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    format!(
        "Measured by `{}` on {} ({cores} cores, {mem} RAM), commit {commit}{}, \
         on {}; the run took {:.0} s. Load average (1, 5, 15 min) {load_at_start} at the start, \
         {} at the end (2 cores: above 2, other work competed with the benchmark).\n\nEvery number comes from the real server binary \
         (`cloudphone serve`, a child process on 127.0.0.1) called through the signed API{}. \
         See bench/README.md for what each number means.",
        std::env::args().collect::<Vec<_>>().join(" "),
        cpu,
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        },
        cloudphone_core::time::iso(cloudphone_core::time::now_ms()),
        seconds,
        load_average(),
        match (parts.read, parts.adb) {
            (true, true) => {
                "; the SQL columns run the store's own statements on the same file, and the ADB \
                 gateway is driven by Debian's stock adb"
            }
            (true, false) => "; the SQL columns run the store's own statements on the same file",
            (false, true) => " and Debian's stock adb",
            (false, false) => "",
        },
    )
    .replace("--quick", "--quick (a smoke-test run: small sizes)")
        + if quick {
            "\n\n**Quick run: sizes are far below the issue's.**"
        } else {
            ""
        }
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_grow_to_the_total() {
        let cli = BenchArgs::parse_from(["x", "all"]);
        let BenchCommand::All(o) = cli.command else {
            panic!()
        };
        assert_eq!(o.sizes(), vec![10_000, 100_000, 1_000_000]);
        let cli = BenchArgs::parse_from(["x", "read", "--tasks", "50000", "--quick"]);
        let BenchCommand::Read(mut o) = cli.command else {
            panic!()
        };
        o.apply_quick();
        assert_eq!(o.tasks, 20_000);
        assert_eq!((o.adb_push_mib, o.adb_shells), (32, 50));
        assert_eq!(o.sizes(), vec![10_000, 20_000]);
        assert_eq!(o.calls * o.per_call, 1000);
    }
}
