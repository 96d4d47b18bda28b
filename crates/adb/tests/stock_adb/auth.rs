//! Authentication as stock adb sees it: a device whose authorizer refuses every signature is
//! `unauthorized` (the host's public key is reported, never trusted); one that accepts a
//! signature is a `device`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudphone_adb::proto::handshake::TOKEN_SIZE;
use cloudphone_adb::session::Authorizer;

use crate::config;
use crate::device::TestDevice;
use crate::harness::{AdbServer, Gateway};

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
    let adb = AdbServer::start().await;
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
    let adb = AdbServer::start().await;
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
