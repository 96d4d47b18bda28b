//! What a connection costs in memory when the host asks for a lot and reads nothing, measured
//! with a counting allocator (this binary's own, hence one test in it: the count is the
//! process's). The attack of the security review: many `sync:` streams, each pulling a large
//! file, the host never reading the socket and acknowledging blindly where it can. Before the
//! byte budget it held every stream's buffers and a queued WRTE per stream, about 100 MiB for
//! one connection; now it must hold the budget and a small buffer per stream, whatever the
//! host does.

#[path = "stock_adb/device.rs"]
#[allow(dead_code)]
mod device;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cloudphone_adb::proto::banner::DeviceBanner;
use cloudphone_adb::proto::packet::{Command, HEADER_LEN, Header, MAX_PAYLOAD, Packet, VERSION};
use cloudphone_adb::services::sync::SyncFs;
use cloudphone_adb::session::{Config, ConnectionHandle, NoAuth, serve_connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use device::TestDevice;

/// Live heap bytes, and the most there have been since the last [`reset_peak`].
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let now = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1024 * 1024;
const STREAMS: u32 = 256;

fn packet(command: Command, arg0: u32, arg1: u32, payload: &[u8]) -> Vec<u8> {
    Packet::new(command, arg0, arg1, payload.to_vec()).encode(VERSION)
}

fn recv_request(path: &str) -> Vec<u8> {
    let mut req = b"RECV".to_vec();
    req.extend((path.len() as u32).to_le_bytes());
    req.extend(path.as_bytes());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_nobody_reads_stay_within_the_budget() {
    let device = TestDevice::new();
    let mut file = device
        .fs
        .open_write("/sdcard/big.bin", 0o644)
        .await
        .unwrap();
    file.write_all(&vec![7u8; 16 * MIB]).await.unwrap();
    device
        .fs
        .finish_write("/sdcard/big.bin", file, 0)
        .await
        .unwrap();

    // Defaults, as the gateway has them.
    let config = Arc::new(Config::new(DeviceBanner::new("mem", "Mem", "mem")));
    let budget = config.max_buffered_bytes;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = ConnectionHandle::new();
    let served = {
        let (config, device, handle) = (config.clone(), device.clone(), handle.clone());
        tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            serve_connection(sock, &config, &NoAuth, device, handle).await
        })
    };
    let mut host = TcpStream::connect(addr).await.unwrap();
    host.write_all(&packet(
        Command::Cnxn,
        VERSION,
        MAX_PAYLOAD,
        b"host::features=shell_v2",
    ))
    .await
    .unwrap();
    let mut head = [0u8; HEADER_LEN];
    host.read_exact(&mut head).await.unwrap();
    let cnxn = Header::parse(&head, u32::MAX).unwrap();
    let mut banner = vec![0u8; cnxn.data_length as usize];
    host.read_exact(&mut banner).await.unwrap();

    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);

    // Every stream opened and its pull asked for at once; our ids for them are 1, 2, ...
    let mut attack = Vec::new();
    for i in 1..=STREAMS {
        attack.extend(packet(Command::Open, i, 0, b"sync:\0"));
        attack.extend(packet(
            Command::Wrte,
            i,
            i,
            &recv_request("/sdcard/big.bin"),
        ));
    }
    host.write_all(&attack).await.unwrap();
    // Then blind OKAYs, a round a second, never reading: each lets a stream whose first WRTE
    // is out queue its next. (The device may drop the connection for one that comes when
    // nothing is in flight; the memory held until then is what counts.)
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let okays: Vec<u8> = (1..=STREAMS)
            .flat_map(|i| packet(Command::Okay, i, i, &[]))
            .collect();
        if host.write_all(&okays).await.is_err() {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    eprintln!(
        "{STREAMS} pulls never read: heap grew by at most {:.1} MiB (budget {:.1} MiB); the \
         session counted {:.1} MiB at most, {} streams",
        peak as f64 / MIB as f64,
        budget as f64 / MIB as f64,
        handle.peak_buffered_bytes() as f64 / MIB as f64,
        handle.peak_open_streams()
    );
    assert!(handle.peak_buffered_bytes() <= budget);
    // The budget, and per stream its task and its state.
    assert!(
        peak < budget + STREAMS as usize * 16 * 1024 + 2 * MIB,
        "the heap grew by {peak} bytes"
    );
    drop(host);
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the connection ends")
        .unwrap();
}
