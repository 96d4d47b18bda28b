//! Fuzz target `adb_session`: a whole connection, `session::serve_connection` over an
//! in-memory pipe (`tokio::io::duplex`), with a small device behind it (a shell of a few
//! commands, a file system of one file, and a service that takes its time to open), driven by
//! a host whose bytes come from the input, in chunks, with pauses between them (tokio's clock
//! is paused, so timers fire as soon as everything waits).
//!
//! The first input byte sets the limits (bit 0: authentication required; bits 1-3:
//! `max_streams` - 1; bits 4-5: `max_concurrent_opens` - 1; bits 6-7: the byte budget, 4 to 32
//! KiB); the payload limit is 4096 bytes. The rest is a list of operations, each a kind byte
//! and its arguments: raw bytes; a message (command, small ids, payload) encoded by the
//! target so that most of them parse; an OPEN of a service from a table; a sync request in a
//! WRTE; an OKAY; a pause. A signature is accepted when it starts with `let me in`.
//!
//! Checks besides "never panics" and "never hangs" (libFuzzer's `-timeout`): the device never
//! runs more services (opening or open) than `max_streams`, nor more opens at once than
//! `max_concurrent_opens`, and the session's own counts agree; the payload bytes the session
//! held for the host never exceeded the budget; what the device sends keeps the protocol:
//! no WRTE larger than the payload limit, and never a second WRTE on a stream before the host
//! sent an OKAY for the first.

#![no_main]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudphone_adb::proto::banner::DeviceBanner;
use cloudphone_adb::proto::handshake::TOKEN_SIZE;
use cloudphone_adb::proto::packet::{Command, HEADER_LEN, Header, Packet, VERSION};
use cloudphone_adb::proto::service::{ServiceName, ShellRequest};
use cloudphone_adb::proto::sync::{FileStat, S_IFREG};
use cloudphone_adb::services::LocalDevice;
use cloudphone_adb::services::shell::{Shell, ShellIo};
use cloudphone_adb::services::sync::{DirEntry, FsError, SyncFs};
use cloudphone_adb::session::{
    Authorizer, Config, ConnectionHandle, Device, OpenError, Service, serve_connection,
};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_PAYLOAD: u32 = 4096;
const SERVICES: &[&str] = &[
    "shell:echo hi",
    "shell,v2,raw:cat",
    "shell:yes 64",
    "shell,v2,pty:sleep 50",
    "exec:yes 8",
    "sync:",
    "slow:",
    "nosuch:",
    "host:devices",
    "shell:",
];
const SYNC_REQUESTS: &[&[u8]] = &[
    b"RECV\x02\x00\x00\x00/f",
    b"STA2\x02\x00\x00\x00/f",
    b"LIS2\x01\x00\x00\x00/",
    b"SEND\x08\x00\x00\x00/g,33188DATA\x04\x00\x00\x00abcdDONE\x00\x00\x00\x00",
    b"QUIT\x00\x00\x00\x00",
];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, ops)) = data.split_first() else {
        return;
    };
    let mut config = Config::new(DeviceBanner::new("fuzz", "Fuzz", "fuzz"));
    config.max_payload = MAX_PAYLOAD;
    config.max_streams = 1 + usize::from((flags >> 1) & 7);
    config.max_concurrent_opens = 1 + usize::from((flags >> 4) & 3);
    config.max_buffered_bytes = 4096 << ((flags >> 6) & 3);
    config.handshake_timeout = Duration::from_secs(5);
    config.write_stall_timeout = Duration::from_secs(2);
    let auth = FuzzAuth {
        required: flags & 1 != 0,
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(run(config, auth, ops));
});

