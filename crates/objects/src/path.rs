//! `oss://bucket/key` paths, validated before anything touches storage.
//!
//! A bucket is 3 to 63 characters of `a-z 0-9 -`, neither starting nor ending with `-` (the
//! vendor's rule). A key is 1 to 1024 bytes of UTF-8 without control characters (NUL included)
//! or `\`, does not start with `/`, and has no empty, `.` or `..` segment: so it can never name
//! anything outside its bucket, whatever the storage below does with it. A key ending with `/`
//! names a folder; only [`OssPath::parse_prefix`] accepts one (and an empty key, the bucket's
//! root).

use std::fmt;

use crate::ObjectError;

/// The scheme every path starts with.
pub const SCHEME: &str = "oss://";
/// The vendor's limit on a key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OssPath {
    pub bucket: String,
    /// The object's key; for a folder (from [`OssPath::parse_prefix`]) empty or ending with `/`.
    pub key: String,
}

impl OssPath {
    /// An object path: `oss://bucket/key`.
    pub fn parse(s: &str) -> Result<OssPath, ObjectError> {
        let (bucket, key) = split(s)?;
        OssPath::new(bucket, key)
    }

    /// A folder: `oss://bucket`, `oss://bucket/`, `oss://bucket/dir` or `oss://bucket/dir/`.
    /// The key keeps its trailing `/` when it had one; [`OssPath::join`] adds a name below it.
    pub fn parse_prefix(s: &str) -> Result<OssPath, ObjectError> {
        let (bucket, key) = split(s)?;
        check_bucket(bucket)?;
        if !key.is_empty() {
            check_key(key.strip_suffix('/').unwrap_or(key))?;
        }
        Ok(OssPath {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// An object path from its parts, validated as [`OssPath::parse`] does.
    pub fn new(bucket: &str, key: &str) -> Result<OssPath, ObjectError> {
        check_bucket(bucket)?;
        check_key(key)?;
        Ok(OssPath {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// The object `name` in this folder (a path's key is taken as a folder whether or not it
    /// ends with `/`). `name` may itself hold `/`; the result is validated as a whole.
    pub fn join(&self, name: &str) -> Result<OssPath, ObjectError> {
        let folder = self.key.strip_suffix('/').unwrap_or(&self.key);
        let key = if folder.is_empty() {
            name.to_string()
        } else {
            format!("{folder}/{name}")
        };
        OssPath::new(&self.bucket, &key)
    }

    /// Whether this names a folder (empty key or trailing `/`) rather than an object.
    pub fn is_prefix(&self) -> bool {
        self.key.is_empty() || self.key.ends_with('/')
    }

    /// The last segment of the key (the object's file name).
    pub fn file_name(&self) -> &str {
        let key = self.key.strip_suffix('/').unwrap_or(&self.key);
        key.rsplit('/').next().unwrap_or(key)
    }
}

impl fmt::Display for OssPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.bucket, self.key)
    }
}

impl std::str::FromStr for OssPath {
    type Err = ObjectError;

    fn from_str(s: &str) -> Result<OssPath, ObjectError> {
        OssPath::parse(s)
    }
}

fn invalid(why: impl Into<String>) -> ObjectError {
    ObjectError::InvalidPath(why.into())
}

fn split(s: &str) -> Result<(&str, &str), ObjectError> {
    let rest = s
        .strip_prefix(SCHEME)
        .ok_or_else(|| invalid(format!("{s:?} does not start with {SCHEME}")))?;
    Ok(rest.split_once('/').unwrap_or((rest, "")))
}

/// The vendor's bucket naming rule.
pub fn check_bucket(bucket: &str) -> Result<(), ObjectError> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "the bucket name {bucket:?} must be 3 to 63 characters of a-z, 0-9 and '-', \
             not starting or ending with '-'"
        )))
    }
}

