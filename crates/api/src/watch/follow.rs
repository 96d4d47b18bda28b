//! One stream's way through the log, exact to the event: it reads the store itself, with its own
//! filter, from where it resumes until it has caught up; then joins its account's feed and
//! takes the feed's batches, through its filter, skipping what it has sent. Joining happens at
//! the feed's cursor: a stream behind it first reads the events up to that cursor itself (all
//! of them final: the store returns no event that an earlier-placed one could still join),
//! and one ahead of it skips the feed's events up to its own place. So a resumed stream sends
//! every event after its `Last-Event-ID` once, in the log's order.

use std::sync::Arc;

use cloudphone_store::{EventFilter, EventPosition, TaskEvent};
use tokio::sync::mpsc;
use tracing::warn;

use super::filter::matches;
use super::hub::{Batch, Holder, Slot, Subscription};
use super::{BATCH, POLL};
use crate::state::AppState;

enum Phase {
    /// Reading the store alone, until a read comes back short.
    CatchingUp,
    /// About to join the feed; `tail`: where a new feed would start, if known.
    Joining { tail: Option<EventPosition> },
    /// In the feed, first reading the store up to `upto` (the feed's cursor at joining) if
    /// that is ahead.
    Live {
        _subscription: Subscription,
        queue: mpsc::Receiver<Batch>,
        upto: Option<EventPosition>,
    },
}

pub(crate) struct Follower {
    state: Arc<AppState>,
    holder: Holder,
    filter: EventFilter,
    /// The last place sent (or the start).
    at: EventPosition,
    pending: std::vec::IntoIter<TaskEvent>,
    phase: Phase,
    _slot: Slot,
}

impl Follower {
    /// A stream from `start`; `caught_up`: `start` is the log's tail, nothing to read first.
    pub fn new(
        state: Arc<AppState>,
        slot: Slot,
        holder: Holder,
        filter: EventFilter,
        start: EventPosition,
        caught_up: bool,
    ) -> Follower {
        Follower {
            state,
            holder,
            filter,
            at: start,
            pending: Vec::new().into_iter(),
            phase: if caught_up {
                Phase::Joining { tail: Some(start) }
            } else {
                Phase::CatchingUp
            },
            _slot: slot,
        }
    }

    /// Joins the account's feed. A new feed starts at the log's tail (not at this stream's
    /// place, which its filter may have left far behind).
    async fn join(&mut self, tail: Option<EventPosition>) {
        let account = &self.filter.account_id;
        let tail = match tail {
            Some(tail) => tail,
            None if self.state.watches.has_feed(account) => self.at,
            None => self
                .state
                .store
                .event_tail(account)
                .await
                .unwrap_or(self.at),
        };
        let (subscription, queue, cursor) = self.state.watches.subscribe(
            &self.state.store,
            &self.state.closing,
            &self.filter.account_id,
            self.holder.clone(),
            tail,
        );
        self.phase = Phase::Live {
            _subscription: subscription,
            queue,
            upto: (self.at < cursor).then_some(cursor),
        };
    }

    /// The next event; `None` when the stream ends (shutdown, the key or session revoked, the
    /// stream fell behind).
    pub async fn next(&mut self) -> Option<TaskEvent> {
        loop {
            if let Some(e) = self.pending.next() {
                self.at = e.position;
                return Some(e);
            }
            if self.state.closing.is_cancelled() {
                return None;
            }
            match &mut self.phase {
                Phase::CatchingUp => {
                    let found = self.read().await?;
                    if found.len() < BATCH {
                        self.phase = Phase::Joining { tail: None };
                    }
                    self.pending = found.into_iter();
                }
                Phase::Joining { tail } => {
                    let tail = *tail;
                    self.join(tail).await;
                }
                Phase::Live {
                    upto: Some(upto), ..
                } => {
                    let upto = *upto;
                    let found = self.read().await?;
                    let done = found.len() < BATCH || found.iter().any(|e| e.position >= upto);
                    let mine: Vec<TaskEvent> =
                        found.into_iter().filter(|e| e.position <= upto).collect();
                    if done && let Phase::Live { upto, .. } = &mut self.phase {
                        *upto = None;
                    }
                    self.pending = mine.into_iter();
                }
                Phase::Live {
                    queue, upto: None, ..
                } => {
                    let batch = tokio::select! {
                        _ = self.state.closing.cancelled() => return None,
                        batch = queue.recv() => batch?,
                    };
                    let at = self.at;
                    let mine: Vec<TaskEvent> = batch
                        .iter()
                        .filter(|e| e.position > at && matches(&self.filter, e))
                        .cloned()
                        .collect();
                    self.pending = mine.into_iter();
                }
            }
        }
    }

    /// The stream's next events from the store (a read that fails is tried again after a
    /// pause; `None` on shutdown).
    async fn read(&self) -> Option<Vec<TaskEvent>> {
        loop {
            match self
                .state
                .store
                .task_events(&self.filter, self.at, BATCH)
                .await
            {
                Ok(found) => return Some(found),
                Err(e) => warn!(error = %e, "reading task events failed; trying again"),
            }
            tokio::select! {
                _ = self.state.closing.cancelled() => return None,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
