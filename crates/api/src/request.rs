//! A request as the protocol sees it: method, headers, the decoded query and form body, and the
//! raw body bytes (whose hash ACS3 signs). Decoding follows what Python's `urlencode` produces
//! (`+` is a space, `%XX` a byte, UTF-8 text); anything else is refused here, so that later
//! stages only ever see clean strings.
//!
//! Parameter names must be made of `A-Z a-z 0-9 . _ -` once decoded, in the query and in a form
//! body alike, and this is checked here, before any signature: the ACS3 canonical query joins
//! names unencoded, so a name holding `=` or `&` (`ClientToken%3Dabc%26DryRun=true`) would sign
//! exactly as another parameter set (`ClientToken=abc&DryRun=true`), and a captured request
//! could be replayed with another meaning. No vendor name needs another character
//! (docs/design.md §8).

use axum::http::HeaderMap;
use cloudphone_core::error::ApiError;
use percent_encoding::percent_decode;

const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawRequest {
    /// `GET` or `POST`, as received.
    pub method: String,
    /// Names lower-cased, values as received; a header sent twice appears twice.
    pub headers: Vec<(String, String)>,
    /// Decoded query pairs in order.
    pub query: Vec<(String, String)>,
    /// Decoded form pairs in order when the body is `application/x-www-form-urlencoded`.
    pub body_form: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// Decodes a request. `max_params` bounds the query and form pairs together.
    pub fn from_parts(
        method: &str,
        headers: &HeaderMap,
        raw_query: Option<&str>,
        body: Vec<u8>,
        max_params: usize,
    ) -> Result<RawRequest, ApiError> {
        let mut header_pairs = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            // `HeaderValue::to_str` would refuse any non-ASCII byte; UTF-8 text (a user agent,
            // say) is legitimate and the signature covers it byte for byte.
            let value = std::str::from_utf8(value.as_bytes()).map_err(|_| {
                ApiError::invalid(name.as_str(), "the header value is not valid UTF-8")
            })?;
            header_pairs.push((name.as_str().to_string(), value.to_string()));
        }
        let mut request = RawRequest {
            method: method.to_string(),
            headers: header_pairs,
            ..RawRequest::default()
        };
        request.query = decode_form(raw_query.unwrap_or("").as_bytes(), max_params)?;
        if request.is_form() {
            let room = max_params - request.query.len();
            request.body_form = decode_form(&body, room).map_err(|e| match e {
                ApiError::TooManyParameters(_) => ApiError::TooManyParameters(max_params),
                e => e,
            })?;
        }
        request.body = body;
        Ok(request)
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn is_form(&self) -> bool {
        self.header("content-type").is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case(FORM_CONTENT_TYPE))
        })
    }
}

/// Decodes `application/x-www-form-urlencoded` text into pairs, in order. Empty segments
/// (`a=1&&b=2`, a trailing `&`) are skipped as Python's `parse_qsl` does; a segment without `=`
/// is a key with an empty value. More than `max_params` pairs is `TooManyParameters`.
pub fn decode_form(raw: &[u8], max_params: usize) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = Vec::new();
    for segment in raw.split(|&b| b == b'&') {
        if segment.is_empty() {
            continue;
        }
        if pairs.len() == max_params {
            return Err(ApiError::TooManyParameters(max_params));
        }
        let (raw_key, raw_value) = match segment.iter().position(|&b| b == b'=') {
            Some(i) => (&segment[..i], &segment[i + 1..]),
            None => (segment, &[][..]),
        };
        let key = decode_component(raw_key).ok_or_else(|| {
            ApiError::invalid(
                "Encoding",
                "a parameter name is not valid percent-encoded UTF-8",
            )
        })?;
        if key.is_empty() {
            return Err(ApiError::invalid(
                "Encoding",
                "a parameter has an empty name",
            ));
        }
        if !valid_name(&key) {
            return Err(ApiError::InvalidParameterName(shown_name(&key)));
        }
        let value = decode_component(raw_value).ok_or_else(|| {
            ApiError::invalid(&key, "the value is not valid percent-encoded UTF-8")
        })?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Whether `name` is a parameter name this server accepts: `A-Z a-z 0-9 . _ -`, the characters
/// RFC 3986 leaves unencoded (but `~`), so that encoding a name or not never changes it.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A refused name as the error shows it: quoted and escaped (no control character reaches a
/// log or a terminal), and cut after 64 characters.
fn shown_name(name: &str) -> String {
    const SHOWN: usize = 64;
    match name.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{:?}...", &name[..end]),
        None => format!("{name:?}"),
    }
}

