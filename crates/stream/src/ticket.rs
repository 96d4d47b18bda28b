//! Connection tickets: what `BatchGetAcpConnectionTicket` hands out for one phone and the
//! stream server opens before it shows the phone's screen to anyone.
//!
//! A ticket is `cpt1.<claims>.<tag>`: the claims as JSON and an HMAC-SHA256 tag over them, both
//! base64url without padding. The key is one setting of the store, so any node opens the
//! tickets of every other. The claims are readable by whoever holds the ticket (they name
//! nothing secret: the account, the phone, the end user, the access key id, the epochs, the
//! task id, the times) and cannot be changed without the key.
//!
//! What a ticket is checked against when a session opens, besides its tag and expiry here: the
//! phone in the URL (`Claims::instance_id`), the phone's owner and status, the access key, and
//! the *epochs*, which `DisconnectAndroidInstance` moves on so that every ticket issued before
//! it stops opening (docs/design.md §14.1).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Every ticket starts with this (the format's version).
const PREFIX: &str = "cpt1.";

/// What the tag covers before the claims, so that no other HMAC made with the same key (there
/// is none today) could pass for a ticket's.
const DOMAIN: &[u8] = b"cloudphone-stream-ticket-v1\n";

/// A ticket longer than this is not one (real ones are about 320 characters): refused before
/// anything is decoded.
pub const MAX_TICKET_LEN: usize = 2048;

/// The whole HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

/// The phone's epochs when the ticket was issued: the phone's own (moved on by a
/// `DisconnectAndroidInstance` without `EndUserId`) and the end user's on that phone (moved on
/// by one with that `EndUserId`). Sent as a JSON pair `[phone, user]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(i64, i64)", into = "(i64, i64)")]
pub struct Epochs {
    pub phone: i64,
    pub user: i64,
}

impl From<(i64, i64)> for Epochs {
    fn from((phone, user): (i64, i64)) -> Epochs {
        Epochs { phone, user }
    }
}

impl From<Epochs> for (i64, i64) {
    fn from(e: Epochs) -> (i64, i64) {
        (e.phone, e.user)
    }
}

/// What a ticket says. Short names keep the ticket short.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account the phone belongs to.
    #[serde(rename = "a")]
    pub account_id: String,
    /// The one phone it opens.
    #[serde(rename = "i")]
    pub instance_id: String,
    /// `EndUserId` of the call ("" when none was given); recorded with the session.
    #[serde(rename = "u")]
    pub end_user_id: String,
    /// The access key that asked for it: a session does not open once it is disabled or gone.
    #[serde(rename = "k")]
    pub key_id: String,
    #[serde(rename = "e")]
    pub epochs: Epochs,
    /// The call's `TaskId` for this phone (`<region>@<uuid>`).
    #[serde(rename = "t")]
    pub task_id: String,
    /// Issued at, in milliseconds since 1970.
    pub iat: i64,
    /// Expires at: the ticket opens nothing at or after this time.
    pub exp: i64,
}

/// Why a ticket does not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Not a ticket at all: the wrong shape, not base64, too long.
    #[error("not a connection ticket")]
    Malformed,
    /// Shaped like a ticket, but its tag is not this server's over these claims: altered, made
    /// up, or issued under another key.
    #[error("the ticket was not issued by this server, or was altered")]
    Forged,
    /// Intact, but past its expiry.
    #[error("the ticket has expired")]
    Expired,
}

impl TicketError {
    /// The name a refusal goes by (the stream server's close reasons, logs, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            TicketError::Malformed | TicketError::Forged => "TicketInvalid",
            TicketError::Expired => "TicketExpired",
        }
    }
}

/// Signs and opens tickets. `Debug` does not show the key.
#[derive(Clone)]
pub struct TicketKey(Vec<u8>);

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKey(..)")
    }
}

impl TicketKey {
    pub fn new(key: &[u8]) -> TicketKey {
        TicketKey(key.to_vec())
    }

    fn mac(&self, claims: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(DOMAIN);
        mac.update(claims);
        mac
    }

    /// The ticket for `claims`.
    pub fn issue(&self, claims: &Claims) -> String {
        let json = serde_json::to_vec(claims).expect("claims serialize");
        let tag = self.mac(&json).finalize().into_bytes();
        let mut out = String::with_capacity(PREFIX.len() + (json.len() + tag.len()) * 4 / 3 + 4);
        out.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(&json, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut out);
        out
    }

