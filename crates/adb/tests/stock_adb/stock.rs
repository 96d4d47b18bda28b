//! Stock `adb` against a simulated device without authentication: connect, shell (v2 exit
//! codes, stderr, stdin), push and pull of 20 MB, listing, both install paths, and the features
//! the client speaks.

use std::time::Duration;

use cloudphone_adb::proto::banner::{DEFAULT_FEATURES, DeviceBanner, FEATURE_CMD};
use cloudphone_adb::session::NoAuth;
use cloudphone_adb_testkit::{StockAdb, pseudo_random};

use crate::config;
use crate::device::TestDevice;
use crate::harness::Gateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_exit_codes_and_stdin() {
    let device = TestDevice::new();
    let gw = Gateway::start(config(), NoAuth, device.clone()).await;
    let adb = StockAdb::start().await;
    let serial = gw.serial();
    let (said, state) = adb.connect(&serial).await;
    assert!(said.contains("connected to"), "{said}");
    assert_eq!(state.as_deref(), Some("device"));

    let out = adb
        .run(&["-s", &serial, "shell", "echo", "hello", "world"])
        .await;
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hello world\n");

    let out = adb.run(&["-s", &serial, "shell", "exit 3"]).await;
    assert_eq!(out.status.code(), Some(3));
    let out = adb
        .run(&["-s", &serial, "shell", "warn oops; exit 7"])
        .await;
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(out.stderr, b"oops\n");
    assert!(out.stdout.is_empty());
    let out = adb.run(&["-s", &serial, "shell", "nosuchcmd"]).await;
    assert_eq!(out.status.code(), Some(127));

    let out = adb
        .run(&[
            "-s",
            &serial,
            "shell",
            "getprop",
            "ro.build.version.release",
        ])
        .await;
    assert_eq!(out.stdout, b"10\n");

    // `exec:` (raw, no shell protocol): stdout alone, as it is.
    let out = adb
        .run(&["-s", &serial, "exec-out", "echo raw bytes"])
        .await;
    assert!(out.status.success());
    assert_eq!(out.stdout, b"raw bytes\n");

    // stdin through shell v2, closed by the client at end of file.
    let mut child = adb
        .command(&["-s", &serial, "shell", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = pseudo_random(300_000, 7);
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let input = input.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            stdin.write_all(&input).await.unwrap();
        })
    };
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout == input,
        "cat returned {} bytes",
        out.stdout.len()
    );

    // What adb 29 opened: shell protocol v2 for every command.
    let services = device.log.services.lock().unwrap().clone();
    assert!(
        services
            .iter()
            .any(|s| s.starts_with("shell,v2,") && s.ends_with(":exit 3")),
        "{services:?}"
    );
    drop(adb);
    assert!(gw.wait_ended(1, Duration::from_secs(5)).await);
    let ended = gw.ended.lock().unwrap();
    let host = ended[0].host.as_ref().expect("the host's banner");
    eprintln!("adb 29 host banner features: {:?}", host.features);
    assert_eq!(host.kind, "host");
    assert!(host.has_feature("shell_v2") && host.has_feature("cmd"));
    assert!(!host.has_feature("delayed_ack"));
    assert!(ended[0].bytes_in > 0 && ended[0].bytes_out > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_20_mb() {
    let device = TestDevice::new();
    let gw = Gateway::start(config(), NoAuth, device.clone()).await;
    let adb = StockAdb::start().await;
    let serial = gw.serial();
    adb.connect(&serial).await;

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("big.bin");
    let back = dir.path().join("back.bin");
    let data = pseudo_random(20 * 1024 * 1024, 42);
    std::fs::write(&local, &data).unwrap();

    let started = std::time::Instant::now();
    let out = adb.push(&serial, &local, "/sdcard/deep/dir/big.bin").await;
    assert!(out.status.success());
    let pushed = device.fs.file("/sdcard/deep/dir/big.bin").expect("pushed");
    assert!(*pushed == data, "pushed {} bytes", pushed.len());

    let out = adb.pull(&serial, "/sdcard/deep/dir/big.bin", &back).await;
    assert!(out.status.success());
    let pulled = std::fs::read(&back).unwrap();
    assert!(pulled == data, "pulled {} bytes", pulled.len());
    eprintln!("push + pull of 20 MiB: {:?}", started.elapsed());

    // Listing (LIS2) and a missing file (STA2 with an errno).
    let out = adb.run(&["-s", &serial, "ls", "/sdcard/deep/dir"]).await;
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("big.bin"), "{listing}");
    let out = adb.pull(&serial, "/sdcard/none", &back).await;
    assert!(!out.status.success());
    // adb 29 prints this error on stdout.
    assert!(String::from_utf8_lossy(&out.stdout).contains("No such file or directory"));

    // A push the file system refuses: FAIL while the client is still sending 20 MB, which
    // is drained, and the next push works.
    let out = adb.push(&serial, &local, "/system/big.bin").await;
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("Read-only file system"), "{said}");

    // A push onto a directory puts the file in it (the client asks STA2 first).
    let out = adb.push(&serial, &local, "/data/local/tmp/").await;
    assert!(
        out.status.success(),
        "push into a directory appends the name"
    );
    assert!(device.fs.file("/data/local/tmp/big.bin").is_some());

    drop(adb);
    assert!(gw.wait_ended(1, Duration::from_secs(5)).await);
    let ended = gw.ended.lock().unwrap();
    let bytes_in: u64 = ended.iter().map(|e| e.bytes_in).sum();
    let bytes_out: u64 = ended.iter().map(|e| e.bytes_out).sum();
    assert!(bytes_in > 40 * 1024 * 1024, "{bytes_in}");
    assert!(bytes_out > 20 * 1024 * 1024, "{bytes_out}");
}

