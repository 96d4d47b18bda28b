//! The console's login session: a cookie naming an access key, the key's session generation
//! and an expiry, signed with that key's own secret (HMAC-SHA256). The store keeps only the
//! generation, so every node sharing the store accepts the cookie; deleting or changing the key
//! ends every session made with it, and so does moving its generation on (a logout, the key or
//! its account disabled: `AccountStore::end_sessions`), for good.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The cookie's name.
pub const COOKIE: &str = "cloudphone_console";
/// How long a login lasts.
pub const LIFETIME_SECS: i64 = 12 * 3600;

/// What a valid cookie says; its signature is checked against the key's secret by [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub key_id: String,
    /// The key's session generation when the cookie was issued.
    pub generation: i64,
    pub expires_secs: i64,
    signature: String,
}

fn mac(secret: &str, key_id: &str, generation: i64, expires_secs: i64) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(format!("cloudphone-console-v2\n{key_id}\n{generation}\n{expires_secs}").as_bytes());
    mac
}

/// The cookie value for a login by `key_id` (secret `secret`, session generation
/// `generation`) that ends at `expires_secs`.
pub fn issue(key_id: &str, generation: i64, secret: &str, expires_secs: i64) -> String {
    let signature = hex::encode(
        mac(secret, key_id, generation, expires_secs)
            .finalize()
            .into_bytes(),
    );
    format!("v2.{key_id}.{generation}.{expires_secs}.{signature}")
}

/// The claim in a cookie value, if it is well formed (not yet verified). Cookies of the first
/// version, which carried no generation, are not: their holders sign in again.
pub fn parse(value: &str) -> Option<Claim> {
    let rest = value.strip_prefix("v2.")?;
    let (rest, signature) = rest.rsplit_once('.')?;
    let (rest, expires) = rest.rsplit_once('.')?;
    let (key_id, generation) = rest.rsplit_once('.')?;
    if key_id.is_empty() || signature.len() != 64 {
        return None;
    }
    Some(Claim {
        key_id: key_id.to_string(),
        generation: generation.parse().ok()?,
        expires_secs: expires.parse().ok()?,
        signature: signature.to_string(),
    })
}

/// Whether `claim` was issued with `secret`, carries the key's current session generation
/// `generation`, and has not expired at `now_secs`.
pub fn verify(claim: &Claim, secret: &str, generation: i64, now_secs: i64) -> bool {
    let Ok(signature) = hex::decode(&claim.signature) else {
        return false;
    };
    now_secs < claim.expires_secs
        && claim.generation == generation
        && mac(secret, &claim.key_id, claim.generation, claim.expires_secs)
            .verify_slice(&signature)
            .is_ok()
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_verifies_with_its_secret_and_generation_only_and_until_it_expires() {
        let value = issue("LTAI.key", 7, "s3cret", 1_000);
        let claim = parse(&value).expect("well formed");
        assert_eq!((claim.key_id.as_str(), claim.generation), ("LTAI.key", 7));
        assert!(verify(&claim, "s3cret", 7, 999));
        assert!(!verify(&claim, "s3cret", 7, 1_000));
        assert!(!verify(&claim, "other", 7, 999));
        assert!(!verify(&claim, "s3cret", 8, 999), "a later generation");
        let longer = value.replace(".1000.", ".9999.");
        assert!(!verify(&parse(&longer).unwrap(), "s3cret", 7, 999));
        let someone_else = value.replace("LTAI.key", "LTAIother");
        assert!(!verify(&parse(&someone_else).unwrap(), "s3cret", 7, 999));
        // A cookie that claims the current generation without having been issued at it.
        let newer = value.replace(".7.", ".8.");
        assert!(!verify(&parse(&newer).unwrap(), "s3cret", 8, 999));
    }

    #[test]
    fn junk_is_not_a_claim() {
        let v1 = format!("v1.k.1000.{}", "0".repeat(64));
        for junk in [
            "",
            "v2.",
            "v2.a.b.c",
            "v2.k.1.aa",
            "v2..1.1.00",
            "v2.k.x.1.00",
            &v1,
        ] {
            assert_eq!(parse(junk), None, "{junk}");
        }
    }

    #[test]
    fn cookies_are_found_by_name() {
        assert_eq!(
            cookie("a=1; cloudphone_console=v1.x; b=2", COOKIE),
            Some("v1.x")
        );
        assert_eq!(cookie("a=1", COOKIE), None);
    }
}
