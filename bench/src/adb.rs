//! The ADB gateway's benchmark (issue 22): the real server with its gateway on loopback ports
//! (`serve --adb-ports LOW-HIGH --adb-listen 127.0.0.1`, SQLite, simulated phones), phones
//! created through the API, their endpoints opened with StartInstanceAdb and read back from
//! ListInstanceAdbAttributes, and Debian's stock `adb` as the client, through a private ADB
//! server. Two measurements:
//!
//! - many `adb shell` sessions held open ([`shells`]): all on one phone (streams of one gateway
//!   connection), then one per phone (as many gateway connections), with the server's resident
//!   memory before, while they are open, and after they closed;
//! - `adb push` of a large file to one phone against a plain loopback copy of the same file in
//!   the same run ([`push`]), and against the same push to a plain adbd ([`super::refadbd`]).
//!
//! The sessions go first so that the peak memory they report is not the push's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use cloudphone_client::{Client, params, push_list};
use serde_json::Value;

use super::adbhost::AdbHost;
use super::push::{self, Copied, Round, Source, TempFile};
use super::refadbd::RefAdbd;
use super::report::{Report, Table, Verdict, ms, thousands};
use super::server::{Server, ServerSpec, peak_rss_of, rss_of};
use super::shells::{self, Layout, ShellResult};

/// Sizes of the ADB measurements.
#[derive(Clone, Debug)]
pub struct AdbOptions {
    pub adb: PathBuf,
    /// test-adbd, the plain adbd the push is also compared with (none: left out).
    pub reference: Option<PathBuf>,
    pub push_bytes: u64,
    pub rounds: usize,
    pub shells: usize,
    pub hold: Duration,
}

/// Where a pushed file goes on the phone.
const REMOTE: &str = "/sdcard/bench/push.bin";
/// The goal: the push through the gateway at half the plain loopback copy or better.
pub const RATIO_TARGET: f64 = 0.5;

/// What one run measured.
pub struct AdbResult {
    pub adb_version: String,
    pub push_bytes: u64,
    pub rounds: Vec<Round>,
    /// `ls -l` of the last pushed file through RunCommand: the API sees the push.
    pub api_listing: String,
    pub shells: Vec<ShellResult>,
    pub rss_after_push: u64,
    pub hwm_after_push: u64,
}

impl AdbResult {
    pub fn loopback_mibs(&self) -> f64 {
        let v: Vec<f64> = self
            .rounds
            .iter()
            .map(|r| push::mib_per_s(self.push_bytes, r.loopback.wall))
            .collect();
        push::median(&v)
    }

    pub fn gateway_mibs(&self) -> f64 {
        let v: Vec<f64> = self
            .rounds
            .iter()
            .map(|r| push::mib_per_s(self.push_bytes, r.gateway.wall))
            .collect();
        push::median(&v)
    }

    pub fn pull_mibs(&self) -> f64 {
        let v: Vec<f64> = self
            .rounds
            .iter()
            .map(|r| push::mib_per_s(self.push_bytes, r.pull.wall))
            .collect();
        push::median(&v)
    }

    /// The median of each round's pull / loopback.
    pub fn pull_ratio(&self) -> f64 {
        let v: Vec<f64> = self
            .rounds
            .iter()
            .map(|r| r.loopback.wall.as_secs_f64() / r.pull.wall.as_secs_f64())
            .collect();
        push::median(&v)
    }

    /// The median of each round's gateway / loopback (each round's two copies ran side by side).
    pub fn ratio(&self) -> f64 {
        let v: Vec<f64> = self.rounds.iter().map(Round::ratio).collect();
        push::median(&v)
    }

    pub fn reference_mibs(&self) -> Option<f64> {
        let v: Vec<f64> = self
            .rounds
            .iter()
            .filter_map(|r| r.reference)
            .map(|c| push::mib_per_s(self.push_bytes, c.wall))
            .collect();
        (!v.is_empty()).then(|| push::median(&v))
    }

    /// The median of each round's gateway / plain adbd.
    pub fn vs_reference(&self) -> Option<f64> {
        let v: Vec<f64> = self.rounds.iter().filter_map(Round::vs_reference).collect();
        (!v.is_empty()).then(|| push::median(&v))
    }

