//! Stream multiplexing as a hand-driven host sees it: a stream whose host never acknowledges
//! does not hold up another; the cap on open streams refuses an OPEN, not the connection; a
//! host that writes twice without waiting for OKAY, acknowledges what we never sent, or stops
//! reading is dropped; a refused service is a CLSE; OPEN and CLSE at once pile up nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cloudphone_adb::proto::packet::{Command, MAX_PAYLOAD, Packet, VERSION};
use cloudphone_adb::services::sync::SyncFs;
use cloudphone_adb::session::{Device, NoAuth, OpenError, Service};
use cloudphone_adb_testkit::pseudo_random;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::config;
use crate::device::TestDevice;
use crate::harness::Gateway;
use crate::raw::RawHost;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_does_not_hold_up_another() {
    let gw = Gateway::start(config(), NoAuth, TestDevice::new()).await;
    let mut h = RawHost::online(gw.addr).await;

    // Stream 1: `cat` echoes what we write; we never acknowledge its output.
    let cat = h.open(1, "shell:cat").await.expect("cat opened");
    h.send(Packet::new(Command::Wrte, 1, cat, vec![b'a'; 1000]))
        .await;
    let mut echoed = 0;
    let mut acked_input = false;
    while echoed == 0 || !acked_input {
        let p = h.recv().await.unwrap();
        match (p.command, p.arg1) {
            (Command::Okay, 1) => acked_input = true,
            (Command::Wrte, 1) => echoed += p.payload.len(),
            other => panic!("{other:?}"),
        }
    }
    // More input: cat's next output must wait for our OKAY, which never comes.
    h.send(Packet::new(Command::Wrte, 1, cat, vec![b'b'; 1000]))
        .await;

    // Stream 2 runs to its end meanwhile.
    h.send(Packet::new(
        Command::Open,
        2,
        0,
        b"shell,v2,raw:echo second\0".to_vec(),
    ))
    .await;
    let mut echo = 0;
    let mut acked_second = false;
    let mut out = Vec::new();
    loop {
        let p = h.recv().await.unwrap();
        match (p.command, p.arg1) {
            (Command::Okay, 2) if echo == 0 => echo = p.arg0,
            (Command::Wrte, 2) => {
                out.extend_from_slice(&p.payload);
                h.send(Packet::new(Command::Okay, 2, echo, vec![])).await;
            }
            (Command::Clse, 2) => break,
            // Stream 1's OKAY for our second write may arrive any time; no WRTE may.
            (Command::Okay, 1) if !acked_second => acked_second = true,
            other => panic!("{other:?} while stream 1 is stalled"),
        }
    }
    // shell v2: stdout packet "second\n", then exit code 0.
    assert_eq!(out, b"\x01\x07\0\0\0second\n\x03\x01\0\0\0\0");

    // Acknowledging stream 1 releases its output.
    h.send(Packet::new(Command::Okay, 1, cat, vec![])).await;
    let mut p = h.recv().await.unwrap();
    if !acked_second {
        assert_eq!((p.command, p.arg1), (Command::Okay, 1));
        p = h.recv().await.unwrap();
    }
    assert_eq!(
        (p.command, p.arg1, p.payload.len()),
        (Command::Wrte, 1, 1000)
    );
    assert_eq!(p.payload[0], b'b');
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_cap_refuses_the_open_not_the_connection() {
    let mut cfg = config();
    cfg.max_streams = 3;
    let gw = Gateway::start(cfg, NoAuth, TestDevice::new()).await;
    let mut h = RawHost::online(gw.addr).await;
    let mut ids = Vec::new();
    for id in 1..=3 {
        ids.push(h.open(id, "shell:sleep 30").await.expect("under the cap"));
    }
    assert_eq!(h.open(4, "shell:sleep 30").await, None);
    // An unknown service is refused the same way.
    h.send(Packet::new(Command::Clse, 1, ids[0], vec![])).await;
    assert_eq!(h.open(5, "nosuch:").await, None);
    // Closing one made room, once its service has stopped.
    let handle = gw.handles.lock().unwrap()[0].clone();
    assert!(wait_for(|| handle.open_streams() == 2, Duration::from_secs(2)).await);
    let id = h.open(6, "shell:echo room").await.expect("room again");
    let p = h.recv().await.unwrap();
    assert_eq!(
        (p.command, p.arg0, p.payload),
        (Command::Wrte, id, b"room\n".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_twice_without_okay_drops_the_connection() {
    let gw = Gateway::start(config(), NoAuth, TestDevice::new()).await;
    let mut h = RawHost::online(gw.addr).await;
    // `sleep` never reads its stdin: the first chunk is taken by nobody, so not acknowledged.
    let id = h.open(1, "shell:sleep 30").await.unwrap();
    for _ in 0..3 {
        if !h
            .try_send(Packet::new(Command::Wrte, 1, id, vec![0; 100_000]))
            .await
        {
            break;
        }
    }
    assert!(h.closed_within(Duration::from_secs(2)).await);
    assert!(gw.wait_ended(1, Duration::from_secs(2)).await);
    let end = gw.ended.lock().unwrap()[0].end.clone();
    assert!(end.contains("again before our OKAY"), "{end}");
}

/// An OKAY on a stream with no WRTE of ours in flight breaks the protocol: were it taken as an
/// acknowledgement, a host could have a stream queue WRTE after WRTE while it reads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_okay_for_no_write_drops_the_connection() {
    let gw = Gateway::start(config(), NoAuth, TestDevice::new()).await;
    let mut h = RawHost::online(gw.addr).await;
    // `sleep` writes nothing: nothing of ours is in flight on it.
    let id = h.open(1, "shell:sleep 30").await.unwrap();
    h.send(Packet::new(Command::Okay, 1, id, vec![])).await;
    assert!(h.closed_within(Duration::from_secs(2)).await);
    assert!(gw.wait_ended(1, Duration::from_secs(2)).await);
    let end = gw.ended.lock().unwrap()[0].end.clone();
    assert!(end.contains("OKAY for stream"), "{end}");

    // Acknowledging a WRTE we did send is what OKAY is for; a second one is not.
    let mut h = RawHost::online(gw.addr).await;
    let id = h.open(1, "shell:echo once").await.unwrap();
    let p = h.recv().await.unwrap();
    assert_eq!((p.command, p.payload), (Command::Wrte, b"once\n".to_vec()));
    h.send(Packet::new(Command::Okay, 1, id, vec![])).await;
    let p = h.recv().await.unwrap();
    assert_eq!(p.command, Command::Clse);
    // The stream is closed now: a late OKAY for it is ignored, as protocol.txt says.
    h.send(Packet::new(Command::Okay, 1, id, vec![])).await;
    let id = h
        .open(2, "shell:sleep 30")
        .await
        .expect("the connection lives on");
    h.send(Packet::new(Command::Okay, 2, id, vec![])).await;
    assert!(h.closed_within(Duration::from_secs(2)).await);
}

/// How long a `slow:` service takes to open.
const SLOW_OPEN: Duration = Duration::from_millis(300);
/// How long the device must have said nothing for a flood to be over.
const QUIET: Duration = Duration::from_millis(500);

/// A device whose services take their time to open, counting the opens running at once.
struct SlowOpens {
    inner: Arc<TestDevice>,
    running: AtomicUsize,
    peak: AtomicUsize,
    finished: AtomicUsize,
}

/// Counts an open out when it ends, finished or dropped.
struct Running<'a>(&'a SlowOpens);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Device for SlowOpens {
    async fn open(&self, service: &str) -> Result<Service, OpenError> {
        if service.starts_with("slow:") {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let _running = Running(self);
            tokio::time::sleep(SLOW_OPEN).await;
            self.finished.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.open(service).await
    }
}

/// A host that OPENs and at once CLSEs (stream ids are sequential, so it need not wait for
/// the answer) must not get more device opens running than the caps allow: a stream counts
/// until its task has ended, the host's CLSE cancels an open still running, and a few opens
/// run at once per connection, the rest waiting their turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_and_close_at_once_does_not_pile_up_opens() {
    let device = Arc::new(SlowOpens {
        inner: TestDevice::new(),
        running: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
    });
    let cfg = config();
    let (max_streams, max_opens) = (cfg.max_streams, cfg.max_concurrent_opens);
    let gw = Gateway::start(cfg, NoAuth, device.clone()).await;
    let mut h = RawHost::online(gw.addr).await;
    let handle = gw.handles.lock().unwrap()[0].clone();

    // The host's CLSE cancels an open still running (the first stream's id is 1).
    h.send(Packet::new(Command::Open, 1, 0, b"slow:\0".to_vec()))
        .await;
    h.send(Packet::new(Command::Clse, 1, 1, vec![])).await;
    // (It may be cancelled before the device even saw it.)
    assert!(wait_for(|| handle.open_streams() == 0, SLOW_OPEN / 2).await);
    assert_eq!(device.running.load(Ordering::SeqCst), 0);
    tokio::time::sleep(SLOW_OPEN * 2).await;
    assert_eq!(device.finished.load(Ordering::SeqCst), 0);
    assert_eq!(
        h.open(2, "shell:echo first").await,
        Some(2),
        "nothing was answered for 1"
    );
    let p = h.recv().await.unwrap();
    assert_eq!(p.payload, b"first\n");
    h.send(Packet::new(Command::Okay, 2, 2, vec![])).await;
    assert_eq!(h.recv().await.unwrap().command, Command::Clse);

    // The flood. Once the table is full an OPEN is refused and the guesses go wrong: the
    // streams they miss are the host's own, and run their course under the caps.
    let pairs = 5_000u32;
    let mut flood = Vec::new();
    for i in 3..=pairs {
        flood.extend(Packet::new(Command::Open, i, 0, b"slow:\0".to_vec()).encode(VERSION));
        // Our guess of the device's id for it: ids are handed out one after another.
        flood.extend(Packet::new(Command::Clse, i, i, vec![]).encode(VERSION));
    }
    let t0 = Instant::now();
    h.sock.write_all(&flood).await.unwrap();
    // Drain what the device answers until it has been quiet for a while with every stream
    // gone.
    let mut buf = vec![0u8; 64 * 1024];
    let mut quiet_since = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        match tokio::time::timeout(Duration::from_millis(100), h.sock.read(&mut buf)).await {
            Ok(r) => {
                assert!(r.unwrap() > 0, "the connection was dropped");
                quiet_since = Instant::now();
            }
            Err(_) if handle.open_streams() == 0 && quiet_since.elapsed() > QUIET => break,
            Err(_) => {}
        }
    }
    let peak = device.peak.load(Ordering::SeqCst);
    eprintln!(
        "{pairs} OPEN+CLSE: at most {peak} opens at once and {} streams, {} opens finished, \
         all gone in {:?}",
        handle.peak_open_streams(),
        device.finished.load(Ordering::SeqCst),
        t0.elapsed()
    );
    assert!(peak <= max_opens, "{peak} opens at once, cap {max_opens}");
    assert!(handle.peak_open_streams() <= max_streams);
    assert_eq!(handle.open_streams(), 0);
    assert_eq!(device.running.load(Ordering::SeqCst), 0);

    // The connection serves the next stream as usual.
    let id = h.open(pairs + 1, "shell:echo after").await.expect("opened");
    let p = h.recv().await.unwrap();
    assert_eq!(
        (p.command, p.arg0, p.payload),
        (Command::Wrte, id, b"after\n".to_vec())
    );
}

/// A host that stops reading while we have data for it is dropped after
/// `write_stall_timeout`, not kept with its streams' memory and tasks for as long as it likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_stops_reading_is_dropped() {
    let device = TestDevice::new();
    put_file(
        &device,
        "/sdcard/big.bin",
        pseudo_random(8 * 1024 * 1024, 3),
    )
    .await;
    let mut cfg = config();
    cfg.write_stall_timeout = Duration::from_secs(1);
    cfg.max_buffered_bytes = 32 * 1024 * 1024;
    let gw = Gateway::start(cfg, NoAuth, device).await;
    let sock = TcpSocket::new_v4().unwrap();
    // A small window: the device's writes soon find the socket full.
    sock.set_recv_buffer_size(4096).unwrap();
    let mut h = RawHost {
        sock: sock.connect(gw.addr).await.unwrap(),
    };
    h.send(Packet::new(
        Command::Cnxn,
        VERSION,
        MAX_PAYLOAD,
        b"host::features=shell_v2".to_vec(),
    ))
    .await;
    assert_eq!(h.recv().await.unwrap().command, Command::Cnxn);
    // Pulls on many streams, never read: each queues a first WRTE of 256 KiB, far more in
    // all than the stalled socket takes.
    let t0 = Instant::now();
    for i in 1..=64 {
        h.send(Packet::new(Command::Open, i, 0, b"sync:\0".to_vec()))
            .await;
        let pull = recv_request("/sdcard/big.bin");
        h.send(Packet::new(Command::Wrte, i, i, pull)).await;
    }
    assert!(gw.wait_ended(1, Duration::from_secs(10)).await);
    let end = gw.ended.lock().unwrap()[0].end.clone();
    assert!(end.contains("took nothing"), "{end}");
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
}

/// A sync RECV request for `path`.
pub fn recv_request(path: &str) -> Vec<u8> {
    let mut req = b"RECV".to_vec();
    req.extend((path.len() as u32).to_le_bytes());
    req.extend(path.as_bytes());
    req
}

/// Puts a file on the test device.
pub async fn put_file(device: &TestDevice, path: &str, data: Vec<u8>) {
    let mut f = device.fs.open_write(path, 0o644).await.unwrap();
    f.write_all(&data).await.unwrap();
    device.fs.finish_write(path, f, 0).await.unwrap();
}

/// Whether `cond` holds within `within`.
pub async fn wait_for(cond: impl Fn() -> bool, within: Duration) -> bool {
    let t0 = Instant::now();
    while !cond() {
        if t0.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}
