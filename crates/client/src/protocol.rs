//! The protocol's constants: what a client sends and a server checks, named once for both.

/// The API version every call names (`x-acs-version`, or `Version` in the legacy scheme).
pub const VERSION: &str = "2023-09-30";

/// The `Authorization` algorithm of the ACS3 scheme (the only one a server accepts).
pub const ACS3_HMAC_SHA256: &str = "ACS3-HMAC-SHA256";

/// `SignatureMethod` of the legacy scheme.
pub const HMAC_SHA1: &str = "HMAC-SHA1";

/// `SignatureVersion` of the legacy scheme.
pub const SIGNATURE_VERSION_V1: &str = "1.0";

/// The SHA-256 of an empty body: the payload hash of every call that carries its parameters in
/// the query.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The watch stream: server-sent events of task changes, a GET signed for [`WATCH_ACTION`].
pub const WATCH_PATH: &str = "/tasks/watch";

/// The action the watch stream is signed for (and that access policies name).
pub const WATCH_ACTION: &str = "WatchTasks";
