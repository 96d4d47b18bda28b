//! `cloudphone-bench adb`: the ADB gateway (issue 22) against Debian's stock `adb`, on the real
//! `cloudphone serve` binary with `--adb-ports`, one simulated phone opened through the signed
//! API (CreateAndroidInstanceGroup, StartInstanceAdb, ListInstanceAdbAttributes).
//!
//! - **Push and pull of 200 MB** through the gateway (`adb push`/`adb pull`, timed from the
//!   client's start to its exit), beside the same bytes copied from a file to a file over one
//!   plain loopback TCP connection in the same run: the ratio is what the gateway keeps of what
//!   the machine can move (the goal: at least 50%). Each is run `--repeats` times; the
//!   median counts. The pushed file is checked byte for byte where the simulated phone keeps it.
//! - **200 concurrent `adb shell` sessions** held open on the phone (interactive shells, each
//!   asked `echo` once to prove it is served), with the server's resident memory before and while
//!   they are held, and the round trip of one more `adb shell` meanwhile.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use cloudphone_client::signer::params;
use cloudphone_client::{Client, Credentials};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::report::{Report, Table, Verdict};
use crate::server::{Server, ServerSpec, free_port, fresh_dir, parse_status_kib};

#[derive(Args, Clone, Debug)]
pub struct AdbOptions {
    /// Megabytes (MiB) pushed and pulled.
    #[arg(long, default_value_t = 200)]
    pub push_mb: u64,
    /// Each transfer is measured this many times; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// `adb shell` sessions held open at once.
    #[arg(long, default_value_t = 200)]
    pub sessions: usize,
    /// Scratch space (emptied first, removed at the end unless --keep).
    #[arg(long, default_value = "/tmp/cloudphone-bench-adb")]
    pub work_dir: PathBuf,
    #[arg(long)]
    pub keep: bool,
    /// Where the Markdown report goes.
    #[arg(long, default_value = "bench/results/adb-latest.md")]
    pub out: PathBuf,
    /// The server binary (default: `cloudphone` beside this one).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// The stock adb client.
    #[arg(long, default_value = "/usr/bin/adb")]
    pub adb: PathBuf,
}

const RATIO_TARGET: f64 = 0.5;

/// A private stock adb server: its own port and HOME.
struct StockAdb {
    program: PathBuf,
    port: u16,
    home: PathBuf,
}

impl StockAdb {
    async fn start(program: &Path, home: PathBuf) -> anyhow::Result<StockAdb> {
        std::fs::create_dir_all(&home)?;
        for _ in 0..5 {
            let adb = StockAdb {
                program: program.to_path_buf(),
                port: free_port()?,
                home: home.clone(),
            };
            let status = adb
                .command(&["start-server"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await?;
            if status.success() {
                return Ok(adb);
            }
        }
        bail!("adb start-server failed 5 times")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.arg("-P")
            .arg(self.port.to_string())
            .args(args)
            .env("HOME", &self.home)
            .env("ANDROID_ADB_SERVER_PORT", self.port.to_string())
            .env_remove("ANDROID_SERIAL")
            .env_remove("ADB_VENDOR_KEYS")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    async fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command(args).output().await?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!("adb {args:?} failed: {text}");
        }
        Ok(text)
    }

    fn kill(&self) {
        let _ = std::process::Command::new(&self.program)
            .args(["-P", &self.port.to_string(), "kill-server"])
            .env("HOME", &self.home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_kib(&text, "VmRSS:").context("no VmRSS")
}

/// `n` pseudo-random bytes written to `path` a mebibyte at a time.
fn write_data(path: &Path, n: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
        let k = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..k])?;
        left -= k as u64;
    }
    f.flush()?;
    Ok(())
}

