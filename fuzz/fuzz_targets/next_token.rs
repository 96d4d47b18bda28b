//! Fuzz target `next_token`: the NextToken codec (`token::TokenKey`). The input is read twice:
//! as text, `SCOPE\nTOKEN` opened under a fixed key (the seeds are tokens issued under that key,
//! see fuzz/README.md); and through `arbitrary` as a key, a scope, a cursor and a token. `open`
//! must never panic; a token it accepts must be the one `issue` gives for what it decoded (no
//! second spelling of a token); `issue` then `open` must round-trip, and the issued token must
//! not open under another scope, another key or with one character changed.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use cloudphone_api::TokenKey;
use cloudphone_store::Cursor;
use libfuzzer_sys::fuzz_target;

/// The key the seed tokens in fuzz/corpus/next_token were issued under.
const SEED_KEY: &[u8] = b"cloudphone-fuzz-token-key";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    key: &'a [u8],
    scope: &'a str,
    ms: i64,
    id: &'a str,
    token: &'a str,
    flip_at: usize,
    flip_to: u8,
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (scope, token) = text.split_once('\n').unwrap_or(("", text.as_ref()));
    open_checked(
        &TokenKey::new(SEED_KEY),
        scope,
        token.trim_end_matches(['\r', '\n']),
    );

    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let key = TokenKey::new(input.key);
    open_checked(&key, input.scope, input.token);

    let cursor = Cursor {
        ms: input.ms,
        id: input.id.to_string(),
    };
    let token = key.issue(input.scope, &cursor);
    assert_eq!(
        key.open(input.scope, &token),
        Some(cursor.clone()),
        "{token}"
    );
    let other_scope = format!("{}|other", input.scope);
    assert_eq!(key.open(&other_scope, &token), None);
    // Not `push(0)`: HMAC pads a short key with zeros, so `k` and `k\0` are the same key.
    let mut other_key = input.key.to_vec();
    other_key.push(1);
    assert_eq!(TokenKey::new(&other_key).open(input.scope, &token), None);

    let mut tampered = token.clone().into_bytes();
    let at = input.flip_at % tampered.len();
    let mut to = BASE64URL[usize::from(input.flip_to) % BASE64URL.len()];
    if to == tampered[at] {
        to = if to == b'A' { b'B' } else { b'A' };
    }
    tampered[at] = to;
    let tampered = String::from_utf8(tampered).expect("base64url is ASCII");
    assert_eq!(
        key.open(input.scope, &tampered),
        None,
        "{token} -> {tampered}"
    );
});

/// `open` on anything; what it accepts must be exactly what `issue` writes for that cursor.
fn open_checked(key: &TokenKey, scope: &str, token: &str) {
    if let Some(cursor) = key.open(scope, token) {
        assert_eq!(key.issue(scope, &cursor), token);
    }
}
