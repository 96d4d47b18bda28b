//! A phone with an adbd of its own, behind the backend's ADB server: the gateway relays each
//! stream through the server (`AdbRoute::Relay`), so the phone's adbd sees the server, never
//! the user's client. The "phone" is a simulated phone's adbd served bare on a loopback port
//! (a real device side of ADB, as the docker phones' test-adbd is); the backend is the adb
//! backend with that address in its group; the server is a private stock adb server.

use std::sync::Arc;
use std::time::Duration;

use cloudphone_adb::proto::banner::DeviceBanner;
use cloudphone_adb::session::{ConnectionHandle, NoAuth, serve_connection};
use cloudphone_adb_testkit::{StockAdb, pseudo_random};
use cloudphone_backend::{AdbRoute, Backend};
use cloudphone_backends::adb::AdbServer as BackendServer;
use cloudphone_backends::{AdbBackend, AdbGroupConfig, Fleet};
use cloudphone_core::resources::Image;
use tokio::net::TcpListener;

use crate::harness::World;

const LAB_IMAGE: &str = "imgc-labdevice0001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_relayed_to_the_phones_own_adbd() {
    let w = World::new(4).await;
    // The phone's own adbd, on a port of its own, knowing nothing of the gateway.
    w.sim.create(&w.phone("acp-inside")).await.unwrap();
    let AdbRoute::Local { banner, device } = w.sim.adb_route(&w.phone("acp-inside")).await.unwrap()
    else {
        panic!("a simulated phone answers ADB itself");
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let phone_addr = listener.local_addr().unwrap().to_string();
    let phone_task = tokio::spawn(serve_phone(listener, banner, device));

    // The backend's ADB server and the adb backend's group with that device.
    let server = StockAdb::start().await;
    let group = AdbGroupConfig {
        name: "lab".into(),
        image: Image {
            id: LAB_IMAGE.into(),
            name: "Lab devices".into(),
            android_version: "14".into(),
            system_type: "Android".into(),
            description: "devices of the lab".into(),
            release_ms: 0,
        },
        server: BackendServer {
            program: "/usr/bin/adb".into(),
            host: None,
            port: Some(server.port),
        },
        connect: vec![phone_addr.clone()],
    };
    let instance_id = group.instance_id(&phone_addr);
    let adb_backend = Arc::new(AdbBackend::new(vec![group], Duration::from_secs(30)));
    let found = adb_backend.discover().await;
    assert!(
        found
            .iter()
            .any(|d| d.serial == phone_addr && d.state == "device"),
        "{found:?}"
    );
    let fleet: Arc<dyn Backend> =
        Arc::new(Fleet::new(vec![w.sim.clone(), adb_backend.clone()]).unwrap());
    let ports = w.phones_on(&[instance_id.as_str()], LAB_IMAGE).await;
    let node = w.gateway_on([127, 0, 0, 1].into(), fleet, |_| {}).await;

    // The user's client, with its own server and key.
    let user = StockAdb::start().await;
    let serial = node.serial(ports[0]);
    user.connected(&serial).await;
    let (out, _, code) = user.shell(&serial, &["getprop ro.serialno; exit 7"]).await;
    assert_eq!((out.as_str(), code), ("acp-inside\n", Some(7)));

    let dir = tempfile::tempdir().unwrap();
    let (local, back) = (dir.path().join("in.bin"), dir.path().join("out.bin"));
    let data = pseudo_random(5 * 1024 * 1024, 11);
    std::fs::write(&local, &data).unwrap();
    let out = user.push(&serial, &local, "/sdcard/r.bin").await;
    assert!(out.status.success());
    let (ls, _) = {
        let o = w
            .sim
            .run_command(
                &w.phone("acp-inside"),
                "ls -l /sdcard/r.bin",
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        (String::from_utf8_lossy(&o.output).into_owned(), o.exit_code)
    };
    assert!(ls.contains(&data.len().to_string()), "{ls}");
    let out = user.pull(&serial, "/sdcard/r.bin", &back).await;
    assert!(out.status.success());
    assert!(std::fs::read(&back).unwrap() == data);

    // reverse would have the phone connect into the server's host: not relayed.
    let out = user
        .run(&["-s", &serial, "reverse", "tcp:6100", "tcp:6200"])
        .await;
    assert!(!out.status.success());

    node.stop().await;
    phone_task.abort();
}

/// A phone's adbd: every connection served with `device`, no authentication (the ADB server
/// is its only client).
async fn serve_phone(
    listener: TcpListener,
    banner: DeviceBanner,
    device: cloudphone_adb::session::SharedDevice,
) {
    let config = Arc::new(cloudphone_adb::session::Config::new(banner));
    let device = Arc::new(device);
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            return;
        };
        let (config, device) = (config.clone(), device.clone());
        tokio::spawn(async move {
            serve_connection(sock, &config, &NoAuth, device, ConnectionHandle::new()).await;
        });
    }
}