    /// The median of each round's plain adbd / loopback: what adb's own path leaves.
    pub fn reference_ratio(&self) -> Option<f64> {
        let v: Vec<f64> = self
            .rounds
            .iter()
            .filter_map(Round::reference_ratio)
            .collect();
        (!v.is_empty()).then(|| push::median(&v))
    }
}

/// Starts the server (with the gateway), measures, stops everything it started.
pub async fn run(spec: &ServerSpec, work: &Path, opts: &AdbOptions) -> anyhow::Result<AdbResult> {
    let version = adb_version(&opts.adb).await?;
    // One phone for the push and the one-phone sessions, one per session for the other layout.
    let phones = 1 + opts.shells;
    let (low, high) = free_range(phones + 8)?;
    let mut spec = spec.clone();
    spec.sim_delay_ms = Some(0);
    spec.extra_args.extend([
        "--adb-ports".to_string(),
        format!("{low}-{high}"),
        "--adb-listen".to_string(),
        "127.0.0.1".to_string(),
    ]);
    let server = Server::start(&spec).await?;
    let adb = match AdbHost::start(&opts.adb, &work.join("adb-home")).await {
        Ok(a) => a,
        Err(e) => {
            server.stop().await?;
            return Err(e);
        }
    };
    let reference = match &opts.reference {
        Some(binary) => match RefAdbd::start(binary, &work.join("test-adbd")).await {
            Ok(r) => Some(r),
            Err(e) => {
                adb.stop().await;
                server.stop().await?;
                return Err(e);
            }
        },
        None => None,
    };
    let mut outcome = measure(&server, &adb, reference.as_ref(), &spec, work, opts, phones).await;
    if outcome.is_err() && !adb.alive() {
        outcome = outcome.context(
            "the stock adb server died during the run (a crash of adb 29's server: see dmesg); \
             run again",
        );
    }
    if let Some(r) = reference {
        r.stop().await;
    }
    adb.stop().await;
    server.stop().await?;
    let mut r = outcome?;
    r.adb_version = version;
    Ok(r)
}

async fn measure(
    server: &Server,
    adb: &AdbHost,
    reference: Option<&RefAdbd>,
    spec: &ServerSpec,
    work: &Path,
    opts: &AdbOptions,
    phones: usize,
) -> anyhow::Result<AdbResult> {
    let client = Client::new(&server.address, spec.creds.clone())?;
    super::read::wait_ready(&client).await?;
    let ids = super::write::provision(&client, phones).await?;
    let endpoints = open_endpoints(&client, &ids).await?;
    let serial = |id: &String| endpoints[id].clone();
    let first = serial(&ids[0]);

    let mut results = Vec::new();
    let one = [first.clone()];
    results.push(
        shells::run(
            adb,
            server.pid,
            &Layout {
                name: "all on one phone".into(),
                serials: &one,
                sessions: opts.shells,
            },
            opts.hold,
        )
        .await
        .context("the sessions on one phone")?,
    );
    let many: Vec<String> = ids[1..].iter().map(serial).collect();
    results.push(
        shells::run(
            adb,
            server.pid,
            &Layout {
                name: "one per phone".into(),
                serials: &many,
                sessions: many.len(),
            },
            opts.hold,
        )
        .await
        .context("the sessions on one phone each")?,
    );

    // The push, as a user types it: `adb connect`, then `adb -s SERIAL push`.
    adb_connect(adb, &first).await?;
    if let Some(r) = reference {
        adb_connect(adb, &r.serial).await?;
    }
    let source = Source::make(&work.join("source.bin"), opts.push_bytes)?;
    let on_host = TempFile(phone_file(&spec.data_dir, &ids[0], REMOTE));
    let target = push::Target {
        adb,
        serial: &first,
        remote: REMOTE,
        on_host: on_host.0.clone(),
        loopback_dest: work.join("loopback.bin"),
        pull_dest: work.join("pulled.bin"),
        gateway_pid: server.pid,
        // Its own file in the work dir: test-adbd writes wherever the path points.
        reference: reference.map(|r| (r.serial.clone(), work.join("test-adbd-push.bin"), r.pid)),
    };
    let rounds = push::measure(&source, &target, opts.rounds).await?;
    let rss_after_push = rss_of(server.pid)?;
    let hwm_after_push = peak_rss_of(server.pid)?;
    let api_listing = run_command(&client, &ids[0], &format!("ls -l {REMOTE}")).await?;
    ensure!(
        api_listing.contains(&opts.push_bytes.to_string()),
        "RunCommand's ls -l does not show {} bytes: {api_listing}",
        opts.push_bytes
    );
    drop(on_host);
    drop(source);
    adb.run(&["disconnect", &first]).await?;
    Ok(AdbResult {
        adb_version: String::new(),
        push_bytes: opts.push_bytes,
        rounds,
        api_listing: api_listing.trim().to_string(),
        shells: results,
        rss_after_push,
        hwm_after_push,
    })
}

