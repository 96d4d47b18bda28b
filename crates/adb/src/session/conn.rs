//! What a connection's reader, writer and streams share: the outbox of messages to the host
//! and the table of open streams with each stream's flow-control state.
//!
//! The outbox is unbounded on purpose, and bounded by the protocol instead: a stream queues at
//! most one WRTE (the next waits for the host's OKAY, which the host sends only after the
//! writer delivered the first), one OKAY (the host cannot WRTE again before receiving it) and
//! one CLSE, so streams never wait on each other for room. Only the reader, whose messages
//! the host could provoke without limit (refused OPENs), waits for the queue to drain.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use tokio::sync::{Notify, mpsc};

use crate::proto::packet::{Command, Packet, VERSION_MIN};

/// How many queued messages make the reader wait before it reads more.
pub(crate) const READER_HIGH_WATER: usize = 256;

pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Packet>,
    queued: AtomicUsize,
    drained: Notify,
}

impl Outbox {
    pub(crate) fn new() -> (Outbox, mpsc::UnboundedReceiver<Packet>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Outbox {
                tx,
                queued: AtomicUsize::new(0),
                drained: Notify::new(),
            },
            rx,
        )
    }

    pub(crate) fn send(&self, packet: Packet) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(packet).is_err() {
            // The writer is gone: the connection is ending and nobody will read this.
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Called by the writer for each message it wrote.
    pub(crate) fn written(&self) {
        let left = self.queued.fetch_sub(1, Ordering::AcqRel) - 1;
        if left <= READER_HIGH_WATER / 2 {
            self.drained.notify_waiters();
        }
    }

    /// Waits until at most `READER_HIGH_WATER` messages are queued.
    pub(crate) async fn wait_for_room(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.queued.load(Ordering::Acquire) <= READER_HIGH_WATER {
                return;
            }
            drained.await;
        }
    }
}

/// One stream's flow-control state, shared by the reader (which sees the host's OKAY and
/// CLSE) and the stream's writer half.
pub(crate) struct StreamShared {
    pub(crate) local: u32,
    pub(crate) remote: u32,
    state: Mutex<StreamState>,
}

#[derive(Default)]
pub(crate) struct StreamState {
    /// Whether the host acknowledged our last WRTE (an OPEN counts as a first OKAY).
    pub(crate) can_write: bool,
    pub(crate) host_closed: bool,
    pub(crate) local_closed: bool,
    pub(crate) write_waker: Option<Waker>,
}

impl StreamShared {
    pub(crate) fn new(local: u32, remote: u32) -> StreamShared {
        StreamShared {
            local,
            remote,
            state: Mutex::new(StreamState {
                can_write: true,
                ..StreamState::default()
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, StreamState> {
        // No code panics while holding it; a poisoned lock still holds consistent flags.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn on_okay(&self) {
        let mut st = self.lock();
        st.can_write = true;
        if let Some(w) = st.write_waker.take() {
            w.wake();
        }
    }

    pub(crate) fn on_host_close(&self) {
        let mut st = self.lock();
        st.host_closed = true;
        if let Some(w) = st.write_waker.take() {
            w.wake();
        }
    }
}

pub(crate) struct Entry {
    pub(crate) shared: Arc<StreamShared>,
    /// Where the host's WRTE payloads go; room for one, as the host may have one in flight.
    pub(crate) incoming: mpsc::Sender<Vec<u8>>,
}

#[derive(Default)]
pub(crate) struct Table {
    pub(crate) map: HashMap<u32, Entry>,
    /// Ids only grow (wrapping after 2^32 - 1), so a late message for a closed stream never
    /// reaches a new one.
    last_id: u32,
}

impl Table {
    pub(crate) fn allocate(&mut self) -> u32 {
        loop {
            self.last_id = self.last_id.wrapping_add(1);
            if self.last_id != 0 && !self.map.contains_key(&self.last_id) {
                return self.last_id;
            }
        }
    }
}

/// The connection's shared state.
pub(crate) struct Conn {
    pub(crate) outbox: Outbox,
    table: Mutex<Table>,
    /// The negotiated version (checksums) and payload limit (WRTE size).
    pub(crate) version: AtomicU32,
    pub(crate) max_payload: AtomicU32,
}

impl Conn {
    pub(crate) fn new(max_payload: u32) -> (Arc<Conn>, mpsc::UnboundedReceiver<Packet>) {
        let (outbox, rx) = Outbox::new();
        (
            Arc::new(Conn {
                outbox,
                table: Mutex::new(Table::default()),
                version: AtomicU32::new(VERSION_MIN),
                max_payload: AtomicU32::new(max_payload),
            }),
            rx,
        )
    }

    pub(crate) fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn max_payload(&self) -> usize {
        self.max_payload.load(Ordering::Relaxed) as usize
    }

    /// Our side closes a stream: CLSE unless either side already closed it, and the id leaves
    /// the table (a late WRTE or OKAY for it is then ignored, as protocol.txt says).
    pub(crate) fn close_stream(&self, shared: &StreamShared) {
        let send = {
            let mut st = shared.lock();
            let send = !st.host_closed && !st.local_closed;
            st.local_closed = true;
            if let Some(w) = st.write_waker.take() {
                w.wake();
            }
            send
        };
        self.table().map.remove(&shared.local);
        if send {
            self.outbox.send(Packet::new(
                Command::Clse,
                shared.local,
                shared.remote,
                Vec::new(),
            ));
        }
    }

    /// The connection ends: every stream sees end of file and fails its writes.
    pub(crate) fn shut(&self) {
        let entries: Vec<Entry> = self.table().map.drain().map(|(_, e)| e).collect();
        for e in entries {
            e.shared.on_host_close();
        }
    }
}
