//! A simulated phone through the gateway as stock adb sees it, and as the API sees it after:
//! shell commands (properties, exit codes, stderr apart), an interactive shell, push and pull
//! of 20 MB that RunCommand and FetchFile see, both install paths and uninstall, and the
//! connection's audit entry.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use cloudphone_adb_testkit::{StockAdb, pseudo_random};
use cloudphone_backend::Backend;
use tokio::io::AsyncWriteExt;

use crate::harness::{ACCOUNT, World};

async fn run_command(w: &World, id: &str, cmd: &str) -> (String, i32) {
    let out = w
        .sim
        .run_command(&w.phone(id), cmd, Duration::from_secs(10))
        .await
        .unwrap();
    (
        String::from_utf8_lossy(&out.output).into_owned(),
        out.exit_code,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_properties_exit_codes_and_an_interactive_shell() {
    let w = World::new(4).await;
    let ports = w.phones(&["acp-shell"]).await;
    let node = w.gateway().await;
    let adb = StockAdb::start().await;
    let serial = node.serial(ports[0]);
    adb.connected(&serial).await;

    let (out, _, code) = adb
        .shell(&serial, &["getprop", "ro.build.version.release"])
        .await;
    assert_eq!((out.as_str(), code), ("14\n", Some(0)));
    let (out, _, _) = adb.shell(&serial, &["getprop", "ro.serialno"]).await;
    assert_eq!(out, "acp-shell\n");

    // Exit codes through shell v2; stderr apart from stdout.
    let (_, _, code) = adb.shell(&serial, &["exit 3"]).await;
    assert_eq!(code, Some(3));
    let (out, err, code) = adb.shell(&serial, &["echo out; nosuchcmd"]).await;
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("out\n", "sh: nosuchcmd: not found\n")
    );
    assert_eq!(code, Some(127));
    let (out, _, code) = adb.shell(&serial, &["ls", "/sdcard/none"]).await;
    assert_eq!((out.as_str(), code), ("", Some(1)));

    // What adb shell shows is what RunCommand shows.
    adb.shell(&serial, &["mkdir /sdcard/made-by-adb"]).await;
    let (ls, code) = run_command(&w, "acp-shell", "ls /sdcard").await;
    assert_eq!(code, 0);
    assert!(ls.contains("made-by-adb"), "{ls}");

    // `adb exec-out`: raw bytes, stderr merged.
    let out = adb.run(&["-s", &serial, "exec-out", "echo raw"]).await;
    assert_eq!(out.stdout, b"raw\n");

    // No command: an interactive shell reading stdin line by line (no terminal: stdin is a
    // pipe), keeping its directory and $? from line to line.
    let mut child = adb
        .command(&["-s", &serial, "shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"cd /sdcard\npwd\nfalse\necho $?\nexit 5\necho never\n")
        .await
        .unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the interactive shell ends at exit")
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/sdcard\n1\n");
    assert_eq!(out.status.code(), Some(5));

    // root and remount answer as a production build's adbd.
    let out = adb.run(&["-s", &serial, "root"]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cannot run as root"),
        "{out:?}"
    );

    drop(adb);
    let audit = w.audited(1).await;
    let e = &audit[0];
    assert_eq!(e.account_id, ACCOUNT);
    assert_eq!(e.resource_ids, ["acp-shell"]);
    assert_eq!(e.key_id, "", "nobody authenticated: the endpoint is open");
    assert!(e.request_id.starts_with("adbc-"), "{e:?}");
    assert!(e.source.starts_with("127.0.0.1:"), "{e:?}");
    assert!(e.outcome.starts_with("HostClosed bytes_in="), "{e:?}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_20_mb_as_the_api_sees_them() {
    let w = World::new(4).await;
    let ports = w.phones(&["acp-files"]).await;
    let node = w.gateway().await;
    let adb = StockAdb::start().await;
    let serial = node.serial(ports[0]);
    adb.connected(&serial).await;

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("big.bin");
    let data = pseudo_random(20 * 1024 * 1024, 42);
    std::fs::File::create(&local)
        .unwrap()
        .write_all(&data)
        .unwrap();
    let out = adb
        .push(&serial, &local, "/sdcard/Download/deep/big.bin")
        .await;
    assert!(out.status.success());

    // RunCommand sees the file, FetchFile returns its bytes.
    let (ls, _) = run_command(&w, "acp-files", "ls -l /sdcard/Download/deep").await;
    assert!(ls.contains(&(20 * 1024 * 1024).to_string()), "{ls}");
    let fetched = dir.path().join("fetched.bin");
    let n = w
        .sim
        .pull_file(
            &w.phone("acp-files"),
            "/sdcard/Download/deep/big.bin",
            &fetched,
        )
        .await
        .unwrap();
    assert_eq!(n, data.len() as u64);
    assert!(
        std::fs::read(&fetched).unwrap() == data,
        "FetchFile's bytes differ"
    );

    // Pulled back byte for byte; a file SendFile put there is pulled too.
    let back = dir.path().join("back.bin");
    let out = adb
        .pull(&serial, "/sdcard/Download/deep/big.bin", &back)
        .await;
    assert!(out.status.success());
    assert!(std::fs::read(&back).unwrap() == data, "pulled bytes differ");
    let small = dir.path().join("small.txt");
    std::fs::write(&small, b"from SendFile\n").unwrap();
    w.sim
        .push_file(&w.phone("acp-files"), &small, "/sdcard/sent.txt")
        .await
        .unwrap();
    let (out, _, _) = adb.shell(&serial, &["cat /sdcard/sent.txt"]).await;
    assert_eq!(out, "from SendFile\n");

    // Listing and a missing file.
    let out = adb
        .run(&["-s", &serial, "ls", "/sdcard/Download/deep"])
        .await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("big.bin"));
    let out = adb.pull(&serial, "/sdcard/none", &back).await;
    assert!(!out.status.success());

    // Nothing of the pushes' scratch files is left on the phone.
    let (ls, _) = run_command(&w, "acp-files", "ls -a /sdcard/Download/deep").await;
    assert!(!ls.contains(".part"), "{ls}");

    drop(adb);
    let audit = w.audited(1).await;
    let bytes_in: u64 = audit[0]
        .outcome
        .split_whitespace()
        .find_map(|f| f.strip_prefix("bytes_in="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(bytes_in > 20 * 1024 * 1024, "{:?}", audit[0]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_are_the_phones_packages() {
    let w = World::new(4).await;
    let ports = w.phones(&["acp-apps"]).await;
    let node = w.gateway().await;
    let adb = StockAdb::start().await;
    let serial = node.serial(ports[0]);
    adb.connected(&serial).await;
    let dir = tempfile::tempdir().unwrap();
    let apk = dir.path().join("app.apk");
    cloudphone_apk::testing::apk(&apk, "com.example.viaadb", 1, "1.0").unwrap();

    // adb 29 streams to `exec:cmd package install -S SIZE` (the phone has `cmd`).
    let out = adb
        .run(&["-s", &serial, "install", apk.to_str().unwrap()])
        .await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Performing Streamed Install"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Success"));
    let (listed, _) = run_command(&w, "acp-apps", "pm list packages -3").await;
    assert_eq!(listed, "package:com.example.viaadb\n");
    let state = w.sim.phone_state(&w.phone("acp-apps")).await.unwrap();
    assert!(state.package("com.example.viaadb").is_some());
    let (out, _, _) = adb
        .shell(&serial, &["pm", "list", "packages", "viaadb"])
        .await;
    assert_eq!(out, "package:com.example.viaadb\n");

    // Push and `pm install`, by hand.
    let other = dir.path().join("other.apk");
    cloudphone_apk::testing::apk(&other, "com.example.pushed", 2, "2.0").unwrap();
    let out = adb.push(&serial, &other, "/data/local/tmp/other.apk").await;
    assert!(out.status.success());
    let (out, _, code) = adb
        .shell(
            &serial,
            &["pm", "install", "-r", "/data/local/tmp/other.apk"],
        )
        .await;
    assert_eq!((out.as_str(), code), ("Success\n", Some(0)));
    let (listed, _) = run_command(&w, "acp-apps", "pm list packages -3").await;
    assert_eq!(
        listed,
        "package:com.example.pushed\npackage:com.example.viaadb\n"
    );

    // A file that is not an APK is refused as Android refuses it.
    let junk = dir.path().join("junk.apk");
    std::fs::write(&junk, b"not a zip").unwrap();
    let out = adb
        .run(&["-s", &serial, "install", junk.to_str().unwrap()])
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("INSTALL_PARSE_FAILED_NOT_APK"),
        "{out:?}"
    );

    // adb uninstall (`cmd package uninstall`).
    let out = adb
        .run(&["-s", &serial, "uninstall", "com.example.viaadb"])
        .await;
    assert!(out.status.success());
    let (listed, _) = run_command(&w, "acp-apps", "pm list packages -3").await;
    assert_eq!(listed, "package:com.example.pushed\n");
    node.stop().await;
}
