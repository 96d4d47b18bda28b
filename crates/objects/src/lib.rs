//! The object store behind `oss://bucket/key` paths (docs/design.md §7).
//!
//! - [`OssPath`]: parsing and validation (no `..`, no absolute paths, no NUL, vendor bucket names).
//! - [`Objects`]: puts and gets that stream (never holding an object in memory), each within the
//!   caller's account's own bucket namespace (no account can tell which bucket names another
//!   uses), MD5 of every object, and signed expiring download links.
//!
//! Storage goes through the `object_store` crate: a local directory ([`Objects::local`]), or an
//! S3-compatible service (`Objects::s3`, feature `s3`) without changing callers.

mod layout;
mod legacy;
mod link;
mod objects;
mod path;
#[cfg(feature = "s3")]
mod s3;

pub use link::{encode_key, encode_segment};
pub use objects::{ByteStream, Objects};
pub use path::{MAX_KEY_BYTES, OssPath, SCHEME, check_bucket, check_key};
#[cfg(feature = "s3")]
pub use s3::S3Settings;

/// Why an object operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// A malformed `oss://` path, or one the storage cannot hold; the reason is for people.
    #[error("invalid OSS path: {0}")]
    InvalidPath(String),
    /// A missing object (in the caller's namespace). The string names the path.
    #[error("{0} does not exist")]
    NotFound(String),
    /// Storage failed (disk, database, a local file); logged where it happens.
    #[error("object storage failed: {0}")]
    Io(String),
}

impl ObjectError {
    /// A vendor-style code: `InvalidParameter`, `NotFound` or `InternalError`.
    pub fn code(&self) -> &'static str {
        match self {
            ObjectError::InvalidPath(_) => "InvalidParameter",
            ObjectError::NotFound(_) => "NotFound",
            ObjectError::Io(_) => "InternalError",
        }
    }
}

/// What is known of a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// Lower-case hex MD5 of the content.
    pub md5_hex: String,
}
