//! The parameters of one API call: query and form body merged into one map, the protocol's own
//! parameters (signature, version, region...) set aside, and typed accessors that turn bad
//! input into `InvalidParameter`/`MissingParameter` naming the parameter.
//!
//! An empty value counts as absent everywhere, because clients send `Key=` for an unset field.
//! Lists use the vendor's flat encoding: `Name.1`, `Name.2`, ... and `Name.N.Field`.

use std::collections::BTreeMap;
use std::str::FromStr;

use cloudphone_core::error::ApiError;

use crate::request::RawRequest;

/// Parameters that belong to the protocol (routing, signing, region), not to an action.
pub const PROTOCOL_PARAMS: &[&str] = &[
    "Action",
    "Version",
    "Format",
    "Timestamp",
    "SignatureNonce",
    "SignatureMethod",
    "SignatureVersion",
    "AccessKeyId",
    "Signature",
    "SignatureType",
    "SecurityToken",
    "RegionId",
];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<String, String>,
    protocol: BTreeMap<String, String>,
}

impl Params {
    /// Merges the query and the form body of `req`.
    pub fn from_request(req: &RawRequest) -> Result<Params, ApiError> {
        Params::from_pairs(
            req.query
                .iter()
                .chain(&req.body_form)
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    /// A key given twice must carry the same value both times: otherwise which one the signature
    /// meant and which one the action reads could differ.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Params, ApiError> {
        let mut params = Params::default();
        for (key, value) in pairs {
            // No store keeps NUL in text (PostgreSQL refuses it), and no name, id or command
            // needs one: refuse it here, naming the parameter, for every store alike.
            if key.contains('\0') {
                return Err(ApiError::invalid(
                    key.replace('\0', ""),
                    "has a NUL character in its name",
                ));
            }
            if value.contains('\0') {
                return Err(ApiError::invalid(key, "must not contain NUL characters"));
            }
            let map = if PROTOCOL_PARAMS.contains(&key) {
                &mut params.protocol
            } else {
                &mut params.values
            };
            match map.get(key) {
                Some(previous) if previous != value => {
                    return Err(ApiError::invalid(
                        key,
                        "is given twice with different values",
                    ));
                }
                Some(_) => {}
                None => {
                    map.insert(key.to_string(), value.to_string());
                }
            }
        }
        Ok(params)
    }

    /// `RegionId`, which the classic SDKs send as a parameter.
    pub fn region_id(&self) -> Option<&str> {
        self.protocol("RegionId")
    }

    /// One of the protocol parameters, `PROTOCOL_PARAMS` (e.g. `Action` of a legacy-signed
    /// request), if not empty.
    pub fn protocol(&self, name: &str) -> Option<&str> {
        non_empty(self.protocol.get(name))
    }

    /// The action's parameter names whose values are not empty, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k.as_str())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        non_empty(self.values.get(name))
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }

    pub fn required(&self, name: &str) -> Result<String, ApiError> {
        self.string(name).ok_or_else(|| ApiError::missing(name))
    }

