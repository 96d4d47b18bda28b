//! The console's login session: a cookie naming an access key and an expiry, signed with that
//! key's own secret (HMAC-SHA256). Nothing is kept on the server, so every node sharing the
//! store accepts it, and deleting or changing the key ends every session made with it.

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
    pub expires_secs: i64,
    signature: String,
}

fn mac(secret: &str, key_id: &str, expires_secs: i64) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(format!("cloudphone-console\n{key_id}\n{expires_secs}").as_bytes());
    mac
}

/// The cookie value for a login by `key_id` (secret `secret`) that ends at `expires_secs`.
pub fn issue(key_id: &str, secret: &str, expires_secs: i64) -> String {
    let signature = hex::encode(mac(secret, key_id, expires_secs).finalize().into_bytes());
    format!("v1.{key_id}.{expires_secs}.{signature}")
}

/// The claim in a cookie value, if it is well formed (not yet verified).
pub fn parse(value: &str) -> Option<Claim> {
    let rest = value.strip_prefix("v1.")?;
    let (rest, signature) = rest.rsplit_once('.')?;
    let (key_id, expires) = rest.rsplit_once('.')?;
    if key_id.is_empty() || signature.len() != 64 {
        return None;
    }
    Some(Claim {
        key_id: key_id.to_string(),
        expires_secs: expires.parse().ok()?,
        signature: signature.to_string(),
    })
}

/// Whether `claim` was issued with `secret` and has not expired at `now_secs`.
pub fn verify(claim: &Claim, secret: &str, now_secs: i64) -> bool {
    let Ok(signature) = hex::decode(&claim.signature) else {
        return false;
    };
    now_secs < claim.expires_secs
        && mac(secret, &claim.key_id, claim.expires_secs)
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
    fn a_cookie_verifies_with_its_secret_only_and_until_it_expires() {
        let value = issue("LTAIkey", "s3cret", 1_000);
        let claim = parse(&value).expect("well formed");
        assert_eq!(claim.key_id, "LTAIkey");
        assert!(verify(&claim, "s3cret", 999));
        assert!(!verify(&claim, "s3cret", 1_000));
        assert!(!verify(&claim, "other", 999));
        let longer = value.replace(".1000.", ".9999.");
        assert!(!verify(&parse(&longer).unwrap(), "s3cret", 999));
        let someone_else = value.replace("LTAIkey", "LTAIother");
        assert!(!verify(&parse(&someone_else).unwrap(), "s3cret", 999));
    }

    #[test]
    fn junk_is_not_a_claim() {
        for junk in ["", "v1.", "v1.a.b.c", "v2.k.1.aa", "v1..1.00", "v1.k.x.00"] {
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