async fn run(config: Config, auth: FuzzAuth, ops: &[u8]) {
    let device = Arc::new(FuzzDevice::new());
    let handle = ConnectionHandle::new();
    let (ours, theirs) = tokio::io::duplex(8 * 1024);
    let (mut from_device, mut to_device) = tokio::io::split(theirs);
    let okays: RefCell<HashMap<(u32, u32), u32>> = RefCell::default();
    let serve = serve_connection(ours, &config, &auth, device.clone(), handle.clone());
    let host = async {
        let mut ops = Ops(ops);
        while let Some(op) = ops.next() {
            match op {
                Op::Bytes(b) => {
                    if to_device.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Op::Pause(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Op::Packet(p) => {
                    if p.command == Command::Okay {
                        *okays.borrow_mut().entry((p.arg0, p.arg1)).or_default() += 1;
                    }
                    if to_device.write_all(&p.encode(VERSION)).await.is_err() {
                        break;
                    }
                }
            }
        }
        // The host leaves.
        let _ = to_device.shutdown().await;
        drop(to_device);
    };
    let watch = async {
        let mut wrtes: HashMap<(u32, u32), u32> = HashMap::new();
        let mut head = [0u8; HEADER_LEN];
        loop {
            if from_device.read_exact(&mut head).await.is_err() {
                return;
            }
            let h = Header::parse(&head, u32::MAX).expect("the device sends what it can read");
            let mut payload = vec![0u8; h.data_length as usize];
            if from_device.read_exact(&mut payload).await.is_err() {
                return;
            }
            if h.command == Command::Wrte {
                assert!(
                    payload.len() <= MAX_PAYLOAD as usize,
                    "a WRTE over the limit"
                );
                let key = (h.arg1, h.arg0);
                let n = wrtes.entry(key).or_default();
                *n += 1;
                let acked = okays.borrow().get(&key).copied().unwrap_or(0);
                assert!(*n <= acked + 1, "WRTE {n} on {key:?} after {acked} OKAYs");
            }
        }
    };
    let (report, (), ()) = tokio::join!(serve, host, watch);
    let _ = report;
    let max_streams = config.max_streams;
    assert!(handle.peak_open_streams() <= max_streams);
    assert!(device.peak_live.load(Ordering::SeqCst) <= max_streams);
    assert!(device.peak_opening.load(Ordering::SeqCst) <= config.max_concurrent_opens);
    let budget = config.max_buffered_bytes.max(MAX_PAYLOAD as usize);
    assert!(handle.peak_buffered_bytes() <= budget);
}

enum Op {
    Bytes(Vec<u8>),
    Packet(Packet),
    Pause(u64),
}

/// The input as operations.
struct Ops<'a>(&'a [u8]);

impl Ops<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b.to_vec()
    }

    fn next(&mut self) -> Option<Op> {
        let kind = self.byte()?;
        let op = match kind % 8 {
            0 => {
                let n = usize::from(self.byte()?);
                Op::Bytes(self.bytes(n))
            }
            1 => {
                let command = [
                    Command::Cnxn,
                    Command::Auth,
                    Command::Open,
                    Command::Okay,
                    Command::Wrte,
                    Command::Clse,
                    Command::Sync,
                    Command::Stls,
                ][usize::from(self.byte()? % 8)];
                let (arg0, arg1) = (u32::from(self.byte()?), u32::from(self.byte()?));
                let n = usize::from(self.byte()?) * 32;
                Op::Packet(Packet::new(command, arg0, arg1, self.bytes(n)))
            }
            2 => {
                let id = u32::from(self.byte()?);
                let service = SERVICES[usize::from(self.byte()?) % SERVICES.len()];
                let mut name = service.as_bytes().to_vec();
                name.push(0);
                Op::Packet(Packet::new(Command::Open, id, 0, name))
            }
            3 => {
                let (ours, theirs) = (u32::from(self.byte()?), u32::from(self.byte()?));
                let req = SYNC_REQUESTS[usize::from(self.byte()?) % SYNC_REQUESTS.len()];
                Op::Packet(Packet::new(Command::Wrte, ours, theirs, req.to_vec()))
            }
            4 => {
                let (ours, theirs) = (u32::from(self.byte()?), u32::from(self.byte()?));
                Op::Packet(Packet::new(Command::Okay, ours, theirs, Vec::new()))
            }
            5 => Op::Pause(u64::from(self.byte()?) * 10),
            6 => {
                let mut banner = b"host::features=shell_v2,cmd".to_vec();
                let n = usize::from(self.byte()? % 4);
                banner.extend(self.bytes(n));
                let version = [VERSION, 0x0100_0000][usize::from(self.byte()? & 1)];
                Op::Packet(Packet::new(Command::Cnxn, version, MAX_PAYLOAD, banner))
            }
            _ => {
                let mut sig = b"let me in".to_vec();
                let n = usize::from(self.byte()? % 8);
                sig.extend(self.bytes(n));
                Op::Packet(Packet::new(Command::Auth, 2, 0, sig))
            }
        };
        Some(op)
    }
}

struct FuzzAuth {
    required: bool,
}

impl Authorizer for FuzzAuth {
    type Identity = ();

    async fn auth_required(&self) -> bool {
        self.required
    }

    async fn verify(&self, _token: &[u8; TOKEN_SIZE], signature: &[u8]) -> Option<()> {
        signature.starts_with(b"let me in").then_some(())
    }
}

/// Counts what runs: opens, and services from their open to their end.
struct FuzzDevice {
    inner: LocalDevice<FuzzShell, OneFile>,
    live: Arc<AtomicUsize>,
    peak_live: Arc<AtomicUsize>,
    opening: Arc<AtomicUsize>,
    peak_opening: AtomicUsize,
}