/// Whether two files hold the same bytes.
fn same_file(a: &Path, b: &Path) -> anyhow::Result<bool> {
    use std::io::Read;
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// The same bytes from a file to a file over one plain loopback TCP connection: a thread
/// reading the file into the socket and one writing the socket into a file, 256 KiB at a time
/// (plain reads and writes, no zero-copy).
async fn plain_tcp_copy(src: &Path, dst: &Path) -> anyhow::Result<Duration> {
    let (src, dst) = (src.to_path_buf(), dst.to_path_buf());
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let receiver = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept()?;
            let mut file = std::fs::File::create(&dst)?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = sock.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n])?;
            }
            file.flush()?;
            anyhow::Ok(())
        });
        let started = Instant::now();
        let mut sock = std::net::TcpStream::connect(addr)?;
        let mut file = std::fs::File::open(&src)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            sock.write_all(&buf[..n])?;
        }
        sock.shutdown(std::net::Shutdown::Write)?;
        receiver
            .join()
            .map_err(|_| anyhow::anyhow!("the receiver panicked"))??;
        Ok(started.elapsed())
    })
    .await?
}

async fn call(client: &Client, action: &str, p: &[(&str, &str)]) -> anyhow::Result<Value> {
    client
        .call::<Value>(action, &params(p))
        .await
        .with_context(|| action.to_string())
}

