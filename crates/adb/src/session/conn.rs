//! What a connection's reader, writer and streams share: the outbox of messages to the host
//! and the table of streams with each stream's flow-control state.
//!
//! The outbox is unbounded in messages but bounded in bytes: a WRTE's payload carries bytes of
//! the connection's budget ([`super::meters::Budget`]), given back once the writer wrote it,
//! and a stream queues at most one WRTE at a time besides one OKAY and one CLSE, so streams
//! never wait on each other for room in the queue, only for bytes. The reader, whose messages
//! the host could provoke without limit (refused OPENs), waits for the queue to drain.
//!
//! A stream stays in the table, and counts against `max_streams`, until its service task has
//! ended and its stream halves are gone, whoever closed it first: a host that closes a stream
//! it just opened does not free its place before the work it started has stopped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::ConnectionHandle;
use super::meters::Budget;
use crate::proto::packet::{Command, Packet, VERSION_MIN};

/// How many queued messages make the reader wait before it reads more.
pub(crate) const READER_HIGH_WATER: usize = 256;

/// A message for the host, with the budget its payload holds until it is written.
pub(crate) struct Outgoing {
    pub(crate) packet: Packet,
    pub(crate) _charge: Option<OwnedSemaphorePermit>,
}

pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
    queued: AtomicUsize,
    drained: Notify,
}

impl Outbox {
    pub(crate) fn new() -> (Outbox, mpsc::UnboundedReceiver<Outgoing>) {
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
        self.send_charged(packet, None);
    }