/// An object key (not a folder).
pub fn check_key(key: &str) -> Result<(), ObjectError> {
    if key.is_empty() {
        return Err(invalid("the object key is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid(format!(
            "the object key is longer than {MAX_KEY_BYTES} bytes"
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(invalid("the object key holds a control character"));
    }
    if key.contains('\\') {
        return Err(invalid("the object key holds a backslash"));
    }
    if key.starts_with('/') {
        return Err(invalid("the object key starts with '/'"));
    }
    for segment in key.split('/') {
        match segment {
            "" => {
                return Err(invalid(format!(
                    "the object key {key:?} has an empty segment (or names a folder)"
                )));
            }
            "." | ".." => {
                return Err(invalid(format!(
                    "the object key {key:?} has a '{segment}' segment"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(s: &str) {
        assert!(
            matches!(OssPath::parse(s), Err(ObjectError::InvalidPath(_))),
            "{s:?} should be refused"
        );
    }

    #[test]
    fn parses_and_displays() {
        let p = OssPath::parse("oss://my-bucket/dir/file name.apk").unwrap();
        assert_eq!(p.bucket, "my-bucket");
        assert_eq!(p.key, "dir/file name.apk");
        assert_eq!(p.to_string(), "oss://my-bucket/dir/file name.apk");
        assert_eq!(p.file_name(), "file name.apk");
        assert!(!p.is_prefix());
        assert_eq!(OssPath::parse("oss://abc/中文#1").unwrap().key, "中文#1");
        assert_eq!(
            OssPath::parse(&format!("oss://abc/{}", "k".repeat(1024)))
                .unwrap()
                .key
                .len(),
            1024
        );
    }

    #[test]
    fn refuses_bad_paths() {
        for s in [
            "",
            "abc/key",
            "s3://abc/key",
            "OSS://abc/key",
            "oss://abc",
            "oss://abc/",
            "oss://abc/dir/",
            "oss://abc//key",
            "oss://abc/a//b",
            "oss://abc/../etc/passwd",
            "oss://abc/a/../../b",
            "oss://abc/./a",
            "oss://abc/a/.",
            "oss://abc/a/..",
            "oss://abc/a\0b",
            "oss://abc/a\nb",
            "oss://abc/a\\b",
            "oss://abc/..\\..\\x",
            "oss:///etc/passwd",
            "oss://ab/key",
            "oss://-abc/key",
            "oss://abc-/key",
            "oss://ABC/key",
            "oss://a_c/key",
            "oss://a.c/key",
            "oss://../key",
        ] {
            bad(s);
        }
        bad(&format!("oss://{}/key", "a".repeat(64)));
        bad(&format!("oss://abc/{}", "k".repeat(1025)));
        assert!(OssPath::parse(&format!("oss://{}/key", "a".repeat(63))).is_ok());
    }

    #[test]
    fn prefixes_and_join() {
        let root = OssPath::parse_prefix("oss://bucket").unwrap();
        assert!(root.is_prefix());
        assert_eq!(
            root.join("f.txt").unwrap().to_string(),
            "oss://bucket/f.txt"
        );
        let root = OssPath::parse_prefix("oss://bucket/").unwrap();
        assert_eq!(root.join("f.txt").unwrap().key, "f.txt");
        let dir = OssPath::parse_prefix("oss://bucket/out/").unwrap();
        assert_eq!(dir.key, "out/");
        assert_eq!(dir.to_string(), "oss://bucket/out/");
        assert_eq!(dir.join("a/b.log").unwrap().key, "out/a/b.log");
        let dir = OssPath::parse_prefix("oss://bucket/out").unwrap();
        assert_eq!(dir.join("b.log").unwrap().key, "out/b.log");
        for name in ["", "..", "../x", "a//b", "/abs", "x/", "a\0"] {
            assert!(dir.join(name).is_err(), "{name:?}");
        }
        for s in [
            "oss://bucket//",
            "oss://bucket/../",
            "oss://bucket/a//",
            "oss://B/",
        ] {
            assert!(OssPath::parse_prefix(s).is_err(), "{s:?}");
        }
    }
}
