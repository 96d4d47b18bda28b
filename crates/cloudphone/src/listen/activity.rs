//! What one connection is doing, for its deadlines: requests in flight (a busy connection has
//! no deadline of its own: its body and its writes have theirs), when it last became idle, and
//! when the head of its next request began to arrive. The connection's task sleeps until
//! [`Activity::deadline`] and is woken by every change.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::admission::Table;

/// The deadlines of an idle connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadlines {
    /// From accept to the end of the first request's head; from the first byte to the end of
    /// any later request's head.
    pub header: Duration,
    /// A kept-alive connection waiting for its next request.
    pub idle: Duration,
}

pub(crate) struct Activity {
    table: Arc<Table>,
    id: u64,
    state: Mutex<State>,
    changed: Notify,
}

struct State {
    in_flight: usize,
    /// Requests answered so far.
    served: u64,
    /// Accepted, or the end of the last response.
    idle_since: Instant,
    /// The first byte read since the connection became idle: a request head is arriving.
    head_started: Option<Instant>,
}

/// Why an idle connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    Header,
    Idle,
}

impl Expiry {
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::Header => "header",
            Expiry::Idle => "idle",
        }
    }
}

impl Activity {
    pub fn new(table: Arc<Table>, id: u64) -> Arc<Activity> {
        Arc::new(Activity {
            table,
            id,
            state: Mutex::new(State {
                in_flight: 0,
                served: 0,
                idle_since: Instant::now(),
                head_started: None,
            }),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("a connection's activity lock")
    }

    /// Bytes arrived: if idle, a request head has begun.
    pub fn read_some(&self) {
        let mut s = self.state();
        if s.in_flight == 0 && s.head_started.is_none() {
            s.head_started = Some(Instant::now());
            drop(s);
            self.changed.notify_one();
        }
    }

    /// A request is in flight until the guard (held by its response body) is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        let first = {
            let mut s = self.state();
            s.in_flight += 1;
            s.in_flight == 1
        };
        if first {
            self.table.busy(self.id);
            self.changed.notify_one();
        }
        Busy(self.clone())
    }

    /// When the idle connection must have made progress, and what it would be closed for;
    /// `None` while a request is in flight.
    pub fn deadline(&self, d: Deadlines) -> Option<(Instant, Expiry)> {
        let s = self.state();
        if s.in_flight > 0 {
            return None;
        }
        Some(match (s.served, s.head_started) {
            (0, _) => (s.idle_since + d.header, Expiry::Header),
            (_, Some(started)) => (started + d.header, Expiry::Header),
            (_, None) => (s.idle_since + d.idle, Expiry::Idle),
        })
    }

    /// Resolves at the next change of state.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

/// A request in flight (see [`Activity::busy`]).
pub(crate) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        let last = {
            let mut s = activity.state();
            s.in_flight -= 1;
            if s.in_flight == 0 {
                s.served += 1;
                s.idle_since = Instant::now();
                s.head_started = None;
                true
            } else {
                false
            }
        };
        if last {
            activity.table.idle(activity.id);
            activity.changed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_the_connection() {
        let table = Arc::new(Table::new(10, 0));
        let admitted = table.admit([127, 0, 0, 1].into()).unwrap();
        let a = Activity::new(table, admitted.id);
        let d = Deadlines {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        };
        let accepted = a.state().idle_since;
        // A new connection: its first head is due within the header timeout of its accept,
        // however late its first byte came.
        std::thread::sleep(Duration::from_millis(5));
        a.read_some();
        assert_eq!(a.deadline(d), Some((accepted + d.header, Expiry::Header)));
        let busy = a.busy();
        assert_eq!(a.deadline(d), None);
        drop(busy);
        let answered = a.state().idle_since;
        assert!(answered > accepted);
        assert_eq!(a.deadline(d), Some((answered + d.idle, Expiry::Idle)));
        // The next head began: it has the header timeout from its first byte.
        std::thread::sleep(Duration::from_millis(5));
        a.read_some();
        let started = a.state().head_started.unwrap();
        assert!(started > answered);
        assert_eq!(a.deadline(d), Some((started + d.header, Expiry::Header)));
    }
}
