//! The audit of connections that reached a phone's endpoint, as action `AdbConnection` in the
//! audit log ([`entry`]): one entry when the client gets in (outcome `Connected`), so a node
//! that dies with the connection open still leaves its record, and one when the connection
//! ends (outcome how, with its counts: `HostClosed bytes_in=.. bytes_out=.. streams=..
//! seconds=..`), both with the connection's id as `request_id`: the phone's account, the key
//! pair that authenticated (`key_id`; empty when none did), the phone and that key pair as
//! resource ids, the client's address (`source`). A connection that never got in (a wrong key,
//! garbage, a stalled handshake) has only its end entry, and those are capped per account
//! ([`cap`]: at most `unauthenticated_audit_limit` a window, the rest summarized in one
//! `Suppressed unauthenticated=N seconds=S` entry); a connection that got in is never capped.
//!
//! Entries go through a bounded queue (`audit_queue`, 10,000) to one writer task, which writes
//! what has gathered in one statement, so a burst of endings (a phone stopped with many
//! connections, a node shutting down) costs a few writes, not one each. Connections never wait
//! for the audit: an entry that finds the queue full (the store too slow for the flow) is
//! dropped, counted in `cloudphone_adb_audit_dropped_total{reason="QueueFull"}` and warned
//! about at most every 10 s; one left out by the cap is counted with `reason="RateLimited"`. A
//! failed write is logged. Connections refused before their phone was known (no endpoint on
//! the port) are not audited: they belong to no account (they are logged and counted).

mod cap;
mod entry;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudphone_store::AuditEntry;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::store::GatewayStore;
use cap::Cap;
pub(crate) use entry::{About, Ended, connected, ended, now_ms};
pub use entry::{CONNECTED, SUPPRESSED};

/// The action name of a connection's entries.
pub const ACTION: &str = "AdbConnection";

/// Entries one write takes at most.
const BATCH: usize = 500;

/// How often the writer writes the summaries of the cap's windows that ended.
const SWEEP: Duration = Duration::from_secs(5);

/// A full queue is warned about at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// How much the audit holds and lets through.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AuditLimits {
    /// Entries waiting for the writer at most.
    pub queue: usize,
    /// Entries of connections that never got in, per account and window.
    pub unauthenticated: u32,
    pub window: Duration,
}

#[derive(Debug)]
struct Shared {
    tx: mpsc::Sender<AuditEntry>,
    cap: Mutex<Cap>,
    /// When a full queue was last warned about, and entries dropped since.
    full: Mutex<(Option<Instant>, u64)>,
}

#[derive(Debug)]
pub(crate) struct AuditSink {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn dropped(reason: &'static str) {
    metrics::counter!("cloudphone_adb_audit_dropped_total", "reason" => reason).increment(1);
}

impl AuditSink {
    /// The sink and its writer, which runs until `done` and then writes what is queued and the
    /// cap's summaries.
    pub(crate) fn new(
        store: Arc<dyn GatewayStore>,
        done: CancellationToken,
        limits: AuditLimits,
    ) -> (AuditSink, impl std::future::Future<Output = ()> + Send) {
        let (tx, mut rx) = mpsc::channel(limits.queue.max(1));
        let shared = Arc::new(Shared {
            tx,
            cap: Mutex::new(Cap::new(limits.unauthenticated, limits.window)),
            full: Mutex::new((None, 0)),
        });
        let sweeper = shared.clone();
        let every = SWEEP.min(limits.window).max(Duration::from_millis(100));
        let writer = async move {
            let mut batch = Vec::with_capacity(BATCH);
            let mut sweep = tokio::time::interval(every);
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut closing = false;
            loop {
                tokio::select! {
                    n = rx.recv_many(&mut batch, BATCH) => if n == 0 {
                        // Closed and empty: the summaries of every window, then stop.
                        batch.extend(lock(&sweeper.cap).drain(Instant::now(), now_ms()));
                        write(&*store, &batch).await;
                        return;
                    },
                    _ = sweep.tick(), if !closing => {
                        batch.extend(lock(&sweeper.cap).sweep(Instant::now(), now_ms()));
                    }
                    // No more entries: what is queued is still written.
                    () = done.cancelled(), if !closing => {
                        closing = true;
                        rx.close();
                    }
                }
                write(&*store, &batch).await;
                batch.clear();
            }
        };
        (AuditSink { shared }, writer)
    }

    /// Records an entry of a connection that got in: never capped.
    pub(crate) fn record(&self, entry: AuditEntry) -> bool {
        self.enqueue(entry)
    }

