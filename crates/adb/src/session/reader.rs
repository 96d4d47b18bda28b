//! The connection's reader once the host is online: each message read (its length checked
//! before anything is allocated) and dispatched. An OPEN becomes a stream and a task of its
//! own, which waits for a turn at the device's `open` (a few at once per connection), then
//! runs the service; OKAY, WRTE and CLSE go to their stream.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::conn::{Conn, StreamShared};
use super::{AdbStream, Config, ConnectionHandle, Device, End, SessionError};
use crate::proto::handshake::HandshakeError;
use crate::proto::packet::{Command, HEADER_LEN, Header, Packet, verify_checksum, version_for};

/// Reads one message; `None` when the host closed the connection between messages. The
/// length is checked against `max_payload` before the payload is read or allocated.
pub(super) async fn read_packet<R: AsyncRead + Unpin>(
    r: &mut R,
    max_payload: u32,
    negotiated: Option<u32>,
    handle: &ConnectionHandle,
) -> Result<Option<Packet>, SessionError> {
    let mut head = [0u8; HEADER_LEN];
    let first = r.read(&mut head).await?;
    if first == 0 {
        return Ok(None);
    }
    r.read_exact(&mut head[first..]).await?;
    handle.add_in(HEADER_LEN);
    let header = Header::parse(&head, max_payload)?;
    let mut payload = vec![0u8; header.data_length as usize];
    r.read_exact(&mut payload).await?;
    handle.add_in(payload.len());
    verify_checksum(&header, &payload, version_for(&header, negotiated))?;
    Ok(Some(Packet::new(
        header.command,
        header.arg0,
        header.arg1,
        payload,
    )))
}

/// What the reader needs once online.
pub(super) struct Online<'a, D> {
    pub(super) config: &'a Config,
    pub(super) device: &'a Arc<D>,
    pub(super) conn: &'a Arc<Conn>,
    pub(super) handle: &'a ConnectionHandle,
    pub(super) max_payload: u32,
    pub(super) version: u32,
}

/// Reads and dispatches messages until the host leaves or breaks the protocol.
pub(super) async fn streams<R, D>(
    r: &mut R,
    online: Online<'_, D>,
    tasks: &mut JoinSet<()>,
    streams_opened: &mut u64,
) -> Result<End, SessionError>
where
    R: AsyncRead + Unpin,
    D: Device,
{
    let Online {
        config,
        device,
        conn,
        handle,
        max_payload,
        version,
    } = online;
    loop {
        while tasks.try_join_next().is_some() {}
        conn.outbox.wait_for_room().await;
        let Some(p) = read_packet(r, max_payload, Some(version), handle).await? else {
            return Ok(End::HostClosed);
        };
        match p.command {
            Command::Open => {
                if on_open(p, config, device, conn, tasks) {
                    *streams_opened += 1;
                }
            }
            Command::Okay => {
                if p.arg0 != 0 && p.arg1 != 0 {
                    conn.on_okay(p.arg1, p.arg0)
                        .map_err(|e| SessionError::UnexpectedOkay(e.0))?;
                }
            }
            Command::Wrte => on_write(p, conn)?,
            Command::Clse => {
                if p.arg1 != 0 && conn.on_host_close(p.arg1, p.arg0) {
                    debug!(local = p.arg1, "adb stream closed by the host");
                }
            }
            Command::Cnxn => {
                return Err(HandshakeError::OutOfOrder("CNXN after the handshake").into());
            }
            Command::Stls => return Err(SessionError::Unexpected(Command::Stls)),
            // Late AUTH answers and the obsolete SYNC carry nothing for an online connection.
            Command::Auth | Command::Sync => {}
        }
    }
}

/// Ends the stream's hold on its table entry when its task ends, however it ends (done,
/// refused, cancelled by the host's CLSE, or aborted with the connection).
struct TaskGuard {
    conn: Arc<Conn>,
    shared: Arc<StreamShared>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.conn.task_ended(&self.shared);
    }
}

/// Returns whether a stream was opened (or is being opened).
fn on_open<D: Device>(
    p: Packet,
    config: &Config,
    device: &Arc<D>,
    conn: &Arc<Conn>,
    tasks: &mut JoinSet<()>,
) -> bool {
    let remote = p.arg0;
    if remote == 0 || p.arg1 != 0 {
        return false;
    }
    let end = p
        .payload
        .iter()
        .rposition(|b| *b != 0)
        .map(|i| i + 1)
        .unwrap_or(0);
    let name = String::from_utf8_lossy(&p.payload[..end]).into_owned();
    let Some((shared, incoming)) = conn.add_stream(remote, config.max_streams) else {
        warn!(service = %name, limit = config.max_streams, "adb stream refused: too many open");
        conn.outbox
            .send(Packet::new(Command::Clse, 0, remote, Vec::new()));
        return false;
    };
    let device = device.clone();
    let conn = conn.clone();
    tasks.spawn(async move {
        let _task = TaskGuard {
            conn: conn.clone(),
            shared: shared.clone(),
        };
        let open = async {
            // Waits for a turn: a host cannot have more opens running than the cap, however
            // slow the device's open is (a relay's waits on a phone).
            let _turn = conn.opening.clone().acquire_owned().await;
            device.open(&name).await
        };
        let opened = tokio::select! {
            // The host closed the stream first: nobody waits for the service any more.
            () = shared.host_gone.cancelled() => return,
            r = open => r,
        };
        match opened {
            Ok(service) if !shared.host_gone.is_cancelled() => {
                debug!(service = %name, local = shared.local, remote, "adb stream open");
                conn.outbox
                    .send(Packet::new(Command::Okay, shared.local, remote, Vec::new()));
                (service.0)(AdbStream::new(conn.clone(), shared.clone(), incoming)).await;
            }
            Ok(_) => {}
            Err(e) => {
                debug!(service = %name, error = %e, "adb service refused");
                conn.outbox
                    .send(Packet::new(Command::Clse, 0, remote, Vec::new()));
            }
        }
    });
    true
}

fn on_write(p: Packet, conn: &Conn) -> Result<(), SessionError> {
    if p.arg0 == 0 || p.arg1 == 0 {
        return Ok(());
    }
    let (local, remote) = (p.arg1, p.arg0);
    let ack = Packet::new(Command::Okay, local, remote, Vec::new());
    let Some(incoming) = conn.incoming(local, remote) else {
        return Ok(());
    };
    if p.payload.is_empty() {
        conn.outbox.send(ack);
        return Ok(());
    }
    match incoming.try_send(p.payload) {
        Ok(()) => Ok(()),
        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
            Err(SessionError::FlowControl(local))
        }
        // The service stopped reading but still writes: the data goes nowhere, and the host
        // must not wait for it.
        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
            conn.outbox.send(ack);
            Ok(())
        }
    }
}