/// `adb connect SERIAL` as a user types it (again, up to 5 times, if adb 29's server answers a
/// bare "failed to connect", as it now and then does on a loaded machine), then until online.
async fn adb_connect(adb: &AdbHost, serial: &str) -> anyhow::Result<()> {
    let mut said = String::new();
    for _ in 0..5 {
        said = adb.run(&["connect", serial]).await?;
        if said.contains("connected to") {
            return super::smart::connect_device(adb.addr(), serial).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("adb connect {serial}, 5 times: {said}")
}

/// StartInstanceAdb on every phone (100 a call, the API's most), then each one's `HOST:PORT`
/// as ListInstanceAdbAttributes reports it.
async fn open_endpoints(
    client: &Client,
    ids: &[String],
) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(100) {
        let mut p = Vec::new();
        push_list(&mut p, "InstanceIds", chunk);
        client.call::<Value>("StartInstanceAdb", &p).await?;
        let mut p = params(&[("MaxResults", "100")]);
        push_list(&mut p, "InstanceIds", chunk);
        let body = client
            .call::<Value>("ListInstanceAdbAttributes", &p)
            .await?;
        for d in body
            .get("Data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let field = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let (id, ip, port) = (
                field("InstanceId"),
                field("ExternalIp"),
                field("ExternalPort"),
            );
            ensure!(
                !ip.is_empty() && port.parse::<u16>().is_ok(),
                "ListInstanceAdbAttributes gave {id} no endpoint: {d}"
            );
            out.insert(id, format!("{ip}:{port}"));
        }
    }
    for id in ids {
        ensure!(
            out.contains_key(id),
            "ListInstanceAdbAttributes left out {id}"
        );
    }
    Ok(out)
}

