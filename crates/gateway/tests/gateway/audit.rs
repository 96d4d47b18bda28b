//! The audit as a phone's owner reads it: a client that gets in is recorded at once (outcome
//! `Connected`), not only when its connection ends, so a node that dies meanwhile still leaves
//! the record; connections that never get in are capped per account, the rest summarized in
//! one entry, and a client that gets in during such a flood is recorded all the same.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::auth::wait_for;
use crate::harness::World;
use crate::wire::{closed_within, connect, handshake};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gets_in_is_audited_while_connected() {
    let w = World::new(4).await;
    let ports = w.phones(&["acp-in"]).await;
    let node = w.gateway().await;
    let mut s = connect(SocketAddr::new(node.ip, ports[0])).await;
    handshake(&mut s).await.expect("online");

    // Still connected: the entry is there already.
    let mut entries = Vec::new();
    for _ in 0..200 {
        entries = w.audit_all().await;
        if !entries.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(entries.len(), 1, "{entries:?}");
    let connected = &entries[0];
    assert_eq!(connected.outcome, "Connected");
    assert_eq!(connected.resource_ids, ["acp-in"]);
    assert_eq!(connected.key_id, "");
    assert!(connected.request_id.starts_with("adbc-"), "{connected:?}");
    assert!(connected.source.starts_with("127.0.0.1:"), "{connected:?}");
    assert_eq!(node.handle.connections_of("acp-in"), 1);

    // Its end is a second entry of the same connection.
    drop(s);
    let ended = w.audited(1).await;
    assert_eq!(ended[0].request_id, connected.request_id);
    assert!(ended[0].outcome.starts_with("HostClosed "), "{ended:?}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_get_in_are_capped_per_account_and_summarized() {
    let w = World::new(4).await;
    let ports = w.phones(&["acp-flood", "acp-calm"]).await;
    let node = w
        .gateway_on([127, 0, 0, 1].into(), w.sim.clone(), |c| {
            c.unauthenticated_audit_limit = 5;
        })
        .await;
    let flood = SocketAddr::new(node.ip, ports[0]);
    for _ in 0..20 {
        let mut bad = connect(flood).await;
        bad.write_all(&[0xff; 64]).await.unwrap();
        assert!(closed_within(&mut bad, Duration::from_secs(2)).await);
    }
    wait_for(|| node.handle.open_connections() == 0).await;
    // A client that gets in amid the flood, on the same account's other phone.
    let mut good = connect(SocketAddr::new(node.ip, ports[1])).await;
    handshake(&mut good).await.expect("online");
    drop(good);
    wait_for(|| node.handle.open_connections() == 0).await;
    node.stop().await;

    let all = w.audit_all().await;
    let outcomes: Vec<&str> = all
        .iter()
        .map(|e| e.outcome.split(' ').next().unwrap())
        .collect();
    let count = |o: &str| outcomes.iter().filter(|x| **x == o).count();
    assert_eq!(count("ProtocolError"), 5, "{outcomes:?}");
    assert_eq!(
        (count("Connected"), count("HostClosed")),
        (1, 1),
        "{outcomes:?}"
    );
    // One summary, of the fifteen left out, naming the phone.
    let summaries: Vec<_> = all
        .iter()
        .filter(|e| e.outcome.starts_with("Suppressed "))
        .map(|e| (e.outcome.split(' ').nth(1), e.resource_ids.clone()))
        .collect();
    assert_eq!(
        summaries,
        [(Some("unauthenticated=15"), vec!["acp-flood".to_string()])],
        "{all:?}"
    );
}
