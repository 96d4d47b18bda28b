//! The adb key formats: `adbkey.pub` (Android's `RSAPublicKey` struct in base64, then
//! ` user@host`), the PKCS#8 PEM private key `adb` reads as `adbkey`, and the check of an AUTH
//! signature over adbd's 20-byte token. Pure: no I/O, no clock.
//!
//! The struct, as adbd reads it from `adb_keys` (all little-endian, 524 bytes):
//!
//! | bytes | field |
//! |---|---|
//! | 4 | modulus size in 32-bit words: 64 (a 2048-bit key; adb knows no other size) |
//! | 4 | `n0inv` = -1 / n mod 2^32 (a Montgomery constant) |
//! | 256 | the modulus n |
//! | 256 | `rr` = R^2 mod n with R = 2^2048 (the other Montgomery constant) |
//! | 4 | the public exponent e |
//!
//! **What [`AdbPublicKey::parse`] refuses, and why.** adbd itself reads only the modulus and the
//! exponent and recomputes the rest, so a sloppy encoder's key would still work on a phone; but
//! a key that disagrees with itself was not written by `adb`, and refusing it at import says so
//! to the user at once instead of at their first failed connection. So a key must be: exactly
//! 524 bytes of canonical base64 (adbd's own length check); 64 modulus words; a modulus of
//! exactly 2048 bits (top bit set, as every generator makes them: adb checks `RSA_size` = 256
//! bytes when it writes one), odd; `n0inv` and `rr` those of the modulus; the exponent 3 or
//! 65537 (the only two the struct's definition allows); and whatever follows the base64 a
//! comment without control characters. Leading and trailing whitespace and a trailing NUL (how
//! the key travels in an AUTH packet) are ignored.
//!
//! The fingerprint is adb's own: upper-case hex of the SHA-256 of the key's DER
//! `SubjectPublicKeyInfo`, which the adb client logs for each key it loads and adbd for each key
//! it trusts, so an operator can match a key pair with what both ends print.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, PrivateKey, PublicKey};
use sha2::Digest;

/// The only key size adb speaks.
pub const KEY_BITS: usize = 2048;
/// Bytes of the modulus (and of a signature).
pub const MODULUS_BYTES: usize = KEY_BITS / 8;
const MODULUS_WORDS: u32 = (MODULUS_BYTES / 4) as u32;
/// Bytes of Android's `RSAPublicKey` struct.
pub const ENCODED_LEN: usize = 4 + 4 + MODULUS_BYTES + MODULUS_BYTES + 4;
/// Bytes of the token adbd asks a client to sign.
pub const TOKEN_LEN: usize = 20;
/// The longest `adbkey.pub` text accepted (the base64 is 700 characters; the rest is comment).
pub const MAX_TEXT: usize = 4096;

/// Why a key was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key is empty")]
    Empty,
    #[error("the key is longer than {MAX_TEXT} characters")]
    TooLong,
    #[error("the key is not base64")]
    NotBase64,
    #[error("the key holds {0} bytes, not the 524 of Android's RSAPublicKey")]
    WrongLength(usize),
    #[error("the key says its modulus has {0} 32-bit words, not 64 (2048 bits)")]
    WrongModulusSize(u32),
    #[error("the modulus is not 2048 bits")]
    NotFullSize,
    #[error("the modulus is even")]
    EvenModulus,
    #[error("the exponent is {0}, not 3 or 65537")]
    BadExponent(u64),
    #[error("n0inv does not belong to the modulus")]
    BadN0inv,
    #[error("R^2 does not belong to the modulus")]
    BadRr,
    #[error("the comment after the key has control characters")]
    BadComment,
    #[error("not an RSA public key: {0}")]
    Rsa(String),
    #[error("not a PEM RSA private key (PKCS#8 or PKCS#1)")]
    NotPem,
    #[error("the private key has {0} bits; adb keys have 2048")]
    WrongSize(usize),
    #[error("generating a key failed: {0}")]
    Generate(String),
}

/// An adb public key: what `adbkey.pub` holds and adbd trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdbPublicKey {
    key: PublicKey,
    /// What follows the base64 in `adbkey.pub` (adb writes `user@host`); may be empty.
    comment: String,
}

