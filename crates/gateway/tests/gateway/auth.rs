//! Keys as stock adb meets them: a secure endpoint without a key attached leaves every client
//! `unauthorized`; the client whose `~/.android/adbkey` is the attached key gets in (and its
//! key pair is in the audit); once the key is detached, its live connection ends and its next
//! one is refused; SetAdbSecure on drops a connection that never authenticated; a client's
//! signatures cost the store one read of the keys per connection, however many it sends.

use std::net::SocketAddr;
use std::time::Duration;

use cloudphone_adb::proto::handshake::{AUTH_SIGNATURE, AUTH_TOKEN};
use cloudphone_adb::proto::packet::{Command, Packet};
use cloudphone_adb_testkit::StockAdb;
use cloudphone_store::AuditEntry;
use cloudphone_store::prelude::*;

use crate::harness::{ACCOUNT, World, new_key, now_ms};
use crate::wire;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attached_key_and_no_other_gets_in() {
    let w = World::new(4).await;
    let ports = w.phones(&["acp-keys"]).await;
    let node = w.gateway().await;
    let serial = node.serial(ports[0]);
    let ids = vec!["acp-keys".to_string()];

    // Secure, no key attached: unauthorized, whatever key the client has.
    w.store
        .set_adb_secure(ACCOUNT, &ids, true, now_ms())
        .await
        .unwrap();
    let stranger = StockAdb::start().await;
    let (said, state) = stranger.connect(&serial).await;
    assert_eq!(state.as_deref(), Some("unauthorized"), "{said}");
    let (_, err, _) = stranger.shell(&serial, &["echo", "hi"]).await;
    assert!(err.contains("unauthorized"), "{err}");

    // The key of the key pair attached, as the client's adbkey: a device.
    let key = new_key().await;
    w.attach("kp-good", &key, "acp-keys").await;
    let owner = StockAdb::with_key(&key.private_pem, &key.public.to_string()).await;
    owner.connected(&serial).await;
    let (out, _, code) = owner.shell(&serial, &["echo", "signed"]).await;
    assert_eq!((out.as_str(), code), ("signed\n", Some(0)));
    // Another key is still refused.
    let other = StockAdb::start().await;
    let (_, state) = other.connect(&serial).await;
    assert_eq!(state.as_deref(), Some("unauthorized"));

    // Detached (the API then rings the gateway): the live connection ends, the next is refused.
    let mut shell = owner
        .command(&["-s", &serial, "shell", "sleep 30"])
        .spawn()
        .unwrap();
    wait_for(|| node.handle.connections_of("acp-keys") >= 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.store
        .detach_key_pair(ACCOUNT, "kp-good", &ids, now_ms())
        .await
        .unwrap();
    let at = std::time::Instant::now();
    node.handle.recheck(&ids).await;
    tokio::time::timeout(Duration::from_secs(1), shell.wait())
        .await
        .expect("the shell ends within a second of the detach")
        .unwrap();
    eprintln!("shell ended {:?} after the detach", at.elapsed());
    let revoked = |e: &AuditEntry| e.key_id == "kp-good" && e.outcome.starts_with("KeyRevoked ");
    let entries = w.audited_with(revoked).await;
    assert!(entries.iter().any(revoked), "{entries:?}");
    owner.run(&["disconnect", &serial]).await;
    let (_, state) = owner.connect(&serial).await;
    assert_eq!(state.as_deref(), Some("unauthorized"), "detached: refused");

    drop((stranger, other, owner));
    node.stop().await;
    let entries = w.audit().await;
    assert!(
        entries
            .iter()
            .all(|e| e.key_id.is_empty() || e.key_id == "kp-good"),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .filter(|e| e.key_id.is_empty())
            .all(|e| e.resource_ids == ["acp-keys"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_authentication_on_drops_unauthenticated_connections() {
    let w = World::new(4).await;
    let ports = w.phones(&["acp-open"]).await;
    let node = w.gateway().await;
    let serial = node.serial(ports[0]);
    let adb = StockAdb::start().await;
    adb.connected(&serial).await;
    let mut shell = adb
        .command(&["-s", &serial, "shell", "sleep 30"])
        .spawn()
        .unwrap();
    wait_for(|| node.handle.connections_of("acp-open") >= 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids = vec!["acp-open".to_string()];
    w.store
        .set_adb_secure(ACCOUNT, &ids, true, now_ms())
        .await
        .unwrap();
    assert_eq!(node.handle.recheck(&ids).await, 1);
    tokio::time::timeout(Duration::from_secs(1), shell.wait())
        .await
        .expect("the shell ends within a second")
        .unwrap();
    let entries = w.audited(1).await;
    assert!(
        entries[0].outcome.starts_with("AuthRequired "),
        "{entries:?}"
    );
    // adb reconnects by itself, and is now unauthorized.
    adb.run(&["disconnect", &serial]).await;
    let (_, state) = adb.connect(&serial).await;
    assert_eq!(state.as_deref(), Some("unauthorized"));
    node.stop().await;
}

/// A client that signs again and again (each refused signature gets a new token, up to the
/// attempt cap) makes the store read the phone's keys once for its connection, not once per
/// signature; the attached key still gets in through the same store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connections_keys_are_read_once_however_many_signatures() {
    let w = World::new(4).await;
    let ports = w.phones(&["acp-sigs"]).await;
    let key = new_key().await;
    w.attach("kp-sigs", &key, "acp-sigs").await;
    let store = w.fake_store();
    let node = w.gateway_over(store.clone(), |_| {}).await;
    let addr = SocketAddr::new(node.ip, ports[0]);

    let mut s = wire::connect(addr).await;
    let p = wire::handshake(&mut s).await.expect("an AUTH token");
    assert_eq!((p.command, p.arg0), (Command::Auth, AUTH_TOKEN));
    for i in 0..10u8 {
        let bogus = Packet::new(Command::Auth, AUTH_SIGNATURE, 0, vec![i; 256]);
        wire::send(&mut s, &bogus).await.unwrap();
        let p = wire::read_packet(&mut s).await.expect("a new token");
        assert_eq!((p.command, p.arg0), (Command::Auth, AUTH_TOKEN));
    }
    assert_eq!(
        store.endpoint_reads(),
        2,
        "one read on the way in, one of the keys at the first signature"
    );
    drop(s);

    let owner = StockAdb::with_key(&key.private_pem, &key.public.to_string()).await;
    owner.connected(&node.serial(ports[0])).await;
    let (out, _, code) = owner.shell(&node.serial(ports[0]), &["echo", "in"]).await;
    assert_eq!((out.as_str(), code), ("in\n", Some(0)));
    drop(owner);
    node.stop().await;
    assert!(
        w.audit().await.iter().any(|e| e.key_id == "kp-sigs"),
        "the signed connection is audited with its key pair"
    );
}

pub async fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not met within 10 s");
}
