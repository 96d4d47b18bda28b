//! The live screens' benchmark (issue 23): the real server with simulated phones
//! (`--sim-delay-ms 0`, `--stream-fps`, `--stream-max-size`), phones created through the API,
//! tickets from BatchGetAcpConnectionTicket, and viewers speaking the WebSocket protocol as a
//! program would ([`super::viewer`]). Four measurements, one after another on one server:
//!
//! - one stream: one viewer of one phone, frames and bytes a second and the frame size;
//! - input to frame: taps at random points (a `down`, and 80 ms later an `up`, as a finger's
//!   tap lasts), each touch timed from its sending to the first frame whose header says it
//!   shows that input (the session's tag and a seq at or above the touch's): the server's part
//!   of a click's latency, without a browser;
//! - many phones: one viewer on each of N phones at once, each viewer's frame rate, the bytes
//!   sent, and the server's CPU (utime + stime over wall time) and resident memory (sampled
//!   every second, and its peak);
//! - fan-out: N viewers of one phone plus one stalled viewer (it never reads, with a 4 KiB
//!   receive buffer): the others' frame rates and the server's memory.

use std::time::{Duration, Instant};

use anyhow::Context;
use cloudphone_client::Client;
use rand::Rng;
use serde_json::json;

use super::cpu;
use super::report::{Report, Samples, Table, Verdict, ms};
use super::server::{Server, ServerSpec, peak_rss_of, rss_of};
use super::viewer::{Event, Stalled, Viewer, Watched, tickets};

/// Sizes of the stream measurements.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// How long the single stream is watched.
    pub one_secs: u64,
    pub taps: usize,
    /// Phones (one viewer each) of the many-phones measurement.
    pub phones: usize,
    /// Viewers of one phone in the fan-out (besides the stalled one).
    pub fanout: usize,
    /// How long the many-phones and fan-out measurements watch.
    pub window_secs: u64,
    pub fps: u8,
    pub max_size: u16,
}

/// The frame rate a viewer should see at least (the stream's rate less a quarter).
pub fn fps_target(fps: u8) -> f64 {
    f64::from(fps) * 0.75
}

/// The goal for a click to the frame that shows it (in a browser; this is the server's
/// part of it).
pub const LATENCY_P95_TARGET_MS: f64 = 150.0;

/// Many viewers at once: what each saw and what the server spent.
#[derive(Clone, Debug, Default)]
pub struct Crowd {
    pub watched: Vec<Watched>,
    /// CPU time over wall time (1.0: one core busy).
    pub cpu: f64,
    pub rss_before: u64,
    pub rss_peak: u64,
}

