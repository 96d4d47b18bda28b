//! `--object-store URL`: where a node keeps its objects (docs/design.md §7), and opening it.
//!
//! - `file:///path`: a local directory (the default is `<data-dir>/objects`);
//! - `s3://BUCKET[/PREFIX]?endpoint=URL&region=R&path_style=true&presign=false&ca_file=PEM`: an
//!   S3-compatible bucket. Credentials come only from the environment
//!   (`CLOUDPHONE_S3_ACCESS_KEY_ID`/`CLOUDPHONE_S3_SECRET_ACCESS_KEY`, else `AWS_ACCESS_KEY_ID`/
//!   `AWS_SECRET_ACCESS_KEY`): the URL is logged and shown in errors, so it must never hold one.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cloudphone_objects::{Objects, S3Settings};
use cloudphone_store::Store;
use percent_encoding::percent_decode_str;
use tracing::{info, warn};

/// How long connecting to the S3 service and waiting for its next bytes may take. No total
/// timeout: a large object streams for as long as it takes.
const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const S3_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A parsed `--object-store` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectStoreUrl {
    Local(PathBuf),
    S3(S3Url),
}

/// The parts of an `s3://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: Option<String>,
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    pub presign: bool,
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Display for ObjectStoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectStoreUrl::Local(path) => write!(f, "file://{}", path.display()),
            ObjectStoreUrl::S3(s3) => {
                write!(f, "s3://{}", s3.bucket)?;
                if let Some(prefix) = &s3.prefix {
                    write!(f, "/{prefix}")?;
                }
                if let Some(endpoint) = &s3.endpoint {
                    write!(f, " at {endpoint}")?;
                }
                write!(f, " ({})", s3.region)
            }
        }
    }
}

impl std::str::FromStr for ObjectStoreUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse(s)
    }
}

fn parse(s: &str) -> Result<ObjectStoreUrl, String> {
    if let Some(path) = s.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(format!(
                "{s:?}: a file:// object store needs an absolute path (file:///var/lib/objects)"
            ));
        }
        return Ok(ObjectStoreUrl::Local(PathBuf::from(path)));
    }
    let Some(rest) = s.strip_prefix("s3://") else {
        return Err(format!(
            "{s:?}: the object store is file:///PATH or s3://BUCKET[/PREFIX]?endpoint=...&region=..."
        ));
    };
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    if location.contains('@') {
        // Never echo what may be a secret.
        return Err("the s3:// URL must not hold credentials: give them in \
                    CLOUDPHONE_S3_ACCESS_KEY_ID and CLOUDPHONE_S3_SECRET_ACCESS_KEY"
            .into());
    }
    let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
    check_bucket(bucket)?;
    let prefix = prefix.trim_matches('/');
    if prefix
        .split('/')
        .any(|p| p == "." || p == ".." || (p.is_empty() && !prefix.is_empty()))
    {
        return Err(format!(
            "the prefix {prefix:?} of the s3:// URL has an empty, `.` or `..` segment"
        ));
    }
    let mut url = S3Url {
        bucket: bucket.to_string(),
        prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
        endpoint: None,
        region: "us-east-1".into(),
        path_style: false,
        presign: false,
        ca_file: None,
    };
    let mut path_style = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| format!("the s3:// URL's {name} is not UTF-8"))?
            .into_owned();
        match name {
            "endpoint" => {
                if value.contains('@') {
                    return Err("the s3:// URL's endpoint must not hold credentials: give \
                                them in CLOUDPHONE_S3_ACCESS_KEY_ID and \
                                CLOUDPHONE_S3_SECRET_ACCESS_KEY"
                        .into());
                }
                if !(value.starts_with("http://") || value.starts_with("https://")) {
                    return Err(format!(
                        "the s3:// URL's endpoint {value:?} is not an http:// or https:// URL"
                    ));
                }
                url.endpoint = Some(value.trim_end_matches('/').to_string());
            }
            "region" if !value.is_empty() => url.region = value,
            "path_style" => path_style = Some(boolean(name, &value)?),
            "presign" => url.presign = boolean(name, &value)?,
            "ca_file" if !value.is_empty() => url.ca_file = Some(PathBuf::from(value)),
            "access_key_id" | "secret_access_key" | "access_key" | "secret" | "token" => {
                return Err(format!(
                    "the s3:// URL must not hold credentials ({name}): give them in \
                     CLOUDPHONE_S3_ACCESS_KEY_ID and CLOUDPHONE_S3_SECRET_ACCESS_KEY"
                ));
            }
            _ => {
                return Err(format!(
                    "the s3:// URL has an unknown or empty setting {name:?} (known: endpoint, \
                     region, path_style, presign, ca_file)"
                ));
            }
        }
    }
    // Services of one's own (MinIO, Ceph, moto) are reached by address: path style, unless
    // told otherwise; AWS itself by virtual host.
    url.path_style = path_style.unwrap_or(url.endpoint.is_some());
    Ok(ObjectStoreUrl::S3(url))
}

