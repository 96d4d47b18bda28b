//! Pagination tokens: opaque, authenticated with HMAC-SHA256 under a key every node shares, and
//! bound to the listing and filters they were issued for, so that a token cannot be forged,
//! altered or replayed against other filters.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cloudphone_store::Cursor;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

const TAG_LEN: usize = 16;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Signs cursors. `scope` names the listing and its filters (a canonical rendering of them).
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl TokenKey {
    pub fn new(key: &[u8]) -> TokenKey {
        TokenKey(key.to_vec())
    }

    fn tag(&self, scope: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(&(scope.len() as u64).to_be_bytes());
        mac.update(scope.as_bytes());
        mac.update(body);
        mac
    }

    /// A token that resumes after `cursor` in the listing named by `scope`.
    pub fn issue(&self, scope: &str, cursor: &Cursor) -> String {
        let mut body = Vec::with_capacity(8 + cursor.id.len() + TAG_LEN);
        body.extend_from_slice(&cursor.ms.to_be_bytes());
        body.extend_from_slice(cursor.id.as_bytes());
        let tag = self.tag(scope, &body).finalize().into_bytes();
        body.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(body)
    }

    /// The cursor in `token`, if it is intact and was issued for `scope`.
    pub fn open(&self, scope: &str, token: &str) -> Option<Cursor> {
        let raw = URL_SAFE_NO_PAD.decode(token.as_bytes()).ok()?;
        if raw.len() < 8 + TAG_LEN {
            return None;
        }
        let (body, tag) = raw.split_at(raw.len() - TAG_LEN);
        self.tag(scope, body).verify_truncated_left(tag).ok()?;
        let ms = i64::from_be_bytes(body[..8].try_into().ok()?);
        let id = String::from_utf8(body[8..].to_vec()).ok()?;
        Some(Cursor { ms, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_resist_tampering() {
        let key = TokenKey::new(b"k");
        let cursor = Cursor {
            ms: 1_700_000_000_123,
            id: "t-abc".into(),
        };
        let token = key.issue("tasks|a", &cursor);
        assert_eq!(key.open("tasks|a", &token), Some(cursor));
        assert_eq!(key.open("tasks|b", &token), None, "other filters");
        assert_eq!(
            TokenKey::new(b"other").open("tasks|a", &token),
            None,
            "other key"
        );
        let mut bytes = token.into_bytes();
        bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            key.open("tasks|a", std::str::from_utf8(&bytes).unwrap()),
            None
        );
        assert_eq!(key.open("tasks|a", "%%%"), None);
        assert_eq!(key.open("tasks|a", ""), None);
    }
}
