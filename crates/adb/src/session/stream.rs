//! [`AdbStream`], one opened service's byte stream, as `AsyncRead` + `AsyncBufRead` +
//! `AsyncWrite`. The host's WRTEs arrive as chunks and each is acknowledged (OKAY) when the
//! service takes it, so a service that does not read holds the host back without holding up
//! any other stream.
//!
//! Writing: adb 29 has no `delayed_ack`, so one WRTE per stream may await the host's OKAY. A
//! write when none is in flight leaves at once as a WRTE; writes while one is in flight are
//! gathered into the next WRTE (up to the negotiated payload), which leaves when the OKAY
//! comes, so a stream keeps WRTEs full without a buffer of its own in the service. Every byte
//! queued or gathered is first taken from the connection's byte budget and given back once
//! written to the socket: a write waits for the budget as it waits for an OKAY. `flush` waits
//! until everything written was acknowledged; `shutdown` flushes, then sends CLSE. Dropping
//! both halves closes the stream too, after what was gathered has been sent.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, mpsc};
use tokio_util::sync::ReusableBoxFuture;

use super::conn::{Conn, Pending, StreamShared, StreamState};
use crate::proto::packet::{Command, Packet};

/// Closes the stream once both halves are gone.
struct End {
    conn: Arc<Conn>,
    shared: Arc<StreamShared>,
}

impl Drop for End {
    fn drop(&mut self) {
        self.conn.halves_dropped(&self.shared);
    }
}

/// A stream the host opened, handed to the service that answers it.
pub struct AdbStream {
    reader: StreamReader,
    writer: StreamWriter,
}

/// The host-to-device half.
pub struct StreamReader {
    end: Arc<End>,
    incoming: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

type Acquire = ReusableBoxFuture<'static, Result<OwnedSemaphorePermit, AcquireError>>;

/// The device-to-host half.
pub struct StreamWriter {
    end: Arc<End>,
    /// Waiting for this many bytes of the budget. Dropped whenever the write takes another
    /// turn, so that a waiter never sits on bytes it no longer needs.
    acquiring: Option<(usize, Acquire)>,
}

impl AdbStream {
    pub(crate) fn new(
        conn: Arc<Conn>,
        shared: Arc<StreamShared>,
        incoming: mpsc::Receiver<Vec<u8>>,
    ) -> AdbStream {
        conn.halves_made(&shared);
        let end = Arc::new(End { conn, shared });
        AdbStream {
            reader: StreamReader {
                end: end.clone(),
                incoming,
                chunk: Vec::new(),
                pos: 0,
            },
            writer: StreamWriter {
                end,
                acquiring: None,
            },
        }
    }

    /// The halves, for services that read and write at once.
    pub fn into_split(self) -> (StreamReader, StreamWriter) {
        (self.reader, self.writer)
    }

    /// The largest write that leaves as one WRTE.
    pub fn max_payload(&self) -> usize {
        self.writer.max_payload()
    }

    /// Our id for the stream (the host's is its peer id), for logs.
    pub fn id(&self) -> u32 {
        self.writer.end.shared.local
    }

    pub(super) fn writer_mut(&mut self) -> &mut StreamWriter {
        &mut self.writer
    }
}

impl StreamWriter {
    pub fn max_payload(&self) -> usize {
        self.end.conn.max_payload()
    }

    pub(super) fn conn(&self) -> &Conn {
        &self.end.conn
    }

    pub(super) fn shared(&self) -> &StreamShared {
        &self.end.shared
    }
}

impl StreamReader {
    /// Takes the next chunk when the current one is used up; `false` at end of stream.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        while self.pos >= self.chunk.len() {
            // The last chunk is used up: let its memory go before waiting for the next.
            self.chunk = Vec::new();
            self.pos = 0;
            match ready!(self.incoming.poll_recv(cx)) {
                Some(chunk) => {
                    let shared = &self.end.shared;
                    let st = shared.lock();
                    if st.is_open() {
                        self.end.conn.outbox.send(Packet::new(
                            Command::Okay,
                            shared.local,
                            shared.remote,
                            Vec::new(),
                        ));
                    }
                    drop(st);
                    self.chunk = chunk;
                }
                None => return Poll::Ready(false),
            }
        }
        Poll::Ready(true)
    }
}

