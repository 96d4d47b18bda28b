//! The phone farm's benchmark (issue 24): three private Docker engines
//! (`scripts/dockerd-private`), each behind a counting proxy ([`super::proxy`]) so that the
//! server only ever reaches an engine through it, the test phone image loaded into each, and
//! the real server (one node on SQLite, or two over PostgreSQL) with a backends file of three
//! hosts of 100 phones each (host network, 100 ports each). Measured, in this order:
//!
//! - idle Docker requests a second with 30 phones (one group, 10 per host), per host and in
//!   all, over an idle window, and which requests they are;
//! - placing 300 phones (3 CreateAndroidInstanceGroup calls of 100): the calls' wall time, the
//!   time from the first call to all 300 RUNNING, and each phone's time from its call to
//!   RUNNING (p50/p95), with the Docker requests that took;
//! - the same idle window with 300 phones: the number must not grow with the phones;
//! - one engine killed (`dockerd-private kill`): the time until its 100 phones are
//!   UNAVAILABLE.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cloudphone_client::{Client, params};
use serde_json::Value;

use super::adbhost::AdbHost;
use super::proxy::{Proxy, delta};
use super::report::{Report, Samples, Table, Verdict};
use super::server::{Server, ServerSpec};

pub const HOSTS: [&str; 3] = ["h1", "h2", "h3"];
const IMAGE_TAG: &str = "cloudphone-test-phone:bench";
const IMAGE_ID: &str = "imgc-testphone12";
const PREFIX: &str = "cpbench-";
/// The design's goal for an idle host (issue24-design §5.3): a ping every 1.5 s, a list every
/// 30 s and one long-lived events request.
pub const IDLE_TARGET_PER_HOST: f64 = 0.7;

#[derive(Clone, Debug)]
pub struct FarmOptions {
    /// The repository (its scripts and the phone image's build script).
    pub repo: PathBuf,
    pub test_adbd: PathBuf,
    pub adb: PathBuf,
    /// Phones per host (and the hosts' `max_phones`).
    pub per_host: usize,
    /// Phones of the small idle measurement.
    pub small: usize,
    pub idle_secs: u64,
    pub nodes: usize,
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct FarmResult {
    pub nodes: usize,
    pub idle_small: Idle,
    pub idle_full: Idle,
    /// Wall time of each Create call.
    pub creates: Vec<Duration>,
    /// From the first Create to every phone RUNNING.
    pub all_running: Duration,
    /// Each phone, from its call to RUNNING.
    pub per_phone: Samples,
    /// Docker requests (in all) from the first Create to every phone RUNNING, by kind.
    pub start_requests: BTreeMap<String, u64>,
    /// Phones on each host after the placement.
    pub spread: Vec<usize>,
    /// The killed engine's phones, the time from the kill until all were UNAVAILABLE, and
    /// how long the kill itself took (its containers first, then the engine).
    pub kill: Option<(usize, Duration, Duration)>,
}

/// Docker requests over an idle window.
#[derive(Clone, Debug, Default)]
pub struct Idle {
    pub phones: usize,
    pub secs: f64,
    /// Per host, by kind.
    pub hosts: Vec<BTreeMap<String, u64>>,
}

impl Idle {
    pub fn per_s(&self, host: usize) -> f64 {
        self.hosts[host].values().sum::<u64>() as f64 / self.secs
    }

    pub fn total_per_s(&self) -> f64 {
        (0..self.hosts.len()).map(|h| self.per_s(h)).sum()
    }

    /// Every kind over all hosts.
    pub fn kinds(&self) -> BTreeMap<String, u64> {
        let mut all = BTreeMap::new();
        for h in &self.hosts {
            for (k, n) in h {
                *all.entry(k.clone()).or_default() += n;
            }
        }
        all
    }
}

/// A private engine and the proxy in front of it.
struct Engine {
    dir: PathBuf,
    proxy: Proxy,
}

impl Engine {
    fn real(&self) -> String {
        format!("unix://{}/docker.sock", self.dir.display())
    }
}

/// Starts everything, measures, and stops everything (also on failure).
pub async fn run(spec: &ServerSpec, work: &Path, opts: &FarmOptions) -> anyhow::Result<FarmResult> {
    let mut engines = Vec::new();
    let outcome = async {
        for name in HOSTS {
            engines.push(start_engine(opts, &work.join(format!("engine-{name}"))).await?);
        }
        load_image(opts, &engines).await?;
        measure(spec, work, opts, &engines).await
    }
    .await;
    for e in &engines {
        let _ = dockerd_private(opts, "stop", &e.dir).await;
    }
    outcome
}

async fn dockerd_private(opts: &FarmOptions, verb: &str, dir: &Path) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(opts.repo.join("scripts/dockerd-private"))
        .arg(verb)
        .arg(dir)
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "dockerd-private {verb} {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn start_engine(opts: &FarmOptions, dir: &Path) -> anyhow::Result<Engine> {
    dockerd_private(opts, "start", dir).await?;
    let proxy = Proxy::start(&dir.join("proxy.sock"), &dir.join("docker.sock"))?;
    Ok(Engine {
        dir: dir.to_path_buf(),
        proxy,
    })
}

