//! The relay helper against the stock ADB server: the test device is `adb connect`ed to a
//! private server; services are opened on it through the server's smart-socket protocol, and
//! a second gateway whose device is a [`RelayDevice`] serves stock adb through that server;
//! and what the server would answer itself (`host...`) never reaches it.

use std::sync::Arc;
use std::time::Duration;

use cloudphone_adb::proto::banner::DEFAULT_FEATURES;
use cloudphone_adb::proto::packet::{Command, Packet};
use cloudphone_adb::proto::service::ServicePolicy;
use cloudphone_adb::proto::shell::{ShellId, decode};
use cloudphone_adb::relay::{AdbServer as Upstream, RelayDevice, RelayError, relayable_features};
use cloudphone_adb::session::{Device, NoAuth, OpenError, Service};
use cloudphone_adb_testkit::{StockAdb, pseudo_random};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::config;
use crate::device::TestDevice;
use crate::harness::Gateway;
use crate::raw::RawHost;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_service_through_the_adb_server() {
    let phone = TestDevice::new();
    let gw = Gateway::start(config(), NoAuth, phone.clone()).await;
    let adb = StockAdb::start().await;
    let serial = gw.serial();
    adb.connect(&serial).await;
    let server = Upstream::new(adb.addr());

    let mut sock = server
        .open_service(&serial, "shell,v2,raw:echo relayed; warn err; exit 5")
        .await
        .unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut bytes))
        .await
        .unwrap()
        .unwrap();
    let mut rest = &bytes[..];
    let mut packets = Vec::new();
    while let Some(((id, data), used)) = decode(rest) {
        packets.push((id, data.to_vec()));
        rest = &rest[used..];
    }
    assert!(rest.is_empty());
    assert!(packets.contains(&(ShellId::Stdout, b"relayed\n".to_vec())));
    assert!(packets.contains(&(ShellId::Stderr, b"err\n".to_vec())));
    assert_eq!(packets.last(), Some(&(ShellId::Exit, vec![5])));

    // The server keeps features as a set: its order is its own.
    let mut features = server.device_features(&serial).await.unwrap();
    features.sort();
    let mut expected = DEFAULT_FEATURES.to_vec();
    expected.sort();
    assert_eq!(features, expected);
    let mut with_ack = features.clone();
    with_ack.push("delayed_ack".into());
    assert_eq!(relayable_features(&with_ack), features);

    match server.open_service("127.0.0.1:1", "shell:echo").await {
        Err(RelayError::Refused(why)) => assert!(why.contains("not found"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Not on the allowlist: refused before the server hears of it.
    match server.open_service(&serial, "nosuch:").await {
        Err(RelayError::NotAllowed(name)) => assert_eq!(name, "nosuch:"),
        other => panic!("{other:?}"),
    }
}

/// Stock adb -> gateway (RelayDevice) -> the ADB server -> the test device: shell and sync
/// pass through untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_relays_stock_adb_to_a_device_behind_a_server() {
    let phone = TestDevice::new();
    let phone_gw = Gateway::start(config(), NoAuth, phone.clone()).await;
    let adb = StockAdb::start().await;
    adb.connect(&phone_gw.serial()).await;

    let relay = RelayDevice {
        server: Upstream::new(adb.addr()),
        serial: phone_gw.serial(),
    };
    let mut cfg = config();
    cfg.banner.features =
        relayable_features(&relay.server.device_features(&relay.serial).await.unwrap());
    let gw = Gateway::start(cfg, NoAuth, Arc::new(relay)).await;
    let (said, state) = adb.connect(&gw.serial()).await;
    assert!(said.contains("connected to"), "{said}");
    assert_eq!(state.as_deref(), Some("device"));

    let out = adb
        .run(&["-s", &gw.serial(), "shell", "echo via relay; exit 9"])
        .await;
    assert_eq!(out.status.code(), Some(9));
    assert_eq!(out.stdout, b"via relay\n");

    let dir = tempfile::tempdir().unwrap();
    let (local, back) = (dir.path().join("in.bin"), dir.path().join("out.bin"));
    let data = pseudo_random(20 * 1024 * 1024, 9);
    std::fs::write(&local, &data).unwrap();
    let out = adb.push(&gw.serial(), &local, "/sdcard/r.bin").await;
    assert!(out.status.success());
    assert!(*phone.fs.file("/sdcard/r.bin").unwrap() == data);
    let out = adb.pull(&gw.serial(), "/sdcard/r.bin", &back).await;
    assert!(out.status.success());
    assert!(std::fs::read(&back).unwrap() == data);

    // Device services reach the phone; `reboot:` only where the owner allows it.
    let out = adb.run(&["-s", &gw.serial(), "reboot"]).await;
    assert!(!out.status.success());
    let rebooted = || {
        phone
            .log
            .services
            .lock()
            .unwrap()
            .iter()
            .any(|s| s == "reboot:")
    };
    assert!(!rebooted());
    let owner = Owner(RelayDevice {
        server: Upstream::new(adb.addr()),
        serial: phone_gw.serial(),
    });
    let owners_gw = Gateway::start(config(), NoAuth, Arc::new(owner)).await;
    adb.connect(&owners_gw.serial()).await;
    let out = adb.run(&["-s", &owners_gw.serial(), "reboot"]).await;
    assert!(out.status.success());
    assert!(rebooted());
    // One the phone refuses is refused through the relay too.
    let out = adb.run(&["-s", &owners_gw.serial(), "root"]).await;
    assert!(!out.status.success());
}

/// A relayed phone whose owner may reboot it and run adbd as root.
struct Owner(RelayDevice);

impl Device for Owner {
    async fn open(&self, service: &str) -> Result<Service, OpenError> {
        let policy = ServicePolicy {
            root: true,
            reboot: true,
            ..ServicePolicy::default()
        };
        self.0.open_with(service, &policy).await
    }
}

/// The relay's ADB server is shared by every phone behind it and answers `host...` requests
/// itself: through a relayed phone, a client must not list the other phones, reach one, stop
/// the server or make it connect out. Two phones on one stock server; the client is a raw
/// host on phone A's relay gateway and tries each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_requests_never_reach_the_shared_adb_server() {
    let (a, b) = (TestDevice::new(), TestDevice::new());
    let a_gw = Gateway::start(config(), NoAuth, a.clone()).await;
    let b_gw = Gateway::start(config(), NoAuth, b.clone()).await;
    let adb = StockAdb::start().await;
    for gw in [&a_gw, &b_gw] {
        let (_, state) = adb.connect(&gw.serial()).await;
        assert_eq!(state.as_deref(), Some("device"));
    }
    let server = Upstream::new(adb.addr());
    let relay = RelayDevice {
        server: server.clone(),
        serial: a_gw.serial(),
    };
    let gw = Gateway::start(config(), NoAuth, Arc::new(relay)).await;
    let mut h = RawHost::online(gw.addr).await;
    let b_serial = b_gw.serial();

    // Listing the server's devices: before the fix, phone B's address came back.
    assert_eq!(h.open(1, "host:devices-l").await, None, "host:devices-l");
    // Switching to phone B, then asking for a shell on the same socket.
    if let Some(id) = h.open(2, &format!("host:transport:{b_serial}")).await {
        let next = "shell:echo hop";
        let req = format!("{:04x}{next}", next.len()).into_bytes();
        h.send(Packet::new(Command::Wrte, 2, id, req)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        panic!(
            "host:transport reached the server; phone B then saw {:?}",
            b.log.services.lock().unwrap()
        );
    }
    // Every prefix the server reads as its own, and B named directly.
    for (id, name) in [
        (3, format!("host-serial:{b_serial}:shell:echo hop")),
        (4, "host-transport-id:1:shell:echo hop".to_string()),
        (5, "host-local:shell:echo hop".to_string()),
        (6, "host-usb:shell:echo hop".to_string()),
        (7, "host:version".to_string()),
    ] {
        assert_eq!(h.open(id, &name).await, None, "{name}");
    }
    // Making the server connect out, and stopping it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    assert_eq!(h.open(8, &format!("host:connect:{target}")).await, None);
    assert_eq!(h.open(9, "host:kill").await, None);
    let called = tokio::time::timeout(Duration::from_millis(500), listener.accept()).await;
    assert!(called.is_err(), "the ADB server connected out: {called:?}");
    // Not device services: refused too (`reboot:` unless the owner allows it).
    for (id, name) in [
        (10, "reboot:"),
        (11, "reverse:list-forward"),
        (12, "nosuch:"),
    ] {
        assert_eq!(h.open(id, name).await, None, "{name}");
    }
    // The direct API refuses them without contacting the server.
    for name in ["host:devices-l", "host:kill", "reboot:"] {
        match server.open_service(&a_gw.serial(), name).await {
            Err(RelayError::NotAllowed(n)) => assert_eq!(n, name),
            other => panic!("{name}: {other:?}"),
        }
    }

    // Phone B never saw a thing; the server still serves both phones; A's shell works.
    assert!(b.log.services.lock().unwrap().is_empty());
    assert_eq!(adb.state(&a_gw.serial()).await.as_deref(), Some("device"));
    assert_eq!(adb.state(&b_serial).await.as_deref(), Some("device"));
    let id = h
        .open(13, "shell:echo mine")
        .await
        .expect("a device service");
    let p = h.recv().await.unwrap();
    assert_eq!(
        (p.command, p.arg0, p.payload),
        (Command::Wrte, id, b"mine\n".to_vec())
    );
    assert_eq!(
        a.log.services.lock().unwrap().as_slice(),
        ["shell:echo mine"]
    );
}
