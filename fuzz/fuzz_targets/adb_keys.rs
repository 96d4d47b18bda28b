//! Fuzz target `adb_keys`: the adb key formats as a client supplies them, before anyone
//! trusts it (ImportKeyPair's `adbkey.pub` text, the RSAPUBLICKEY a host offers, the 524-byte
//! struct) and the check of an AUTH signature against a key.
//!
//! The input, as text, goes to `AdbPublicKey::parse`, and its first 524 bytes to `from_bytes`.
//! A key either accepts is read back the same from what it writes (`to_string`, `to_bytes`).
//! Then `verify_auth` with a token and a signature cut from the input, against the key parsed
//! (if any) and against a real key made at the start of the run, whose signature of a fixed
//! token must verify for that token only, and not once a bit of it is bent.

#![no_main]

use std::sync::OnceLock;

use cloudphone_adb::keys::{AdbPublicKey, ENCODED_LEN, MODULUS_BYTES, TOKEN_LEN};
use libfuzzer_sys::fuzz_target;
use rsa::PrivateKey;
use rsa::pkcs8::DecodePrivateKey;

/// The token the fixed key signs.
const TOKEN: [u8; TOKEN_LEN] = [0x5a; TOKEN_LEN];

/// A key made once per run (no private key kept in the repository) and its signature of
/// [`TOKEN`] (signing is slow; verifying is what the gateway does per attempt).
fn fixed() -> &'static (AdbPublicKey, Vec<u8>) {
    static KEY: OnceLock<(AdbPublicKey, Vec<u8>)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = cloudphone_adb::keys::generate("fuzz@target").expect("a key");
        let private = PrivateKey::from_pkcs8_pem(&key.private_pem).expect("its PEM");
        let sig = private
            .pkcs1v15_sign_prehash::<sha1::Sha1>(&TOKEN)
            .expect("a signature");
        (key.public, sig)
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = AdbPublicKey::parse(&text);
    if let Ok(key) = &parsed {
        let again = AdbPublicKey::parse(&key.to_string()).expect("what parse accepts it writes");
        assert_eq!(&again, key);
        let bytes = key.to_bytes();
        assert_eq!(bytes.len(), ENCODED_LEN);
        assert_eq!(AdbPublicKey::from_bytes(&bytes).unwrap().rsa(), key.rsa());
        assert_eq!(key.fingerprint().len(), 64);
    }
    if let Ok(key) = AdbPublicKey::from_bytes(&data[..data.len().min(ENCODED_LEN)]) {
        assert_eq!(key.to_bytes(), data[..ENCODED_LEN]);
    }

    let (token, rest) = data.split_at(data.len().min(TOKEN_LEN));
    let signature = &rest[..rest.len().min(MODULUS_BYTES)];
    let (key, sig) = fixed();
    if let Ok(parsed) = &parsed {
        let _ = parsed.verify_auth(token, signature);
    }
    // A signature cut from the input verifies only by the rarest luck: not worth asserting,
    // but it must not panic, whatever its length.
    let _ = key.verify_auth(token, signature);
    // The real signature (PKCS#1 v1.5 over the token taken as a SHA-1 digest) verifies for
    // its token only, and not once a bit of it is bent.
    assert_eq!(key.verify_auth(token, sig), token == TOKEN);
    assert!(key.verify_auth(&TOKEN, sig));
    if let Some(&at) = data.first() {
        let mut bent = sig.clone();
        let bit = usize::from(at) + usize::from(data.len() as u8) * 256;
        bent[(bit / 8) % MODULUS_BYTES] ^= 1 << (bit % 8);
        assert!(!key.verify_auth(&TOKEN, &bent));
    }
});
