//! Clients that send garbage, a huge length or nothing are dropped, each alone: a stock adb
//! shell running at the same time on the same gateway finishes normally.

use std::time::{Duration, Instant};

use cloudphone_adb::proto::packet::{Command, Header, MAX_PAYLOAD, Packet, VERSION};
use cloudphone_adb::session::NoAuth;
use cloudphone_adb_testkit::StockAdb;
use tokio::io::AsyncWriteExt;

use crate::config;
use crate::device::TestDevice;
use crate::harness::Gateway;
use crate::raw::RawHost;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_are_dropped_alone() {
    let device = TestDevice::new();
    let mut cfg = config();
    cfg.handshake_timeout = Duration::from_secs(1);
    let gw = Gateway::start(cfg, NoAuth, device.clone()).await;
    let adb = StockAdb::start().await;
    let serial = gw.serial();
    adb.connect(&serial).await;

    // A good session that spans all the abuse below.
    let sleeping = device.log.sleeping.notified();
    tokio::pin!(sleeping);
    sleeping.as_mut().enable();
    let good = adb
        .command(&["-s", &serial, "shell", "sleep 2.5; echo alive; exit 4"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), sleeping)
        .await
        .unwrap();

    // Garbage: not even a header.
    let mut garbage = RawHost::connect(gw.addr).await;
    garbage
        .sock
        .write_all(b"GET / HTTP/1.1\r\nHost: phone\r\n\r\n")
        .await
        .unwrap();
    assert!(garbage.closed_within(Duration::from_millis(500)).await);

    // A valid header announcing 2 GiB: refused on the header, nothing read or allocated.
    let mut huge = RawHost::connect(gw.addr).await;
    let header = Header {
        command: Command::Cnxn,
        arg0: VERSION,
        arg1: MAX_PAYLOAD,
        data_length: 0x7fff_ffff,
        data_check: 0,
    };
    huge.sock.write_all(&header.encode()).await.unwrap();
    assert!(huge.closed_within(Duration::from_millis(500)).await);

    // Too large for a handshake message even if small for a stream (4096 before CNXN).
    let mut big = RawHost::connect(gw.addr).await;
    big.send(Packet::new(
        Command::Cnxn,
        VERSION,
        MAX_PAYLOAD,
        vec![b'x'; 5000],
    ))
    .await;
    assert!(big.closed_within(Duration::from_millis(500)).await);

    // Silence: dropped at the handshake deadline, not before.
    let mut silent = RawHost::connect(gw.addr).await;
    let t0 = Instant::now();
    assert!(silent.closed_within(Duration::from_secs(3)).await);
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");

    // A stream message before any CNXN is ignored, and the deadline still applies.
    let mut early = RawHost::connect(gw.addr).await;
    early
        .send(Packet::new(Command::Open, 1, 0, b"shell:echo x\0".to_vec()))
        .await;
    assert!(early.closed_within(Duration::from_secs(3)).await);

    let out = tokio::time::timeout(Duration::from_secs(10), good.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(out.stdout, b"alive\n");
    assert_eq!(device.log.services.lock().unwrap().len(), 1);

    let ended: Vec<String> = gw
        .ended
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.end.clone())
        .collect();
    eprintln!("{ended:#?}");
    assert!(ended.iter().any(|e| e.contains("bad magic")));
    assert!(
        ended
            .iter()
            .any(|e| e.contains("2147483647 bytes over the limit of 4096"))
    );
    assert!(
        ended
            .iter()
            .any(|e| e.contains("5000 bytes over the limit of 4096"))
    );
    assert_eq!(
        ended
            .iter()
            .filter(|e| e.contains("no handshake within"))
            .count(),
        2
    );
}
