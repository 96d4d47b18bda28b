//! The simulated phone's adbd through the ADB transport (a host speaking it by hand, [`host`]):
//! a command's output is passed on as it is made, the work stops with its stream, a phone's
//! blocking work is bounded, and pushes and installs stay within the phone's storage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudphone_backend::{Backend, InstanceRef};

use super::host::Host;
use crate::sim::phone::PhoneDir;
use crate::sim::shell::MAX_OUTPUT;
use crate::sim::work::SHELL_WORK_PER_PHONE;
use crate::sim::{ANDROID_14, SimBackend, SimConfig};

const MIB: usize = 1024 * 1024;

/// What a streaming shell may hold at once: a chunk of a file and a little more.
const HELD_BOUND: usize = 128 * 1024;

async fn setup() -> (tempfile::TempDir, SimBackend, PhoneDir) {
    setup_with(crate::sim::DEFAULT_STORAGE_BYTES).await
}

/// A created phone whose files may take `capacity` bytes.
async fn setup_with(capacity: u64) -> (tempfile::TempDir, SimBackend, PhoneDir) {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimBackend::new(SimConfig {
        root: dir.path().join("sim"),
        delay: Some(Duration::from_millis(1)),
        record_executions: false,
    })
    .with_storage_capacity(capacity);
    let p = InstanceRef {
        id: "acp-adbd".into(),
        account_id: "acct-a".into(),
        name: "p".into(),
        image_id: ANDROID_14.into(),
        spec: "acp.basic.small".into(),
        attempt: None,
        ..InstanceRef::default()
    };
    sim.create(&p).await.unwrap();
    let phone = sim.phone(&p.id);
    (dir, sim, phone)
}

/// A file of `size` bytes at `path` on the phone (written straight to its data dir).
fn big_file(phone: &PhoneDir, path: &str, size: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let host = phone.data().join(path.trim_start_matches('/'));
    std::fs::write(host, &data).unwrap();
    data
}

async fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `cat` of a file larger than the cap a kept output has (RunCommand's) comes whole, and the
/// shell holds a chunk of it at a time, whatever the file's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cat_streams_a_file_past_the_cap_and_holds_a_chunk_at_a_time() {
    let (_dir, _sim, phone) = setup().await;
    let data = big_file(&phone, "/sdcard/big.bin", MAX_OUTPUT + 8 * MIB);
    let mut host = Host::connect(phone.clone()).await;
    let out = host.run(1, "exec:cat /sdcard/big.bin").await;
    assert_eq!(out.len(), data.len(), "the whole file, no truncation note");
    assert!(out == data, "byte for byte");
    let work = phone.work();
    eprintln!(
        "cat of {} MiB: at most {} KiB held",
        data.len() / MIB,
        work.peak_held() / 1024
    );
    assert!(
        work.peak_held() <= HELD_BOUND,
        "held {} bytes at once",
        work.peak_held()
    );
    assert_eq!(work.held(), 0);
}