    pub(crate) fn send_charged(&self, packet: Packet, charge: Option<OwnedSemaphorePermit>) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        let out = Outgoing {
            packet,
            _charge: charge,
        };
        if self.tx.send(out).is_err() {
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

/// Bytes a service wrote while its last WRTE awaited the host's OKAY: the next WRTE. Its
/// capacity is exactly the budget it holds.
pub(crate) struct Pending {
    pub(crate) data: Vec<u8>,
    pub(crate) charge: OwnedSemaphorePermit,
}

/// One stream's state, shared by the reader (which sees the host's OKAY and CLSE), the
/// stream's halves and its service task.
pub(crate) struct StreamShared {
    pub(crate) local: u32,
    pub(crate) remote: u32,
    /// Cancelled when the host closes the stream or the connection ends: a device `open`
    /// still running for it is dropped then.
    pub(crate) host_gone: CancellationToken,
    state: Mutex<StreamState>,
}

#[derive(Default)]
pub(crate) struct StreamState {
    /// A WRTE of ours awaits the host's OKAY (an OPEN leaves none: it counts as an OKAY).
    pub(crate) in_flight: bool,
    /// Written while `in_flight`; sent when the OKAY comes. Never set without `in_flight`.
    pub(crate) pending: Option<Pending>,
    pub(crate) host_closed: bool,
    pub(crate) local_closed: bool,
    /// The halves were dropped with `pending` unsent: send it on the OKAY, then CLSE.
    close_when_sent: bool,
    /// The service task and the stream halves (as one): the entry leaves the table when
    /// neither is left and nothing waits to be sent.
    holders: u8,
    pub(crate) write_waker: Option<Waker>,
}

impl StreamState {
    pub(crate) fn is_open(&self) -> bool {
        !self.host_closed && !self.local_closed && !self.close_when_sent
    }

    fn wake_writer(&mut self) {
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }

    fn removable(&self) -> bool {
        self.holders == 0 && !(self.close_when_sent && self.pending.is_some())
    }
}

impl StreamShared {
    fn new(local: u32, remote: u32) -> StreamShared {
        StreamShared {
            local,
            remote,
            host_gone: CancellationToken::new(),
            state: Mutex::new(StreamState {
                holders: 1,
                ..StreamState::default()
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, StreamState> {
        // No code panics while holding it; a poisoned lock still holds consistent flags.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wrte(&self, data: Vec<u8>) -> Packet {
        Packet::new(Command::Wrte, self.local, self.remote, data)
    }

    fn clse(&self) -> Packet {
        Packet::new(Command::Clse, self.local, self.remote, Vec::new())
    }
}

pub(crate) struct Entry {
    pub(crate) shared: Arc<StreamShared>,
    /// Where the host's WRTE payloads go; room for one, as the host may have one in flight.
    /// Taken when the host closes the stream, so that the service reads end of file.
    pub(crate) incoming: Option<mpsc::Sender<Vec<u8>>>,
}

#[derive(Default)]
pub(crate) struct Table {
    pub(crate) map: HashMap<u32, Entry>,
    /// Ids only grow (wrapping after 2^32 - 1), so a late message for a closed stream never
    /// reaches a new one.
    last_id: u32,
}

impl Table {
    fn allocate(&mut self) -> u32 {
        loop {
            self.last_id = self.last_id.wrapping_add(1);
            if self.last_id != 0 && !self.map.contains_key(&self.last_id) {
                return self.last_id;
            }
        }
    }
}

/// What the host did wrong with an OKAY.
pub(crate) struct UnexpectedOkay(pub(crate) u32);

/// The connection's shared state.
pub(crate) struct Conn {
    pub(crate) outbox: Outbox,
    table: Mutex<Table>,
    /// The negotiated version (checksums) and payload limit (WRTE size).
    pub(crate) version: AtomicU32,
    pub(crate) max_payload: AtomicU32,
    pub(crate) budget: Budget,
    /// Turns for the device's `open`, so that a host cannot have more than a few running.
    pub(crate) opening: Arc<Semaphore>,
    pub(crate) handle: ConnectionHandle,
}

impl Conn {
    pub(crate) fn new(
        max_payload: u32,
        budget: usize,
        max_opening: usize,
        handle: ConnectionHandle,
    ) -> (Arc<Conn>, mpsc::UnboundedReceiver<Outgoing>) {
        let (outbox, rx) = Outbox::new();
        // A stream must be able to gather one whole payload.
        let budget = handle.0.meters.budget(budget.max(max_payload as usize));
        (
            Arc::new(Conn {
                outbox,
                table: Mutex::new(Table::default()),
                version: AtomicU32::new(VERSION_MIN),
                max_payload: AtomicU32::new(max_payload),
                budget,
                opening: Arc::new(Semaphore::new(max_opening.max(1))),
                handle,
            }),
            rx,
        )
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn max_payload(&self) -> usize {
        self.max_payload.load(Ordering::Relaxed) as usize
    }

    /// A new stream for the host's `remote`, unless `max_streams` are held already.
    pub(crate) fn add_stream(
        &self,
        remote: u32,
        max_streams: usize,
    ) -> Option<(Arc<StreamShared>, mpsc::Receiver<Vec<u8>>)> {
        let mut table = self.table();
        if table.map.len() >= max_streams {
            return None;
        }
        let local = table.allocate();
        let shared = Arc::new(StreamShared::new(local, remote));
        let (tx, rx) = mpsc::channel(1);
        table.map.insert(
            local,
            Entry {
                shared: shared.clone(),
                incoming: Some(tx),
            },
        );
        self.handle.0.meters.stream_added();
        Some((shared, rx))
    }

    fn remove(&self, local: u32) {
        if self.table().map.remove(&local).is_some() {
            self.handle.0.meters.stream_removed();
        }
    }

    /// The stream `local` if the host's `remote` names it (0 matches any).
    fn find(&self, local: u32, remote: u32) -> Option<Arc<StreamShared>> {
        let table = self.table();
        let e = table.map.get(&local)?;
        (remote == 0 || e.shared.remote == remote).then(|| e.shared.clone())
    }

    /// Where the host's WRTE for `local` goes; `None` for no such stream or a closed one (the
    /// WRTE is ignored, as protocol.txt says).
    pub(crate) fn incoming(&self, local: u32, remote: u32) -> Option<mpsc::Sender<Vec<u8>>> {
        let table = self.table();
        let e = table
            .map
            .get(&local)
            .filter(|e| e.shared.remote == remote)?;
        if !e.shared.lock().is_open() {
            return None;
        }
        e.incoming.clone()
    }

    /// Queues a WRTE of `data` on `shared`, holding `charge` (its capacity) until written.
    pub(crate) fn send_wrte(
        &self,
        shared: &StreamShared,
        data: Vec<u8>,
        charge: OwnedSemaphorePermit,
    ) {
        debug_assert_eq!(data.capacity(), charge.num_permits());
        self.outbox.send_charged(shared.wrte(data), Some(charge));
    }

    /// The stream halves were made: they hold the stream too.
    pub(crate) fn halves_made(&self, shared: &StreamShared) {
        shared.lock().holders += 1;
    }

    /// The host's OKAY for our WRTE on `local`: the next WRTE (what was gathered meanwhile)
    /// leaves, or the writer may write again. An OKAY for a stream with no WRTE of ours in
    /// flight breaks the protocol: accepted, it would let a host have a stream queue without
    /// reading anything.
    pub(crate) fn on_okay(&self, local: u32, remote: u32) -> Result<(), UnexpectedOkay> {
        let Some(shared) = self.find(local, remote).filter(|_| remote != 0) else {
            return Ok(());
        };
        let remove = {
            let mut st = shared.lock();
            if st.host_closed || st.local_closed {
                // Our CLSE may have crossed the host's OKAY.
                return Ok(());
            }
            if !st.in_flight {
                return Err(UnexpectedOkay(local));
            }
            match st.pending.take() {
                Some(p) => {
                    self.outbox
                        .send_charged(shared.wrte(p.data), Some(p.charge));
                    if st.close_when_sent {
                        st.local_closed = true;
                        self.outbox.send(shared.clse());
                    }
                }
                None => st.in_flight = false,
            }
            st.wake_writer();
            st.removable()
        };
        if remove {
            self.remove(local);
        }
        Ok(())
    }

    /// The host's CLSE: the service sees end of file and failed writes, a running `open` is
    /// dropped, and what was gathered for the host is let go.
    pub(crate) fn on_host_close(&self, local: u32, remote: u32) -> bool {
        let (shared, incoming) = {
            let mut table = self.table();
            let Some(e) = table
                .map
                .get_mut(&local)
                .filter(|e| remote == 0 || e.shared.remote == remote)
            else {
                return false;
            };
            (e.shared.clone(), e.incoming.take())
        };
        drop(incoming);
        shared.host_gone.cancel();
        let remove = {
            let mut st = shared.lock();
            st.host_closed = true;
            st.pending = None;
            st.wake_writer();
            st.removable()
        };
        if remove {
            self.remove(local);
        }
        true
    }

    /// Our side closes a stream (the service's `shutdown`): CLSE unless either side already
    /// closed it. A late WRTE or OKAY for it is then ignored, as protocol.txt says.
    pub(crate) fn close_stream(&self, shared: &StreamShared) {
        let mut st = shared.lock();
        if st.host_closed || st.local_closed {
            return;
        }
        st.local_closed = true;
        st.close_when_sent = false;
        st.pending = None;
        st.wake_writer();
        self.outbox.send(shared.clse());
    }

    /// Both stream halves were dropped: the stream closes, after what the service wrote and
    /// the host has not been sent yet (the OKAY it waits for sends it, then CLSE).
    pub(crate) fn halves_dropped(&self, shared: &StreamShared) {
        let remove = {
            let mut st = shared.lock();
            st.holders -= 1;
            if st.is_open() {
                if st.pending.is_some() {
                    st.close_when_sent = true;
                } else {
                    st.local_closed = true;
                    self.outbox.send(shared.clse());
                }
            }
            st.removable()
        };
        if remove {
            self.remove(shared.local);
        }
    }

    /// The stream's service task ended (or was never started past the device's `open`).
    pub(crate) fn task_ended(&self, shared: &StreamShared) {
        let remove = {
            let mut st = shared.lock();
            st.holders -= 1;
            st.removable()
        };
        if remove {
            self.remove(shared.local);
        }
    }

    /// The connection ends: every stream sees end of file and fails its writes.
    pub(crate) fn shut(&self) {
        let entries: Vec<Entry> = self.table().map.drain().map(|(_, e)| e).collect();
        for e in entries {
            self.handle.0.meters.stream_removed();
            e.shared.host_gone.cancel();
            let mut st = e.shared.lock();
            st.host_closed = true;
            st.pending = None;
            st.wake_writer();
        }
    }
}