    /// A decimal integer in `min..=max`. Only an optional `-` and digits are accepted: no sign
    /// `+`, no spaces, no exponent, no hex.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        let invalid = || ApiError::invalid(name, format!("must be an integer from {min} to {max}"));
        let digits = raw.strip_prefix('-').unwrap_or(raw);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        match raw.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(invalid()),
        }
    }

    /// `true` or `false` in any case (the Python SDK sends `True`/`False`).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(name, "must be true or false")),
        }
    }

    /// A value parsed by `T::from_str`; `allowed` lists the accepted values for the message.
    pub fn parse_enum<T: FromStr>(&self, name: &str, allowed: &str) -> Result<Option<T>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid(name, format!("must be one of {allowed}"))),
        }
    }

    /// A JSON document sent as one string (the SDK's "shrink" parameters).
    pub fn json(&self, name: &str) -> Result<Option<serde_json::Value>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => serde_json::from_str(v)
                .map(Some)
                .map_err(|e| ApiError::invalid(name, format!("is not valid JSON: {e}"))),
        }
    }

    /// A list of scalars sent as `Name.1`, `Name.2`, ...: numbered from 1 without holes, at most
    /// `max` items, none empty. No items gives an empty list.
    pub fn list(&self, name: &str, max: usize) -> Result<Vec<String>, ApiError> {
        self.refuse_bare(name)?;
        let mut items = BTreeMap::new();
        for (key, rest, value) in self.under(name) {
            let index = parse_index(rest).ok_or_else(|| {
                ApiError::invalid(
                    name,
                    format!("{key} is not a list item; items are {name}.1, {name}.2, ..."),
                )
            })?;
            if value.is_empty() {
                return Err(ApiError::invalid(name, format!("{key} is empty")));
            }
            items.insert(index, value.to_string());
        }
        check_items(name, &items, max)?;
        Ok(items.into_values().collect())
    }

    /// A list of objects sent as `Name.N.Field`, with `Field` one of `fields`: numbered from 1
    /// without holes, at most `max` items. Empty field values are left out of the item, as
    /// everywhere; an item may therefore come out empty, and the caller checks what it needs.
    pub fn object_list(
        &self,
        name: &str,
        fields: &[&str],
        max: usize,
    ) -> Result<Vec<BTreeMap<String, String>>, ApiError> {
        self.refuse_bare(name)?;
        let mut items: BTreeMap<u64, BTreeMap<String, String>> = BTreeMap::new();
        for (key, rest, value) in self.under(name) {
            let bad = || {
                ApiError::invalid(
                    name,
                    format!(
                        "{key} is not a list item; items are {name}.N.Field with N from 1 and \
                         Field one of {}",
                        fields.join(", ")
                    ),
                )
            };
            let (index, field) = rest.split_once('.').ok_or_else(bad)?;
            let index = parse_index(index).ok_or_else(bad)?;
            if !fields.contains(&field) {
                return Err(bad());
            }
            let item = items.entry(index).or_default();
            if !value.is_empty() {
                item.insert(field.to_string(), value.to_string());
            }
        }
        check_items(name, &items, max)?;
        Ok(items.into_values().collect())
    }

    /// A list must not also come as a bare `Name`: that is a client speaking another encoding
    /// (JSON, repeated keys), which we would otherwise silently ignore.
    fn refuse_bare(&self, name: &str) -> Result<(), ApiError> {
        match self.get(name) {
            Some(_) => Err(ApiError::invalid(
                name,
                format!("is a list: send {name}.1, {name}.2, ..."),
            )),
            None => Ok(()),
        }
    }

    /// Every `(key, suffix, value)` with `key` = `name.suffix`, empty values included.
    fn under<'s>(&'s self, name: &str) -> impl Iterator<Item = (&'s str, &'s str, &'s str)> {
        let prefix = format!("{name}.");
        let skip = prefix.len();
        self.values
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(move |(k, v)| (k.as_str(), &k[skip..], v.as_str()))
    }
}

fn non_empty(value: Option<&String>) -> Option<&str> {
    value.map(String::as_str).filter(|v| !v.is_empty())
}

