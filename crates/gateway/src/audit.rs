//! Every connection that reached a phone's endpoint is recorded in the audit log when it ends,
//! as action `AdbConnection`: the phone's account, the key pair that authenticated (`key_id`;
//! empty when none did), the phone and that key pair as resource ids, the client's address
//! (`source`), the connection's id (`request_id`, `adbc-...`) and how it ended with its bytes
//! (`outcome`: `HostClosed bytes_in=.. bytes_out=.. streams=.. seconds=..`).
//!
//! Entries go through a queue to one writer task, which writes what has gathered in one
//! statement, so a burst of endings (a phone stopped with many connections, a node shutting
//! down) costs a few writes, not one each. A failed write is logged; connections never wait
//! for it. Connections refused before their phone was known (no endpoint on the port) are
//! not audited: they belong to no account (they are logged and counted).

use std::sync::Arc;

use cloudphone_store::AuditEntry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::store::GatewayStore;

/// The action name of a connection's entry.
pub const ACTION: &str = "AdbConnection";

/// Entries one write takes at most.
const BATCH: usize = 500;

#[derive(Clone, Debug)]
pub(crate) struct AuditSink {
    tx: mpsc::UnboundedSender<AuditEntry>,
}

impl AuditSink {
    /// The sink and its writer, which runs until `done` and then writes what is queued.
    pub(crate) fn new(
        store: Arc<dyn GatewayStore>,
        done: CancellationToken,
    ) -> (AuditSink, impl std::future::Future<Output = ()> + Send) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let writer = async move {
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let n = tokio::select! {
                    n = rx.recv_many(&mut batch, BATCH) => n,
                    () = done.cancelled() => {
                        // No more entries: write what is queued, then stop.
                        rx.close();
                        rx.recv_many(&mut batch, BATCH).await
                    }
                };
                if n == 0 {
                    return;
                }
                if let Err(e) = store.append_audit(&batch).await {
                    warn!(error = %e, entries = batch.len(), "adb connections not audited");
                }
                batch.clear();
            }
        };
        (AuditSink { tx }, writer)
    }

    pub(crate) fn record(&self, entry: AuditEntry) {
        if self.tx.send(entry).is_err() {
            warn!("adb connection not audited: the audit writer is gone");
        }
    }
}

/// What an ended connection's entry says.
pub(crate) struct Ended<'a> {
    pub connection_id: &'a str,
    pub account_id: &'a str,
    pub instance_id: &'a str,
    pub key_pair_id: Option<&'a str>,
    pub source: String,
    pub outcome: &'a str,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub streams: u64,
    pub seconds: u64,
    pub at_ms: i64,
}

pub(crate) fn entry(e: &Ended<'_>) -> AuditEntry {
    let mut resource_ids = vec![e.instance_id.to_string()];
    resource_ids.extend(e.key_pair_id.map(str::to_string));
    AuditEntry {
        id: 0,
        at_ms: e.at_ms,
        account_id: e.account_id.to_string(),
        user_name: String::new(),
        key_id: e.key_pair_id.unwrap_or_default().to_string(),
        action: ACTION.to_string(),
        resource_ids,
        request_id: e.connection_id.to_string(),
        source: e.source.clone(),
        outcome: format!(
            "{} bytes_in={} bytes_out={} streams={} seconds={}",
            e.outcome, e.bytes_in, e.bytes_out, e.streams, e.seconds
        ),
    }
}