/// RunCommand on one phone, waited for; its output.
async fn run_command(client: &Client, phone: &str, command: &str) -> anyhow::Result<String> {
    let mut p = params(&[("CommandContent", command)]);
    push_list(&mut p, "InstanceIds", &[phone.to_string()]);
    let body = client.call::<Value>("RunCommand", &p).await?;
    let invoke = body
        .get("InvokeId")
        .and_then(Value::as_str)
        .context("RunCommand returned no InvokeId")?
        .to_string();
    let started = Instant::now();
    loop {
        let q = params(&[("InvokeId", &invoke), ("Level", "2"), ("MaxResults", "1")]);
        let body = client.call::<Value>("DescribeTasks", &q).await?;
        let task = body.pointer("/Data/0");
        let status = task
            .and_then(|t| t.get("TaskStatus"))
            .and_then(Value::as_str)
            .unwrap_or("");
        match status {
            "Finished" => {
                let result = task
                    .and_then(|t| t.get("Result"))
                    .and_then(Value::as_str)
                    .unwrap_or("{}");
                let v: Value = serde_json::from_str(result)?;
                return Ok(v
                    .get("Output")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string());
            }
            "Failed" | "Skipped" | "PartFinished" => bail!("RunCommand {command:?}: {task:?}"),
            _ if started.elapsed() > Duration::from_secs(60) => {
                bail!("RunCommand {command:?} not done after 60 s")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The simulator keeps a phone's files under `DATA_DIR/sim/ID/data` (crates/backends, sim).
pub fn phone_file(data_dir: &Path, id: &str, remote: &str) -> PathBuf {
    let mut p = data_dir.join("sim").join(id).join("data");
    p.extend(remote.split('/').filter(|s| !s.is_empty()));
    p
}

/// `n` consecutive ports free on 127.0.0.1, below Linux's ephemeral range (so that no outgoing
/// connection takes one meanwhile): each bound, then all released for the server.
pub fn free_range(n: usize) -> anyhow::Result<(u16, u16)> {
    use rand::Rng;
    let n = n.max(1) as u16;
    let mut rng = rand::rng();
    for _ in 0..100 {
        let low = rng.random_range(20_000..32_000 - n);
        let held: Result<Vec<_>, _> = (low..low + n)
            .map(|p| std::net::TcpListener::bind(("127.0.0.1", p)))
            .collect();
        if held.is_ok() {
            return Ok((low, low + n - 1));
        }
    }
    bail!("no {n} consecutive free ports between 20000 and 32000")
}

async fn adb_version(adb: &Path) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(adb)
        .arg("version")
        .output()
        .await
        .with_context(|| format!("{} not found (Debian package `adb`)", adb.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("Version "))
        .unwrap_or("unknown")
        .trim()
        .to_string())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn kib(bytes: f64) -> String {
    format!("{:.0} KiB", bytes / 1024.0)
}

/// The summary lines and tables of a run.
pub fn write_report(r: &AdbResult, opts: &AdbOptions, report: &mut Report) {
    let size = format!("{} MiB", r.push_bytes >> 20);
    let ratio = r.ratio();
    report.line(
        &format!(
            "adb push {size} through the gateway / plain loopback TCP (median of {} rounds)",
            r.rounds.len()
        ),
        format!(
            "{:.0}% ({:.0} MiB/s vs {:.0} MiB/s)",
            100.0 * ratio,
            r.gateway_mibs(),
            r.loopback_mibs()
        ),
        ">= 50%",
        Verdict::of(ratio >= RATIO_TARGET),
    );
    if let (Some(vs), Some(base)) = (r.vs_reference(), r.reference_ratio()) {
        report.line(
            &format!("adb push {size} through the gateway / to a plain adbd (test-adbd)"),
            format!(
                "{:.0}% ({:.0} MiB/s to test-adbd, itself {:.0}% of loopback)",
                100.0 * vs,
                r.reference_mibs().unwrap_or(f64::NAN),
                100.0 * base
            ),
            "",
            Verdict::None,
        );
    }
    report.line(
        &format!("adb pull {size} through the gateway / plain loopback TCP"),
        format!(
            "{:.0}% ({:.0} MiB/s)",
            100.0 * r.pull_ratio(),
            r.pull_mibs()
        ),
        "",
        Verdict::None,
    );
    for s in &r.shells {
        report.line(
            &format!(
                "{} adb shell sessions held open, {}: server RSS",
                s.sessions, s.layout
            ),
            format!(
                "{} before, {} open, {} after ({} a session)",
                mib(s.rss_before),
                mib(s.rss_open),
                mib(s.rss_closed),
                kib(s.per_session())
            ),
            "",
            Verdict::None,
        );
    }

    let mut push = Table::new(
        &format!(
            "ADB gateway: adb push of {size} (random bytes) to a simulated phone vs the same file over plain loopback TCP, {} rounds",
            r.rounds.len()
        ),
        &[
            "round",
            "first",
            "plain loopback TCP",
            "adb push through the gateway",
            "adb's own figure",
            "adb push to test-adbd",
            "gateway / loopback",
            "gateway / test-adbd",
            "adb pull through the gateway",
            "pull / loopback",
        ],
    );
    let rate = |c: Copied| format!("{:.0} MiB/s", push::mib_per_s(r.push_bytes, c.wall));
    let pct = |x: Option<f64>| x.map_or("-".into(), |x| format!("{:.0}%", 100.0 * x));
    for (i, round) in r.rounds.iter().enumerate() {
        push.row(vec![
            (i + 1).to_string(),
            round.first.name().into(),
            rate(round.loopback),
            rate(round.gateway),
            round.adb_secs.map_or("-".into(), |s| {
                format!("{:.0} MiB/s", r.push_bytes as f64 / (1024.0 * 1024.0) / s)
            }),
            round.reference.map_or("-".into(), rate),
            pct(Some(round.ratio())),
            pct(round.vs_reference()),
            rate(round.pull),
            pct(Some(
                round.loopback.wall.as_secs_f64() / round.pull.wall.as_secs_f64(),
            )),
        ]);
    }
    push.row(vec![
        "median".into(),
        String::new(),
        format!("{:.0} MiB/s", r.loopback_mibs()),
        format!("{:.0} MiB/s", r.gateway_mibs()),
        String::new(),
        r.reference_mibs()
            .map_or("-".into(), |m| format!("{m:.0} MiB/s")),
        pct(Some(ratio)),
        pct(r.vs_reference()),
        format!("{:.0} MiB/s", r.pull_mibs()),
        pct(Some(r.pull_ratio())),
    ]);
    push.note = format!(
        "Stock adb {} (`adb -s HOST:PORT push`, a private server), timed from starting the adb \
         process to its exit (adb's own figure leaves out starting it). The baseline sends the \
         same file over one loopback TCP connection from a thread to a thread that writes it to \
         a file on the same disk, {} KiB reads and writes, no fsync on either side. test-adbd \
         (tests/fixtures/test-adbd, threads and std::fs, 256 KiB payloads) gets the \
         same push through the same adb server: a plain adbd, to tell adb's own path from the \
         gateway's cost. The copies take turns going first; each push through the gateway is \
         followed by `adb pull` of the same file back. Every copy is checked by its MD5 (the \
         push in the simulator's directory of the phone), and RunCommand `ls -l` shows the last \
         one: `{}`. The server's RSS after the pushes: {} (VmHWM {}).",
        r.adb_version,
        push::LOOPBACK_BUFFER / 1024,
        r.api_listing.replace('|', "/"),
        mib(r.rss_after_push),
        mib(r.hwm_after_push),
    );
    report.tables.push(push);
    report.tables.push(cpu_table(r));

    let mut shells = Table::new(
        &format!(
            "ADB gateway: {} adb shell sessions held open (shell v2, interactive), the server's memory",
            opts.shells
        ),
        &[
            "layout",
            "sessions",
            "gateway connections",
            "VmRSS before",
            "phones connected",
            "all open",
            "VmHWM then",
            "after close",
            "per session",
            "open + first echo p50 / max",
            "all open in",
            "echo after hold p50 / max",
            "one more `adb shell echo` meanwhile",
        ],
    );
    for s in &r.shells {
        shells.row(vec![
            s.layout.clone(),
            thousands(s.sessions as u64),
            thousands(s.phones as u64),
            mib(s.rss_before),
            mib(s.rss_connected),
            mib(s.rss_open),
            mib(s.hwm_open),
            mib(s.rss_closed),
            kib(s.per_session()),
            format!("{} / {}", ms(s.open_each.p50()), ms(s.open_each.max_ms())),
            format!("{:.2} s", s.open_all.as_secs_f64()),
            format!("{} / {}", ms(s.echo_again.p50()), ms(s.echo_again.max_ms())),
            ms(s.one_more.as_secs_f64() * 1000.0),
        ]);
    }
    shells.note = format!(
        "Each session is `shell,v2,raw:` (what `adb -s SERIAL shell` opens with its stdin \
         piped) opened through the private stock adb server's smart-socket protocol, {} at a \
         time; it counts once an `echo` came back, and every one answers a second `echo` after \
         being held {} s, when VmRSS and VmHWM are read; then one more `adb -s SERIAL shell \
         echo` runs as a stock adb process of its own (its whole run, the process's start \
         included). \"Per session\" is (all open - before) / sessions, the phones' gateway \
         connections included. After close: every shell's stdin closed (each exits 0), every \
         phone disconnected, one second later. The one-per-phone layout runs after the other, \
         on the same server.",
        shells::OPENING,
        opts.hold.as_secs()
    );
    report.tables.push(shells);
}

/// CPU time of each kind of copy by who spent it, medians over the rounds: robust to other
/// work on the machine, and CPU / wall tells copies held up by work from copies held up by
/// waiting.
fn cpu_table(r: &AdbResult) -> Table {
    let mut t = Table::new(
        &format!(
            "ADB push: CPU time per copy of {} MiB, medians over the rounds",
            r.push_bytes >> 20
        ),
        &[
            "copy",
            "sending side",
            "adb server",
            "receiving side",
            "total CPU",
            "wall",
            "cores busy (CPU / wall)",
        ],
    );
    type Pick = fn(&Round) -> Option<Copied>;
    let kinds: [(&str, &str, Pick); 4] = [
        (
            "plain loopback TCP",
            "sender thread / receiver thread",
            |r| Some(r.loopback),
        ),
        (
            "adb push through the gateway",
            "adb client / the cloudphone server",
            |r| Some(r.gateway),
        ),
        ("adb push to test-adbd", "adb client / test-adbd", |r| {
            r.reference
        }),
        (
            "adb pull through the gateway",
            "the cloudphone server / adb client",
            |r| Some(r.pull),
        ),
    ];
    for (name, who, pick) in kinds {
        let copies: Vec<Copied> = r.rounds.iter().filter_map(pick).collect();
        if copies.is_empty() {
            continue;
        }
        let med =
            |f: &dyn Fn(&Copied) -> f64| push::median(&copies.iter().map(f).collect::<Vec<_>>());
        let ms_of = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
        let med_ms = |f: &dyn Fn(&Copied) -> Duration| {
            ms_of(Duration::from_secs_f64(med(&|c| f(c).as_secs_f64())))
        };
        t.row(vec![
            format!("{name} ({who})"),
            med_ms(&|c| c.cpu.sender),
            if copies.iter().any(|c| c.cpu.relay.is_some()) {
                med_ms(&|c| c.cpu.relay.unwrap_or_default())
            } else {
                "-".into()
            },
            med_ms(&|c| c.cpu.receiver),
            med_ms(&|c| c.cpu.total()),
            med_ms(&|c| c.wall),
            format!("{:.2}", med(&|c| c.cores())),
        ]);
    }
    t.note = "utime + stime from /proc (10 ms ticks): the adb client as a child waited for, \
              the adb server and the device side as processes (the cloudphone server's figure \
              is the whole process during the push), the loopback copy's two threads on their \
              own. A copy that keeps fewer cores busy than the machine has is held up by \
              waiting (adb 29 has one WRTE in flight per stream: each payload waits for the \
              device's OKAY) rather than by work."
        .into();
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phones_file_in_the_simulator() {
        assert_eq!(
            phone_file(Path::new("/d"), "acp-1", "/sdcard/bench/push.bin"),
            Path::new("/d/sim/acp-1/data/sdcard/bench/push.bin")
        );
    }

    #[test]
    fn free_ranges_are_free_and_low() {
        let (low, high) = free_range(20).unwrap();
        assert_eq!(high - low, 19);
        assert!((20_000..32_000).contains(&low) && high < 32_000);
        let held: Vec<_> = (low..=high)
            .map(|p| std::net::TcpListener::bind(("127.0.0.1", p)).unwrap())
            .collect();
        assert_eq!(held.len(), 20);
    }

    #[test]
    fn ratios_are_per_round_medians() {
        let copied = |ms: u64| Copied {
            wall: Duration::from_millis(ms),
            cpu: push::Cpu {
                sender: Duration::from_millis(ms / 4),
                relay: None,
                receiver: Duration::from_millis(ms / 4),
            },
        };
        let round = |l: u64, g: u64| Round {
            loopback: copied(l),
            gateway: copied(g),
            pull: copied(g / 2),
            adb_secs: None,
            reference: Some(copied(l * 2)),
            first: push::Transfer::Loopback,
        };
        let r = AdbResult {
            adb_version: "29".into(),
            push_bytes: 200 << 20,
            rounds: vec![round(200, 400), round(100, 400), round(200, 300)],
            api_listing: String::new(),
            shells: Vec::new(),
            rss_after_push: 0,
            hwm_after_push: 0,
        };
        assert_eq!(r.ratio(), 0.5);
        assert_eq!(r.loopback_mibs(), 1000.0);
        assert_eq!(r.gateway_mibs(), 500.0);
        assert_eq!(r.reference_ratio(), Some(0.5));
        assert_eq!(r.vs_reference(), Some(1.0));
        let mut report = Report::default();
        write_report(
            &r,
            &AdbOptions {
                adb: "/usr/bin/adb".into(),
                reference: None,
                push_bytes: r.push_bytes,
                rounds: 3,
                shells: 200,
                hold: Duration::from_secs(2),
            },
            &mut report,
        );
        let md = report.markdown("t", "");
        assert!(
            md.contains("| 50% (500 MiB/s vs 1000 MiB/s) | >= 50% | PASS |"),
            "{md}"
        );
        assert!(
            md.contains("| 100% (500 MiB/s to test-adbd, itself 50% of loopback) |"),
            "{md}"
        );
        // Loopback walls of 200, 100 and 200 ms, half of each spent as CPU.
        assert!(
            md.contains("| 50 ms | - | 50 ms | 100 ms | 200 ms | 0.50 |"),
            "{md}"
        );
    }
}
