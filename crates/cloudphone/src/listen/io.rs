//! A connection's socket as the HTTP (and TLS) layers see it: reads tell the connection's
//! [`Activity`] that a request head has begun, and a write that makes no progress for the
//! stall timeout fails, so that a client that stopped reading (a download, a watch stream)
//! does not hold its connection forever. Writes that progress, however slowly, never fail:
//! a watch stream sending its keep-alives is not stalled.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::activity::Activity;

pub(crate) struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    stall: Duration,
    /// Armed while a write waits for the client to read.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>, stall: Duration) -> Watched<S> {
        Watched {
            inner,
            activity,
            stall,
            stalled: None,
        }
    }

    /// `Pending` from a write: arms the stall timer, or fails once it ran out.
    fn wait<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => {
                let stall = self.stall;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        metrics::counter!("cloudphone_connections_timed_out_total", "phase" => "write")
                            .increment(1);
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client has not read for the idle timeout",
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wait(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wait(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.wait(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listen::admission::Table;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn activity() -> Arc<Activity> {
        let table = Arc::new(Table::new(10, 0));
        let admitted = table.admit([127, 0, 0, 1].into()).unwrap();
        Activity::new(table, admitted.id)
    }

    #[tokio::test]
    async fn a_write_the_client_does_not_read_fails_after_the_stall_timeout() {
        let (server, _client) = tokio::io::duplex(64);
        let mut io = Watched::new(server, activity(), Duration::from_millis(100));
        let started = std::time::Instant::now();
        let mut failed = None;
        for _ in 0..100 {
            if let Err(e) = io.write_all(&[0; 64]).await {
                failed = Some(e);
                break;
            }
        }
        let e = failed.expect("the write stalled for good");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_slow_reader_is_not_a_stalled_one() {
        let (server, mut client) = tokio::io::duplex(64);
        let mut io = Watched::new(server, activity(), Duration::from_millis(100));
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0; 32];
            while got < 64 * 10 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                got += client.read(&mut buf).await.unwrap();
            }
        });
        // Ten buffers, read over about 400 ms, each write waiting less than the timeout.
        for _ in 0..10 {
            io.write_all(&[0; 64]).await.unwrap();
        }
        reader.await.unwrap();
    }
}