    /// Records the entry of a connection that never got in, within its account's cap.
    pub(crate) fn record_unauthenticated(&self, entry: AuditEntry) -> bool {
        let instance = entry.resource_ids.first().map_or("", String::as_str);
        let decision =
            lock(&self.shared.cap).admit(&entry.account_id, instance, Instant::now(), entry.at_ms);
        if let Some(summary) = decision.summary {
            self.enqueue(summary);
        }
        if !decision.record {
            dropped("RateLimited");
            debug!(account_id = %entry.account_id, "adb connection not audited: over the account's cap");
            return false;
        }
        self.enqueue(entry)
    }

    fn enqueue(&self, entry: AuditEntry) -> bool {
        match self.shared.tx.try_send(entry) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                dropped("QueueFull");
                let mut full = lock(&self.shared.full);
                full.1 += 1;
                if full.0.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    warn!(
                        dropped = full.1,
                        "adb connections not audited: the audit queue is full"
                    );
                    *full = (Some(Instant::now()), 0);
                }
                false
            }
            Err(TrySendError::Closed(_)) => {
                dropped("WriterGone");
                warn!("adb connection not audited: the audit writer is gone");
                false
            }
        }
    }
}

async fn write(store: &dyn GatewayStore, batch: &[AuditEntry]) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = store.append_audit(batch).await {
        warn!(error = %e, entries = batch.len(), "adb connections not audited");
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use cloudphone_store::{AdbEndpoint, Result};

    use super::*;

    /// Keeps what is appended.
    #[derive(Default)]
    struct Kept(Mutex<Vec<AuditEntry>>);

    #[async_trait]
    impl GatewayStore for Kept {
        async fn adb_endpoint(&self, _port: u16) -> Result<Option<AdbEndpoint>> {
            Ok(None)
        }
        async fn adb_endpoints(&self, _ports: &[u16]) -> Result<Vec<AdbEndpoint>> {
            Ok(vec![])
        }
        async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
            lock(&self.0).extend_from_slice(entries);
            Ok(())
        }
    }

    fn entry(account: &str, outcome: &str) -> AuditEntry {
        let about = About {
            connection_id: "adbc-1",
            account_id: account,
            instance_id: "acp-1",
            key_pair_id: None,
            source: "127.0.0.1:1",
        };
        let end = Ended {
            outcome,
            bytes_in: 0,
            bytes_out: 0,
            streams: 0,
            seconds: 0,
        };
        ended(&about, &end, 0)
    }

    fn limits(queue: usize, unauthenticated: u32) -> AuditLimits {
        AuditLimits {
            queue,
            unauthenticated,
            window: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_entries_instead_of_growing() {
        let store = Arc::new(Kept::default());
        let (sink, writer) = AuditSink::new(store.clone(), CancellationToken::new(), limits(2, 60));
        // The writer is not running: the queue fills.
        assert!(sink.record(entry("a", "HostClosed")));
        assert!(sink.record(entry("a", "HostClosed")));
        assert!(
            !sink.record(entry("a", "HostClosed")),
            "the third is dropped"
        );
        assert!(!sink.record_unauthenticated(entry("a", "ProtocolError")));
        drop(writer);
    }

    #[tokio::test]
    async fn entries_past_the_cap_are_summarized_at_shutdown_and_the_let_in_never_capped() {
        let store = Arc::new(Kept::default());
        let done = CancellationToken::new();
        let (sink, writer) = AuditSink::new(store.clone(), done.clone(), limits(100, 2));
        let writer = tokio::spawn(writer);
        let recorded: Vec<bool> = (0..5)
            .map(|_| sink.record_unauthenticated(entry("a", "ProtocolError")))
            .collect();
        assert_eq!(recorded, [true, true, false, false, false]);
        for _ in 0..5 {
            assert!(sink.record(entry("a", "HostClosed")));
        }
        done.cancel();
        writer.await.unwrap();
        let kept = lock(&store.0);
        let with = |prefix: &str| -> Vec<&AuditEntry> {
            kept.iter()
                .filter(|e| e.outcome.starts_with(prefix))
                .collect()
        };
        assert_eq!(with("ProtocolError ").len(), 2, "{kept:?}");
        assert_eq!(with("HostClosed ").len(), 5, "{kept:?}");
        let summary = with("Suppressed ");
        assert_eq!(summary.len(), 1, "{kept:?}");
        assert!(
            summary[0]
                .outcome
                .starts_with("Suppressed unauthenticated=3 "),
            "{summary:?}"
        );
        assert_eq!(
            (summary[0].account_id.as_str(), summary[0].action.as_str()),
            ("a", ACTION)
        );
    }
}
