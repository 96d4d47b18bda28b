//! Signed, expiring download links:
//! `{public_url}/files/{bucket}/{key}?Account=..&Expires=..&Signature=..`.
//!
//! The signature is a hex HMAC-SHA256, under a key every node shares, of the account, the bucket,
//! the key and the expiry, each length-prefixed so that no two different tuples sign the same
//! bytes. It is
//! checked in constant time ([`Mac::verify_slice`]).

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// RFC 3986 unreserved characters stay; everything else is escaped, with upper-case hex.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes one path segment (RFC 3986: only `A-Z a-z 0-9 - _ . ~` stay).
pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, UNRESERVED).to_string()
}

/// Percent-encodes a key segment by segment, keeping its `/` separators.
pub fn encode_key(key: &str) -> String {
    key.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

#[derive(Clone)]
pub(crate) struct LinkKey(Vec<u8>);

impl LinkKey {
    pub(crate) fn new(key: &[u8]) -> LinkKey {
        LinkKey(key.to_vec())
    }

    fn mac(&self, account: &str, bucket: &str, key: &str, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        // v2: the account joined the signed parts when buckets became per account.
        mac.update(b"cloudphone-link-v2\n");
        for part in [account.as_bytes(), bucket.as_bytes(), key.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(&expires.to_be_bytes());
        mac
    }

    pub(crate) fn sign(&self, account: &str, bucket: &str, key: &str, expires: i64) -> String {
        hex::encode(
            self.mac(account, bucket, key, expires)
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `signature` signs the tuple and `expires` is not before `now_secs`.
    pub(crate) fn verify(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        expires: i64,
        signature: &str,
        now_secs: i64,
    ) -> bool {
        let Ok(received) = hex::decode(signature) else {
            return false;
        };
        let authentic = self
            .mac(account, bucket, key, expires)
            .verify_slice(&received)
            .is_ok();
        authentic && now_secs <= expires
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_segments() {
        assert_eq!(encode_key("a b/c+d/中.apk"), "a%20b/c%2Bd/%E4%B8%AD.apk");
        assert_eq!(encode_key("x-y_z.~"), "x-y_z.~");
        assert_eq!(encode_segment("a/b"), "a%2Fb");
    }

    #[test]
    fn signatures_bind_every_part() {
        let k = LinkKey::new(b"secret");
        let sig = k.sign("acct", "bucket", "a/b", 100);
        assert!(k.verify("acct", "bucket", "a/b", 100, &sig, 100));
        assert!(k.verify("acct", "bucket", "a/b", 100, &sig.to_uppercase(), 50));
        assert!(
            !k.verify("acct", "bucket", "a/b", 100, &sig, 101),
            "expired"
        );
        assert!(!k.verify("acct", "bucket", "a/c", 100, &sig, 0));
        assert!(!k.verify("acct", "buckex", "a/b", 100, &sig, 0));
        assert!(!k.verify("acct", "bucket", "a/b", 101, &sig, 0));
        assert!(
            !k.verify("accu", "bucket", "a/b", 100, &sig, 0),
            "another account"
        );
        assert!(
            !k.verify("acctb", "ucket", "a/b", 100, &sig, 0),
            "no ambiguity"
        );
        assert!(
            !k.verify("acct", "bucketa", "/b", 100, &sig, 0),
            "no ambiguity"
        );
        assert!(!k.verify("acct", "bucket", "a/b", 100, &sig[..62], 0));
        assert!(!k.verify("acct", "bucket", "a/b", 100, "zz", 0));
        assert!(!k.verify("acct", "bucket", "a/b", 100, "", 0));
        assert!(!LinkKey::new(b"other").verify("acct", "bucket", "a/b", 100, &sig, 0));
    }
}
