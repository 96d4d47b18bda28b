//! The connection's writer: the outbox to the socket, messages queued together leaving in one
//! write, each WRTE's bytes given back to the budget once written. A host that stops reading
//! while messages wait is dropped after `Config::write_stall_timeout` without progress: its
//! streams would otherwise hold their budget, and the tasks behind them, for as long as the
//! host likes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::conn::{Conn, Outgoing};
use super::{ConnectionHandle, SessionError};
use crate::proto::packet::HEADER_LEN;

/// What the writer gathers before a write to the socket; a larger payload goes out directly.
const WRITE_BUFFER: usize = 16 * 1024;

pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    wr: W,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    conn: &Conn,
    handle: &ConnectionHandle,
    stall: Duration,
) -> Result<(), SessionError> {
    let started = Instant::now();
    let progress = Arc::new(AtomicU64::new(0));
    let w = BufWriter::with_capacity(
        WRITE_BUFFER,
        Progress {
            inner: wr,
            started,
            last: progress.clone(),
        },
    );
    tokio::pin!(w);
    let watch = Watch {
        started,
        last: &progress,
        stall,
    };
    while let Some(out) = outgoing.recv().await {
        let p = &out.packet;
        let header = p.header(conn.version.load(Ordering::Relaxed)).encode();
        watch.run(w.write_all(&header)).await??;
        watch.run(w.write_all(&p.payload)).await??;
        handle.add_out(HEADER_LEN + p.payload.len());
        conn.outbox.written();
        // Its bytes are the socket's now: back to the budget.
        drop(out);
        // Messages queued together leave in one write; the last one is not held back.
        if outgoing.is_empty() {
            watch.run(w.flush()).await??;
        }
    }
    Ok(())
}

/// Times writes by their progress: one that moves no byte for `stall` fails, however long a
/// slow but moving one takes.
struct Watch<'a> {
    started: Instant,
    last: &'a AtomicU64,
    stall: Duration,
}

impl Watch<'_> {
    async fn run<F: Future>(&self, f: F) -> Result<F::Output, SessionError> {
        tokio::pin!(f);
        let began = Instant::now();
        loop {
            let moved = self.started + Duration::from_micros(self.last.load(Ordering::Acquire));
            let deadline = moved.max(began) + self.stall;
            tokio::select! {
                r = &mut f => return Ok(r),
                () = sleep_until(deadline) => {
                    let moved =
                        self.started + Duration::from_micros(self.last.load(Ordering::Acquire));
                    if moved.max(began) + self.stall <= Instant::now() {
                        return Err(SessionError::Stalled(self.stall));
                    }
                }
            }
        }
    }
}

/// The socket, noting when it last took bytes.
struct Progress<W> {
    inner: W,
    started: Instant,
    last: Arc<AtomicU64>,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Progress<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r
            && *n > 0
        {
            let at = this.started.elapsed().as_micros() as u64;
            this.last.store(at, Ordering::Release);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
