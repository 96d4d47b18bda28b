//! The relay helper against the stock ADB server: the test device is `adb connect`ed to a
//! private server; services are opened on it through the server's smart-socket protocol, and
//! a second gateway whose device is a [`RelayDevice`] serves stock adb through that server.

use std::time::Duration;

use cloudphone_adb::proto::banner::DEFAULT_FEATURES;
use cloudphone_adb::proto::shell::{ShellId, decode};
use cloudphone_adb::relay::{AdbServer as Upstream, RelayDevice, RelayError, relayable_features};
use cloudphone_adb::session::NoAuth;
use tokio::io::AsyncReadExt;

use crate::device::TestDevice;
use crate::harness::{AdbServer, Gateway};
use crate::{config, pseudo_random};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_service_through_the_adb_server() {
    let phone = TestDevice::new();
    let gw = Gateway::start(config(), NoAuth, phone.clone()).await;
    let adb = AdbServer::start().await;
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
    match server.open_service(&serial, "nosuch:").await {
        Err(RelayError::Refused(why)) => eprintln!("unknown service: {why}"),
        other => panic!("{other:?}"),
    }
}

/// Stock adb -> gateway (RelayDevice) -> the ADB server -> the test device: shell and sync
/// pass through untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_relays_stock_adb_to_a_device_behind_a_server() {
    let phone = TestDevice::new();
    let phone_gw = Gateway::start(config(), NoAuth, phone.clone()).await;
    let adb = AdbServer::start().await;
    adb.connect(&phone_gw.serial()).await;

    let relay = RelayDevice {
        server: Upstream::new(adb.addr()),
        serial: phone_gw.serial(),
    };
    let mut cfg = config();
    cfg.banner.features =
        relayable_features(&relay.server.device_features(&relay.serial).await.unwrap());
    let gw = Gateway::start(cfg, NoAuth, std::sync::Arc::new(relay)).await;
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
    let out = adb
        .run(&[
            "-s",
            &gw.serial(),
            "push",
            local.to_str().unwrap(),
            "/sdcard/r.bin",
        ])
        .await;
    assert!(out.status.success());
    assert!(*phone.fs.file("/sdcard/r.bin").unwrap() == data);
    let out = adb
        .run(&[
            "-s",
            &gw.serial(),
            "pull",
            "/sdcard/r.bin",
            back.to_str().unwrap(),
        ])
        .await;
    assert!(out.status.success());
    assert!(std::fs::read(&back).unwrap() == data);

    // Any service reaches the phone; one it refuses is refused through the relay too.
    let out = adb.run(&["-s", &gw.serial(), "reboot"]).await;
    assert!(out.status.success());
    assert!(
        phone
            .log
            .services
            .lock()
            .unwrap()
            .iter()
            .any(|s| s == "reboot:")
    );
    let out = adb.run(&["-s", &gw.serial(), "root"]).await;
    assert!(!out.status.success());
}