    /// The claims of `ticket` if it is intact, this key's, and not expired at `now_ms`. The tag
    /// is checked (in constant time) before the claims are parsed or their expiry looked at,
    /// so an altered ticket is `Forged` whatever else it says.
    pub fn open(&self, ticket: &str, now_ms: i64) -> Result<Claims, TicketError> {
        if ticket.len() > MAX_TICKET_LEN {
            return Err(TicketError::Malformed);
        }
        let rest = ticket.strip_prefix(PREFIX).ok_or(TicketError::Malformed)?;
        let (body, tag) = rest.split_once('.').ok_or(TicketError::Malformed)?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TicketError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TicketError::Malformed)?;
        if tag.len() != TAG_LEN {
            return Err(TicketError::Malformed);
        }
        self.mac(&json)
            .verify_slice(&tag)
            .map_err(|_| TicketError::Forged)?;
        // Only this key's holder made these bytes: claims that do not parse are a bug of ours,
        // and refused all the same.
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TicketError::Malformed)?;
        if now_ms >= claims.exp {
            return Err(TicketError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_760_000_000_000;

    fn claims() -> Claims {
        Claims {
            account_id: "acct-a".into(),
            instance_id: "acp-0mx5ctscv8gyjk3h".into(),
            end_user_id: "alice@example.com".into(),
            key_id: "LTAI5tABCDEFGHIJKLMN".into(),
            epochs: Epochs { phone: 3, user: 1 },
            task_id: "cn-hangzhou@7f8c2d4e-1a2b-4c3d-9e8f-0a1b2c3d4e5f".into(),
            iat: NOW,
            exp: NOW + 120_000,
        }
    }

    fn key() -> TicketKey {
        TicketKey::new(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL")
    }

    #[test]
    fn a_ticket_opens_to_its_claims_until_it_expires() {
        let t = key().issue(&claims());
        assert!(t.starts_with("cpt1."), "{t}");
        assert!(t.len() < 400, "{} characters", t.len());
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "URL-safe: {t}"
        );
        assert_eq!(key().open(&t, NOW), Ok(claims()));
        assert_eq!(key().open(&t, NOW + 119_999), Ok(claims()));
        assert_eq!(key().open(&t, NOW + 120_000), Err(TicketError::Expired));
        assert_eq!(TicketError::Expired.as_str(), "TicketExpired");
    }

    #[test]
    fn the_epochs_travel_as_a_pair() {
        let json = serde_json::to_value(claims()).unwrap();
        assert_eq!(json["e"], serde_json::json!([3, 1]));
        assert_eq!(json["i"], "acp-0mx5ctscv8gyjk3h");
    }

    #[test]
    fn another_key_or_altered_claims_are_forged() {
        let t = key().issue(&claims());
        let other = TicketKey::new(b"another key");
        assert_eq!(other.open(&t, NOW), Err(TicketError::Forged));
        assert_eq!(
            other.open(&other.issue(&claims()), NOW),
            Ok(claims()),
            "the other key opens its own"
        );

        // The same tag over claims for another phone, or with the epochs of before a
        // DisconnectAndroidInstance, or for longer.
        let (_, tag) = t.rsplit_once('.').unwrap();
        let mut changes: Vec<Claims> = Vec::new();
        let mut c = claims();
        c.instance_id = "acp-0mx5ctscv8gyjk3i".into();
        changes.push(c);
        let mut c = claims();
        c.epochs.phone = 2;
        changes.push(c);
        let mut c = claims();
        c.exp += 3_600_000;
        changes.push(c);
        let mut c = claims();
        c.account_id = "acct-b".into();
        changes.push(c);
        for c in changes {
            let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
            let forged = format!("{PREFIX}{body}.{tag}");
            assert_eq!(key().open(&forged, NOW), Err(TicketError::Forged), "{c:?}");
        }

        // A tag cut short, or one bit of it flipped.
        let short = &t[..t.len() - 2];
        assert!(key().open(short, NOW).is_err());
        let mut raw = URL_SAFE_NO_PAD.decode(tag).unwrap();
        raw[0] ^= 1;
        let flipped = format!(
            "{}.{}",
            t.rsplit_once('.').unwrap().0,
            URL_SAFE_NO_PAD.encode(&raw)
        );
        assert_eq!(key().open(&flipped, NOW), Err(TicketError::Forged));
    }

    #[test]
    fn an_expired_ticket_that_was_altered_is_forged_not_expired() {
        let mut c = claims();
        c.exp = NOW - 1;
        let t = key().issue(&c);
        assert_eq!(key().open(&t, NOW), Err(TicketError::Expired));
        let other = TicketKey::new(b"x").issue(&c);
        assert_eq!(key().open(&other, NOW), Err(TicketError::Forged));
    }

    #[test]
    fn malformed_tickets_are_refused_before_any_check() {
        let t = key().issue(&claims());
        let long = format!("{t}{}", "A".repeat(MAX_TICKET_LEN));
        for bad in [
            "",
            "cpt1",
            "cpt1.",
            "cpt1..",
            "cpt2.e30.AAAA",
            "cpt1.not base64.AAAA",
            "cpt1.e30",
            "cpt1.e30.%%%",
            &t.replacen("cpt1.", "CPT1.", 1),
            &t.replacen("cpt1.", "", 1),
            &long,
        ] {
            assert_eq!(key().open(bad, NOW), Err(TicketError::Malformed), "{bad:?}");
        }
        assert_eq!(TicketError::Malformed.as_str(), "TicketInvalid");
        assert_eq!(TicketError::Forged.as_str(), "TicketInvalid");
    }

    #[test]
    fn claims_the_key_signed_but_that_do_not_parse_are_malformed() {
        let json = br#"{"a":"acct-a"}"#;
        let tag = key().mac(json).finalize().into_bytes();
        let t = format!(
            "{PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(json),
            URL_SAFE_NO_PAD.encode(tag)
        );
        assert_eq!(key().open(&t, NOW), Err(TicketError::Malformed));
    }

    #[test]
    fn the_key_is_not_shown() {
        assert_eq!(format!("{:?}", key()), "TicketKey(..)");
    }
}
