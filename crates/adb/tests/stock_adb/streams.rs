//! Stream multiplexing as a hand-driven host sees it: a stream whose host never acknowledges
//! does not hold up another; the cap on open streams refuses an OPEN, not the connection; a
//! host that writes twice without waiting for OKAY is dropped; a refused service is a CLSE.

use std::time::Duration;

use cloudphone_adb::proto::packet::{Command, Packet};
use cloudphone_adb::session::NoAuth;

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
    // Closing one made room.
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
        h.send(Packet::new(Command::Wrte, 1, id, vec![0; 100_000]))
            .await;
    }
    assert!(h.closed_within(Duration::from_secs(2)).await);
    assert!(gw.wait_ended(1, Duration::from_secs(2)).await);
    let end = gw.ended.lock().unwrap()[0].end.clone();
    assert!(end.contains("again before our OKAY"), "{end}");
}
