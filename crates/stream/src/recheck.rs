//! The node's watch over the sessions it holds, in one task ([`run`]):
//!
//! - every second, the heartbeat: one `touch_stream_sessions` write for all of them, whose
//!   answer says which ended elsewhere (another node's DisconnectAndroidInstance: 4000, the
//!   reaper: 4004) and whose role changed (another node's viewer took control); three failed
//!   heartbeats in a row end every session (4004 `Lost`: the store can no longer vouch for
//!   them, and other nodes will count them stale);
//! - in the same beat, the phones with sessions here that are no longer RUNNING (4001) and the
//!   access keys whose key or account was disabled or deleted (4003);
//! - at once, the sessions this node's DisconnectAndroidInstance ended ([`StreamRevocations`]),
//!   closed with 4000;
//! - every ten seconds, the reaper: sessions of any node not heard from for a minute
//!   ([`REAP_AFTER_MS`]) are ended `Lost`, and ended sessions older than a week are deleted.
//!   A session is stale (no viewer for SessionStatus, ended by the next session opened on its
//!   phone) after [`STALE_AFTER_MS`](crate::STALE_AFTER_MS) already; the reaper only tidies
//!   the rows of nodes that died, so it leaves them a margin.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudphone_core::InstanceStatus;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::protocol::Close;
use crate::registry::{End, Member};
use crate::{StreamRevocation, Streams};

/// The heartbeat's period.
pub const BEAT: Duration = Duration::from_secs(1);
/// The reaper's period.
pub const REAP_EVERY: Duration = Duration::from_secs(10);
/// Sessions not heard from for this long are ended by the reaper.
pub const REAP_AFTER_MS: i64 = 60_000;
/// Ended sessions are kept this long (the phone page's history, DescribeStreamSessions).
pub const KEEP_ENDED_MS: i64 = 7 * 24 * 3600 * 1000;
/// Heartbeats that may fail in a row before the sessions are given up.
const MAX_FAILED_BEATS: u32 = 3;

/// Runs until `shutdown`.
pub async fn run(streams: Arc<Streams>, shutdown: CancellationToken) {
    let mut revocations = streams.revocations.subscribe();
    let mut beat = tokio::time::interval(BEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failed = 0;
    let mut reaped = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            ring = revocations.recv() => match ring {
                Ok(ring) => revoke(&streams, &ring),
                // Rings were missed: the heartbeat learns of those ends from the store.
                Err(RecvError::Lagged(_)) => beat.reset_immediately(),
                Err(RecvError::Closed) => return,
            },
            _ = beat.tick() => {
                heartbeat(&streams, &mut failed).await;
                if reaped.elapsed() >= REAP_EVERY {
                    reaped = Instant::now();
                    reap(&streams).await;
                }
            }
        }
    }
}

/// Closes the sessions a DisconnectAndroidInstance of this node ended.
pub fn revoke(streams: &Streams, ring: &StreamRevocation) {
    let end = End {
        close: Close::DISCONNECTED,
        recorded: true,
    };
    for id in ring.session_ids.iter() {
        streams.registry.end(id, end);
    }
}

async fn heartbeat(streams: &Streams, failed: &mut u32) {
    let held = streams.registry.members();
    if held.is_empty() {
        *failed = 0;
        return;
    }
    let ids: Vec<String> = held.iter().map(|m| m.id.clone()).collect();
    let now = cloudphone_core::time::now_ms();
    let states = match streams.store.touch_stream_sessions(&ids, now).await {
        Ok(states) => {
            *failed = 0;
            states
        }
        Err(e) => {
            *failed += 1;
            warn!(error = %e, failed = *failed, "the stream sessions' heartbeat failed");
            if *failed >= MAX_FAILED_BEATS {
                let lost = End {
                    close: Close::LOST,
                    recorded: false,
                };
                streams.registry.end_where(lost, |_| true);
            }
            return;
        }
    };
    let mut seen = BTreeSet::new();
    for state in states {
        seen.insert(state.id.clone());
        match state.ended_reason {
            Some(reason) => {
                let end = End {
                    close: Close::of_end_reason(&reason),
                    recorded: true,
                };
                streams.registry.end(&state.id, end);
            }
            None => streams.registry.set_role(&state.id, state.role),
        }
    }
    // A row that is gone was reaped: its session is over everywhere.
    for m in &held {
        if !seen.contains(&m.id) {
            let end = End {
                close: Close::LOST,
                recorded: true,
            };
            streams.registry.end(&m.id, end);
        }
    }
    phones(streams, &held).await;
    keys(streams, &held).await;
}

/// Ends the sessions of phones that are gone or no longer RUNNING.
async fn phones(streams: &Streams, held: &[Member]) {
    let mut by_account: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for m in held {
        by_account
            .entry(&m.account_id)
            .or_default()
            .insert(m.instance_id.clone());
    }
    for (account, ids) in by_account {
        let ids: Vec<String> = ids.into_iter().collect();
        let running: BTreeSet<String> = match streams.store.instances_by_id(account, &ids).await {
            Ok(found) => found
                .into_iter()
                .filter(|i| i.status == InstanceStatus::Running)
                .map(|i| i.id)
                .collect(),
            Err(e) => {
                debug!(error = %e, "could not read the status of phones with viewers");
                continue;
            }
        };
        let stopped = End {
            close: Close::PHONE_STOPPED,
            recorded: false,
        };
        let n = streams.registry.end_where(stopped, |m| {
            m.account_id == account
                && ids.contains(&m.instance_id)
                && !running.contains(&m.instance_id)
        });
        if n > 0 {
            debug!(sessions = n, "sessions of phones no longer running ended");
        }
    }
}

/// Ends the sessions whose ticket's access key (or its account) was disabled or deleted.
async fn keys(streams: &Streams, held: &[Member]) {
    let mut keys: HashMap<&str, &str> = HashMap::new();
    for m in held {
        keys.insert(&m.key_id, &m.account_id);
    }
    for (key_id, account) in keys {
        let ok = match streams.store.access_key(key_id).await {
            Ok(key) => key.is_some_and(|k| k.account_id == account),
            Err(e) => {
                debug!(error = %e, "could not read a stream session's access key");
                continue;
            }
        };
        if !ok {
            let revoked = End {
                close: Close::KEY_DISABLED,
                recorded: false,
            };
            streams.registry.end_where(revoked, |m| m.key_id == key_id);
        }
    }
}

async fn reap(streams: &Streams) {
    let now = cloudphone_core::time::now_ms();
    match streams
        .store
        .reap_stream_sessions(now, now.saturating_sub(REAP_AFTER_MS), KEEP_ENDED_MS)
        .await
    {
        Ok(r) if r.lost > 0 || r.deleted > 0 => {
            debug!(lost = r.lost, deleted = r.deleted, "stream sessions reaped")
        }
        Ok(_) => {}
        Err(e) => debug!(error = %e, "reaping stream sessions failed"),
    }
}