impl AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !ready!(this.poll_chunk(cx)) {
            return Poll::Ready(Ok(()));
        }
        let n = buf.remaining().min(this.chunk.len() - this.pos);
        buf.put_slice(&this.chunk[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for StreamReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if !ready!(this.poll_chunk(cx)) {
            return Poll::Ready(Ok(&[]));
        }
        Poll::Ready(Ok(&this.chunk[this.pos..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.pos = (this.pos + amt).min(this.chunk.len());
    }
}

fn broken() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the adb stream is closed")
}

/// The capacity a gathered WRTE grows to for `want` bytes: doubling, so that many small
/// writes cost few copies, and never past the payload limit.
fn grown(cap: usize, want: usize, max: usize) -> usize {
    if want <= cap {
        return cap;
    }
    want.max(cap * 2).max(1024).min(max)
}

/// What one turn of a write decided.
enum Turn {
    Done(io::Result<usize>),
    /// Wait for the OKAY (the gathered WRTE is full).
    Okay,
    /// Take this many bytes of the budget first.
    Budget(usize),
}

impl StreamWriter {
    /// One turn of a write of `buf`, under the stream's lock, with `credit` already taken
    /// from the budget.
    fn turn(
        &self,
        st: &mut StreamState,
        buf: &[u8],
        credit: &mut Option<OwnedSemaphorePermit>,
    ) -> Turn {
        if !st.is_open() {
            return Turn::Done(Err(broken()));
        }
        let shared = &self.end.shared;
        let max = self.end.conn.max_payload();
        let (len, cap) = st
            .pending
            .as_ref()
            .map_or((0, 0), |p| (p.data.len(), p.data.capacity()));
        if st.in_flight && len >= max {
            return Turn::Okay;
        }
        let n = buf.len().min(max - len);
        let new_cap = grown(cap, len + n, max);
        let need = if st.in_flight { new_cap - cap } else { n };
        let have = credit.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
        if have < need {
            return Turn::Budget(need);
        }
        let charge = match (need, credit.as_mut()) {
            (0, _) | (_, None) => None,
            (need, Some(c)) => c.split(need),
        };
        if !st.in_flight {
            st.in_flight = true;
            let charge = charge.expect("a write takes budget for its bytes");
            self.end.conn.send_wrte(shared, buf[..n].to_vec(), charge);
            return Turn::Done(Ok(n));
        }
        match (&mut st.pending, charge) {
            (Some(p), charge) => {
                if let Some(more) = charge {
                    // Capacity is exactly what the budget gave: regrow by hand.
                    let mut data = Vec::with_capacity(new_cap);
                    data.extend_from_slice(&p.data);
                    p.data = data;
                    p.charge.merge(more);
                }
                p.data.extend_from_slice(&buf[..n]);
            }
            (slot @ None, Some(charge)) => {
                let mut data = Vec::with_capacity(new_cap);
                data.extend_from_slice(&buf[..n]);
                *slot = Some(Pending { data, charge });
            }
            // need > 0 whenever nothing is gathered yet.
            (None, None) => unreachable!("a first gathered byte always takes budget"),
        }
        Turn::Done(Ok(n))
    }
}

impl AsyncWrite for StreamWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        let mut credit: Option<OwnedSemaphorePermit> = None;
        loop {
            let turn = {
                let mut st = this.end.shared.lock();
                let turn = this.turn(&mut st, buf, &mut credit);
                if let Turn::Okay = turn {
                    st.write_waker = Some(cx.waker().clone());
                }
                turn
            };
            let need = match turn {
                Turn::Done(r) => {
                    this.acquiring = None;
                    return Poll::Ready(r);
                }
                Turn::Okay => {
                    this.acquiring = None;
                    return Poll::Pending;
                }
                Turn::Budget(need) => need,
            };
            // Not enough (the stream's state may have changed while we waited): let go of
            // what we hold and ask for all of it, so that no writer waits holding bytes.
            drop(credit.take());
            let budget = &this.end.conn.budget;
            if let Ok(p) = budget.bytes.clone().try_acquire_many_owned(need as u32) {
                this.acquiring = None;
                credit = Some(p);
            } else {
                let waiting = match &mut this.acquiring {
                    Some((n, fut)) if *n == need => fut,
                    slot => {
                        let fut = budget.bytes.clone().acquire_many_owned(need as u32);
                        &mut slot.insert((need, ReusableBoxFuture::new(fut))).1
                    }
                };
                let got = ready!(waiting.poll(cx));
                this.acquiring = None;
                match got {
                    Ok(p) => credit = Some(p),
                    Err(_) => return Poll::Ready(Err(broken())),
                }
            }
            this.end.conn.handle.0.meters.budget_taken();
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.end.shared.lock();
        if st.local_closed {
            return Poll::Ready(Ok(()));
        }
        if st.host_closed {
            return Poll::Ready(Err(broken()));
        }
        if st.in_flight {
            st.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A host that closed first has nothing left to wait for.
        let _ = ready!(self.as_mut().poll_flush(cx));
        self.end.conn.close_stream(&self.end.shared);
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for AdbStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().reader).poll_read(cx, buf)
    }
}

impl AsyncBufRead for AdbStream {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        Pin::new(&mut self.get_mut().reader).poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.get_mut().reader).consume(amt)
    }
}

impl AsyncWrite for AdbStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_shutdown(cx)
    }
}

/// Services hold streams across awaits and share them by reference: both must stay possible.
#[allow(dead_code)]
fn stream_is_send_and_sync(s: AdbStream) -> impl Send + Sync {
    s
}
