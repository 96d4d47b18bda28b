//! The node's open watch streams: their caps (per access key and in all, [`Hub::open`]) and one
//! feed per account ([`Hub::subscribe`]): a poller task ([`super::poller`]) that reads the
//! account's events once and hands each batch to every stream of that account, started by the
//! account's first stream and stopped with its last. A stream's queue is bounded: the poller
//! never waits for a stream, and one that falls a whole queue behind is dropped (it ends, and its
//! client resumes with `Last-Event-ID`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cloudphone_core::ApiError;
use cloudphone_store::{EventPosition, Store, TaskEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Batches a stream may have waiting before it counts as fallen behind.
pub const QUEUE: usize = 64;

/// Who holds a stream: the key that opened it, and for a console stream the session generation
/// of its cookie. The stream ends once the key may no longer act (or the session ended).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Holder {
    pub key_id: String,
    pub session: Option<i64>,
}

/// A batch of an account's events, shared by every stream of the account.
pub(crate) type Batch = Arc<[TaskEvent]>;

/// The watch streams of a node (in [`crate::AppState`]).
pub struct Hub {
    inner: Arc<Mutex<Inner>>,
    queue: usize,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::with_queue(QUEUE)
    }
}

#[derive(Default)]
struct Inner {
    total: usize,
    per_key: HashMap<String, usize>,
    feeds: HashMap<String, Arc<Feed>>,
}

/// One account's poller and the streams it feeds.
pub(crate) struct Feed {
    pub account_id: String,
    pub state: Mutex<FeedState>,
    /// Cancelled when the account's last stream is gone: the poller ends.
    pub stop: CancellationToken,
}

pub(crate) struct FeedState {
    /// Where the poller has read to: every later event reaches the subscribers.
    pub cursor: EventPosition,
    next_id: u64,
    pub subscribers: HashMap<u64, Subscriber>,
}

pub(crate) struct Subscriber {
    pub tx: mpsc::Sender<Batch>,
    pub holder: Holder,
}

/// A stream counted against the caps, until dropped.
pub struct Slot {
    inner: Arc<Mutex<Inner>>,
    key_id: String,
}

/// A stream's place in its account's feed, until dropped.
pub(crate) struct Subscription {
    inner: Arc<Mutex<Inner>>,
    feed: Arc<Feed>,
    id: u64,
}

impl Hub {
    /// A hub whose streams may have `queue` batches waiting.
    pub fn with_queue(queue: usize) -> Hub {
        Hub {
            inner: Arc::default(),
            queue: queue.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("the watch hub lock")
    }

    /// Counts a new stream of `key_id`, or refuses it over either cap.
    pub fn open(
        &self,
        key_id: &str,
        max_total: usize,
        max_per_key: usize,
    ) -> Result<Slot, ApiError> {
        let mut inner = self.lock();
        let of_key = inner.per_key.get(key_id).copied().unwrap_or(0);
        if of_key >= max_per_key {
            return Err(ApiError::TooManyWatchStreams {
                limit: max_per_key,
                per_key: true,
            });
        }
        if inner.total >= max_total {
            return Err(ApiError::TooManyWatchStreams {
                limit: max_total,
                per_key: false,
            });
        }
        inner.total += 1;
        *inner.per_key.entry(key_id.to_string()).or_default() += 1;
        metrics::gauge!("cloudphone_watch_streams").set(inner.total as f64);
        Ok(Slot {
            inner: self.inner.clone(),
            key_id: key_id.to_string(),
        })
    }

    /// Joins `account_id`'s feed, starting its poller at `tail` if it has none; returns the
    /// subscription, the queue the poller fills, and the feed's cursor at joining: every event
    /// after it comes through the queue, none before.
    pub(crate) fn subscribe(
        &self,
        store: &Arc<dyn Store>,
        closing: &CancellationToken,
        account_id: &str,
        holder: Holder,
        tail: EventPosition,
    ) -> (Subscription, mpsc::Receiver<Batch>, EventPosition) {
        let mut inner = self.lock();
        let feed = match inner.feeds.get(account_id) {
            Some(feed) => feed.clone(),
            None => {
                let feed = Arc::new(Feed::new(account_id, tail));
                inner.feeds.insert(account_id.to_string(), feed.clone());
                tokio::spawn(super::poller::run(
                    feed.clone(),
                    store.clone(),
                    closing.clone(),
                ));
                feed
            }
        };
        let (tx, rx) = mpsc::channel(self.queue);
        let (id, cursor) = {
            let mut state = feed.lock();
            (state.add(Subscriber { tx, holder }), state.cursor)
        };
        drop(inner);
        (
            Subscription {
                inner: self.inner.clone(),
                feed,
                id,
            },
            rx,
            cursor,
        )
    }

    /// Whether `account_id` has a feed running.
    pub(crate) fn has_feed(&self, account_id: &str) -> bool {
        self.lock().feeds.contains_key(account_id)
    }
}

impl Feed {
    pub fn new(account_id: &str, cursor: EventPosition) -> Feed {
        Feed {
            account_id: account_id.to_string(),
            state: Mutex::new(FeedState {
                cursor,
                next_id: 0,
                subscribers: HashMap::new(),
            }),
            stop: CancellationToken::new(),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().expect("a watch feed's lock")
    }
}

impl FeedState {
    /// Adds a subscriber; returns its id.
    pub fn add(&mut self, subscriber: Subscriber) -> u64 {
        self.next_id += 1;
        self.subscribers.insert(self.next_id, subscriber);
        self.next_id
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.inner.lock().expect("the watch hub lock");
        inner.total -= 1;
        if let Some(n) = inner.per_key.get_mut(&self.key_id) {
            *n -= 1;
            if *n == 0 {
                inner.per_key.remove(&self.key_id);
            }
        }
        metrics::gauge!("cloudphone_watch_streams").set(inner.total as f64);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut inner = self.inner.lock().expect("the watch hub lock");
        let empty = {
            let mut state = self.feed.lock();
            state.subscribers.remove(&self.id);
            state.subscribers.is_empty()
        };
        // The last stream of the account: its poller stops (a newer feed of the account, made
        // after this one was dropped from the map, is not this one's to remove).
        if empty {
            self.feed.stop.cancel();
            if inner
                .feeds
                .get(&self.feed.account_id)
                .is_some_and(|f| Arc::ptr_eq(f, &self.feed))
            {
                inner.feeds.remove(&self.feed.account_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_capped_per_key_and_in_all() {
        let hub = Hub::default();
        let a1 = hub.open("key-a", 3, 2).unwrap();
        let _a2 = hub.open("key-a", 3, 2).unwrap();
        let e = hub.open("key-a", 3, 2).err().unwrap();
        assert_eq!(e.code(), "Throttling.WatchStreams");
        assert_eq!(e.http_status(), 429);
        let _b1 = hub.open("key-b", 3, 2).unwrap();
        let e = hub.open("key-c", 3, 2).err().unwrap();
        assert_eq!(
            e,
            ApiError::TooManyWatchStreams {
                limit: 3,
                per_key: false
            }
        );
        drop(a1);
        assert!(hub.open("key-c", 3, 2).is_ok());
    }
}