impl AdbPublicKey {
    /// Parses one `adbkey.pub` text: the base64 of the struct, optionally followed by
    /// whitespace and a comment (see the module's doc for what is refused).
    pub fn parse(text: &str) -> Result<AdbPublicKey, KeyError> {
        if text.len() > MAX_TEXT {
            return Err(KeyError::TooLong);
        }
        let text = text
            .trim_end_matches('\0')
            .trim_matches(|c: char| c.is_ascii_whitespace());
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        let (b64, comment) = match text.split_once(|c: char| c.is_ascii_whitespace()) {
            Some((b64, rest)) => (b64, rest.trim_matches(|c: char| c.is_ascii_whitespace())),
            None => (text, ""),
        };
        let bytes = STANDARD.decode(b64).map_err(|_| KeyError::NotBase64)?;
        AdbPublicKey::from_bytes(&bytes)?.with_comment(comment)
    }

    /// Reads Android's 524-byte `RSAPublicKey` struct (no comment).
    pub fn from_bytes(bytes: &[u8]) -> Result<AdbPublicKey, KeyError> {
        if bytes.len() != ENCODED_LEN {
            return Err(KeyError::WrongLength(bytes.len()));
        }
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let words = word(0);
        if words != MODULUS_WORDS {
            return Err(KeyError::WrongModulusSize(words));
        }
        let n0inv = word(4);
        let modulus = &bytes[8..8 + MODULUS_BYTES];
        let rr = &bytes[8 + MODULUS_BYTES..8 + 2 * MODULUS_BYTES];
        let exponent = word(8 + 2 * MODULUS_BYTES);
        if exponent != 3 && exponent != 65537 {
            return Err(KeyError::BadExponent(u64::from(exponent)));
        }
        if modulus[MODULUS_BYTES - 1] & 0x80 == 0 {
            return Err(KeyError::NotFullSize);
        }
        if modulus[0] & 1 == 0 {
            return Err(KeyError::EvenModulus);
        }
        let n0 = u32::from_le_bytes(modulus[..4].try_into().expect("4 bytes"));
        if n0inv != n0inv_of(n0) {
            return Err(KeyError::BadN0inv);
        }
        let n = BoxedUint::from_le_slice(modulus, KEY_BITS as u32)
            .map_err(|e| KeyError::Rsa(e.to_string()))?;
        let key = PublicKey::new(n, BoxedUint::from(exponent)).map_err(rsa_error)?;
        if rr != rr_of(&key).as_slice() {
            return Err(KeyError::BadRr);
        }
        Ok(AdbPublicKey {
            key,
            comment: String::new(),
        })
    }

    /// The adb key of an RSA public key, which must be 2048 bits with exponent 3 or 65537.
    pub fn from_rsa(key: &PublicKey, comment: &str) -> Result<AdbPublicKey, KeyError> {
        let bits = key.n().as_ref().bit_width_vartime() as usize;
        if bits != KEY_BITS {
            return Err(KeyError::WrongSize(bits));
        }
        let e = exponent_of(key);
        if e != 3 && e != 65537 {
            return Err(KeyError::BadExponent(e));
        }
        AdbPublicKey {
            key: key.clone(),
            comment: String::new(),
        }
        .with_comment(comment)
    }

    /// The same key with another comment (trimmed; no control characters).
    pub fn with_comment(mut self, comment: &str) -> Result<AdbPublicKey, KeyError> {
        let comment = comment.trim_matches(|c: char| c.is_ascii_whitespace());
        if comment.chars().any(char::is_control) {
            return Err(KeyError::BadComment);
        }
        self.comment = comment.to_string();
        Ok(self)
    }

    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The RSA key, for comparing two adb keys whatever their comments.
    pub fn rsa(&self) -> &PublicKey {
        &self.key
    }