fn boolean(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!(
            "the s3:// URL's {name} is true or false, not {value:?}"
        )),
    }
}

/// S3's bucket naming rules (3-63 characters: lower-case letters, digits, `.` and `-`, starting
/// and ending with a letter or digit).
fn check_bucket(bucket: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{bucket:?} is not an S3 bucket name (3-63 lower-case letters, digits, `.` and `-`)"
        ))
    }
}

/// The access key of the S3 service, from `lookup` (the environment).
pub fn credentials(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<(String, String)> {
    let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
    for (id, secret) in [
        (
            "CLOUDPHONE_S3_ACCESS_KEY_ID",
            "CLOUDPHONE_S3_SECRET_ACCESS_KEY",
        ),
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ] {
        match (get(id), get(secret)) {
            (Some(id), Some(secret)) => return Ok((id, secret)),
            (None, None) => {}
            _ => anyhow::bail!("{id} and {secret} go together: one of them is not set"),
        }
    }
    anyhow::bail!(
        "an s3:// object store needs an access key: set CLOUDPHONE_S3_ACCESS_KEY_ID and \
         CLOUDPHONE_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    )
}

/// Opens the node's object store: `url`, or `<data-dir>/objects` without one. On S3, uploads
/// are staged in `<data-dir>/tmp/uploads` and the bucket must answer a listing now.
pub async fn open(
    url: Option<&ObjectStoreUrl>,
    data_dir: &std::path::Path,
    store: &dyn Store,
    link_key: &[u8],
    public_url: String,
) -> anyhow::Result<Objects> {
    let url = match url {
        Some(url) => url.clone(),
        None => ObjectStoreUrl::Local(data_dir.join("objects")),
    };
    match &url {
        ObjectStoreUrl::Local(root) => {
            if store.shared() {
                warn!(objects = %url, "objects on a local directory with a shared database: \
                       every node must share that directory (or use --object-store s3://...)");
            }
            Ok(Objects::local(root.clone(), store, link_key, public_url).await?)
        }
        ObjectStoreUrl::S3(s3) => {
            let (access_key_id, secret_access_key) = credentials(|n| std::env::var(n).ok())?;
            let client = cloudphone_client::tls::builder(s3.ca_file.as_deref())?
                .connect_timeout(S3_CONNECT_TIMEOUT)
                .read_timeout(S3_READ_TIMEOUT)
                .build()
                .context("building the object store's HTTP client")?;
            let settings = S3Settings {
                bucket: s3.bucket.clone(),
                prefix: s3.prefix.clone(),
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone(),
                path_style: s3.path_style,
                presign: s3.presign,
                access_key_id,
                secret_access_key,
                client,
            };
            let objects = Objects::s3(
                &settings,
                data_dir.join("tmp").join("uploads"),
                link_key,
                public_url,
            )
            .await
            .with_context(|| format!("opening the object store {url}"))?;
            info!(objects = %url, presign = s3.presign, "objects in an S3-compatible bucket");
            Ok(objects)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(s: &str) -> S3Url {
        match parse(s).unwrap() {
            ObjectStoreUrl::S3(u) => u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn file_urls() {
        assert_eq!(
            parse("file:///var/lib/objects").unwrap(),
            ObjectStoreUrl::Local("/var/lib/objects".into())
        );
        let e = parse("file://relative/dir").unwrap_err();
        assert!(e.contains("absolute path"), "{e}");
    }

    #[test]
    fn s3_urls_with_every_setting() {
        let u = s3(
            "s3://my-bucket/farm/one/?endpoint=http://127.0.0.1:9000/&region=eu-1\
                    &path_style=false&presign=true&ca_file=/etc/ca%20file.pem",
        );
        assert_eq!(
            u,
            S3Url {
                bucket: "my-bucket".into(),
                prefix: Some("farm/one".into()),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: "eu-1".into(),
                path_style: false,
                presign: true,
                ca_file: Some("/etc/ca file.pem".into()),
            }
        );
        assert_eq!(
            parse("s3://my-bucket/farm/one?endpoint=http://127.0.0.1:9000")
                .unwrap()
                .to_string(),
            "s3://my-bucket/farm/one at http://127.0.0.1:9000 (us-east-1)"
        );
    }

    #[test]
    fn s3_defaults() {
        let u = s3("s3://bucket.one");
        assert_eq!(u.prefix, None);
        assert_eq!(u.endpoint, None);
        assert_eq!(u.region, "us-east-1");
        assert!(!u.path_style, "AWS: virtual hosts");
        assert!(!u.presign);
        assert!(s3("s3://b-1?endpoint=https://s3.internal").path_style);
        assert!(!s3("s3://b-1?endpoint=https://s3.internal&path_style=0").path_style);
        assert_eq!(s3("s3://b-1/").prefix, None);
    }

    #[test]
    fn bad_urls_are_explained() {
        for (url, says) in [
            ("http://bucket", "file:///PATH or s3://"),
            ("/var/objects", "file:///PATH or s3://"),
            ("s3://", "not an S3 bucket name"),
            ("s3://Bucket", "not an S3 bucket name"),
            ("s3://ab", "not an S3 bucket name"),
            ("s3://-ab", "not an S3 bucket name"),
            ("s3://bucket/a//b", "empty, `.` or `..`"),
            ("s3://bucket/a/../b", "empty, `.` or `..`"),
            (
                "s3://bucket?endpoint=ftp://x",
                "not an http:// or https:// URL",
            ),
            ("s3://bucket?presign=yes", "true or false"),
            ("s3://bucket?path_style", "true or false"),
            (
                "s3://bucket?colour=blue",
                "unknown or empty setting \"colour\"",
            ),
            ("s3://bucket?region", "unknown or empty setting \"region\""),
        ] {
            let e = parse(url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_echoing_them() {
        for url in [
            "s3://AKIA:hunter2@bucket",
            "s3://bucket?secret_access_key=hunter2",
            "s3://bucket?endpoint=http://AKIA:hunter2@127.0.0.1:9000",
        ] {
            let e = parse(url).unwrap_err();
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("credentials"), "{e}");
        }
    }

    #[test]
    fn credentials_come_from_the_environment() {
        fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        }
        let ours: [(&str, &str); 4] = [
            ("CLOUDPHONE_S3_ACCESS_KEY_ID", "ours"),
            ("CLOUDPHONE_S3_SECRET_ACCESS_KEY", "s1"),
            ("AWS_ACCESS_KEY_ID", "aws"),
            ("AWS_SECRET_ACCESS_KEY", "s2"),
        ];
        assert_eq!(
            credentials(env(&ours)).unwrap(),
            ("ours".into(), "s1".into())
        );
        let aws = [
            ("AWS_ACCESS_KEY_ID", "aws"),
            ("AWS_SECRET_ACCESS_KEY", "s2"),
        ];
        assert_eq!(credentials(env(&aws)).unwrap(), ("aws".into(), "s2".into()));
        let half = [("CLOUDPHONE_S3_ACCESS_KEY_ID", "ours")];
        let e = credentials(env(&half)).unwrap_err().to_string();
        assert!(e.contains("go together"), "{e}");
        let e = credentials(env(&[])).unwrap_err().to_string();
        assert!(e.contains("needs an access key"), "{e}");
    }
}
