//! Fuzz target `request_head`: what the server reads from a request's head before any body or
//! signature. The input is a head as text: a request line (`GET /files/b/k?x=1 HTTP/1.1`) and
//! `name: value` lines. What the `http` types accept (as hyper would hand it over) goes through
//! the metric label of the action (`server::label_of`), the object route's path
//! (`files::object_path`, and back through `files::signed_path`), the watch stream's resume point
//! (`watch::resume_point` on `Last-Event-ID`, and back through `watch::event_id`), and the query's
//! decoding into the watch stream's filters (`RawRequest::from_parts`, `Params::from_request`,
//! `watch::event_filter`). Besides "never panics":
//! - a label is the action name the head gives, or `unknown`: never anything a client chose;
//! - an object path that decodes has one spelling: its signed path decodes to the same object,
//!   and it holds nothing but unreserved characters, `%XX` escapes and `/`;
//! - a resume point that parses has one spelling: its event id parses back to it.

#![no_main]

use cloudphone_api::files::{object_path, signed_path};
use cloudphone_api::server::label_of;
use cloudphone_api::watch::{event_filter, event_id, resume_point};
use cloudphone_api::{Params, RawRequest};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;

/// The server's default `Limits::max_params`.
const MAX_PARAMS: usize = 5000;

fuzz_target!(|data: &[u8]| {
    let mut lines = data
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let mut words = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return;
    };
    let (Ok(method), Ok(uri)) = (Method::from_bytes(method), Uri::try_from(target)) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }

    check_label(&headers, &uri);
    check_object_path(uri.path());
    check_resume_point(&headers);

    if let Ok(request) =
        RawRequest::from_parts(method.as_str(), &headers, uri.query(), Vec::new(), MAX_PARAMS)
        && let Ok(params) = Params::from_request(&request)
    {
        let _ = event_filter(&params, "acct-fuzz");
    }
});

/// The label is the action the head names, or `unknown`.
fn check_label(headers: &HeaderMap, uri: &Uri) {
    let label = label_of(headers, uri);
    if label == "unknown" {
        return;
    }
    let named = headers
        .get("x-acs-action")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            uri.query()?
                .split('&')
                .find_map(|pair| pair.strip_prefix("Action="))
                .map(str::to_owned)
        });
    assert_eq!(named.as_deref(), Some(label), "a label the head did not name");
}

/// An object path that decodes spells back to itself.
fn check_object_path(path: &str) {
    let Ok(object) = object_path(path) else {
        return;
    };
    let signed = signed_path(&object);
    let mut bytes = signed.bytes().peekable();
    while let Some(b) = bytes.next() {
        let plain = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/');
        if b == b'%' {
            for _ in 0..2 {
                let hex = bytes.next().expect("a complete escape");
                assert!(hex.is_ascii_hexdigit(), "{signed:?}: a bad escape");
            }
        } else {
            assert!(plain, "{signed:?}: an unencoded {:?}", b as char);
        }
    }
    let back = object_path(&signed).unwrap_or_else(|e| panic!("{signed:?} is refused: {e}"));
    assert_eq!(back, object, "{path:?} and {signed:?} name different objects");
}

/// A resume point that parses spells back to itself.
fn check_resume_point(headers: &HeaderMap) {
    for value in headers.get_all("last-event-id") {
        let Ok(text) = value.to_str() else {
            continue;
        };
        if let Ok(Some(position)) = resume_point(Some(text)) {
            let id = event_id(position);
            assert_eq!(
                resume_point(Some(&id)).ok().flatten(),
                Some(position),
                "{text:?} resumes at {id:?}, which reads back otherwise"
            );
        }
    }
}
