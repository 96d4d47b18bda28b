//! Authentication as stock adb sees it: a device whose authorizer refuses every signature is
//! `unauthorized` (the host's public key is reported, never trusted); one that accepts a
//! signature is a `device`. What a host that cannot sign may cost is bounded; an authorizer
//! may list its keys once per connection; a device may be looked up only once the host is in.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudphone_adb::keys::AdbPublicKey;
use cloudphone_adb::proto::banner::DeviceBanner;
use cloudphone_adb::proto::handshake::{AUTH_RSAPUBLICKEY, AUTH_SIGNATURE, AUTH_TOKEN, TOKEN_SIZE};
use cloudphone_adb::proto::packet::{Command, MAX_PAYLOAD, Packet, VERSION};
use cloudphone_adb::session::{Authorizer, NoAuth, OpenError, ResolvedDevice};
use cloudphone_adb_testkit::StockAdb;

use crate::config;
use crate::device::TestDevice;
use crate::harness::Gateway;
use crate::raw::RawHost;

/// A token we sent and the length of the signature that came back.
type Signed = (Vec<u8>, usize);

/// Requires authentication and records what it is asked.
#[derive(Default, Clone)]
struct Recorder {
    accept: bool,
    signatures: Arc<Mutex<Vec<Signed>>>,
    offered: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Authorizer for Recorder {
    type Identity = String;

    async fn auth_required(&self) -> bool {
        true
    }

    async fn verify(&self, token: &[u8; TOKEN_SIZE], signature: &[u8]) -> Option<String> {
        self.signatures
            .lock()
            .unwrap()
            .push((token.to_vec(), signature.len()));
        self.accept.then(|| "key-1".to_string())
    }

    async fn public_key_offered(&self, key: &[u8]) {
        self.offered.lock().unwrap().push(key.to_vec());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_signature_leaves_the_device_unauthorized() {
    let device = TestDevice::new();
    let auth = Recorder::default();
    let gw = Gateway::start(config(), auth.clone(), device.clone()).await;
    let adb = StockAdb::start().await;
    let serial = gw.serial();
    let (said, state) = adb.connect(&serial).await;
    assert!(said.contains("failed to authenticate"), "{said}");
    assert_eq!(state.as_deref(), Some("unauthorized"));

    let out = adb.run(&["-s", &serial, "shell", "echo", "hi"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthorized"));
    assert!(device.log.services.lock().unwrap().is_empty());

    // adb signed with its one key (RSA 2048: 256 bytes), then offered the public key.
    let sigs = auth.signatures.lock().unwrap().clone();
    assert!(!sigs.is_empty());
    assert!(sigs.iter().all(|(_, len)| *len == 256));
    // Each attempt got its own token.
    let mut tokens: Vec<_> = sigs.iter().map(|(t, _)| t.clone()).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), sigs.len());
    let offered = auth.offered.lock().unwrap().clone();
    assert_eq!(offered.len(), 1);
    let text = String::from_utf8_lossy(&offered[0]);
    assert!(text.starts_with("QAAAA"), "adbkey.pub format: {text}");
    assert!(text.contains(' '), "with its user@host comment: {text}");
    assert!(!gw.ended.lock().unwrap().iter().any(|e| e.authenticated));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_signature_makes_a_device() {
    let device = TestDevice::new();
    let auth = Recorder {
        accept: true,
        ..Recorder::default()
    };
    let gw = Gateway::start(config(), auth.clone(), device).await;
    let adb = StockAdb::start().await;
    let serial = gw.serial();
    let (said, state) = adb.connect(&serial).await;
    assert!(said.contains("connected to"), "{said}");
    assert_eq!(state.as_deref(), Some("device"));
    let out = adb.run(&["-s", &serial, "shell", "echo", "signed"]).await;
    assert_eq!(out.stdout, b"signed\n");
    assert_eq!(auth.signatures.lock().unwrap().len(), 1);
    assert!(auth.offered.lock().unwrap().is_empty());
    drop(adb);
    assert!(gw.wait_ended(1, Duration::from_secs(5)).await);
    assert!(gw.ended.lock().unwrap()[0].authenticated);
}

/// A host that cannot sign may offer keys and send messages, but only so many: it is dropped
/// at once past the caps, not kept parsing until the handshake deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_cannot_sign_gets_a_bounded_handshake() {
    let auth = Recorder::default();
    let cfg = config();
    let (deadline, attempts) = (cfg.handshake_timeout, cfg.max_auth_attempts);
    assert!(deadline >= Duration::from_secs(10));
    let gw = Gateway::start(cfg, auth.clone(), TestDevice::new()).await;

    // Public keys, one after another.
    let mut h = RawHost::connect(gw.addr).await;
    h.send(host_cnxn()).await;
    assert_eq!(h.recv().await.unwrap().arg0, AUTH_TOKEN);
    let key = b"QAAAAFAKE user@host\0".to_vec();
    for _ in 0..100 {
        let sent = h
            .try_send(Packet::new(
                Command::Auth,
                AUTH_RSAPUBLICKEY,
                0,
                key.clone(),
            ))
            .await;
        if !sent {
            break;
        }
    }
    let t0 = Instant::now();
    assert!(h.closed_within(Duration::from_secs(3)).await);
    assert!(t0.elapsed() < deadline);
    let offered = auth.offered.lock().unwrap().len();
    assert!(offered < attempts as usize, "{offered} keys reported");

    // Messages that are not even a handshake.
    let mut h = RawHost::connect(gw.addr).await;
    for i in 0..200 {
        if !h
            .try_send(Packet::new(Command::Okay, i + 1, 1, vec![]))
            .await
        {
            break;
        }
    }
    assert!(h.closed_within(Duration::from_secs(3)).await);
    assert!(gw.wait_ended(2, Duration::from_secs(2)).await);
    let ended: Vec<String> = gw
        .ended
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.end.clone())
        .collect();
    assert!(
        ended.iter().any(|e| e.contains("authentication attempts")),
        "{ended:?}"
    );
    assert!(
        ended.iter().any(|e| e.contains("messages before")),
        "{ended:?}"
    );
}

fn host_cnxn() -> Packet {
    Packet::new(
        Command::Cnxn,
        VERSION,
        MAX_PAYLOAD,
        b"host::features=shell_v2".to_vec(),
    )
}

/// Lists the keys it allows, counting how often it is asked, and fails any per-signature
/// check (which must not be needed).
#[derive(Clone)]
struct Listed {
    keys: Vec<String>,
    listed: Arc<AtomicUsize>,
    verified: Arc<AtomicUsize>,
}

impl Listed {
    fn new(keys: Vec<String>) -> Listed {
        Listed {
            keys,
            listed: Arc::default(),
            verified: Arc::default(),
        }
    }
}

impl Authorizer for Listed {
    type Identity = String;

    async fn auth_required(&self) -> bool {
        true
    }

    async fn verify(&self, _token: &[u8; TOKEN_SIZE], _signature: &[u8]) -> Option<String> {
        self.verified.fetch_add(1, Ordering::SeqCst);
        None
    }

    async fn keys_for_connection(&self) -> Option<Vec<(AdbPublicKey, String)>> {
        self.listed.fetch_add(1, Ordering::SeqCst);
        let keys = self.keys.iter().enumerate();
        Some(
            keys.map(|(i, k)| (AdbPublicKey::parse(k).unwrap(), format!("key-{i}")))
                .collect(),
        )
    }
}

/// An authorizer that lists its keys is asked once per connection, at the first signature,
/// however many follow; the session checks them against the keys itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_listed_once_per_connection() {
    let (adb, other) = (StockAdb::start().await, StockAdb::start().await);
    // Stock adb with a key on the list (the second one) gets in as that key.
    let auth = Listed::new(vec![other.public_key(), adb.public_key()]);
    let gw = Gateway::start(config(), auth.clone(), TestDevice::new()).await;
    let (said, state) = adb.connect(&gw.serial()).await;
    assert!(said.contains("connected to"), "{said}");
    assert_eq!(state.as_deref(), Some("device"));
    let out = adb
        .run(&["-s", &gw.serial(), "shell", "echo", "listed"])
        .await;
    assert_eq!(out.stdout, b"listed\n");
    assert_eq!(auth.listed.load(Ordering::SeqCst), 1);
    assert_eq!(auth.verified.load(Ordering::SeqCst), 0);
    drop(adb);
    assert!(gw.wait_ended(1, Duration::from_secs(5)).await);
    assert!(gw.ended.lock().unwrap()[0].authenticated);

    // A host signing again and again with no listed key: still one listing.
    let auth = Listed::new(vec![other.public_key()]);
    let gw = Gateway::start(config(), auth.clone(), TestDevice::new()).await;
    let mut h = RawHost::connect(gw.addr).await;
    h.send(host_cnxn()).await;
    for _ in 0..5 {
        let token = h.recv().await.unwrap();
        assert_eq!(token.arg0, AUTH_TOKEN);
        h.send(Packet::new(Command::Auth, AUTH_SIGNATURE, 0, vec![1; 256]))
            .await;
    }
    assert_eq!(h.recv().await.unwrap().arg0, AUTH_TOKEN);
    assert_eq!(auth.listed.load(Ordering::SeqCst), 1);
    assert_eq!(auth.verified.load(Ordering::SeqCst), 0);
}

/// With `serve_connection_with` the device is looked up only for a host that got in: a
/// client that cannot sign never causes a lookup, one that can causes one, and our CNXN
/// carries the banner the lookup found. A failed lookup ends the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_is_looked_up_only_once_the_host_is_in() {
    let adb = StockAdb::start().await;
    let lookups = Arc::new(AtomicUsize::new(0));
    let device = TestDevice::new();
    let resolve = {
        let (lookups, device) = (lookups.clone(), device.clone());
        move || {
            lookups.fetch_add(1, Ordering::SeqCst);
            let device = device.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let banner = DeviceBanner::new("looked_up", "Looked_Up", "lu");
                Ok(ResolvedDevice::with_banner(device, banner))
            }
        }
    };
    // Nobody's key: unauthorized, and no lookup.
    let refusing = Gateway::start_with(config(), Recorder::default(), resolve.clone()).await;
    let (_, state) = adb.connect(&refusing.serial()).await;
    assert_eq!(state.as_deref(), Some("unauthorized"));
    assert_eq!(lookups.load(Ordering::SeqCst), 0);

    // adb's key: one lookup, and its banner.
    let auth = Listed::new(vec![adb.public_key()]);
    let gw = Gateway::start_with(config(), auth, resolve).await;
    let (_, state) = adb.connect(&gw.serial()).await;
    assert_eq!(state.as_deref(), Some("device"));
    assert_eq!(lookups.load(Ordering::SeqCst), 1);
    let out = adb.run(&["devices", "-l"]).await;
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = listed
        .lines()
        .find(|l| l.starts_with(&gw.serial()))
        .unwrap();
    assert!(line.contains("model:Looked_Up"), "{line}");
    let out = adb
        .run(&["-s", &gw.serial(), "shell", "echo", "found"])
        .await;
    assert_eq!(out.stdout, b"found\n");

    // A lookup that fails: the connection ends, and says why.
    let failing = Gateway::start_with(config(), NoAuth, || async {
        Err::<ResolvedDevice<TestDevice>, _>(OpenError("the phone is gone".into()))
    })
    .await;
    let mut h = RawHost::connect(failing.addr).await;
    h.send(host_cnxn()).await;
    assert!(h.closed_within(Duration::from_secs(2)).await);
    assert!(failing.wait_ended(1, Duration::from_secs(2)).await);
    let end = failing.ended.lock().unwrap()[0].end.clone();
    assert!(end.contains("no device: the phone is gone"), "{end}");
}