/// A list index as the SDK writes it: 1-based decimal without leading zeros.
fn parse_index(s: &str) -> Option<u64> {
    if s.is_empty() || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn check_items<T>(name: &str, items: &BTreeMap<u64, T>, max: usize) -> Result<(), ApiError> {
    if items.len() > max {
        return Err(ApiError::invalid(name, format!("at most {max} items")));
    }
    // Indices are distinct and at least 1, so they are 1..=n exactly when the largest is n.
    match items.keys().next_back() {
        Some(&last) if last != items.len() as u64 => Err(ApiError::invalid(
            name,
            format!("items must be numbered {name}.1, {name}.2, ... without gaps"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().copied()).unwrap()
    }

    fn invalid_name(e: ApiError) -> String {
        match e {
            ApiError::InvalidParameter { name, .. } => name,
            other => panic!("expected InvalidParameter, got {other:?}"),
        }
    }

    #[test]
    fn merges_and_sets_protocol_params_aside() {
        let req = RawRequest {
            query: vec![
                ("Action".into(), "DescribeTasks".into()),
                ("RegionId".into(), "cn-hangzhou".into()),
                ("InvokeId".into(), "inv-1".into()),
                ("SignatureType".into(), "".into()),
            ],
            body_form: vec![
                ("ImageId".into(), "img-1".into()),
                ("InvokeId".into(), "inv-1".into()),
            ],
            ..RawRequest::default()
        };
        let p = Params::from_request(&req).unwrap();
        assert_eq!(p.region_id(), Some("cn-hangzhou"));
        assert_eq!(p.protocol("Action"), Some("DescribeTasks"));
        assert_eq!(p.protocol("SignatureType"), None);
        assert_eq!(p.get("Action"), None);
        assert_eq!(p.keys().collect::<Vec<_>>(), ["ImageId", "InvokeId"]);
        assert_eq!(p.get("ImageId"), Some("img-1"));
    }

    #[test]
    fn conflicting_duplicates_are_refused() {
        let e = Params::from_pairs([("Name", "a\0b")]).unwrap_err();
        assert_eq!(e.code(), "InvalidParameter.Name");
        let e = Params::from_pairs([("Na\0me", "x")]).unwrap_err();
        assert_eq!(e.code(), "InvalidParameter.Name");
        let e = Params::from_pairs([("A", "1"), ("A", "2")]).unwrap_err();
        assert_eq!(invalid_name(e), "A");
        let e = Params::from_pairs([("A", ""), ("A", "2")]).unwrap_err();
        assert_eq!(invalid_name(e), "A");
        let e = Params::from_pairs([("RegionId", "a"), ("RegionId", "b")]).unwrap_err();
        assert_eq!(invalid_name(e), "RegionId");
        let req = RawRequest {
            query: vec![("ImageId".into(), "a".into())],
            body_form: vec![("ImageId".into(), "b".into())],
            ..RawRequest::default()
        };
        assert_eq!(
            invalid_name(Params::from_request(&req).unwrap_err()),
            "ImageId"
        );
        assert!(Params::from_pairs([("A", "1"), ("A", "1")]).is_ok());
    }

    #[test]
    fn strings_and_empty_values() {
        let p = params(&[("A", "x"), ("Empty", "")]);
        assert_eq!(p.get("A"), Some("x"));
        assert_eq!(p.string("A"), Some("x".to_string()));
        assert_eq!(p.required("A"), Ok("x".to_string()));
        assert_eq!(p.get("Empty"), None);
        assert_eq!(p.string("Empty"), None);
        assert_eq!(p.required("Empty"), Err(ApiError::missing("Empty")));
        assert_eq!(p.required("Nope"), Err(ApiError::missing("Nope")));
        assert_eq!(p.keys().collect::<Vec<_>>(), ["A"]);
    }

    #[test]
    fn integers() {
        let p = params(&[
            ("A", "5"),
            ("B", "-3"),
            ("C", "0"),
            ("D", "007"),
            ("E", ""),
            ("Max", "9223372036854775807"),
            ("Min", "-9223372036854775808"),
        ]);
        assert_eq!(p.int("A", 1, 100), Ok(Some(5)));
        assert_eq!(p.int("B", -10, 10), Ok(Some(-3)));
        assert_eq!(p.int("C", 0, 0), Ok(Some(0)));
        assert_eq!(p.int("D", 0, 10), Ok(Some(7)));
        assert_eq!(p.int("E", 0, 10), Ok(None));
        assert_eq!(p.int("Nope", 0, 10), Ok(None));
        assert_eq!(p.int("Max", i64::MIN, i64::MAX), Ok(Some(i64::MAX)));
        assert_eq!(p.int("Min", i64::MIN, i64::MAX), Ok(Some(i64::MIN)));
        assert_eq!(
            p.int("A", 6, 100),
            Err(ApiError::invalid("A", "must be an integer from 6 to 100"))
        );
        assert_eq!(p.int("A", 1, 4).unwrap_err().code(), "InvalidParameter.A");
    }

    #[test]
    fn integers_refuse_everything_else() {
        for bad in [
            "1e3",
            " 5",
            "5 ",
            "0x10",
            "+5",
            "-",
            "--5",
            "5-",
            "1.0",
            "1,000",
            "abc",
            "٣",
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999999",
        ] {
            let p = params(&[("N", bad)]);
            assert_eq!(
                p.int("N", i64::MIN, i64::MAX),
                Err(ApiError::invalid(
                    "N",
                    format!("must be an integer from {} to {}", i64::MIN, i64::MAX)
                )),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn booleans() {
        let p = params(&[("A", "True"), ("B", "false"), ("C", "TRUE"), ("E", "")]);
        assert_eq!(p.bool("A"), Ok(Some(true)));
        assert_eq!(p.bool("B"), Ok(Some(false)));
        assert_eq!(p.bool("C"), Ok(Some(true)));
        assert_eq!(p.bool("E"), Ok(None));
        assert_eq!(p.bool("Nope"), Ok(None));
        for bad in ["yes", "no", "1", "0", " true", "true ", "t", "truee"] {
            let p = params(&[("F", bad)]);
            assert_eq!(
                p.bool("F"),
                Err(ApiError::invalid("F", "must be true or false")),
                "{bad:?}"
            );
        }
    }

    #[derive(Debug, PartialEq)]
    enum Color {
        Red,
        Blue,
    }

    impl FromStr for Color {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            match s {
                "Red" => Ok(Color::Red),
                "Blue" => Ok(Color::Blue),
                _ => Err(()),
            }
        }
    }

    #[test]
    fn enums() {
        let p = params(&[("A", "Red"), ("B", "Blue"), ("C", "red"), ("E", "")]);
        assert_eq!(
            p.parse_enum::<Color>("A", "Red, Blue"),
            Ok(Some(Color::Red))
        );
        assert_eq!(
            p.parse_enum::<Color>("B", "Red, Blue"),
            Ok(Some(Color::Blue))
        );
        assert_eq!(p.parse_enum::<Color>("E", "Red, Blue"), Ok(None));
        assert_eq!(
            p.parse_enum::<Color>("C", "Red, Blue"),
            Err(ApiError::invalid("C", "must be one of Red, Blue"))
        );
    }

    #[test]
    fn json_values() {
        let p = params(&[
            (
                "NetworkInfo",
                r#"{"AutoPay":false,"CidrBlock":"10.0.0.0/16"}"#,
            ),
            ("Bad", "{not json"),
            ("E", ""),
        ]);
        let v = p.json("NetworkInfo").unwrap().unwrap();
        assert_eq!(v["CidrBlock"], "10.0.0.0/16");
        assert_eq!(v["AutoPay"], false);
        assert_eq!(p.json("E"), Ok(None));
        assert_eq!(p.json("Nope"), Ok(None));
        assert_eq!(invalid_name(p.json("Bad").unwrap_err()), "Bad");
    }

    #[test]
    fn lists() {
        let mut pairs: Vec<(String, String)> = (1..=12)
            .map(|i| (format!("R.{i}"), format!("r{i}")))
            .collect();
        pairs.push(("Other".into(), "x".into()));
        pairs.push(("Rx.1".into(), "not mine".into()));
        pairs.push(("R".into(), "".into()));
        let p = Params::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        let want: Vec<String> = (1..=12).map(|i| format!("r{i}")).collect();
        // Numeric order, not the map's string order (R.10 < R.2).
        assert_eq!(p.list("R", 12), Ok(want));
        assert_eq!(
            p.list("R", 11),
            Err(ApiError::invalid("R", "at most 11 items"))
        );
        assert_eq!(p.list("Nope", 5), Ok(vec![]));
        assert_eq!(p.list("Rx", 5), Ok(vec!["not mine".to_string()]));
    }

    #[test]
    fn lists_refuse_bad_shapes() {
        for bad in [
            &[("X.1", "a"), ("X.3", "c")][..],
            &[("X.2", "b")],
            &[("X.0", "a")],
            &[("X.0", "a"), ("X.1", "b")],
            &[("X.1", "a"), ("X.01", "b")],
            &[("X.01", "a")],
            &[("X.abc", "a")],
            &[("X.", "a")],
            &[("X.1.Key", "a")],
            &[("X.-1", "a")],
            &[("X.+1", "a")],
            &[("X.1", "")],
            &[("X.1", "a"), ("X.2", "")],
            &[("X", "a")],
            &[("X", r#"["a","b"]"#)],
            &[("X", "a"), ("X.1", "a")],
            &[("X.99999999999999999999999", "a")],
        ] {
            let p = params(bad);
            let e = p.list("X", 10).expect_err(&format!("{bad:?}"));
            assert_eq!(invalid_name(e), "X", "{bad:?}");
        }
    }

    #[test]
    fn object_lists() {
        let p = params(&[
            ("Tag.1.Key", "k1"),
            ("Tag.1.Value", "v 1"),
            ("Tag.2.Key", "k2"),
            ("Tag.2.Value", ""),
            ("Tag.3.Value", ""),
            ("Tags.1.Key", "other"),
        ]);
        let tags = p.object_list("Tag", &["Key", "Value"], 3).unwrap();
        assert_eq!(tags.len(), 3);
        assert_eq!(tags[0]["Key"], "k1");
        assert_eq!(tags[0]["Value"], "v 1");
        assert_eq!(tags[1].get("Key").map(String::as_str), Some("k2"));
        assert_eq!(tags[1].get("Value"), None);
        assert!(tags[2].is_empty());
        assert_eq!(
            p.object_list("Tag", &["Key", "Value"], 2),
            Err(ApiError::invalid("Tag", "at most 2 items"))
        );
        assert_eq!(p.object_list("Nope", &["Key"], 2), Ok(vec![]));
    }

    #[test]
    fn object_lists_refuse_bad_shapes() {
        for bad in [
            &[("T.1.Key", "a"), ("T.3.Key", "c")][..],
            &[("T.0.Key", "a")],
            &[("T.01.Key", "a")],
            &[("T.a.Key", "a")],
            &[("T.1", "a")],
            &[("T.1.", "a")],
            &[("T.1.key", "a")],
            &[("T.1.Colour", "a")],
            &[("T.1.Key.Sub", "a")],
            &[("T", "a")],
            &[("T", "a"), ("T.1.Key", "a")],
        ] {
            let p = params(bad);
            let e = p
                .object_list("T", &["Key", "Value"], 10)
                .expect_err(&format!("{bad:?}"));
            assert_eq!(invalid_name(e), "T", "{bad:?}");
        }
    }
}

#[cfg(test)]
mod props {
    //! Property tests: what the Python SDK sends, flattened and URL-encoded exactly as it does
    //! (api-contract.md §1.2-1.3), reads back unchanged through the request decoder and the
    //! list accessors; and `pct` survives the request decoder for any text.

    use super::*;
    use crate::request::decode_form;
    use crate::signature::pct;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;
    use proptest::sample::Index;
    use serde_json::Value;

    /// No regression files: a failure prints its shrunk input, and the tests must not write
    /// into the source tree.
    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// A request field as the SDK holds it before flattening (after the model's `to_map`).
    #[derive(Clone, Debug)]
    enum Sdk {
        Unset,
        Str(String),
        List(Vec<Sdk>),
        Object(Vec<(&'static str, Sdk)>),
    }

    /// `Utils._object_handler` of alibabacloud_tea_openapi, case by case: unset gives nothing,
    /// an object `key.Field`, a list `key.1`, `key.2`, ..., a scalar `str(value)`. The request
    /// itself is flattened under the empty key, whence the leading `.` it strips.
    fn object_handler(key: &str, value: &Sdk, out: &mut Vec<(String, String)>) {
        match value {
            Sdk::Unset => {}
            Sdk::Object(fields) => {
                for (field, v) in fields {
                    object_handler(&format!("{key}.{field}"), v, out);
                }
            }
            Sdk::List(items) => {
                for (index, v) in items.iter().enumerate() {
                    object_handler(&format!("{key}.{}", index + 1), v, out);
                }
            }
            Sdk::Str(s) => {
                let key = key.strip_prefix('.').unwrap_or(key);
                out.push((key.to_string(), s.clone()));
            }
        }
    }

    fn flatten(request: &[(&'static str, Sdk)]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        object_handler("", &Sdk::Object(request.to_vec()), &mut out);
        out
    }

    /// Python's `quote_plus`, which `urlencode` applies to keys and values: UTF-8 bytes, the
    /// always-safe `A-Za-z0-9_.-~` as they are, space as `+`, every other byte `%XX`.
    fn quote_plus(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }

    fn urlencode(pairs: &[(String, String)]) -> String {
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", quote_plus(k), quote_plus(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The pairs as the action sees them, both straight and after the wire: URL-encoded as the
    /// SDK does, then decoded as the server does.
    fn read_back(pairs: &[(String, String)]) -> Result<[Params; 2], TestCaseError> {
        let direct = Params::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let wire = urlencode(pairs);
        let decoded = decode_form(wire.as_bytes(), usize::MAX);
        prop_assert_eq!(decoded.as_ref(), Ok(&pairs.to_vec()), "wire {}", wire);
        let decoded = decoded.unwrap();
        let via_wire = Params::from_pairs(decoded.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        prop_assert!(direct.is_ok(), "{:?}", direct);
        Ok([direct.unwrap(), via_wire.unwrap()])
    }

    fn invalid_name<T: std::fmt::Debug>(r: Result<T, ApiError>) -> Option<String> {
        match r {
            Err(ApiError::InvalidParameter { name, .. }) => Some(name),
            _ => None,
        }
    }

    /// Any character but NUL (which `from_pairs` refuses, see below), with those that mean
    /// something in a query, in a key or to a decoder drawn often.
    fn text(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
        vec(
            prop_oneof![
                any::<char>().prop_filter("NUL is refused", |&c| c != '\0'),
                prop::sample::select(vec![
                    ' ', '=', '&', '.', '+', '%', '#', '?', '/', '*', '~', '\n', '\t', '中', 'é',
                    '😀',
                ]),
            ],
            len,
        )
        .prop_map(String::from_iter)
    }

    const TAG_FIELDS: &[&str] = &["Key", "Value"];

    /// One object's fields, each set (possibly to "") or unset.
    fn object() -> impl Strategy<Value = Vec<Option<String>>> {
        vec(prop::option::of(text(0..=12)), TAG_FIELDS.len())
    }

    fn sdk_objects(items: &[Vec<Option<String>>]) -> Sdk {
        Sdk::List(
            items
                .iter()
                .map(|fields| {
                    Sdk::Object(
                        TAG_FIELDS
                            .iter()
                            .zip(fields)
                            .map(|(&f, v)| (f, v.clone().map_or(Sdk::Unset, Sdk::Str)))
                            .collect(),
                    )
                })
                .collect(),
        )
    }

    fn sdk_strings(items: &[String]) -> Sdk {
        Sdk::List(items.iter().cloned().map(Sdk::Str).collect())
    }

    /// An object as `object_list` gives it: the fields sent with a value (empty is absent).
    fn expected_object(fields: &[Option<String>]) -> BTreeMap<String, String> {
        TAG_FIELDS
            .iter()
            .zip(fields)
            .filter_map(|(f, v)| Some((f.to_string(), v.clone()?)))
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    proptest! {
        #![proptest_config(config())]

        /// Two scalar lists whose names share a prefix, a list of objects and a plain string
        /// in one request: each reads back as it was sent, and not one item more than sent is
        /// allowed. List items are not empty, and no object is wholly unset: those are the
        /// next two properties.
        #[test]
        fn flattened_lists_read_back(
            ids in vec(text(1..=16), 0..=12),
            more in vec(text(1..=16), 0..=12),
            tags in vec(
                object().prop_filter("the SDK sends an item", |f| f.iter().any(Option::is_some)),
                0..=8,
            ),
            name in text(0..=16),
        ) {
            let request = [
                ("InstanceIds", sdk_strings(&ids)),
                ("InstanceIdsMore", sdk_strings(&more)),
                ("Tag", sdk_objects(&tags)),
                ("InstanceName", Sdk::Str(name.clone())),
            ];
            let want_tags: Vec<_> = tags.iter().map(|t| expected_object(t)).collect();
            for params in read_back(&flatten(&request))? {
                prop_assert_eq!(params.list("InstanceIds", ids.len()), Ok(ids.clone()));
                prop_assert_eq!(params.list("InstanceIdsMore", more.len()), Ok(more.clone()));
                prop_assert_eq!(
                    params.object_list("Tag", TAG_FIELDS, tags.len()),
                    Ok(want_tags.clone())
                );
                prop_assert_eq!(
                    params.get("InstanceName"),
                    Some(name.as_str()).filter(|n| !n.is_empty())
                );
                if !ids.is_empty() {
                    prop_assert_eq!(
                        invalid_name(params.list("InstanceIds", ids.len() - 1)),
                        Some("InstanceIds".to_string())
                    );
                }
            }
        }

        /// The SDK sends an empty string as `Name.N=`; a list refuses such an item by the
        /// list's name rather than dropping it and renumbering the rest.
        #[test]
        fn an_empty_list_item_is_refused(
            mut ids in vec(text(1..=8), 0..=8),
            at in any::<Index>(),
        ) {
            ids.insert(at.index(ids.len() + 1), String::new());
            for params in read_back(&flatten(&[("InstanceIds", sdk_strings(&ids))]))? {
                prop_assert_eq!(
                    invalid_name(params.list("InstanceIds", 100)),
                    Some("InstanceIds".to_string())
                );
            }
        }

        /// An object with no field set sends nothing, which leaves a hole in the numbering:
        /// refused, unless only unset objects follow it, which then simply do not exist.
        #[test]
        fn wholly_unset_objects_leave_holes(tags in vec(object(), 0..=8)) {
            let sent: Vec<bool> = tags.iter().map(|t| t.iter().any(Option::is_some)).collect();
            let end = sent.iter().rposition(|&s| s).map_or(0, |i| i + 1);
            let want = if sent[..end].iter().all(|&s| s) {
                Ok(tags[..end].iter().map(|t| expected_object(t)).collect::<Vec<_>>())
            } else {
                Err("Tag".to_string())
            };
            for params in read_back(&flatten(&[("Tag", sdk_objects(&tags))]))? {
                let got = params.object_list("Tag", TAG_FIELDS, 100);
                match &want {
                    Ok(items) => prop_assert_eq!(&got, &Ok(items.clone())),
                    Err(name) => prop_assert_eq!(invalid_name(got), Some(name.clone())),
                }
            }
        }

        /// NUL is the one character `text` leaves out: the parameters refuse it, by name.
        #[test]
        fn a_nul_in_a_value_is_refused(before in text(0..=8), after in text(0..=8)) {
            let value = format!("{before}\0{after}");
            let got = Params::from_pairs([("InstanceName", value.as_str())]);
            prop_assert_eq!(invalid_name(got), Some("InstanceName".to_string()));
        }

        /// A "shrink" parameter: compact JSON with non-ASCII kept, as the SDK serialises it
        /// (serde_json's compact form is `separators=(",",":")`, `ensure_ascii=False`).
        #[test]
        fn shrink_json_reads_back(value in json_object()) {
            let json = serde_json::to_string(&value).unwrap();
            let pairs = vec![("NetworkInfo".to_string(), json)];
            for params in read_back(&pairs)? {
                prop_assert_eq!(params.json("NetworkInfo"), Ok(Some(value.clone())));
            }
        }

        /// `pct` then the request decoder gives back any text as a value, and as a key any
        /// name of the vendor's alphabet; any other key is refused, by its own code.
        #[test]
        fn pct_round_trips_through_the_request_decoder(s in any_text()) {
            let got = decode_form(format!("k={}", pct(&s)).as_bytes(), usize::MAX);
            prop_assert_eq!(got, Ok(vec![("k".to_string(), s.clone())]));
            if !s.is_empty() {
                let got = decode_form(format!("{}=v", pct(&s)).as_bytes(), usize::MAX);
                if crate::request::valid_name(&s) {
                    prop_assert_eq!(got, Ok(vec![(s.clone(), "v".to_string())]));
                } else {
                    prop_assert!(
                        matches!(got, Err(ApiError::InvalidParameterName(_))),
                        "{:?}: {:?}", s, got
                    );
                }
            }
        }

        /// The attack that motivated the rule, drawn at random: several pairs, and one pair
        /// whose name holds their `=` and `&`, have one ACS3 canonical query (so one
        /// signature); the one pair is refused.
        #[test]
        fn a_name_holding_a_query_is_refused(
            mut pairs in vec(("[A-Za-z][A-Za-z0-9._-]{0,6}", "[a-z0-9]{0,6}"), 2..=4),
        ) {
            pairs.sort();
            let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let joined = joined.join("&");
            let (name, value) = joined.rsplit_once('=').unwrap();
            prop_assert_eq!(
                cloudphone_client::signature::canonical_query_v3(&pairs),
                cloudphone_client::signature::canonical_query_v3(&[(name, value)])
            );
            let got = decode_form(format!("{}={}", pct(name), pct(value)).as_bytes(), 100);
            prop_assert!(matches!(got, Err(ApiError::InvalidParameterName(_))), "{:?}", got);
        }
    }

    /// Every character, NUL and controls included: the encoders and the decoder know no
    /// exceptions.
    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            vec(any::<char>(), 0..=24).prop_map(String::from_iter),
            text(0..=24),
        ]
    }

    fn json_object() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any_text().prop_map(Value::String),
        ];
        let value = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                btree_map(any_text(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        btree_map(any_text(), value, 0..6).prop_map(|m| Value::Object(m.into_iter().collect()))
    }
}
