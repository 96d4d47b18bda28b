//! What a connection holds, as its owner can read it through [`ConnectionHandle`]: the
//! streams counted against `Config::max_streams` and the payload bytes counted against
//! `Config::max_buffered_bytes`, each now and at its highest. The byte budget itself is a
//! semaphore of bytes ([`Budget`]): a stream takes bytes from it before it copies what its
//! service writes, and gives them back once the socket writer has written them, so the
//! connection's buffers for the host never hold more than the budget whatever the host does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use super::ConnectionHandle;

/// A connection's budget of payload bytes.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    pub(crate) bytes: Arc<Semaphore>,
    pub(crate) total: usize,
}

impl Budget {
    pub(crate) fn new(total: usize) -> Budget {
        // Semaphore::MAX_PERMITS is usize::MAX >> 3: far above any budget that fits memory.
        let total = total.min(Semaphore::MAX_PERMITS);
        Budget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    fn in_use(&self) -> usize {
        self.total - self.bytes.available_permits()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Meters {
    streams: AtomicUsize,
    peak_streams: AtomicUsize,
    peak_buffered: AtomicUsize,
    budget: OnceLock<Budget>,
}

impl Meters {
    /// The connection's budget, made on first use (a handle serves one connection).
    pub(crate) fn budget(&self, total: usize) -> Budget {
        self.budget.get_or_init(|| Budget::new(total)).clone()
    }

    pub(crate) fn stream_added(&self) {
        let now = self.streams.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak_streams.fetch_max(now, Ordering::AcqRel);
    }

    pub(crate) fn stream_removed(&self) {
        self.streams.fetch_sub(1, Ordering::AcqRel);
    }

    /// Called after bytes were taken from the budget.
    pub(crate) fn budget_taken(&self) {
        if let Some(b) = self.budget.get() {
            self.peak_buffered.fetch_max(b.in_use(), Ordering::AcqRel);
        }
    }
}

impl ConnectionHandle {
    /// Streams the connection holds now: being opened (the device's `open` running or
    /// waiting for its turn), open, or closed by one side while its service still runs. At
    /// most `Config::max_streams`.
    pub fn open_streams(&self) -> usize {
        self.0.meters.streams.load(Ordering::Acquire)
    }

    /// The most [`ConnectionHandle::open_streams`] has been.
    pub fn peak_open_streams(&self) -> usize {
        self.0.meters.peak_streams.load(Ordering::Acquire)
    }

    /// Payload bytes held for the host now, all streams together: WRTEs queued for the
    /// socket and what streams gathered while their last WRTE awaits its OKAY. At most
    /// `Config::max_buffered_bytes` (raised to the payload limit if set below it).
    pub fn buffered_bytes(&self) -> usize {
        self.0.meters.budget.get().map_or(0, Budget::in_use)
    }

    /// The most [`ConnectionHandle::buffered_bytes`] has been.
    pub fn peak_buffered_bytes(&self) -> usize {
        self.0.meters.peak_buffered.load(Ordering::Acquire)
    }
}
