//! [`WriteBuffer`]: a WRTE's payload built in place by a service that produces a lot (a pull),
//! so that each WRTE is full without a buffer of the service's own: its bytes are taken from
//! the connection's budget before it is filled ([`StreamWriter::buffer`]), travel with it into
//! the queue ([`StreamWriter::send`], no copy) and go back to the budget once the socket has
//! them. A stream then holds at most the WRTE it is filling and the one in flight, both
//! counted.

use std::future::poll_fn;
use std::io;
use std::task::Poll;

use tokio::sync::OwnedSemaphorePermit;

use super::stream::{AdbStream, StreamWriter};

/// Room for one WRTE, taken from the connection's budget.
pub struct WriteBuffer {
    /// Zeroed to its capacity, which is exactly the budget `charge` holds.
    data: Vec<u8>,
    filled: usize,
    charge: OwnedSemaphorePermit,
}

impl WriteBuffer {
    /// What has been written into it.
    pub fn filled(&self) -> &[u8] {
        &self.data[..self.filled]
    }

    /// The room left, to write into and then [`WriteBuffer::advance`] over.
    pub fn unfilled(&mut self) -> &mut [u8] {
        &mut self.data[self.filled..]
    }

    /// Marks `n` more bytes of [`WriteBuffer::unfilled`] as written.
    ///
    /// # Panics
    /// Past the end of the room.
    pub fn advance(&mut self, n: usize) {
        assert!(
            n <= self.remaining(),
            "advanced past the end of a WriteBuffer"
        );
        self.filled += n;
    }

    /// Appends `bytes`, which must fit.
    ///
    /// # Panics
    /// When they do not fit.
    pub fn put(&mut self, bytes: &[u8]) {
        self.unfilled()[..bytes.len()].copy_from_slice(bytes);
        self.filled += bytes.len();
    }

    pub fn len(&self) -> usize {
        self.filled
    }

    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.filled
    }
}

impl StreamWriter {
    /// Room for one WRTE of up to `len` bytes (at most the negotiated payload), once the
    /// connection's budget has it: waits, as a write does, while other streams hold it.
    pub async fn buffer(&mut self, len: usize) -> io::Result<WriteBuffer> {
        let len = len.clamp(1, self.max_payload());
        let budget = self.conn().budget.bytes.clone();
        let charge = budget
            .acquire_many_owned(len as u32)
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        self.conn().handle.0.meters.budget_taken();
        Ok(WriteBuffer {
            data: vec![0; len],
            filled: 0,
            charge,
        })
    }

    /// Sends what `buf` holds as one WRTE, once the host has acknowledged the last one (and
    /// whatever was written before it has left); nothing for an empty buffer.
    pub async fn send(&mut self, buf: WriteBuffer) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut buf = Some(buf);
        poll_fn(|cx| {
            let shared = self.shared();
            let mut st = shared.lock();
            if !st.is_open() {
                return Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
            }
            if st.in_flight {
                st.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let WriteBuffer {
                mut data,
                filled,
                charge,
            } = buf.take().expect("sent once");
            // Capacity, and so the budget it holds, stays as it was.
            data.truncate(filled);
            st.in_flight = true;
            self.conn().send_wrte(shared, data, charge);
            Poll::Ready(Ok(()))
        })
        .await
    }
}

impl AdbStream {
    /// [`StreamWriter::buffer`].
    pub async fn buffer(&mut self, len: usize) -> io::Result<WriteBuffer> {
        self.writer_mut().buffer(len).await
    }

    /// [`StreamWriter::send`].
    pub async fn send(&mut self, buf: WriteBuffer) -> io::Result<()> {
        self.writer_mut().send(buf).await
    }
}
