//! Access taken away: StopInstanceAdb ends an open `adb shell` within a second (this node's
//! signal) and refuses the next connection; a phone that is not RUNNING is refused and its
//! connections dropped; a change made through another node reaches this node's connections
//! within a second without any signal (the periodic check); shutdown ends and audits them; a
//! store that cannot confirm a connection's access for longer than the grace closes it, a
//! shorter blip changes nothing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cloudphone_adb_testkit::StockAdb;
use cloudphone_core::InstanceStatus;
use cloudphone_store::prelude::*;

use crate::auth::wait_for;
use crate::harness::{ACCOUNT, World, now_ms};
use crate::wire::{closed_within, connect, handshake};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_endpoint_ends_an_open_shell_within_a_second() {
    let w = World::new(4).await;
    let ports = w.phones(&["acp-stop", "acp-other"]).await;
    let node = w.gateway().await;
    let adb = StockAdb::start().await;
    let (serial, other) = (node.serial(ports[0]), node.serial(ports[1]));
    adb.connected(&serial).await;
    adb.connected(&other).await;
    let mut shell = adb
        .command(&["-s", &serial, "shell", "sleep 30"])
        .spawn()
        .unwrap();
    wait_for(|| node.handle.connections_of("acp-stop") == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let ids = vec!["acp-stop".to_string()];
    assert_eq!(
        w.store.stop_adb(ACCOUNT, &ids, now_ms()).await.unwrap(),
        ids
    );
    let at = Instant::now();
    assert_eq!(node.handle.recheck(&ids).await, 1);
    let status = tokio::time::timeout(Duration::from_secs(1), shell.wait())
        .await
        .expect("adb shell still running a second after StopInstanceAdb")
        .unwrap();
    eprintln!(
        "adb shell ended ({status:?}) {:?} after the stop",
        at.elapsed()
    );

    // The next connection is refused; the other phone's is untouched.
    adb.run(&["disconnect", &serial]).await;
    let (said, state) = adb.connect(&serial).await;
    assert_ne!(state.as_deref(), Some("device"), "{said}");
    let (out, _, _) = adb.shell(&other, &["echo", "still here"]).await;
    assert_eq!(out, "still here\n");
    let entries = w.audited(1).await;
    assert!(
        entries
            .iter()
            .any(|e| e.resource_ids == ["acp-stop"] && e.outcome.starts_with("EndpointStopped ")),
        "{entries:?}"
    );
    node.stop().await;
    // Shutdown ends the other phone's connection, audited as such.
    let entries = w.audit().await;
    assert!(
        entries
            .iter()
            .any(|e| e.resource_ids == ["acp-other"] && e.outcome.starts_with("Shutdown ")),
        "{entries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_is_not_running_is_refused_and_dropped() {
    let w = World::new(4).await;
    let ports = w.phones(&["acp-run", "acp-stopped"]).await;
    w.set_status("acp-stopped", InstanceStatus::Stopped).await;
    let node = w.gateway().await;
    let adb = StockAdb::start().await;
    let (running, stopped) = (node.serial(ports[0]), node.serial(ports[1]));

    let (said, state) = adb.connect(&stopped).await;
    assert_ne!(state.as_deref(), Some("device"), "{said}");

    adb.connected(&running).await;
    let mut shell = adb
        .command(&["-s", &running, "shell", "sleep 30"])
        .spawn()
        .unwrap();
    wait_for(|| node.handle.connections_of("acp-run") == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // StopAndroidInstance: the phone goes STOPPING when its task runs; the API rings at once.
    w.set_status("acp-run", InstanceStatus::Stopping).await;
    node.handle.recheck(&["acp-run".to_string()]).await;
    tokio::time::timeout(Duration::from_secs(1), shell.wait())
        .await
        .expect("the shell ends within a second")
        .unwrap();
    let entries = w.audited(1).await;
    assert!(
        entries[0].outcome.starts_with("PhoneNotRunning "),
        "{entries:?}"
    );
    // The API's drop for a phone being deleted needs no store change.
    w.set_status("acp-run", InstanceStatus::Running).await;
    adb.run(&["disconnect", &running]).await;
    adb.connected(&running).await;
    wait_for(|| node.handle.connections_of("acp-run") == 1).await;
    assert_eq!(
        node.handle
            .drop_connections(&["acp-run".to_string()], "PhoneDeleted"),
        1
    );
    let entries = w.audited(2).await;
    assert!(
        entries[1].outcome.starts_with("PhoneDeleted "),
        "{entries:?}"
    );
    node.stop().await;
}

/// Two nodes on one store (127.0.0.1 and 127.0.0.2, the same ports): a client of node B loses
/// its shell within a second of a StopInstanceAdb made through node A, which rings only A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_change_arrives_within_a_second() {
    let w = World::new(4).await;
    let ports = w.phones(&["acp-multi"]).await;
    let a = w.gateway().await;
    let b = w
        .gateway_on([127, 0, 0, 2].into(), w.sim.clone(), |_| {})
        .await;
    let adb = StockAdb::start().await;
    let via_b = b.serial(ports[0]);
    adb.connected(&via_b).await;
    let mut shell = adb
        .command(&["-s", &via_b, "shell", "sleep 30"])
        .spawn()
        .unwrap();
    wait_for(|| b.handle.connections_of("acp-multi") == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let ids = vec!["acp-multi".to_string()];
    w.store.stop_adb(ACCOUNT, &ids, now_ms()).await.unwrap();
    let at = Instant::now();
    assert_eq!(a.handle.recheck(&ids).await, 0, "node A has no connection");
    // Within the check interval (1 s), plus the time the check and adb take.
    tokio::time::timeout(Duration::from_millis(1500), shell.wait())
        .await
        .expect("node B did not drop the shell")
        .unwrap();
    eprintln!("node B dropped the shell {:?} after the stop", at.elapsed());
    a.stop().await;
    b.stop().await;
}

/// The store's reads fail (the fake): a blip shorter than the grace keeps the connection; an
/// outage longer than it closes the connection as `AccessUnconfirmed` (a revocation made
/// meanwhile would not be seen), within the grace and a check of the last confirmation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_the_store_cannot_confirm_past_the_grace_is_closed() {
    let w = World::new(4).await;
    let ports = w.phones(&["acp-blip"]).await;
    let store = w.fake_store();
    let grace = Duration::from_secs(2);
    let node = w
        .gateway_over(store.clone(), |c| c.revocation_grace = grace)
        .await;
    let mut s = connect(SocketAddr::new(node.ip, ports[0])).await;
    handshake(&mut s).await.expect("online");

    store.fail_reads(true);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    store.fail_reads(false);
    assert!(
        !closed_within(&mut s, Duration::from_millis(2500)).await,
        "a blip shorter than the grace closed the connection"
    );

    store.fail_reads(true);
    let at = Instant::now();
    assert!(
        closed_within(&mut s, grace + Duration::from_secs(3)).await,
        "still open with the store failing past the grace"
    );
    let after = at.elapsed();
    eprintln!("closed {after:?} after the store began failing");
    assert!(after >= grace - Duration::from_millis(1100), "{after:?}");
    let entries = w.audited(1).await;
    assert!(
        entries[0].outcome.starts_with("AccessUnconfirmed "),
        "{entries:?}"
    );
    store.fail_reads(false);
    node.stop().await;
}
