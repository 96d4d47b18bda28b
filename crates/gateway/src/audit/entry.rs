//! The audit entries of a connection, as `AdbConnection` rows: one when the client gets in
//! (`Connected`), one when the connection ends (how, with its counts), and the summary of an
//! account's entries the cap left out ([`super::cap`]).

use std::time::{SystemTime, UNIX_EPOCH};

use cloudphone_store::AuditEntry;

use super::ACTION;

/// The outcome of the entry written when a client gets in.
pub const CONNECTED: &str = "Connected";
/// The outcome of a summary of entries left out.
pub const SUPPRESSED: &str = "Suppressed";

/// Which connection an entry is about.
pub(crate) struct About<'a> {
    pub connection_id: &'a str,
    pub account_id: &'a str,
    pub instance_id: &'a str,
    /// The key pair that signed, if one did.
    pub key_pair_id: Option<&'a str>,
    pub source: &'a str,
}

/// What an ended connection's entry adds.
pub(crate) struct Ended<'a> {
    pub outcome: &'a str,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub streams: u64,
    pub seconds: u64,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn base(a: &About<'_>, outcome: String, at_ms: i64) -> AuditEntry {
    let mut resource_ids = vec![a.instance_id.to_string()];
    resource_ids.extend(a.key_pair_id.map(str::to_string));
    AuditEntry {
        id: 0,
        at_ms,
        account_id: a.account_id.to_string(),
        user_name: String::new(),
        key_id: a.key_pair_id.unwrap_or_default().to_string(),
        action: ACTION.to_string(),
        resource_ids,
        request_id: a.connection_id.to_string(),
        source: a.source.to_string(),
        outcome,
    }
}

/// The client got in (signed, or the endpoint is open).
pub(crate) fn connected(a: &About<'_>, at_ms: i64) -> AuditEntry {
    base(a, CONNECTED.to_string(), at_ms)
}

/// The connection ended.
pub(crate) fn ended(a: &About<'_>, e: &Ended<'_>, at_ms: i64) -> AuditEntry {
    let outcome = format!(
        "{} bytes_in={} bytes_out={} streams={} seconds={}",
        e.outcome, e.bytes_in, e.bytes_out, e.streams, e.seconds
    );
    base(a, outcome, at_ms)
}

/// `count` entries of `account` left out over `seconds`, of connections to `instance_ids`.
pub(crate) fn suppressed(
    account_id: &str,
    instance_ids: Vec<String>,
    count: u64,
    seconds: u64,
    at_ms: i64,
) -> AuditEntry {
    AuditEntry {
        id: 0,
        at_ms,
        account_id: account_id.to_string(),
        user_name: String::new(),
        key_id: String::new(),
        action: ACTION.to_string(),
        resource_ids: instance_ids,
        request_id: String::new(),
        source: String::new(),
        outcome: format!("{SUPPRESSED} unauthenticated={count} seconds={seconds}"),
    }
}
