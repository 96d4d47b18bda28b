//! [`AdbStream`], one opened service's byte stream, as `AsyncRead` + `AsyncBufRead` +
//! `AsyncWrite`. The host's WRTEs arrive as chunks and each is acknowledged (OKAY) when the
//! service takes it, so a service that does not read holds the host back without holding up
//! any other stream. A write sends one WRTE of at most the negotiated payload and the next
//! write waits for the host's OKAY: adb 29 has no `delayed_ack`, so one WRTE in flight per
//! stream is all the protocol allows. `flush` waits for that OKAY; `shutdown` flushes, then
//! sends CLSE. Dropping both halves closes the stream too.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

use super::conn::{Conn, StreamShared};
use crate::proto::packet::{Command, Packet};

/// Closes the stream once both halves are gone.
struct End {
    conn: Arc<Conn>,
    shared: Arc<StreamShared>,
}

impl Drop for End {
    fn drop(&mut self) {
        self.conn.close_stream(&self.shared);
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

/// The device-to-host half.
pub struct StreamWriter {
    end: Arc<End>,
}

impl AdbStream {
    pub(crate) fn new(
        conn: Arc<Conn>,
        shared: Arc<StreamShared>,
        incoming: mpsc::Receiver<Vec<u8>>,
    ) -> AdbStream {
        let end = Arc::new(End { conn, shared });
        AdbStream {
            reader: StreamReader {
                end: end.clone(),
                incoming,
                chunk: Vec::new(),
                pos: 0,
            },
            writer: StreamWriter { end },
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
}

impl StreamWriter {
    pub fn max_payload(&self) -> usize {
        self.end.conn.max_payload()
    }
}

impl StreamReader {
    /// Takes the next chunk when the current one is used up; `false` at end of stream.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        while self.pos >= self.chunk.len() {
            match ready!(self.incoming.poll_recv(cx)) {
                Some(chunk) => {
                    let shared = &self.end.shared;
                    let open = {
                        let st = shared.lock();
                        !st.host_closed && !st.local_closed
                    };
                    if open {
                        self.end.conn.outbox.send(Packet::new(
                            Command::Okay,
                            shared.local,
                            shared.remote,
                            Vec::new(),
                        ));
                    }
                    self.chunk = chunk;
                    self.pos = 0;
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

impl AsyncWrite for StreamWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let end = &self.end;
        {
            let mut st = end.shared.lock();
            if st.host_closed || st.local_closed {
                return Poll::Ready(Err(broken()));
            }
            if !st.can_write {
                st.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            st.can_write = false;
        }
        let n = buf.len().min(end.conn.max_payload());
        end.conn.outbox.send(Packet::new(
            Command::Wrte,
            end.shared.local,
            end.shared.remote,
            buf[..n].to_vec(),
        ));
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.end.shared.lock();
        if st.local_closed {
            return Poll::Ready(Ok(()));
        }
        if st.host_closed {
            return Poll::Ready(Err(broken()));
        }
        if !st.can_write {
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