/// `+` to space, then `%XX` to bytes, then UTF-8; `None` on a bad escape or bad UTF-8.
fn decode_component(raw: &[u8]) -> Option<String> {
    // percent_decode passes a malformed `%` through as a literal; a client that sends one has
    // a bug we would rather report than paper over.
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let escape = raw.get(i + 1..i + 3)?;
            if !escape.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_decode(&spaced).collect();
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn header_map(h: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in h {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn decodes_python_urlencode() {
        // urlencode({"Param": "a b*c~d/e+f=g&h中"}) as the contract records it.
        let got = decode_form(b"Param=a+b%2Ac~d%2Fe%2Bf%3Dg%26h%E4%B8%AD", 100).unwrap();
        assert_eq!(got, pairs(&[("Param", "a b*c~d/e+f=g&h中")]));
        let got = decode_form(b"a=1&&b&c=&d==x&e%2Ek=%7e&=", 100);
        assert_eq!(
            got,
            Err(ApiError::invalid(
                "Encoding",
                "a parameter has an empty name"
            ))
        );
        let got = decode_form(b"a=1&&b&c=&d==x&e%2Ek=%7e&-_.=&", 100).unwrap();
        assert_eq!(
            got,
            pairs(&[
                ("a", "1"),
                ("b", ""),
                ("c", ""),
                ("d", "=x"),
                ("e.k", "~"),
                ("-_.", "")
            ])
        );
        assert_eq!(decode_form(b"", 0).unwrap(), vec![]);
        assert_eq!(
            decode_form(b"k=v&k=w", 100).unwrap(),
            pairs(&[("k", "v"), ("k", "w")])
        );
        // Raw UTF-8 bytes (not escaped) are accepted as they are.
        assert_eq!(
            decode_form("k=中".as_bytes(), 100).unwrap(),
            pairs(&[("k", "中")])
        );
    }

    #[test]
    fn refuses_bad_escapes_and_bad_utf8() {
        for (raw, name) in [
            (&b"Key=%"[..], "Key"),
            (b"Key=%4", "Key"),
            (b"Key=%zz", "Key"),
            (b"Key=a%4g", "Key"),
            (b"Key=%FF", "Key"),
            (b"Key=%E4%B8", "Key"),
            (b"Key=\xff", "Key"),
            (b"K%ey=1", "Encoding"),
            (b"K%FFey=1", "Encoding"),
            (b"\xc3=1", "Encoding"),
        ] {
            match decode_form(raw, 100) {
                Err(ApiError::InvalidParameter { name: n, .. }) => assert_eq!(n, name, "{raw:?}"),
                other => panic!("{raw:?}: {other:?}"),
            }
        }
    }

    /// A name that decodes to anything but `A-Z a-z 0-9 . _ -` is refused, whatever its value:
    /// `ClientToken%3Dabc%26DryRun=true` would otherwise sign as `ClientToken=abc&DryRun=true`.
    #[test]
    fn refuses_names_outside_the_vendor_alphabet() {
        for raw in [
            &b"ClientToken%3Dabc%26DryRun=true"[..],
            b"a+b=1",
            b"a%20b=1",
            b"a~b=1",
            b"a%2Fb=1",
            b"a*=1",
            b"%E4%B8%AD=1",
            "中=1".as_bytes(),
            b"a%0Ab=1",
            b"ok=1&Tag.1.K%40y=v",
        ] {
            match decode_form(raw, 100) {
                Err(e @ ApiError::InvalidParameterName(_)) => {
                    assert_eq!(e.code(), "InvalidParameter");
                    assert_eq!(e.http_status(), 400);
                }
                other => panic!("{raw:?}: {other:?}"),
            }
        }
        let e = decode_form(b"ClientToken%3Dabc%26DryRun=true", 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The parameter name \"ClientToken=abc&DryRun\" is invalid: a name may hold only \
             A-Z, a-z, 0-9, '.', '_' and '-'."
        );
        // Shown escaped and cut short.
        let long = format!("{}%0A=1", "x".repeat(100));
        match decode_form(long.as_bytes(), 100) {
            Err(ApiError::InvalidParameterName(shown)) => {
                assert_eq!(shown, format!("{:?}...", "x".repeat(64)))
            }
            other => panic!("{other:?}"),
        }
        let e = decode_form(b"a%0Ab=1", 100).unwrap_err();
        assert!(e.to_string().contains(r#""a\nb""#), "{e}");
        // Every name the official SDK sends is of the alphabet, encoded or not.
        assert!(decode_form(b"ResourceIds.1=a&Tag.1.Key=k&x-y_z=1&A%42C=2", 100).is_ok());
    }

    #[test]
    fn counts_parameters() {
        assert_eq!(decode_form(b"a=1&b=2", 2).unwrap().len(), 2);
        assert_eq!(
            decode_form(b"a=1&b=2&c=3", 2),
            Err(ApiError::TooManyParameters(2))
        );
        // Empty segments are free.
        assert_eq!(decode_form(b"a=1&&&&b=2&", 2).unwrap().len(), 2);
    }

    #[test]
    fn from_parts_with_query_and_form_body() {
        let headers = header_map(&[
            ("Host", b"127.0.0.1:8080"),
            (
                "Content-Type",
                b"application/x-www-form-urlencoded; charset=UTF-8",
            ),
            ("x-acs-action", b"DescribeImageList"),
            ("user-agent", "bot/中".as_bytes()),
        ]);
        let req = RawRequest::from_parts(
            "POST",
            &headers,
            Some("SystemType=Android&ImageBizTags.1.Key=k"),
            b"ImageId=img-1&MaxResults=5".to_vec(),
            10,
        )
        .unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.header("HOST"), Some("127.0.0.1:8080"));
        assert_eq!(req.header("user-agent"), Some("bot/中"));
        assert_eq!(req.header("x-acs-date"), None);
        assert!(
            req.headers
                .iter()
                .all(|(n, _)| n == &n.to_ascii_lowercase())
        );
        assert_eq!(
            req.query,
            pairs(&[("SystemType", "Android"), ("ImageBizTags.1.Key", "k")])
        );
        assert_eq!(
            req.body_form,
            pairs(&[("ImageId", "img-1"), ("MaxResults", "5")])
        );
        assert_eq!(req.body, b"ImageId=img-1&MaxResults=5");
    }

    #[test]
    fn from_parts_other_bodies_are_not_decoded() {
        for headers in [
            header_map(&[("content-type", b"application/json")]),
            header_map(&[]),
        ] {
            let req =
                RawRequest::from_parts("POST", &headers, None, b"a=%zz".to_vec(), 10).unwrap();
            assert!(req.query.is_empty());
            assert!(req.body_form.is_empty());
            assert_eq!(req.body, b"a=%zz");
        }
    }

    #[test]
    fn from_parts_limits_query_and_body_together() {
        let headers = header_map(&[("content-type", b"application/x-www-form-urlencoded")]);
        let ok = RawRequest::from_parts("POST", &headers, Some("a=1&b=2"), b"c=3".to_vec(), 3);
        assert!(ok.is_ok());
        let err = RawRequest::from_parts("POST", &headers, Some("a=1&b=2"), b"c=3&d=4".to_vec(), 3);
        assert_eq!(err, Err(ApiError::TooManyParameters(3)));
        let err = RawRequest::from_parts("GET", &headers, Some("a=1&b=2&c=3&d=4"), vec![], 3);
        assert_eq!(err, Err(ApiError::TooManyParameters(3)));
    }

    #[test]
    fn from_parts_refuses_non_utf8_header() {
        let headers = header_map(&[("x-odd", b"\xff\xfe")]);
        let err = RawRequest::from_parts("GET", &headers, None, vec![], 10).unwrap_err();
        assert_eq!(err.code(), "InvalidParameter.x-odd");
    }

    #[test]
    fn from_parts_reports_bad_body_value() {
        let headers = header_map(&[("content-type", b"application/x-www-form-urlencoded")]);
        let err = RawRequest::from_parts("POST", &headers, None, b"ImageId=%E4".to_vec(), 10)
            .unwrap_err();
        assert_eq!(err.code(), "InvalidParameter.ImageId");
    }
}
