//! Fuzz target `params`: the request parameter decoder. The input is a raw query string, a
//! newline, then a form body (`application/x-www-form-urlencoded`); it goes through
//! `RawRequest::from_parts` and `Params::from_request`, and then through every typed reader
//! (`get`, `int`, `bool`, `json`, `parse_enum`, `list`, `object_list`) under the names the input
//! itself uses. Nothing may panic, and the readers keep their documented bounds.

#![no_main]

use std::collections::BTreeSet;

use cloudphone_api::Params;
use cloudphone_api::RawRequest;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// The server's default `Limits::max_params`.
const MAX_PARAMS: usize = 5000;
/// A small limit too, so that the `TooManyParameters` paths are reachable with small inputs.
const SMALL_MAX_PARAMS: usize = 8;
/// Names tried per input, so that one input stays cheap.
const MAX_NAMES: usize = 64;
/// Names the actions read, tried on every input.
const FIXED_NAMES: &[&str] = &[
    "TaskIds",
    "InstanceIds",
    "AndroidInstanceIds",
    "ResourceIds",
    "TaskStatuses",
    "Tag",
    "ImageBizTags",
    "MaxResults",
    "NextToken",
    "NetworkInfo",
    "CustomAppInfo",
    "AutoPay",
];

fuzz_target!(|data: &[u8]| {
    let (query, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let query = String::from_utf8_lossy(query);
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
    );
    let decoded = RawRequest::from_parts("POST", &headers, Some(&query), body.to_vec(), MAX_PARAMS);
    // The limit only refuses: whatever fits under the small one decodes the same under the big.
    if let Ok(small) = RawRequest::from_parts(
        "POST",
        &headers,
        Some(&query),
        body.to_vec(),
        SMALL_MAX_PARAMS,
    ) {
        assert!(small.query.len() + small.body_form.len() <= SMALL_MAX_PARAMS);
        assert_eq!(decoded.as_ref().ok(), Some(&small));
    }
    let Ok(request) = decoded else {
        return;
    };
    let Ok(params) = Params::from_request(&request) else {
        return;
    };
    let _ = params.region_id();
    let _ = params.protocol("Action");
    let _ = params.protocol("Version");

    // Every key, and every prefix of a key that ends before a `.` (`Tag.1.Key`: `Tag`, `Tag.1`),
    // with the fields that follow `Name.N.` as the object list's fields.
    let mut names: BTreeSet<String> = FIXED_NAMES.iter().map(|s| s.to_string()).collect();
    let mut fields: BTreeSet<String> = ["Key", "Value"].iter().map(|s| s.to_string()).collect();
    for key in request
        .query
        .iter()
        .chain(&request.body_form)
        .map(|(k, _)| k)
    {
        names.insert(key.clone());
        for (i, _) in key.match_indices('.') {
            names.insert(key[..i].to_string());
        }
        let parts: Vec<&str> = key.splitn(3, '.').collect();
        if let [_, _, field] = parts[..] {
            fields.insert(field.to_string());
        }
    }
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    for name in names.iter().take(MAX_NAMES) {
        read_all(&params, name, &fields);
    }
});

fn read_all(params: &Params, name: &str, fields: &[&str]) {
    let value = params.get(name);
    assert_eq!(params.string(name).as_deref(), value);
    assert_eq!(params.required(name).ok().as_deref(), value);
    if value.is_some() {
        assert!(params.keys().any(|k| k == name));
    }
    for (min, max) in [(i64::MIN, i64::MAX), (1, 100), (0, 0), (5, -5)] {
        if let Ok(Some(n)) = params.int(name, min, max) {
            assert!(
                (min..=max).contains(&n),
                "{name}: {n} outside {min}..={max}"
            );
        }
    }
    let _ = params.bool(name);
    let _ = params.json(name);
    let _ = params.parse_enum::<u16>(name, "0 to 65535");
    for max in [0, 1, 100] {
        if let Ok(items) = params.list(name, max) {
            assert!(items.len() <= max);
            assert!(items.iter().all(|i| !i.is_empty()));
        }
        if let Ok(items) = params.object_list(name, fields, max) {
            assert!(items.len() <= max);
            assert!(
                items
                    .iter()
                    .flat_map(|i| i.iter())
                    .all(|(f, v)| { fields.contains(&f.as_str()) && !v.is_empty() })
            );
        }
    }
}
