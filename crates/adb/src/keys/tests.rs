//! Tests of the key formats: round trips, every refusal of the parser, signatures, and the
//! stock `adb` (Debian's, `/usr/bin/adb`) on both sides: keys made by `adb keygen` are read
//! here, and a key made here is loaded by an adb server, which signs a token with it and sends
//! its public key to a device this test plays (loopback only).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, LineEnding};

use super::*;

/// One generated key shared by the tests that only read it (generation takes a while).
fn key() -> &'static GeneratedKey {
    static KEY: OnceLock<GeneratedKey> = OnceLock::new();
    KEY.get_or_init(|| generate("tester@cloudphone").unwrap())
}

fn private(pem: &str) -> PrivateKey {
    PrivateKey::from_pkcs8_pem(pem).unwrap()
}

fn sign(pem: &str, token: &[u8]) -> Vec<u8> {
    private(pem)
        .pkcs1v15_sign_prehash::<sha1::Sha1>(token)
        .unwrap()
}

/// The struct of the shared key, to tamper with.
fn struct_bytes() -> Vec<u8> {
    key().public.to_bytes()
}

fn set_word(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

const EXPONENT_AT: usize = 8 + 2 * MODULUS_BYTES;

#[test]
fn a_generated_key_round_trips() {
    let k = key();
    assert!(k.private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let line = k.public.to_string();
    assert!(line.ends_with(" tester@cloudphone"), "{line}");
    assert_eq!(line.split(' ').next().unwrap().len(), 700);
    let back = AdbPublicKey::parse(&line).unwrap();
    assert_eq!(back, k.public);
    assert_eq!(back.comment(), "tester@cloudphone");
    assert_eq!(back.to_bytes().len(), ENCODED_LEN);
    let derived = public_key_of_pem(&k.private_pem, "other").unwrap();
    assert_eq!(derived.rsa(), k.public.rsa());
    assert_eq!(derived.comment(), "other");
    assert_eq!(derived.fingerprint(), k.public.fingerprint());
    assert_eq!(k.public.fingerprint().len(), 64);
    assert!(
        !format!("{k:?}").contains("PRIVATE"),
        "Debug shows no private key"
    );
}

#[test]
fn the_text_may_have_whitespace_a_nul_or_no_comment() {
    let b64 = key().public.encoded();
    for text in [
        b64.to_string(),
        format!("  {b64}\n"),
        format!("{b64} tester@cloudphone\n"),
        format!("{b64}\tuser name@host\0"),
        format!("{b64} @unknown"),
    ] {
        let parsed = AdbPublicKey::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(parsed.rsa(), key().public.rsa());
    }
    assert_eq!(AdbPublicKey::parse(&b64).unwrap().to_string(), b64);
    assert_eq!(
        AdbPublicKey::parse(&format!("{b64}\tuser name@host\0"))
            .unwrap()
            .comment(),
        "user name@host"
    );
}

#[test]
fn malformed_text_is_refused() {
    let b64 = key().public.encoded();
    let cases = [
        (String::new(), KeyError::Empty),
        (" \n\0".to_string(), KeyError::Empty),
        ("x".repeat(MAX_TEXT + 1), KeyError::TooLong),
        (format!("{}!", &b64[..699]), KeyError::NotBase64),
        (b64.trim_end_matches('=').to_string(), KeyError::NotBase64),
        (STANDARD.encode([0u8; 523]), KeyError::WrongLength(523)),
        (
            STANDARD.encode([struct_bytes(), vec![0]].concat()),
            KeyError::WrongLength(525),
        ),
        (format!("{b64} evil\u{1b}[2J"), KeyError::BadComment),
        (format!("{b64} two\nlines"), KeyError::BadComment),
        (
            "-----BEGIN PUBLIC KEY-----".to_string(),
            KeyError::NotBase64,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(AdbPublicKey::parse(&text), Err(want), "{text:?}");
    }
}

#[test]
fn a_struct_that_disagrees_with_itself_is_refused() {
    let mut wrong_words = struct_bytes();
    set_word(&mut wrong_words, 0, 63);
    let mut bad_n0inv = struct_bytes();
    let n0inv = u32::from_le_bytes(bad_n0inv[4..8].try_into().unwrap());
    set_word(&mut bad_n0inv, 4, n0inv ^ 1);
    let mut bad_rr = struct_bytes();
    bad_rr[8 + MODULUS_BYTES + 100] ^= 0x40;
    let mut exponent_5 = struct_bytes();
    set_word(&mut exponent_5, EXPONENT_AT, 5);
    let mut exponent_17 = struct_bytes();
    set_word(&mut exponent_17, EXPONENT_AT, 17);
    let mut short_modulus = struct_bytes();
    short_modulus[8 + MODULUS_BYTES - 1] &= 0x7f;
    let mut even = struct_bytes();
    even[8] &= 0xfe;
    let cases = [
        (wrong_words, KeyError::WrongModulusSize(63)),
        (bad_n0inv, KeyError::BadN0inv),
        (bad_rr, KeyError::BadRr),
        (exponent_5, KeyError::BadExponent(5)),
        (exponent_17, KeyError::BadExponent(17)),
        (short_modulus, KeyError::NotFullSize),
        (even, KeyError::EvenModulus),
    ];
    for (bytes, want) in cases {
        assert_eq!(AdbPublicKey::from_bytes(&bytes), Err(want.clone()));
        assert_eq!(AdbPublicKey::parse(&STANDARD.encode(&bytes)), Err(want));
    }
}

#[test]
fn exponent_3_is_accepted() {
    // n0inv and R^2 depend on the modulus alone, so the struct stays consistent.
    let mut three = struct_bytes();
    set_word(&mut three, EXPONENT_AT, 3);
    let key3 = AdbPublicKey::from_bytes(&three).unwrap();
    assert_eq!(key3.to_bytes(), three);
    assert_ne!(key3.rsa(), key().public.rsa());
}

#[test]
fn the_montgomery_constants_are_right() {
    for n0 in [1u32, 3, 0xffff_ffff, 0x8000_0001, 0x1234_5677] {
        assert_eq!(n0.wrapping_mul(n0inv_of(n0)), u32::MAX, "{n0:#x}");
    }
    // R^2 mod n for a small modulus, by another route: R mod n squared, mod n.
    let bytes = struct_bytes();
    let rr =
        BoxedUint::from_le_slice(&bytes[8 + MODULUS_BYTES..8 + 2 * MODULUS_BYTES], 2048).unwrap();
    let n = key().public.rsa().n();
    let r = BoxedUint::one_with_precision(2112).shl(2048).rem_vartime(n);
    let r_squared = r.square_mod_vartime(n);
    assert_eq!(rr, r_squared);
}

#[test]
fn auth_signatures_are_checked_over_the_raw_token() {
    let k = key();
    let token = [7u8; TOKEN_LEN];
    let sig = sign(&k.private_pem, &token);
    assert!(k.public.verify_auth(&token, &sig));
    let mut other_token = token;
    other_token[19] ^= 1;
    assert!(!k.public.verify_auth(&other_token, &sig));
    let mut bent = sig.clone();
    bent[10] ^= 1;
    assert!(!k.public.verify_auth(&token, &bent));
    assert!(!k.public.verify_auth(&token, &sig[1..]));
    assert!(!k.public.verify_auth(&token[..19], &sig));
    // A signature over the SHA-1 of the token (hashed once more) is not adbd's scheme.
    let hashed = sha1::Sha1::digest(token);
    let over_hash = private(&k.private_pem)
        .pkcs1v15_sign_prehash::<sha1::Sha1>(&hashed)
        .unwrap();
    assert!(!k.public.verify_auth(&token, &over_hash));
    let stranger = generate("").unwrap();
    assert!(!stranger.public.verify_auth(&token, &sig));
}

#[test]
fn pems_of_both_forms_are_read_and_others_refused() {
    let k = key();
    let pkcs1 = private(&k.private_pem)
        .to_pkcs1_pem(LineEnding::LF)
        .unwrap()
        .to_string();
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert_eq!(public_key_of_pem(&pkcs1, "").unwrap().rsa(), k.public.rsa());
    let small = PrivateKey::new(&mut getrandom::SysRng, 1024).unwrap();
    let small_pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&small, LineEnding::LF)
        .unwrap()
        .to_string();
    assert_eq!(
        public_key_of_pem(&small_pem, ""),
        Err(KeyError::WrongSize(1024))
    );
    for bad in [
        "",
        "not a key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        &k.public.to_string(),
    ] {
        assert_eq!(public_key_of_pem(bad, ""), Err(KeyError::NotPem), "{bad:?}");
    }
}

// --- the stock adb ----------------------------------------------------------------------------

const ADB: &str = "/usr/bin/adb";

fn adb_installed() {
    assert!(
        Path::new(ADB).exists(),
        "Debian's adb is needed for these tests: apt-get install -y adb"
    );
}

#[test]
fn keys_made_by_adb_keygen_are_read() {
    adb_installed();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("adbkey");
    let out = Command::new(ADB).arg("keygen").arg(&file).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let pem = std::fs::read_to_string(&file).unwrap();
    let text = std::fs::read_to_string(dir.path().join("adbkey.pub")).unwrap();
    let public = AdbPublicKey::parse(&text).unwrap();
    let derived = public_key_of_pem(&pem, public.comment()).unwrap();
    assert_eq!(derived, public);
    // Our writer gives back adb's text byte for byte.
    assert_eq!(derived.to_string(), text.trim_end());
    // The fingerprint is SHA-256 over the DER SubjectPublicKeyInfo, as OpenSSL makes it.
    let der = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(der.status.success(), "{der:?}");
    let want: String = sha2::Sha256::digest(&der.stdout)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(public.fingerprint(), want);
    // And a signature made with adb's key checks.
    let token = [0x5a; TOKEN_LEN];
    assert!(public.verify_auth(&token, &sign(&pem, &token)));
}

/// An adb server on a port of its own, with `home` as its HOME (so it loads
/// `home/.android/adbkey`); killed when dropped.
struct AdbServer {
    port: u16,
    home: std::path::PathBuf,
}

impl AdbServer {
    fn start(home: &Path) -> AdbServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = AdbServer {
            port,
            home: home.to_path_buf(),
        };
        let out = server.adb().arg("start-server").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        server
    }

    fn adb(&self) -> Command {
        let mut c = Command::new(ADB);
        c.env("HOME", &self.home)
            .env("TMPDIR", &self.home)
            .env_remove("ADB_VENDOR_KEYS")
            .env_remove("ANDROID_ADB_SERVER_PORT")
            .arg("-P")
            .arg(self.port.to_string());
        c
    }
}

impl Drop for AdbServer {
    fn drop(&mut self) {
        let _ = self.adb().arg("kill-server").output();
    }
}

const A_CNXN: u32 = 0x4e58_4e43;
const A_AUTH: u32 = 0x4854_5541;
const AUTH_TOKEN: u32 = 1;
const AUTH_SIGNATURE: u32 = 2;
const AUTH_RSAPUBLICKEY: u32 = 3;

/// Reads one ADB packet: (command, arg0, payload).
fn read_packet(s: &mut TcpStream) -> (u32, u32, Vec<u8>) {
    let mut head = [0u8; 24];
    s.read_exact(&mut head).unwrap();
    let word = |n: usize| u32::from_le_bytes(head[n * 4..n * 4 + 4].try_into().unwrap());
    assert_eq!(word(5), word(0) ^ 0xffff_ffff, "magic");
    let mut data = vec![0u8; word(3) as usize];
    s.read_exact(&mut data).unwrap();
    (word(0), word(1), data)
}

/// Writes one ADB packet, with the byte-sum checksum older hosts check.
fn write_packet(s: &mut TcpStream, command: u32, arg0: u32, data: &[u8]) {
    let sum = data.iter().map(|b| u32::from(*b)).sum::<u32>();
    let mut out = Vec::with_capacity(24 + data.len());
    for w in [
        command,
        arg0,
        0,
        data.len() as u32,
        sum,
        command ^ 0xffff_ffff,
    ] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(data);
    s.write_all(&out).unwrap();
}

/// A key made here is the stock adb's `adbkey`: its server loads it, signs adbd's token with
/// it (checked with [`AdbPublicKey::verify_auth`]) and, once the signature is refused, sends
/// the public key it derived from it, which is ours.
#[test]
fn the_stock_adb_uses_a_generated_key() {
    adb_installed();
    let k = generate("tester@cloudphone").unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".android")).unwrap();
    std::fs::write(home.path().join(".android/adbkey"), &k.private_pem).unwrap();
    let server = AdbServer::start(home.path());

    let device = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = device.local_addr().unwrap();
    let mut connect = server
        .adb()
        .arg("connect")
        .arg(at.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (mut s, _) = device.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();

    let (command, _, banner) = read_packet(&mut s);
    assert_eq!(command, A_CNXN, "the host speaks first");
    assert!(String::from_utf8_lossy(&banner).starts_with("host::"));

    let token: [u8; TOKEN_LEN] = std::array::from_fn(|n| (n as u8).wrapping_mul(37) ^ 0xa5);
    write_packet(&mut s, A_AUTH, AUTH_TOKEN, &token);
    let (command, kind, signature) = read_packet(&mut s);
    assert_eq!((command, kind), (A_AUTH, AUTH_SIGNATURE));
    assert!(
        k.public.verify_auth(&token, &signature),
        "adb signed the token with the generated key"
    );
    let mut wrong = token;
    wrong[0] ^= 0xff;
    assert!(!k.public.verify_auth(&wrong, &signature));

    // Refused (a new token): with no other key, the host sends its public key.
    write_packet(&mut s, A_AUTH, AUTH_TOKEN, &[0x11; TOKEN_LEN]);
    let (command, kind, public) = read_packet(&mut s);
    assert_eq!((command, kind), (A_AUTH, AUTH_RSAPUBLICKEY));
    let sent = AdbPublicKey::parse(std::str::from_utf8(&public).unwrap()).unwrap();
    assert_eq!(sent.rsa(), k.public.rsa());
    assert_eq!(sent.encoded(), k.public.encoded());

    drop(s);
    let _ = connect.kill();
    let _ = connect.wait();
}
