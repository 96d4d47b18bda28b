//! An account's poller: reads the account's event log after its cursor (one query for all the
//! account's streams, every [`POLL`] when idle, at once again after a full batch) and hands each
//! batch to every stream's queue without waiting. A stream whose queue is full is dropped: it
//! has fallen behind, ends after what it has, and its client resumes with `Last-Event-ID`.
//! Every [`RECHECK`] it also checks, once per holder, that the keys (and console sessions) of
//! its streams may still act, and drops the streams of those that may not.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use cloudphone_store::{EventFilter, Store};
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::hub::{Batch, Feed, Holder};
use super::{BATCH, POLL, RECHECK};

pub(crate) async fn run(feed: Arc<Feed>, store: Arc<dyn Store>, closing: CancellationToken) {
    let everything = EventFilter {
        account_id: feed.account_id.clone(),
        ..EventFilter::default()
    };
    let mut checked = Instant::now();
    loop {
        if feed.stop.is_cancelled() || closing.is_cancelled() {
            return;
        }
        let asked = Instant::now();
        let cursor = feed.lock().cursor;
        metrics::counter!("cloudphone_watch_polls_total").increment(1);
        let mut more = false;
        match store.task_events(&everything, cursor, BATCH).await {
            Ok(found) if !found.is_empty() => {
                more = found.len() == BATCH;
                let batch: Batch = found.into();
                hand_out(&feed, batch);
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "reading task events failed; trying again"),
        }
        if checked.elapsed() >= RECHECK {
            checked = Instant::now();
            drop_revoked(&feed, store.as_ref()).await;
        }
        if more {
            continue;
        }
        let rest = POLL.saturating_sub(asked.elapsed());
        tokio::select! {
            _ = feed.stop.cancelled() => return,
            _ = closing.cancelled() => return,
            _ = tokio::time::sleep(rest) => {}
        }
    }
}

/// Moves the cursor past `batch` and queues it for every stream.
fn hand_out(feed: &Feed, batch: Batch) {
    let mut state = feed.lock();
    if let Some(last) = batch.last() {
        state.cursor = last.position;
    }
    state
        .subscribers
        .retain(|_, s| match s.tx.try_send(batch.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                metrics::counter!("cloudphone_watch_streams_behind_total").increment(1);
                false
            }
            Err(TrySendError::Closed(_)) => false,
        });
}

/// Drops the streams whose key (or console session) may no longer act. A store that does not
/// answer leaves them open.
async fn drop_revoked(feed: &Feed, store: &dyn Store) {
    let holders: HashSet<Holder> = feed
        .lock()
        .subscribers
        .values()
        .map(|s| s.holder.clone())
        .collect();
    let mut revoked = HashSet::new();
    for holder in holders {
        if !still_valid(store, &holder).await {
            revoked.insert(holder);
        }
    }
    if !revoked.is_empty() {
        feed.lock()
            .subscribers
            .retain(|_, s| !revoked.contains(&s.holder));
    }
}

async fn still_valid(store: &dyn Store, holder: &Holder) -> bool {
    if matches!(store.access_key(&holder.key_id).await, Ok(None)) {
        return false;
    }
    match holder.session {
        None => true,
        Some(generation) => match store.session_generation(&holder.key_id).await {
            Ok(now) => now == Some(generation),
            Err(_) => true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::hub::Subscriber;
    use cloudphone_core::{Level, TaskStatus, TaskType};
    use cloudphone_store::{EventPosition, TaskEvent};
    use tokio::sync::mpsc;

    fn batch(n: i64) -> Batch {
        vec![TaskEvent {
            position: EventPosition { major: 0, minor: n },
            task_id: format!("t-{n}"),
            parent_id: None,
            invoke_id: "inv".into(),
            level: Level::Batch,
            task_type: TaskType::RebootInstance,
            status: TaskStatus::Waiting,
            instance_id: None,
            error_code: None,
            counts: None,
            at_ms: n,
        }]
        .into()
    }

    fn holder(key: &str) -> Holder {
        Holder {
            key_id: key.into(),
            session: None,
        }
    }

    #[test]
    fn a_stream_that_falls_behind_is_dropped_without_holding_the_others() {
        let feed = Feed::new("acct", EventPosition::default());
        let (slow_tx, mut slow) = mpsc::channel(2);
        let (quick_tx, mut quick) = mpsc::channel(2);
        feed.lock().add(Subscriber {
            tx: slow_tx,
            holder: holder("k1"),
        });
        feed.lock().add(Subscriber {
            tx: quick_tx,
            holder: holder("k2"),
        });
        for n in 1..=5 {
            hand_out(&feed, batch(n));
            assert_eq!(quick.try_recv().unwrap()[0].position.minor, n);
        }
        assert_eq!(feed.lock().cursor.minor, 5);
        assert_eq!(feed.lock().subscribers.len(), 1, "the slow one was dropped");
        // It still gets what was queued for it, then its stream ends.
        assert_eq!(slow.try_recv().unwrap()[0].position.minor, 1);
        assert_eq!(slow.try_recv().unwrap()[0].position.minor, 2);
        assert!(matches!(
            slow.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }
}