impl Crowd {
    pub fn fps_sorted(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.watched.iter().map(Watched::fps).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn bytes_per_s(&self) -> f64 {
        self.watched.iter().map(Watched::bytes_per_s).sum()
    }
}

pub struct StreamResult {
    pub one: Watched,
    pub size: (u16, u16),
    pub latency: Samples,
    /// The server's RSS with its phones made and no viewer yet.
    pub rss_idle: u64,
    pub many: Crowd,
    pub fanout: Crowd,
    pub hwm: u64,
}

/// Starts the server, measures, stops it.
pub async fn run(spec: &ServerSpec, opts: &StreamOptions) -> anyhow::Result<StreamResult> {
    let mut spec = spec.clone();
    spec.sim_delay_ms = Some(0);
    spec.extra_args.extend([
        "--stream-fps".into(),
        opts.fps.to_string(),
        "--stream-max-size".into(),
        opts.max_size.to_string(),
        "--stream-max-viewers-per-phone".into(),
        (opts.fanout + 2).to_string(),
        "--stream-max-sessions".into(),
        (opts.phones + opts.fanout + 16).to_string(),
    ]);
    let server = Server::start(&spec).await?;
    let outcome = measure(&server, &spec, opts).await;
    server.stop().await?;
    outcome
}

async fn measure(
    server: &Server,
    spec: &ServerSpec,
    opts: &StreamOptions,
) -> anyhow::Result<StreamResult> {
    let client = Client::new(&server.address, spec.creds.clone())?;
    super::read::wait_ready(&client).await?;
    let ids = super::write::provision(&client, opts.phones.max(1)).await?;
    let addr = server.address.as_str();
    let rss_idle = rss_of(server.pid)?;

    // One stream, watched after a second of warm-up.
    let ticket = tickets(&client, &ids[..1]).await?.remove(0);
    let mut one = Viewer::open(addr, &ids[0], &ticket).await?;
    one.watch(Duration::from_secs(1)).await?;
    let watched = one.watch(Duration::from_secs(opts.one_secs)).await?;
    let size = (one.width, one.height);

    // Input to frame.
    let latency = taps(&mut one, opts.taps).await?;
    one.close().await;

    let many = crowd(
        server,
        &client,
        addr,
        &ids[..opts.phones.max(1)],
        opts,
        false,
    )
    .await?;
    // The many-phones screens linger 5 s after their viewers left: let them close first.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let phone = vec![ids[0].clone(); opts.fanout.max(1)];
    let fanout = crowd(server, &client, addr, &phone, opts, true).await?;
    Ok(StreamResult {
        one: watched,
        size,
        latency,
        rss_idle,
        many,
        fanout,
        hwm: peak_rss_of(server.pid)?,
    })
}

/// How long a tap's finger stays down.
const TAP_MS: u64 = 80;

/// `n` taps at random points, one at a time; the latency of each touch (a `down` and an `up`
/// a tap).
async fn taps(v: &mut Viewer, n: usize) -> anyhow::Result<Samples> {
    let mut samples = Samples::new();
    let (w, h) = (u32::from(v.width.max(1)), u32::from(v.height.max(1)));
    let mut seq: u32 = 0;
    for _ in 0..n {
        let (x, y) = {
            let mut rng = rand::rng();
            (rng.random_range(0..w), rng.random_range(h / 10..h))
        };
        for a in ["down", "up"] {
            seq += 1;
            v.send(json!({"t": "touch", "seq": seq, "a": a, "x": x, "y": y, "w": w, "h": h}))
                .await?;
            let sent = Instant::now();
            shown(v, seq, sent).await?;
            samples.push(sent.elapsed());
            if a == "down" {
                tokio::time::sleep(Duration::from_millis(TAP_MS).saturating_sub(sent.elapsed()))
                    .await;
            }
        }
        // A user's pace, not a flood: the next tap after a short pause.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    Ok(samples)
}

/// Reads until a frame shows the viewer's input `seq`.
async fn shown(v: &mut Viewer, seq: u32, sent: Instant) -> anyhow::Result<()> {
    loop {
        match v.next().await? {
            Event::Frame { header, .. } if header.input_tag == v.tag && header.input_seq >= seq => {
                return Ok(());
            }
            Event::Closed(code) => anyhow::bail!("closed with {code} during the taps"),
            _ => {}
        }
        if sent.elapsed() > Duration::from_secs(5) {
            anyhow::bail!("no frame showed input {seq} within 5 s");
        }
    }
}

/// One viewer of each of `phones` (a phone named several times gets several viewers) watching
/// for the window at once; with `stalled`, one more viewer of the first phone that never reads.
async fn crowd(
    server: &Server,
    client: &Client,
    addr: &str,
    phones: &[String],
    opts: &StreamOptions,
    stalled: bool,
) -> anyhow::Result<Crowd> {
    // A ticket opens its phone as often as it is used while it is valid: one per phone.
    let mut unique: Vec<String> = phones.to_vec();
    unique.sort();
    unique.dedup();
    let by_phone: std::collections::HashMap<String, String> = unique
        .iter()
        .cloned()
        .zip(tickets(client, &unique).await?)
        .collect();
    let mut viewers = Vec::with_capacity(phones.len());
    for phone in phones {
        viewers.push(Viewer::open(addr, phone, &by_phone[phone]).await?);
    }
    let stall = if stalled {
        Some(Stalled::open(addr, &phones[0], &by_phone[&phones[0]]).await?)
    } else {
        None
    };
    let window = Duration::from_secs(opts.window_secs);
    // Every viewer reads from now on; the first second (screens opening, first frames) is
    // not counted.
    let warmup = Duration::from_secs(1);
    let tasks: Vec<_> = viewers
        .into_iter()
        .map(|mut v| {
            tokio::spawn(async move {
                let w = match v.watch(warmup).await {
                    Ok(_) => v.watch(window).await,
                    Err(e) => Err(e),
                };
                v.close().await;
                w
            })
        })
        .collect();
    tokio::time::sleep(warmup).await;
    let rss_before = rss_of(server.pid)?;
    let cpu_before = cpu::of_process(server.pid);
    let started = Instant::now();
    let mut rss_peak = rss_before;
    while started.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_peak = rss_peak.max(rss_of(server.pid)?);
    }
    let mut watched = Vec::with_capacity(tasks.len());
    for t in tasks {
        watched.push(t.await.context("a viewer's task")??);
    }
    let cpu =
        (cpu::of_process(server.pid) - cpu_before).as_secs_f64() / started.elapsed().as_secs_f64();
    rss_peak = rss_peak.max(rss_of(server.pid)?);
    drop(stall);
    Ok(Crowd {
        watched,
        cpu,
        rss_before,
        rss_peak,
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn rate_mb(bytes_per_s: f64) -> String {
    format!("{:.2} MB/s", bytes_per_s / 1e6)
}

fn median(sorted: &[f64]) -> f64 {
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn crowd_row(what: String, c: &Crowd) -> Vec<String> {
    let fps = c.fps_sorted();
    vec![
        what,
        c.watched.len().to_string(),
        format!(
            "{:.1} / {:.1} / {:.1}",
            fps.first().copied().unwrap_or(f64::NAN),
            median(&fps),
            fps.last().copied().unwrap_or(f64::NAN)
        ),
        rate_mb(c.bytes_per_s()),
        format!("{:.0}%", c.cpu * 100.0),
        format!("{} → {}", mib(c.rss_before), mib(c.rss_peak)),
    ]
}

/// The summary lines and the details of a run.
pub fn write_report(r: &StreamResult, opts: &StreamOptions, report: &mut Report) {
    let target = fps_target(opts.fps);
    let mut payloads: Vec<u64> = r.one.payloads.clone();
    payloads.sort_unstable();
    let p50 = super::report::percentile(&payloads, 50.0).unwrap_or(0);
    report.line(
        &format!(
            "one stream: 1 viewer of 1 phone, {} s, {}x{} PNG, --stream-fps {}",
            opts.one_secs, r.size.0, r.size.1, opts.fps
        ),
        format!(
            "{:.1} frames/s ({:.1} made), {}, frame p50 {:.0} KB",
            r.one.fps(),
            r.one.produced_fps(),
            rate_mb(r.one.bytes_per_s()),
            p50 as f64 / 1000.0
        ),
        &format!(">= {target:.0} frames/s"),
        Verdict::of(r.one.fps() >= target),
    );
    report.line(
        &format!(
            "input to frame, server side: {} touches ({} taps), by frame header",
            r.latency.len(),
            r.latency.len() / 2
        ),
        format!(
            "p50 {}, p95 {}",
            ms(r.latency.p50()),
            ms(r.latency.percentile_ms(95.0))
        ),
        &format!("p95 < {LATENCY_P95_TARGET_MS:.0} ms"),
        Verdict::of(r.latency.percentile_ms(95.0) < LATENCY_P95_TARGET_MS),
    );
    let fps = r.many.fps_sorted();
    report.line(
        &format!(
            "{} viewers of {} phones, {} s",
            r.many.watched.len(),
            r.many.watched.len(),
            opts.window_secs
        ),
        format!(
            "server CPU {:.0}% of a core, RSS {} with no viewer, {} → peak {} watched; each viewer {:.1} min / {:.1} median frames/s; {} in all",
            r.many.cpu * 100.0,
            mib(r.rss_idle),
            mib(r.many.rss_before),
            mib(r.many.rss_peak),
            fps.first().copied().unwrap_or(f64::NAN),
            median(&fps),
            rate_mb(r.many.bytes_per_s())
        ),
        &format!(">= {target:.0} frames/s each"),
        Verdict::of(fps.first().is_some_and(|&f| f >= target)),
    );
    let fps = r.fanout.fps_sorted();
    let growth = r.fanout.rss_peak.saturating_sub(r.fanout.rss_before);
    report.line(
        &format!(
            "fan-out: {} viewers of 1 phone and 1 stalled viewer, {} s",
            r.fanout.watched.len(),
            opts.window_secs
        ),
        format!(
            "others {:.1} min / {:.1} median frames/s; RSS {} → peak {} (+{})",
            fps.first().copied().unwrap_or(f64::NAN),
            median(&fps),
            mib(r.fanout.rss_before),
            mib(r.fanout.rss_peak),
            mib(growth)
        ),
        &format!(">= {target:.0} frames/s each, RSS + < 64 MiB"),
        Verdict::of(fps.first().is_some_and(|&f| f >= target) && growth < 64 << 20),
    );

    let mut table = Table::new(
        "Live screens: viewers at once",
        &[
            "measurement",
            "viewers",
            "frames/s each (min / median / max)",
            "bytes sent",
            "server CPU",
            "server RSS (before → peak)",
        ],
    );
    table.row(crowd_row(
        format!("one viewer on each of {} phones", r.many.watched.len()),
        &r.many,
    ));
    table.row(crowd_row(
        format!(
            "{} viewers of one phone, beside one that never reads",
            r.fanout.watched.len()
        ),
        &r.fanout,
    ));
    table.note = format!(
        "Viewers speak the stream's WebSocket protocol (tokio-tungstenite) with tickets from \
         BatchGetAcpConnectionTicket; the phones are simulated (`--sim-delay-ms 0`). \
         Each viewer counts the frames it received over the window ({} s) after a second for \
         the screens to open. CPU is the server's utime + stime over the window's wall time \
         (100% = one core of 2); RSS is sampled every second (peak over the whole run, VmHWM: \
         {}; {} with the phones made and no viewer: an open simulated screen keeps its canvas \
         and its cached backgrounds, a few MiB at 720x1280, and the allocator keeps what it \
         freed). The stalled viewer says hello and never reads, with a 4 KiB receive buffer: the \
         server's sends to it stall within moments and it only ever holds one frame; its \
         session stays open (the idle timeout, 60 s by default, would drop it later).",
        opts.window_secs,
        mib(r.hwm),
        mib(r.rss_idle)
    );
    report.tables.push(table);
    let mut lat = Table::new(
        "Live screens: input to frame (server side)",
        &["touches", "p50", "p95", "p99", "max"],
    );
    lat.row(vec![
        r.latency.len().to_string(),
        ms(r.latency.p50()),
        ms(r.latency.percentile_ms(95.0)),
        ms(r.latency.p99()),
        ms(r.latency.max_ms()),
    ]);
    lat.note = format!(
        "A tap is a `down` and, {TAP_MS} ms later, an `up` at a random point (some open apps \
         from the launcher, as a user's would), 30 ms after the previous one. Each touch is timed \
         from its sending to the first frame whose header carries the viewer's tag and a seq at \
         or above the touch's: the simulated phone applies the input and draws a frame at once, \
         but at most one every third of a frame period (about 17 ms at 20 frames a second) \
         besides its ticks, so a touch that follows a frame closely waits for that; the hub \
         sends the frame. A browser adds its decode and paint."
    );
    report.tables.push(lat);
}
