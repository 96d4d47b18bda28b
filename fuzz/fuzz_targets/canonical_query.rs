//! Fuzz target `canonical_query`: a signature binds one parameter set. The input is two raw
//! query strings separated by a newline; each is decoded as the server decodes a query
//! (`RawRequest::from_parts`), and for each that decodes, its ACS3 canonical query
//! (`signature::canonical_query_v3`, names unencoded) must itself decode back to the same pairs.
//! So the canonical query is a function with an inverse: two accepted parameter sets with one
//! canonical query are the same set, which is asserted too. Before names were held to
//! `A-Z a-z 0-9 . _ -`, `ClientToken%3Dabc%26DryRun=true` broke both (issue 21).

#![no_main]

use cloudphone_api::RawRequest;
use cloudphone_api::signature::canonical_query_v3;
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;

/// The server's default `Limits::max_params`.
const MAX_PARAMS: usize = 5000;

fn decode(query: &str) -> Option<Vec<(String, String)>> {
    RawRequest::from_parts("GET", &HeaderMap::new(), Some(query), Vec::new(), MAX_PARAMS)
        .ok()
        .map(|r| r.query)
}

fn sorted(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs.sort();
    pairs
}

fn canonical(pairs: &[(String, String)]) -> String {
    let canon = canonical_query_v3(pairs);
    let back = decode(&canon).unwrap_or_else(|| panic!("the canonical query {canon:?} is refused"));
    assert_eq!(
        sorted(back),
        sorted(pairs.to_vec()),
        "the canonical query {canon:?} reads as another parameter set"
    );
    canon
}

fuzz_target!(|data: &[u8]| {
    let (a, b) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let a = decode(&String::from_utf8_lossy(a));
    let b = decode(&String::from_utf8_lossy(b));
    let canon_a = a.as_deref().map(canonical);
    let canon_b = b.as_deref().map(canonical);
    if let (Some(a), Some(b), Some(ca), Some(cb)) = (a, b, canon_a, canon_b)
        && ca == cb
    {
        assert_eq!(sorted(a), sorted(b), "two parameter sets sign alike: {ca:?}");
    }
});