/// Which way adb 29 installs depends on the `cmd` feature: with it, one stream to
/// `exec:cmd package install -S SIZE`; without, a push to /data/local/tmp and `pm install`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_paths() {
    let dir = tempfile::tempdir().unwrap();
    let apk = dir.path().join("app.apk");
    std::fs::write(&apk, pseudo_random(100_000, 3)).unwrap();
    let adb = StockAdb::start().await;

    let streamed = TestDevice::new();
    let gw1 = Gateway::start(config(), NoAuth, streamed.clone()).await;
    adb.connect(&gw1.serial()).await;
    let out = adb
        .run(&["-s", &gw1.serial(), "install", apk.to_str().unwrap()])
        .await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Performing Streamed Install"));
    assert_eq!(
        *streamed.log.installed.lock().unwrap(),
        vec![("stdin".to_string(), 100_000)]
    );
    let services = streamed.log.services.lock().unwrap().clone();
    eprintln!("streamed install opened: {services:?}");
    assert!(services.contains(&"exec:cmd package 'install' -S 100000".to_string()));

    let mut cfg = config();
    cfg.banner = DeviceBanner {
        features: DEFAULT_FEATURES
            .iter()
            .filter(|f| **f != FEATURE_CMD)
            .map(|f| f.to_string())
            .collect(),
        ..cfg.banner
    };
    let pushed = TestDevice::new();
    let gw2 = Gateway::start(cfg, NoAuth, pushed.clone()).await;
    adb.connect(&gw2.serial()).await;
    let out = adb
        .run(&["-s", &gw2.serial(), "install", "-r", apk.to_str().unwrap()])
        .await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Performing Push Install"));
    assert_eq!(
        *pushed.log.installed.lock().unwrap(),
        vec![("/data/local/tmp/app.apk".to_string(), 100_000)]
    );
    let services = pushed.log.services.lock().unwrap().clone();
    eprintln!("push install opened: {services:?}");
    // The pushed APK was removed afterwards.
    assert!(pushed.fs.file("/data/local/tmp/app.apk").is_none());
    assert!(services.iter().any(|s| s == "sync:"));
}

/// The owner's close ends a running `adb shell` within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_handle_ends_an_open_shell() {
    let device = TestDevice::new();
    let gw = Gateway::start(config(), NoAuth, device.clone()).await;
    let adb = StockAdb::start().await;
    let serial = gw.serial();
    adb.connect(&serial).await;

    let sleeping = device.log.sleeping.notified();
    tokio::pin!(sleeping);
    sleeping.as_mut().enable();
    let mut child = adb
        .command(&["-s", &serial, "shell", "sleep 30"])
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), sleeping)
        .await
        .expect("the shell started");

    let closed_at = std::time::Instant::now();
    gw.close_all();
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("adb shell still running 5 s after the close")
        .unwrap();
    let took = closed_at.elapsed();
    eprintln!("adb shell exited {status:?} {took:?} after the close");
    // adb 29 reports 0 for a shell v2 stream that ended without an exit packet.
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(gw.wait_ended(1, Duration::from_secs(2)).await);
    assert!(gw.ended.lock().unwrap()[0].end.contains("Closed"));
}