impl FuzzDevice {
    fn new() -> FuzzDevice {
        FuzzDevice {
            inner: LocalDevice::new(Arc::new(FuzzShell), Arc::new(OneFile::default())),
            live: Arc::default(),
            peak_live: Arc::default(),
            opening: Arc::default(),
            peak_opening: AtomicUsize::new(0),
        }
    }
}

/// One count, given back when dropped.
struct Count(Arc<AtomicUsize>);

impl Count {
    fn new(n: &Arc<AtomicUsize>, peak: &AtomicUsize) -> Count {
        let now = n.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        Count(n.clone())
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Device for FuzzDevice {
    async fn open(&self, service: &str) -> Result<Service, OpenError> {
        // From its open to the end of its service, whichever way it ends.
        let live = Count::new(&self.live, &self.peak_live);
        let opening = Count::new(&self.opening, &self.peak_opening);
        let opened = async {
            if service == "slow:" {
                tokio::time::sleep(Duration::from_millis(300)).await;
                return Ok(Service::new(|s| async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    drop(s);
                }));
            }
            self.inner
                .service(&ServiceName::parse(service.as_bytes()))
                .ok_or_else(|| OpenError(format!("no {service}")))
        }
        .await;
        drop(opening);
        opened.map(|service| {
            Service::new(move |s| async move {
                let _live = live;
                service.run(s).await;
            })
        })
    }
}

/// `echo WORDS`, `cat` (stdin to stdout), `yes KIB` (that much output), `sleep MS`.
struct FuzzShell;

impl Shell for FuzzShell {
    async fn run(&self, request: ShellRequest, mut io: ShellIo) -> i32 {
        let mut words = request.command.split(' ');
        match (words.next(), words.next()) {
            (Some("echo"), rest) => {
                let _ = io.stdout.write_all(rest.unwrap_or("").as_bytes()).await;
                0
            }
            (Some("cat"), _) => {
                let _ = tokio::io::copy(&mut io.stdin, &mut io.stdout).await;
                0
            }
            (Some("yes"), Some(kib)) => {
                let line = [b'y'; 1024];
                for _ in 0..kib.parse::<u32>().unwrap_or(1) {
                    if io.stdout.write_all(&line).await.is_err() {
                        return 1;
                    }
                }
                0
            }
            (Some("sleep"), Some(ms)) => {
                let ms = ms.parse().unwrap_or(1);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                0
            }
            _ => 127,
        }
    }
}

/// `/f` (32 KiB), and whatever is pushed, at most 64 KiB a file.
#[derive(Default)]
struct OneFile {
    pushed: Mutex<BTreeMap<String, Vec<u8>>>,
}

const F_LEN: usize = 32 * 1024;

fn stat(size: usize) -> FileStat {
    FileStat {
        mode: S_IFREG | 0o644,
        nlink: 1,
        size: size as u64,
        ..FileStat::default()
    }
}

/// A file being pushed, held to 64 KiB.
struct Upload(Vec<u8>);

impl tokio::io::AsyncWrite for Upload {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.0.len() + buf.len() > 64 * 1024 {
            return std::task::Poll::Ready(Err(std::io::ErrorKind::StorageFull.into()));
        }
        this.0.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl SyncFs for OneFile {
    type Reader = Cursor<Vec<u8>>;
    type Writer = Upload;

    async fn stat(&self, path: &str, _follow_links: bool) -> Result<FileStat, FsError> {
        match path {
            "/f" => Ok(stat(F_LEN)),
            _ => match self.pushed.lock().unwrap().get(path) {
                Some(data) => Ok(stat(data.len())),
                None => Err(FsError::not_found()),
            },
        }
    }

    async fn list(&self, _path: &str) -> Result<Vec<DirEntry>, FsError> {
        Ok(vec![DirEntry {
            name: "f".into(),
            stat: stat(F_LEN),
        }])
    }

    async fn open_read(&self, path: &str) -> Result<Self::Reader, FsError> {
        match path {
            "/f" => Ok(Cursor::new((0..F_LEN).map(|i| i as u8).collect())),
            _ => Err(FsError::not_found()),
        }
    }

    async fn open_write(&self, _path: &str, _mode: u32) -> Result<Self::Writer, FsError> {
        Ok(Upload(Vec::new()))
    }

    async fn finish_write(&self, path: &str, file: Upload, _mtime: u32) -> Result<(), FsError> {
        let mut pushed = self.pushed.lock().unwrap();
        if pushed.len() < 4 {
            pushed.insert(path.to_string(), file.0);
        }
        Ok(())
    }
}