/// A host that stops reading and closes the stream mid-output stops the command: its blocking
/// work ends at once, what it held is given back, and it read no further into the file than
/// the stream could buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_closed_mid_output_stops_its_command() {
    let (_dir, _sim, phone) = setup().await;
    let data = big_file(&phone, "/sdcard/big.bin", 64 * MIB);
    let work = phone.work().clone();
    let mut host = Host::connect(phone.clone()).await;
    let remote = host.open(1, "shell,v2,raw:cat /sdcard/big.bin").await;
    let first = host.next_write(1).await.expect("output");
    assert!(!first.is_empty());
    // Never acknowledged: the command fills what the stream buffers, then waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let read_while_stalled = work.read();
    host.close(1, remote).await;
    until("the command's work ends", Duration::from_secs(5), || {
        work.running() == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    eprintln!(
        "stalled after {} KiB read of {} MiB; {} KiB read in all",
        read_while_stalled / 1024,
        data.len() / MIB,
        work.read() / 1024
    );
    assert!(
        work.read() <= 4 * MIB as u64,
        "read {} bytes of a file nobody took",
        work.read()
    );
    assert_eq!(work.held(), 0, "output held for nobody");
    assert_eq!(work.free_permits(), SHELL_WORK_PER_PHONE);
    // The connection goes on.
    assert_eq!(host.run(2, "exec:echo still here").await, b"still here\n");
}

/// More commands than a phone's permits, at once: every one runs to its end (they wait their
/// turn for blocking work, none fails), and no more than the permits run at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_beyond_the_phones_bound_wait_their_turn() {
    let (_dir, _sim, phone) = setup().await;
    let data = Arc::new(big_file(&phone, "/sdcard/big.bin", 4 * MIB));
    let mut tasks = Vec::new();
    for _ in 0..3 * SHELL_WORK_PER_PHONE {
        let (phone, data) = (phone.clone(), data.clone());
        tasks.push(tokio::spawn(async move {
            let mut host = Host::connect(phone).await;
            let out = host
                .run(1, "shell,v2,raw:cat /sdcard/big.bin; ls /sdcard")
                .await;
            // Shell v2 packets: a 5-byte header (id, length) before each piece.
            let mut stdout = Vec::new();
            let mut rest = &out[..];
            let mut exit = None;
            while rest.len() >= 5 {
                let len = u32::from_le_bytes(rest[1..5].try_into().unwrap()) as usize;
                match rest[0] {
                    1 => stdout.extend_from_slice(&rest[5..5 + len]),
                    3 => exit = Some(rest[5]),
                    _ => {}
                }
                rest = &rest[5 + len..];
            }
            assert_eq!(exit, Some(0));
            assert!(stdout.starts_with(&data) && stdout.ends_with(b"Pictures\nbig.bin\n"));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let work = phone.work();
    eprintln!(
        "{} commands: at most {} blocking trips at once",
        3 * SHELL_WORK_PER_PHONE,
        work.peak_running()
    );
    assert!(work.peak_running() <= SHELL_WORK_PER_PHONE);
    assert_eq!(work.free_permits(), SHELL_WORK_PER_PHONE);
}

/// The files of a phone's directory that are not its own (scratch files of writes).
fn leftovers(phone: &PhoneDir) -> Vec<String> {
    let dir = phone.data().parent().unwrap().to_path_buf();
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect()
}

/// A push that would pass the phone's storage fails as adbd fails it ("No space left on
/// device"), leaves no file and holds no space; smaller ones fit, and a removal frees space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_stay_within_the_phones_storage() {
    let (_dir, _sim, phone) = setup_with(8 * MIB as u64).await;
    let storage = phone.storage().clone();
    let mut host = Host::connect(phone.clone()).await;
    // The fresh phone's directories.
    host.run(1, "exec:true").await;
    let base = storage.used();
    assert!(base > 0 && base < 64 * 1024, "{base}");

    let err = host
        .push(2, "/sdcard/big.bin", &vec![7u8; 9 * MIB])
        .await
        .unwrap_err();
    assert_eq!(err, "write failed: No space left on device");
    assert!(!phone.data().join("sdcard/big.bin").exists());
    assert_eq!(
        storage.used(),
        base,
        "nothing of the failed push is counted"
    );
    assert!(leftovers(&phone).is_empty(), "{:?}", leftovers(&phone));

    let three = vec![1u8; 3 * MIB];
    host.push(3, "/sdcard/a.bin", &three).await.unwrap();
    host.push(4, "/sdcard/b.bin", &three).await.unwrap();
    assert_eq!(storage.used(), base + 6 * MIB as u64);
    let err = host.push(5, "/sdcard/c.bin", &three).await.unwrap_err();
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!phone.data().join("sdcard/c.bin").exists());
    // A push over a file replaces its blocks.
    host.push(6, "/sdcard/a.bin", &three).await.unwrap();
    assert_eq!(storage.used(), base + 6 * MIB as u64);

    // `adb install` streams an APK that does not fit: refused before a byte is read.
    let said = host.run(7, "exec:cmd package 'install' -S 5000000").await;
    assert_eq!(said, b"Failure [INSTALL_FAILED_INSUFFICIENT_STORAGE]\n");
    assert_eq!(storage.used(), base + 6 * MIB as u64);

    // A removal frees its space.
    host.run(8, "shell,v2,raw:rm /sdcard/a.bin").await;
    assert_eq!(storage.used(), base + 3 * MIB as u64);
    host.push(9, "/sdcard/c.bin", &three).await.unwrap();
    assert_eq!(
        std::fs::read(phone.data().join("sdcard/c.bin")).unwrap(),
        three
    );
    assert!(leftovers(&phone).is_empty());
}