/// One simulated phone with its endpoint open: (instance id, HOST:PORT).
async fn phone_with_endpoint(client: &Client) -> anyhow::Result<(String, String)> {
    let body = call(
        client,
        "CreateAndroidInstanceGroup",
        &[
            ("BizRegionId", "cn-hangzhou"),
            ("ImageId", "imgc-simandroid140000"),
            ("InstanceGroupSpec", "acp.basic.small"),
            ("InstanceGroupName", "bench-adb"),
            ("NumberOfInstances", "1"),
        ],
    )
    .await?;
    let id = body
        .pointer("/InstanceGroupInfos/0/InstanceIds/0")
        .and_then(Value::as_str)
        .context("no InstanceIds")?
        .to_string();
    let started = Instant::now();
    loop {
        let body = call(
            client,
            "DescribeAndroidInstances",
            &[("AndroidInstanceIds.1", &id)],
        )
        .await?;
        let status = body
            .pointer("/InstanceModel/0/AndroidInstanceStatus")
            .and_then(Value::as_str);
        if status == Some("RUNNING") {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the phone was not RUNNING after a minute");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    call(client, "StartInstanceAdb", &[("InstanceIds.1", &id)]).await?;
    let body = call(
        client,
        "ListInstanceAdbAttributes",
        &[("InstanceIds.1", &id)],
    )
    .await?;
    let e = body.pointer("/Data/0").context("no endpoint listed")?;
    let host = e["ExternalIp"].as_str().context("no ExternalIp")?;
    let port = match &e["ExternalPort"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok((id, format!("{host}:{port}")))
}

/// Interactive `adb shell` sessions, each answered once.
struct Sessions {
    children: Vec<Child>,
}

impl Sessions {
    async fn open(adb: &StockAdb, serial: &str, n: usize) -> anyhow::Result<Sessions> {
        let mut children = Vec::with_capacity(n);
        for _ in 0..n {
            let child = adb
                .command(&["-s", serial, "shell"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            children.push(child);
        }
        // Each is asked once and must answer: it is open and served.
        let mut answers = Vec::with_capacity(n);
        for (i, c) in children.iter_mut().enumerate() {
            let mut stdin = c.stdin.take().context("stdin")?;
            let stdout = c.stdout.take().context("stdout")?;
            stdin
                .write_all(format!("echo session-{i}\n").as_bytes())
                .await?;
            // Kept: closing stdin would end the session.
            answers.push((i, stdin, BufReader::new(stdout)));
        }
        for (i, stdin, mut stdout) in answers {
            let mut line = String::new();
            tokio::time::timeout(Duration::from_secs(60), stdout.read_line(&mut line))
                .await
                .with_context(|| format!("session {i} did not answer within 60 s"))??;
            if line.trim() != format!("session-{i}") {
                bail!("session {i} answered {line:?}");
            }
            // Hand the pipes back to the child so they live as long as it does.
            let c = &mut children[i];
            c.stdin = Some(stdin);
            c.stdout = Some(stdout.into_inner());
        }
        Ok(Sessions { children })
    }

    /// How many are still running.
    fn alive(&mut self) -> usize {
        let mut n = 0;
        for c in &mut self.children {
            n += usize::from(matches!(c.try_wait(), Ok(None)));
        }
        n
    }

    /// Ends every session (end of input) and returns how many exited with 0.
    async fn close(mut self) -> anyhow::Result<usize> {
        for c in &mut self.children {
            drop(c.stdin.take());
        }
        let mut ok = 0;
        for mut c in self.children {
            let status = tokio::time::timeout(Duration::from_secs(60), c.wait()).await??;
            ok += usize::from(status.success());
        }
        Ok(ok)
    }
}

pub async fn run(opts: AdbOptions) -> anyhow::Result<()> {
    let binary = match &opts.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("cloudphone"),
    };
    let work = fresh_dir(&opts.work_dir)?;
    let creds = Credentials {
        key_id: format!("LTAIbench{}", cloudphone_core::ids::secret(12)),
        secret: cloudphone_core::ids::secret(30),
    };
    let low = free_port()?;
    let ports = format!("{low}-{low}");
    let spec = ServerSpec {
        binary,
        data_dir: work.join("server"),
        database_url: None,
        sim_delay_ms: Some(1),
        concurrency: None,
        creds: creds.clone(),
        extra_args: vec![
            "--adb-ports".into(),
            ports,
            "--adb-listen".into(),
            "127.0.0.1".into(),
        ],
    };
    let server = Server::start(&spec).await?;
    let result = measure(&opts, &work, &server, creds).await;
    let rss_peak = server.peak_rss().unwrap_or(0);
    server.stop().await?;
    let (mut report, notes) = result?;
    report.line(
        "server peak RSS over the whole run (VmHWM)",
        format!("{:.1} MiB", rss_peak as f64 / 1048576.0),
        "",
        Verdict::None,
    );
    let preamble = format!(
        "Measured by `{}` on {} cores, {}; the server is the real `cloudphone serve --adb-ports` \
         (a child process on 127.0.0.1), the client Debian's stock adb (a private server), the \
         phone a simulated one opened through the signed API.\n\n{notes}",
        std::env::args().collect::<Vec<_>>().join(" "),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cloudphone_core::time::iso(cloudphone_core::time::now_ms()),
    );
    let markdown = report.markdown("cloudphone ADB gateway benchmark (issue 22)", &preamble);
    println!("{markdown}");
    if let Some(dir) = opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&opts.out, &markdown)?;
    eprintln!("cloudphone-bench: report written to {}", opts.out.display());
    if !opts.keep {
        let _ = std::fs::remove_dir_all(&opts.work_dir);
    }
    Ok(())
}

async fn measure(
    opts: &AdbOptions,
    work: &Path,
    server: &Server,
    creds: Credentials,
) -> anyhow::Result<(Report, String)> {
    let client = Client::new(&server.address, creds)?;
    let (phone, serial) = phone_with_endpoint(&client).await?;
    let adb = StockAdb::start(&opts.adb, work.join("adb-home")).await?;
    let result = transfers_and_sessions(opts, work, server, &adb, &phone, &serial).await;
    adb.kill();
    result
}

async fn transfers_and_sessions(
    opts: &AdbOptions,
    work: &Path,
    server: &Server,
    adb: &StockAdb,
    phone: &str,
    serial: &str,
) -> anyhow::Result<(Report, String)> {
    let said = adb.ok(&["connect", serial]).await?;
    if !said.contains("connected to") {
        bail!("adb connect {serial}: {said}");
    }
    let bytes = opts.push_mb << 20;
    let src = work.join("push.bin");
    write_data(&src, bytes)?;
    let on_phone = work
        .join("server/sim")
        .join(phone)
        .join("data/sdcard/bench.bin");
    let src_s = src.to_str().context("path")?;
    let back = work.join("pulled.bin");
    let back_s = back.to_str().context("path")?;

    let (mut tcp, mut push, mut pull) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..opts.repeats.max(1) {
        let t = plain_tcp_copy(&src, &work.join("tcp.bin")).await?;
        tcp.push(t);
        let _ = std::fs::remove_file(work.join("tcp.bin"));

        let started = Instant::now();
        adb.ok(&["-s", serial, "push", src_s, "/sdcard/bench.bin"])
            .await?;
        push.push(started.elapsed());
        if round == 0 && !same_file(&src, &on_phone)? {
            bail!("the pushed file differs from what was sent");
        }
        let started = Instant::now();
        adb.ok(&["-s", serial, "pull", "/sdcard/bench.bin", back_s])
            .await?;
        pull.push(started.elapsed());
        if round == 0 && !same_file(&src, &back)? {
            bail!("the pulled file differs from what was sent");
        }
        let _ = std::fs::remove_file(&back);
    }
    let (tcp_m, push_m, pull_m) = (
        median(tcp.clone()),
        median(push.clone()),
        median(pull.clone()),
    );
    let (tcp_r, push_r, pull_r) = (
        mib_per_s(bytes, tcp_m),
        mib_per_s(bytes, push_m),
        mib_per_s(bytes, pull_m),
    );
    let mut report = Report::default();
    report.line(
        &format!("adb push of {} MiB through the gateway", opts.push_mb),
        format!("{push_r:.0} MiB/s ({:.2} s)", push_m.as_secs_f64()),
        "",
        Verdict::None,
    );
    report.line(
        "the same bytes over plain loopback TCP, file to file",
        format!("{tcp_r:.0} MiB/s ({:.2} s)", tcp_m.as_secs_f64()),
        "",
        Verdict::None,
    );
    let ratio = push_r / tcp_r;
    report.line(
        "push through the gateway / plain TCP",
        format!("{:.0}%", ratio * 100.0),
        ">= 50%",
        Verdict::of(ratio >= RATIO_TARGET),
    );
    report.line(
        &format!("adb pull of {} MiB through the gateway", opts.push_mb),
        format!("{pull_r:.0} MiB/s ({:.2} s)", pull_m.as_secs_f64()),
        "",
        Verdict::None,
    );
    let mut runs = Table::new(
        "Every transfer (seconds)",
        &["round", "plain TCP", "adb push", "adb pull"],
    );
    for i in 0..tcp.len() {
        runs.row(vec![
            (i + 1).to_string(),
            format!("{:.3}", tcp[i].as_secs_f64()),
            format!("{:.3}", push[i].as_secs_f64()),
            format!("{:.3}", pull[i].as_secs_f64()),
        ]);
    }
    report.tables.push(runs);
    let _ = std::fs::remove_file(&src);

    // Sessions.
    let rss_before = rss_kib(server.pid)?;
    let started = Instant::now();
    let mut sessions = Sessions::open(adb, serial, opts.sessions).await?;
    let opened_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alive = sessions.alive();
    let rss_with = rss_kib(server.pid)?;
    let t = Instant::now();
    let echo = adb.ok(&["-s", serial, "shell", "echo", "still"]).await?;
    let one_more = t.elapsed();
    if echo.trim() != "still" {
        bail!("a shell beside the sessions answered {echo:?}");
    }
    let closed_ok = sessions.close().await?;
    report.line(
        &format!(
            "`adb shell` sessions held open at once (of {})",
            opts.sessions
        ),
        format!(
            "{alive} (opened and answered in {:.1} s)",
            opened_in.as_secs_f64()
        ),
        &opts.sessions.to_string(),
        Verdict::of(alive == opts.sessions),
    );
    report.line(
        "server RSS before / with the sessions held",
        format!(
            "{:.1} / {:.1} MiB ({:.0} KiB a session)",
            rss_before as f64 / 1024.0,
            rss_with as f64 / 1024.0,
            rss_with.saturating_sub(rss_before) as f64 / opts.sessions.max(1) as f64
        ),
        "",
        Verdict::None,
    );
    report.line(
        "one more `adb shell echo` while they are held (client process included)",
        format!("{:.0} ms", one_more.as_secs_f64() * 1000.0),
        "",
        Verdict::None,
    );
    report.line(
        "sessions that ended cleanly at end of input",
        closed_ok.to_string(),
        &opts.sessions.to_string(),
        Verdict::of(closed_ok == opts.sessions),
    );
    let notes = format!(
        "The transfers are timed from the adb client's start to its exit (the plain TCP copy \
         from connect to the receiver's flush); each ran {} times and the median counts. The \
         pushed file was compared byte for byte with the one the simulated phone keeps, the \
         pulled one with the original.",
        opts.repeats.max(1)
    );
    Ok((report, notes))
}