async fn sh(script: &str) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .await?;
    if !out.status.success() {
        bail!("{script}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// The test phone image built on the first engine and copied into the others (straight to
/// their own sockets: not counted).
async fn load_image(opts: &FarmOptions, engines: &[Engine]) -> anyhow::Result<()> {
    let build = opts.repo.join("tests/fixtures/phone-image/build");
    sh(&format!(
        "DOCKER_HOST={} '{}' {IMAGE_TAG} '{}'",
        engines[0].real(),
        build.display(),
        opts.test_adbd.display()
    ))
    .await
    .context("building the phone image")?;
    for e in &engines[1..] {
        sh(&format!(
            "docker -H {} save {IMAGE_TAG} | docker -H {} load -q",
            engines[0].real(),
            e.real()
        ))
        .await
        .context("loading the phone image")?;
    }
    Ok(())
}

/// The first of `n` consecutive loopback ports free now, below Linux's ephemeral range.
fn free_ports(n: u16) -> anyhow::Result<u16> {
    'base: for base in (20000u16..32000 - n).step_by(usize::from(n)) {
        for p in base..base + n {
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
                continue 'base;
            }
        }
        return Ok(base);
    }
    bail!("no {n} consecutive free ports below 32000")
}

fn backends_toml(engines: &[Engine], adb_port: u16, base: u16, per_host: usize) -> String {
    let mut out = format!(
        "sim = false\n\n[adb]\nport = {adb_port}\n\n[docker]\nnetwork = \"host\"\n\
         boot_timeout_secs = 180\nstop_timeout_secs = 2\nname_prefix = \"{PREFIX}\"\n\n\
         [[docker.images]]\nid = \"{IMAGE_ID}\"\nname = \"Test phone, Android 12\"\n\
         reference = \"{IMAGE_TAG}\"\nenv = [\"ADBD_PORT={{adb_port}}\"]\n"
    );
    for (i, (name, e)) in HOSTS.iter().zip(engines).enumerate() {
        let lo = usize::from(base) + per_host * i;
        out.push_str(&format!(
            "\n[[docker.hosts]]\nname = \"{name}\"\nsocket = \"unix://{}\"\n\
             adb_ports = \"{lo}-{}\"\nmax_phones = {per_host}\n",
            e.proxy.socket.display(),
            lo + per_host - 1
        ));
    }
    out
}

async fn measure(
    spec: &ServerSpec,
    work: &Path,
    opts: &FarmOptions,
    engines: &[Engine],
) -> anyhow::Result<FarmResult> {
    let adb = AdbHost::start(&opts.adb, &work.join("adb-home")).await?;
    let base = free_ports((opts.per_host * HOSTS.len()) as u16)?;
    let config = work.join("backends.toml");
    std::fs::write(
        &config,
        backends_toml(engines, adb.port, base, opts.per_host),
    )?;
    let mut cluster = None;
    let mut spec = spec.clone();
    spec.sim_delay_ms = None;
    spec.extra_args
        .extend(["--backends".into(), config.display().to_string()]);
    if opts.nodes > 1 {
        let c = super::write::PgCluster::start(
            &opts.repo.join("scripts/pg-cluster"),
            &work.join("pg"),
        )?;
        spec.database_url = Some(c.create_database("cloudphone_farm")?);
        cluster = Some(c);
    }
    let mut servers = Vec::new();
    for n in 0..opts.nodes.max(1) {
        let mut s = spec.clone();
        s.data_dir = work.join(format!("node-{n}"));
        servers.push(Server::start(&s).await?);
    }
    let outcome = phases(&servers[0], &spec, opts, engines).await;
    for s in servers {
        let _ = s.stop().await;
    }
    adb.stop().await;
    drop(cluster);
    outcome.map(|mut r| {
        r.nodes = opts.nodes.max(1);
        r
    })
}

