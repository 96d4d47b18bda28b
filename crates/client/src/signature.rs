//! The two request-signing schemes of the Alibaba Cloud RPC protocol, as pure functions:
//! ACS3-HMAC-SHA256 (the SDK default, `Authorization` header) and the legacy HMAC-SHA1
//! (`Signature=` parameter). A client signs with them; a server rebuilds the same strings and
//! checks the received signature against [`mac_v3`] / [`mac_v1`] in constant time. Nothing here
//! reads a request or a clock.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::protocol::ACS3_HMAC_SHA256;

/// RFC 3986 unreserved characters stay; everything else is escaped (the vendor's `pct`).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// RFC 3986 percent-encoding of the UTF-8 bytes with upper-case hex; space becomes `%20`.
pub fn pct(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Lower-case hex SHA-256, the form of `x-acs-content-sha256` and of the hashed payload.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Pairs sorted by key, then value, comparing bytes. UTF-8 byte order equals code-point order,
/// so this matches Python's `sorted()` over the decoded tuples, which is what the SDKs do.
fn sorted_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Vec<(&str, &str)> {
    let mut sorted: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    sorted.sort_unstable();
    sorted
}

/// The canonical query line of ACS3: `key=pct(value)` joined by `&`. The SDK leaves keys
/// unencoded, so a server must too; a key holding `=` or `&` would then sign as several
/// parameters, which is why the server refuses names outside `A-Z a-z 0-9 . _ -`.
pub fn canonical_query_v3<K: AsRef<str>, V: AsRef<str>>(query: &[(K, V)]) -> String {
    sorted_pairs(query)
        .into_iter()
        .map(|(k, v)| format!("{k}={}", pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The ACS3 canonical request for `method` on the path `/` (the path of every RPC action).
///
/// `headers` are the request's headers; for each of `signed_header_names`, in the given order,
/// the first header with that name (case-insensitively) contributes `name:trim(value)`. A name
/// with no header contributes an empty value: a server rejects such requests before this.
pub fn canonical_request_v3<K: AsRef<str>, V: AsRef<str>>(
    method: &str,
    query: &[(K, V)],
    headers: &[(String, String)],
    signed_header_names: &[&str],
    body_sha256_hex: &str,
) -> String {
    canonical_request_v3_at(
        method,
        "/",
        query,
        headers,
        signed_header_names,
        body_sha256_hex,
    )
}

/// The ACS3 canonical request for `method` on `canonical_path`: the path as signed, each segment
/// percent-encoded with [`pct`] and the `/` between them kept (the object routes, `/files/...`).
pub fn canonical_request_v3_at<K: AsRef<str>, V: AsRef<str>>(
    method: &str,
    canonical_path: &str,
    query: &[(K, V)],
    headers: &[(String, String)],
    signed_header_names: &[&str],
    body_sha256_hex: &str,
) -> String {
    let mut canonical_headers = String::new();
    for name in signed_header_names {
        let value = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.trim());
        canonical_headers.push_str(&name.to_ascii_lowercase());
        canonical_headers.push(':');
        canonical_headers.push_str(value);
        canonical_headers.push('\n');
    }
    let signed_headers = signed_header_names
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(";");
    format!(
        "{method}\n{canonical_path}\n{}\n{canonical_headers}\n{signed_headers}\n{body_sha256_hex}",
        canonical_query_v3(query)
    )
}

/// `ACS3-HMAC-SHA256\n` + hex SHA-256 of the canonical request.
pub fn string_to_sign_v3(canonical_request: &str) -> String {
    format!(
        "{ACS3_HMAC_SHA256}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The ACS3 HMAC of `string_to_sign`, keyed with the raw secret: [`sign_v3`] encodes it, a
/// verifier compares it with `Mac::verify_slice`.
pub fn mac_v3(secret: &str, string_to_sign: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(string_to_sign.as_bytes());
    mac
}

/// Lower-case hex HMAC-SHA256 keyed with the raw secret.
pub fn sign_v3(secret: &str, string_to_sign: &str) -> String {
    hex::encode(mac_v3(secret, string_to_sign).finalize().into_bytes())
}

/// The legacy string to sign: `METHOD&%2F&pct(CQS)` with `CQS` the sorted `pct(k)=pct(v)`
/// joined by `&`. `params` are every query and form-body parameter except `Signature`.
pub fn string_to_sign_v1<K: AsRef<str>, V: AsRef<str>>(method: &str, params: &[(K, V)]) -> String {
    let cqs = sorted_pairs(params)
        .into_iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&");
    format!("{method}&{}&{}", pct("/"), pct(&cqs))
}

/// The legacy HMAC of `string_to_sign`: [`sign_v1`] encodes it, a verifier compares it.
pub fn mac_v1(secret: &str, string_to_sign: &str) -> Hmac<Sha1> {
    // The legacy scheme keys the HMAC with the secret followed by `&`.
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(format!("{secret}&").as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(string_to_sign.as_bytes());
    mac
}

/// Base64 HMAC-SHA1 keyed with `secret&`.
pub fn sign_v1(secret: &str, string_to_sign: &str) -> String {
    BASE64.encode(mac_v1(secret, string_to_sign).finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::EMPTY_SHA256;
    use crate::vectors::*;

    #[test]
    fn pct_is_rfc3986_with_upper_case_hex() {
        assert_eq!(pct("a b*c~d/中"), "a%20b%2Ac~d%2F%E4%B8%AD");
        assert_eq!(pct("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(pct("+=&%:"), "%2B%3D%26%25%3A");
        assert_eq!(pct(""), "");
    }

    #[test]
    fn sha256_of_nothing() {
        assert_eq!(sha256_hex(b""), EMPTY_SHA256);
    }

    #[test]
    fn canonical_query_sorts_bytes_and_keeps_keys() {
        let q = [
            ("b", "2"),
            ("ResourceIds.2", "x"),
            ("ResourceIds.10", "y"),
            ("a k", "v w"),
        ];
        assert_eq!(
            canonical_query_v3(&q),
            "ResourceIds.10=y&ResourceIds.2=x&a k=v%20w&b=2"
        );
        assert_eq!(canonical_query_v3(&[("k", "b"), ("k", "a")]), "k=a&k=b");
        assert_eq!(canonical_query_v3::<&str, &str>(&[]), "");
        assert_eq!(canonical_query_v3(&[("Empty", "")]), "Empty=");
    }

    #[test]
    fn vector_a_canonical_request_and_signature() {
        let hdrs = vector_a_headers();
        let creq = canonical_request_v3("POST", &vector_a_query(), &hdrs, SIGNED_A, EMPTY_SHA256);
        assert_eq!(creq, CANONICAL_A);
        let sts = string_to_sign_v3(&creq);
        assert_eq!(
            sts,
            "ACS3-HMAC-SHA256\n14dc701cec8d6104fc58108eb06f8b218359ff7b2710961f5d06f475efdaffb0"
        );
        assert_eq!(sign_v3("testsecret", &sts), SIG_A);
        assert_ne!(sign_v3("testsecreT", &sts), SIG_A);
        let get = canonical_request_v3("GET", &vector_a_query(), &hdrs, SIGNED_A, EMPTY_SHA256);
        assert_ne!(sign_v3("testsecret", &string_to_sign_v3(&get)), SIG_A);
    }

    #[test]
    fn vector_b_form_body() {
        let hash = sha256_hex(BODY_B);
        assert_eq!(
            hash,
            "0a0c8ba3df262312e7941ac1ede7062cda598e14d897731318652e7729afe904"
        );
        let hdrs = vector_b_headers(&hash);
        let creq = canonical_request_v3::<&str, &str>("POST", &[], &hdrs, SIGNED_B, &hash);
        assert!(creq.starts_with("POST\n/\n\naccept:"));
        let sts = string_to_sign_v3(&creq);
        assert_eq!(
            sts,
            "ACS3-HMAC-SHA256\nf42178082aeceb50e79c5ede8eefeab24685d2ddb1011c5e4f1bc5b8d9e3c7a3"
        );
        assert_eq!(sign_v3("testsecret", &sts), SIG_B);
    }

    #[test]
    fn vector_c_legacy() {
        let params = vector_c_params();
        let sts = string_to_sign_v1("POST", &params);
        assert_eq!(
            sts,
            "POST&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeTasks%26Format%3Djson%26InvokeId%3Dinv-1%26MaxResults%3D10%26Param%3Da%2520b%252Ac~d%252F%25E4%25B8%25AD%26ResourceIds.1%3Dacp-1%26ResourceIds.2%3Dacp-2%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D00112233445566778899aabbccddeeff%26SignatureVersion%3D1.0%26TaskStatuses.1%3DFinished%26TaskStatuses.2%3DFailed%26Timestamp%3D2025-01-01T00%253A00%253A00Z%26Version%3D2023-09-30"
        );
        assert_eq!(sign_v1("testsecret", &sts), SIG_C);
        assert_ne!(sign_v1("testsecrex", &sts), SIG_C);
        let get = string_to_sign_v1("GET", &params);
        assert!(get.starts_with("GET&%2F&AccessKeyId"));
    }

    #[test]
    fn the_macs_are_what_is_signed() {
        use hmac::Mac as _;
        let sig = hex::decode(sign_v3("k", "m")).unwrap();
        assert!(mac_v3("k", "m").verify_slice(&sig).is_ok());
        let sig = BASE64.decode(sign_v1("k", "m")).unwrap();
        assert!(mac_v1("k", "m").verify_slice(&sig).is_ok());
    }
}
