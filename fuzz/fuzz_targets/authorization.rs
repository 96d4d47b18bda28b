//! Fuzz target `authorization`: the signature front end. The input is a small HTTP request as
//! text: a request line (`POST /?query HTTP/1.1`), `name: value` header lines, a blank line and
//! the body. Every `Authorization` value goes through `signature::parse_acs3_authorization`, and
//! the request through `RawRequest::from_parts` and `auth::parse_signed` (the RPC API) and
//! `auth::parse_signed_for` (an object route with a streamed body), then through the pure
//! checks of what they return (`verify`, `check`, `nonce_expires_ms`). Nothing may panic.

#![no_main]

use cloudphone_api::RawRequest;
use cloudphone_api::auth::{SignedRequest, Target, parse_signed, parse_signed_for};
use cloudphone_api::signature::parse_acs3_authorization;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// The secret of the contract's test vectors (api-contract.md 2.2).
const SECRET: &str = "testsecret";
/// 2025-01-01T00:05:00Z, five minutes after the vectors' date.
const NOW_MS: i64 = 1_735_690_200_000;
const OBJECT_ROUTE: Target<'static> = Target {
    path: "/objects/bucket/folder/file.apk",
    streamed_body: true,
};

fuzz_target!(|data: &[u8]| {
    // The whole input as one header value, too.
    if let Ok(text) = std::str::from_utf8(data) {
        check_authorization(text);
    }

    let (head, body) = match find(data, b"\r\n\r\n")
        .map(|i| (i, 4))
        .or(find(data, b"\n\n").map(|i| (i, 2)))
    {
        Some((i, sep)) => (&data[..i], &data[i + sep..]),
        None => (data, &[][..]),
    };
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let mut words = request_line.split(' ');
    let method = words.next().unwrap_or_default();
    let target = words.next().unwrap_or("/");
    let query = target.split_once('?').map(|(_, q)| q);

    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        else {
            continue;
        };
        if name == "authorization"
            && let Ok(text) = std::str::from_utf8(value.as_bytes())
        {
            check_authorization(text);
        }
        headers.append(name, value);
    }

    let Ok(request) = RawRequest::from_parts(method, &headers, query, body.to_vec(), 5000) else {
        return;
    };
    if let Ok(signed) = parse_signed(&request) {
        check_signed(&signed);
    }
    if let Ok(signed) = parse_signed_for(&request, OBJECT_ROUTE) {
        check_signed(&signed);
    }
});

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn check_authorization(header: &str) {
    if let Ok(auth) = parse_acs3_authorization(header) {
        assert!(!auth.access_key_id.is_empty());
        assert!(!auth.signature.is_empty());
        assert!(!auth.signed_headers.is_empty());
        for name in &auth.signed_headers {
            assert!(!name.is_empty());
            assert_eq!(name, &name.to_ascii_lowercase());
        }
    }
}

fn check_signed(signed: &SignedRequest) {
    assert!(!signed.nonce.is_empty());
    let _ = signed.verify(SECRET);
    let _ = signed.check(SECRET, NOW_MS);
    let _ = signed.nonce_expires_ms();
}