fn snapshot(engines: &[Engine]) -> Vec<BTreeMap<String, u64>> {
    engines.iter().map(|e| e.proxy.counts.snapshot()).collect()
}

async fn idle_window(engines: &[Engine], phones: usize, secs: u64) -> Idle {
    // Boot checks and the first reconcile after the last change settle first.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = snapshot(engines);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let after = snapshot(engines);
    Idle {
        phones,
        secs: started.elapsed().as_secs_f64(),
        hosts: before
            .iter()
            .zip(&after)
            .map(|(b, a)| delta(b, a))
            .collect(),
    }
}

async fn phases(
    server: &Server,
    spec: &ServerSpec,
    opts: &FarmOptions,
    engines: &[Engine],
) -> anyhow::Result<FarmResult> {
    let client = Client::new(&server.address, spec.creds.clone())?;
    super::read::wait_ready(&client).await?;
    // Every host watched: its monitor opened the event stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !engines
        .iter()
        .all(|e| e.proxy.counts.snapshot().contains_key("GET /events"))
    {
        if Instant::now() > deadline {
            bail!("the hosts were not watched within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut r = FarmResult::default();

    eprintln!("cloudphone-bench: {} phones, then idle", opts.small);
    let (group, _) = create(&client, opts.small).await?;
    wait_running(&client, &[(group.clone(), Instant::now())], opts.small).await?;
    r.idle_small = idle_window(engines, opts.small, opts.idle_secs).await;
    delete(&client, &group, engines).await?;

    let total = opts.per_host * HOSTS.len();
    eprintln!("cloudphone-bench: {total} phones placed and started");
    let before = snapshot(engines);
    let first = Instant::now();
    let mut groups = Vec::new();
    let mut left = total;
    while left > 0 {
        let k = left.min(100);
        let t = Instant::now();
        let (g, _) = create(&client, k).await?;
        r.creates.push(t.elapsed());
        groups.push((g, t));
        left -= k;
    }
    r.per_phone = wait_running(&client, &groups, total).await?;
    r.all_running = first.elapsed();
    let after = snapshot(engines);
    for (b, a) in before.iter().zip(&after) {
        for (k, n) in delta(b, a) {
            *r.start_requests.entry(k).or_default() += n;
        }
    }
    let mut on = Vec::new();
    for e in engines {
        on.push(containers(e).await?);
    }
    r.spread = on.iter().map(HashSet::len).collect();

    eprintln!("cloudphone-bench: {total} phones idle");
    r.idle_full = idle_window(engines, total, opts.idle_secs).await;

    eprintln!("cloudphone-bench: one engine killed");
    let victim = engines.len() - 1;
    let ids: Vec<String> = on[victim].iter().cloned().collect();
    let dir = &engines[victim].dir;
    // Its containers' processes, to end after the measurement (the engine's death leaves them
    // running, held by their shims).
    let pids = sh(&format!(
        "docker -H {real} ps -q | xargs -r docker -H {real} inspect -f '{{{{.State.Pid}}}}'",
        real = engines[victim].real()
    ))
    .await?;
    let dockerd = std::fs::read_to_string(dir.join("dockerd.pid"))?;
    let killed = Instant::now();
    sh(&format!("kill -KILL {}", dockerd.trim())).await?;
    let kill_took = killed.elapsed();
    let deadline = killed + Duration::from_secs(60);
    let outcome = loop {
        let statuses = instance_statuses(&client, &ids).await?;
        if statuses.values().all(|s| s == "UNAVAILABLE") && statuses.len() == ids.len() {
            break Ok(Some((ids.len(), killed.elapsed(), kill_took)));
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "the killed engine's phones were not UNAVAILABLE after 60 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pids: Vec<&str> = pids.split_whitespace().filter(|p| *p != "0").collect();
    if !pids.is_empty() {
        let _ = sh(&format!("kill -KILL {}", pids.join(" "))).await;
    }
    // The shims and containerd the engine left.
    let _ = dockerd_private(opts, "kill", dir).await;
    r.kill = outcome?;
    Ok(r)
}

/// One CreateAndroidInstanceGroup of `n` test phones: its group and phones.
async fn create(client: &Client, n: usize) -> anyhow::Result<(String, Vec<String>)> {
    let body: Value = client
        .call(
            "CreateAndroidInstanceGroup",
            &params(&[
                ("BizRegionId", "cn-hangzhou"),
                ("ImageId", IMAGE_ID),
                ("InstanceGroupSpec", "acp.basic.small"),
                ("InstanceGroupName", "farm-bench"),
                ("NumberOfInstances", &n.to_string()),
            ]),
        )
        .await?;
    let group = body
        .pointer("/InstanceGroupIds/0")
        .and_then(Value::as_str)
        .context("CreateAndroidInstanceGroup returned no group")?
        .to_string();
    let ids = body
        .pointer("/InstanceGroupInfos/0/InstanceIds")
        .and_then(Value::as_array)
        .context("CreateAndroidInstanceGroup returned no InstanceIds")?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    Ok((group, ids))
}

/// The phones of `group` and their statuses (100 at most: a group of this benchmark).
async fn group_statuses(client: &Client, group: &str) -> anyhow::Result<HashMap<String, String>> {
    let body: Value = client
        .call(
            "DescribeAndroidInstances",
            &params(&[("InstanceGroupId", group), ("MaxResults", "100")]),
        )
        .await?;
    Ok(statuses_of(&body))
}

async fn instance_statuses(
    client: &Client,
    ids: &[String],
) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(100) {
        let mut p = params(&[("MaxResults", "100")]);
        for (i, id) in chunk.iter().enumerate() {
            p.push((format!("AndroidInstanceIds.{}", i + 1), id.clone()));
        }
        let body: Value = client.call("DescribeAndroidInstances", &p).await?;
        out.extend(statuses_of(&body));
    }
    Ok(out)
}

fn statuses_of(body: &Value) -> HashMap<String, String> {
    body.get("InstanceModel")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            Some((
                m.get("AndroidInstanceId")?.as_str()?.to_string(),
                m.get("AndroidInstanceStatus")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Polls the groups (each with the instant its call started) until `n` phones are RUNNING;
/// each phone's time from its call to the poll that first saw it RUNNING.
async fn wait_running(
    client: &Client,
    groups: &[(String, Instant)],
    n: usize,
) -> anyhow::Result<Samples> {
    let mut seen: HashMap<String, Duration> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(900);
    while seen.len() < n {
        for (g, started) in groups {
            let now = Instant::now();
            for (id, status) in group_statuses(client, g).await? {
                if status == "RUNNING" {
                    seen.entry(id).or_insert(now - *started);
                } else if !matches!(status.as_str(), "CREATING" | "STARTING") {
                    bail!("the phone {id} is {status}, not RUNNING");
                }
            }
        }
        if Instant::now() > deadline {
            bail!("{} of {n} phones RUNNING after 15 minutes", seen.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut s = Samples::new();
    for d in seen.values() {
        s.push(*d);
    }
    Ok(s)
}

/// The ids of this farm's phones whose containers run on `engine` (asked of its own socket).
async fn containers(e: &Engine) -> anyhow::Result<HashSet<String>> {
    let out = sh(&format!(
        "docker -H {} ps --format '{{{{.Names}}}}' --filter name={PREFIX}",
        e.real()
    ))
    .await?;
    Ok(out
        .split_whitespace()
        .filter_map(|n| n.strip_prefix(PREFIX))
        .map(str::to_string)
        .collect())
}

async fn delete(client: &Client, group: &str, engines: &[Engine]) -> anyhow::Result<()> {
    let _: Value = client
        .call(
            "DeleteAndroidInstanceGroup",
            &params(&[("InstanceGroupIds.1", group)]),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut left = 0;
        for e in engines {
            left += containers(e).await?.len();
        }
        let phones = group_statuses(client, group).await?;
        if left == 0 && phones.values().all(|s| s == "DELETED") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the group was not deleted after 180 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Requests a second, with one decimal more when small.
fn per_s(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn kinds_text(kinds: &BTreeMap<String, u64>) -> String {
    let mut v: Vec<_> = kinds.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| format!("`{k}` {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn write_report(r: &FarmResult, opts: &FarmOptions, report: &mut Report) {
    let nodes = if r.nodes > 1 {
        format!("{} nodes over PostgreSQL", r.nodes)
    } else {
        "1 node, SQLite".to_string()
    };
    let total: usize = opts.per_host * HOSTS.len();
    let place: Duration = r.creates.iter().sum();
    report.line(
        &format!(
            "place {total} phones: {} CreateAndroidInstanceGroup calls of up to 100 ({nodes})",
            r.creates.len()
        ),
        format!(
            "{:.2} s in all ({})",
            place.as_secs_f64(),
            r.creates
                .iter()
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" + ")
        ),
        "",
        Verdict::None,
    );
    report.line(
        &format!("place and start {total}: first Create to all RUNNING"),
        format!(
            "{:.1} s; each phone from its call to RUNNING p50 {:.1} s, p95 {:.1} s; spread {}",
            r.all_running.as_secs_f64(),
            r.per_phone.p50() / 1000.0,
            r.per_phone.percentile_ms(95.0) / 1000.0,
            r.spread
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("/")
        ),
        "",
        Verdict::None,
    );
    for idle in [&r.idle_small, &r.idle_full] {
        let worst = (0..idle.hosts.len())
            .map(|h| idle.per_s(h))
            .fold(0.0, f64::max);
        report.line(
            &format!(
                "idle Docker requests/s, {} phones on 3 hosts ({:.0} s)",
                idle.phones, idle.secs
            ),
            format!(
                "{} in all; per host {}",
                per_s(idle.total_per_s()),
                (0..idle.hosts.len())
                    .map(|h| per_s(idle.per_s(h)))
                    .collect::<Vec<_>>()
                    .join(" / ")
            ),
            &format!("≈ {IDLE_TARGET_PER_HOST} per host"),
            Verdict::of(worst <= IDLE_TARGET_PER_HOST * 1.15),
        );
    }
    let ratio = r.idle_full.total_per_s() / r.idle_small.total_per_s();
    report.line(
        &format!(
            "idle requests/s at {} phones / at {} phones",
            r.idle_full.phones, r.idle_small.phones
        ),
        format!("{ratio:.2}x"),
        "does not grow (≤ 1.1x)",
        Verdict::of(ratio <= 1.1),
    );
    if let Some((n, d, took)) = r.kill {
        report.line(
            "engine killed (dockerd SIGKILL) → its phones UNAVAILABLE",
            format!(
                "{n} phones in {:.2} s from the kill (the `kill` took {:.2} s)",
                d.as_secs_f64(),
                took.as_secs_f64()
            ),
            "< 5 s",
            Verdict::of(d < Duration::from_secs(5)),
        );
    }

    let mut t = Table::new(
        "Idle Docker requests by kind (all hosts)",
        &["window", "requests/s", "by kind (count over the window)"],
    );
    for idle in [&r.idle_small, &r.idle_full] {
        t.row(vec![
            format!("{} phones, {:.0} s", idle.phones, idle.secs),
            per_s(idle.total_per_s()),
            kinds_text(&idle.kinds()),
        ]);
    }
    t.note = format!(
        "Counted by a proxy in front of each engine's socket (the server's backends file names \
         only the proxies): every HTTP request head the server sent, by method and path \
         (version, query and ids left out). The window starts 5 s after the last phone was \
         RUNNING. The design's budget per host: a ping every 1.5 s (0.67/s), a container list \
         every 30 s (0.03/s) and one long-lived `/events` request: ≈ {IDLE_TARGET_PER_HOST}/s."
    );
    report.tables.push(t);
    let mut t = Table::new(
        &format!("Docker requests while placing and starting {total} phones"),
        &["requests", "per phone", "by kind"],
    );
    let n: u64 = r.start_requests.values().sum();
    t.row(vec![
        n.to_string(),
        format!("{:.1}", n as f64 / total as f64),
        kinds_text(&r.start_requests),
    ]);
    t.note = "From the first CreateAndroidInstanceGroup to the poll that saw every phone \
              RUNNING, all hosts; the pings and lists of the monitors in that time included."
        .into();
    report.tables.push(t);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_rates_add_up_per_host() {
        let idle = Idle {
            phones: 30,
            secs: 10.0,
            hosts: vec![
                BTreeMap::from([("GET /_ping".to_string(), 7)]),
                BTreeMap::from([
                    ("GET /_ping".to_string(), 6),
                    ("GET /containers/json".into(), 1),
                ]),
            ],
        };
        assert!((idle.per_s(0) - 0.7).abs() < 1e-9);
        assert!((idle.total_per_s() - 1.4).abs() < 1e-9);
        assert_eq!(idle.kinds()["GET /_ping"], 13);
    }
}
