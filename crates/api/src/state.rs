//! What every request handler shares ([`AppState`]) and what one request carries ([`Ctx`]).

use std::sync::Arc;

use cloudphone_core::resources::AccessKey;
use cloudphone_engine::Backend;
use cloudphone_store::Store;
use tokio::sync::Notify;

use crate::token::TokenKey;

/// Bounds on what one request may carry.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_params: usize,
    /// The longest request URI (path and query) accepted.
    pub max_uri_bytes: usize,
    /// How many instances (not DELETED) one account may have; `None`: no limit.
    pub instance_quota: Option<u64>,
    /// How many key pairs one account may have (they cost a row each and are checked on
    /// every signed ADB connection of the phones they are attached to).
    pub max_key_pairs: u64,
    /// The largest object `PUT /files/...` accepts (streamed to disk, never held in memory).
    pub max_upload_bytes: u64,
    /// Watch streams open at once on this node, in all and per access key.
    pub max_watch_streams: usize,
    pub max_watch_streams_per_key: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_params: 5000,
            max_uri_bytes: 60 << 10,
            instance_quota: None,
            max_key_pairs: 500,
            max_upload_bytes: 5 << 30,
            max_watch_streams: 1024,
            max_watch_streams_per_key: 32,
        }
    }
}

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub backend: Arc<dyn Backend>,
    /// The object store behind `oss://` paths and `/files/...`.
    pub objects: Arc<cloudphone_objects::Objects>,
    /// The engine's waker: notified after tasks are queued.
    pub wake: Arc<Notify>,
    /// The attempts running on this node, which CancelTasks stops at once.
    pub stops: Arc<cloudphone_engine::Stops>,
    /// For files the API itself fetches (CreateApp from an http(s) URL): the same outbound
    /// client, filter and limits as the engine's downloads.
    pub fetch: cloudphone_outbound::Outbound,
    /// The webhook deliveries' client, whose filter CreateWebhook checks a URL against.
    pub webhook_targets: cloudphone_outbound::Outbound,
    pub region: String,
    pub tokens: TokenKey,
    /// Names this node in error bodies.
    pub host_id: String,
    pub limits: Limits,
    /// Access keys seen, checked again by every call's nonce write.
    pub keys: crate::auth::KeyCache,
    /// Calls per second per access key.
    pub throttle: crate::throttle::Throttle,
    /// Whether this node serves HTTPS (the console's cookie is then `Secure`).
    pub https: bool,
    /// Cancelled when the node shuts down: open watch streams end, so that the server's
    /// graceful shutdown does not wait for their clients.
    pub closing: tokio_util::sync::CancellationToken,
    /// The open watch streams: their caps and their accounts' shared polls.
    pub watches: crate::watch::Hub,
    /// The ADB gateway's settings; `None`: this node opens no ADB endpoints (StartInstanceAdb
    /// is refused).
    pub adb: Option<crate::adb::AdbGateway>,
    /// Rung with the phones whose live ADB connections must end (docs/design.md §12).
    pub adb_revocations: crate::adb::AdbRevocations,
    /// Signs the connection tickets of BatchGetAcpConnectionTicket: the key every node shares,
    /// so that any node opens any node's tickets.
    pub tickets: cloudphone_stream::TicketKey,
    /// How long a ticket opens a stream after it was issued.
    pub ticket_ttl: std::time::Duration,
    /// Rung with the live screen sessions DisconnectAndroidInstance ended (docs/design.md §14).
    pub stream_revocations: cloudphone_stream::StreamRevocations,
    /// Which new phones go on the farm's hosts, and how (default: none are placed).
    pub placement: crate::placement::Placement,
}

/// One authenticated request.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub caller: AccessKey,
    pub request_id: String,
    pub now_ms: i64,
    /// ClientToken, DryRun, MaxConcurrency and MaxErrors of the call.
    pub controls: crate::controls::Controls,
}

impl Ctx<'_> {
    pub fn account(&self) -> &str {
        &self.caller.account_id
    }
}
