//! What clients can hold, spoken by hand on the wire: a port no phone has and a stopped
//! endpoint close at once; the cap per address closes the connection over it at once and lets
//! others in; garbage and a stalled handshake end their own connection only; an idle
//! connection is closed (and audited as such).

use std::net::SocketAddr;
use std::time::Duration;

use cloudphone_adb::proto::packet::{Command, HEADER_LEN, Header, MAX_PAYLOAD, Packet, VERSION};
use cloudphone_store::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::auth::wait_for;
use crate::harness::{ACCOUNT, World, now_ms};
use crate::wire::{closed_within, connect, handshake};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_without_an_open_endpoint_close_at_once() {
    let w = World::new(4).await;
    let ports = w.phones(&["acp-a", "acp-b"]).await;
    w.store
        .stop_adb(ACCOUNT, &["acp-b".to_string()], now_ms())
        .await
        .unwrap();
    let node = w.gateway().await;
    let ip = node.ip;
    // A port of the range no phone has; a stopped endpoint.
    let unused = (w.ports.low..=w.ports.high)
        .find(|p| !ports.contains(p))
        .unwrap();
    for port in [unused, ports[1]] {
        let mut s = connect(SocketAddr::new(ip, port)).await;
        assert!(
            closed_within(&mut s, Duration::from_secs(2)).await,
            "port {port}"
        );
    }
    // The open one answers.
    let mut s = connect(SocketAddr::new(ip, ports[0])).await;
    let p = handshake(&mut s).await.expect("the device's CNXN");
    assert_eq!(p.command, Command::Cnxn);
    assert!(String::from_utf8_lossy(&p.payload).starts_with("device::"));
    drop(s);
    node.stop().await;
    // Only the connection that reached a phone is audited.
    let entries = w.audit().await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].resource_ids, ["acp-a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_garbage_stalls_and_idleness_end_their_own_connection_only() {
    let w = World::new(4).await;
    let ports = w.phones(&["acp-lim"]).await;
    let node = w
        .gateway_on([127, 0, 0, 1].into(), w.sim.clone(), |c| {
            c.max_connections_per_ip = 3;
            c.handshake_timeout = Duration::from_secs(1);
            c.idle_timeout = Duration::from_secs(3);
        })
        .await;
    let addr = SocketAddr::new(node.ip, ports[0]);

    // A client online, used all along.
    let mut good = connect(addr).await;
    handshake(&mut good).await.expect("online");

    // Garbage: dropped, alone.
    let mut bad = connect(addr).await;
    bad.write_all(&[0xff; 64]).await.unwrap();
    assert!(closed_within(&mut bad, Duration::from_secs(2)).await);
    // A huge length in a header: dropped before anything is read or allocated.
    let mut huge = connect(addr).await;
    let mut head = Packet::new(Command::Cnxn, VERSION, MAX_PAYLOAD, vec![]).encode(VERSION);
    head[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    huge.write_all(&head).await.unwrap();
    assert!(closed_within(&mut huge, Duration::from_secs(2)).await);

    // The cap per address: with `good` and two stalled ones, a fourth closes at once.
    let mut stalled = vec![connect(addr).await, connect(addr).await];
    wait_for(|| node.handle.open_connections() == 3).await;
    let mut over = connect(addr).await;
    assert!(closed_within(&mut over, Duration::from_millis(200)).await);
    // The stalled handshakes end at their deadline; then there is room again.
    for s in &mut stalled {
        assert!(closed_within(s, Duration::from_secs(3)).await);
    }
    let mut again = connect(addr).await;
    handshake(&mut again).await.expect("room again");
    drop(again);

    // `good` still works after all that, until it is idle for 3 s.
    let open = Packet::new(Command::Open, 1, 0, b"shell,v2,raw:echo alive\0".to_vec());
    good.write_all(&open.encode(VERSION)).await.unwrap();
    let mut head = [0u8; HEADER_LEN];
    good.read_exact(&mut head).await.unwrap();
    assert_eq!(
        Header::parse(&head, u32::MAX).unwrap().command,
        Command::Okay
    );
    assert!(
        closed_within(&mut good, Duration::from_secs(6)).await,
        "closed when idle"
    );
    node.stop().await;
    let outcomes: Vec<String> = w
        .audit()
        .await
        .into_iter()
        .map(|e| e.outcome.split(' ').next().unwrap().to_string())
        .collect();
    for expected in ["ProtocolError", "HandshakeTimeout", "Idle"] {
        assert!(outcomes.iter().any(|o| o == expected), "{outcomes:?}");
    }
}