    /// Android's 524-byte struct.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODED_LEN);
        let modulus = le_bytes(self.key.n().as_ref());
        out.extend_from_slice(&MODULUS_WORDS.to_le_bytes());
        let n0 = u32::from_le_bytes(modulus[..4].try_into().expect("4 bytes"));
        out.extend_from_slice(&n0inv_of(n0).to_le_bytes());
        out.extend_from_slice(&modulus);
        out.extend_from_slice(&rr_of(&self.key));
        // from_rsa and from_bytes admit only 3 and 65537.
        out.extend_from_slice(&(exponent_of(&self.key) as u32).to_le_bytes());
        out
    }

    /// The base64 of the struct, without comment: the part adbd compares.
    pub fn encoded(&self) -> String {
        STANDARD.encode(self.to_bytes())
    }

    /// Upper-case hex SHA-256 of the key's DER `SubjectPublicKeyInfo`, as adb prints it.
    pub fn fingerprint(&self) -> String {
        let der = self
            .key
            .to_public_key_der()
            .expect("a valid RSA public key always encodes");
        let digest = sha2::Sha256::digest(der.as_bytes());
        digest.iter().map(|b| format!("{b:02X}")).collect()
    }

    /// Whether `signature` is this key's PKCS#1 v1.5 signature of `token` taken as a SHA-1
    /// digest, as adbd checks an AUTH SIGNATURE (`RSA_verify(NID_sha1, token, 20, ...)`): the
    /// token is not hashed again.
    pub fn verify_auth(&self, token: &[u8], signature: &[u8]) -> bool {
        token.len() == TOKEN_LEN
            && signature.len() == MODULUS_BYTES
            && self
                .key
                .pkcs1v15_verify_prehash::<sha1::Sha1>(token, signature)
                .is_ok()
    }
}

/// `adbkey.pub`'s text: the base64, then a space and the comment if there is one.
impl std::fmt::Display for AdbPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encoded())?;
        if !self.comment.is_empty() {
            write!(f, " {}", self.comment)?;
        }
        Ok(())
    }
}

/// A key pair made by [`generate`]: the private key for the user, the public key to keep.
#[derive(Clone)]
pub struct GeneratedKey {
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as `adb keygen` writes `adbkey`.
    pub private_pem: String,
    pub public: AdbPublicKey,
}

/// Never prints the private key.
impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A new 2048-bit RSA key (exponent 65537, as adb makes them) from the operating system's
/// random source. Takes a good fraction of a second: call it off the async runtime.
pub fn generate(comment: &str) -> Result<GeneratedKey, KeyError> {
    let key = PrivateKey::new(&mut getrandom::SysRng, KEY_BITS)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Generate(e.to_string()))?
        .to_string();
    let public = AdbPublicKey::from_rsa(key.as_public_key(), comment)?;
    Ok(GeneratedKey {
        private_pem,
        public,
    })
}

/// The adb public key of a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, what `adb keygen` and
/// [`generate`] write) or PKCS#1 (`BEGIN RSA PRIVATE KEY`, which adb also reads).
pub fn public_key_of_pem(pem: &str, comment: &str) -> Result<AdbPublicKey, KeyError> {
    let key = PrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| PrivateKey::from_pkcs1_pem(pem))
        .map_err(|_| KeyError::NotPem)?;
    AdbPublicKey::from_rsa(key.as_public_key(), comment)
}

/// -1 / n0 mod 2^32 for odd `n0`: Newton's iteration doubles the correct low bits each step
/// (an odd number is its own inverse mod 8, so 3 bits to start; 3, 6, 12, 24, 48).
fn n0inv_of(n0: u32) -> u32 {
    let mut inv = n0;
    for _ in 0..4 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
    }
    inv.wrapping_neg()
}

/// R^2 mod n with R = 2^2048, little-endian, 256 bytes.
fn rr_of(key: &PublicKey) -> Vec<u8> {
    let r2 = BoxedUint::one_with_precision(2 * KEY_BITS as u32 + 64).shl(2 * KEY_BITS as u32);
    le_bytes(&r2.rem_vartime(key.n()))
}

/// `n` as exactly 256 little-endian bytes.
fn le_bytes(n: &BoxedUint) -> Vec<u8> {
    let mut bytes = n.to_le_bytes().to_vec();
    bytes.resize(MODULUS_BYTES, 0);
    bytes
}

/// The public exponent (u64::MAX for one that does not fit, which no check admits).
fn exponent_of(key: &PublicKey) -> u64 {
    let be = key.e().to_be_bytes_trimmed_vartime();
    if be.len() > 8 {
        return u64::MAX;
    }
    be.iter().fold(0, |acc, b| (acc << 8) | u64::from(*b))
}

fn rsa_error(e: rsa::Error) -> KeyError {
    KeyError::Rsa(e.to_string())
}

#[cfg(test)]
mod tests;
