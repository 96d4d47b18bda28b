//! One viewer's WebSocket, from the upgrade to its end: the hello and the checks
//! ([`admit`]), the phone's stream joined on this node's hub, the `hello` answer, then the
//! writer ([`writer`]) and the reader ([`reader`]) halves side by side until one of them ends,
//! the session is ended from outside (DisconnectAndroidInstance, the recheck: its phone
//! stopped, its key was disabled, the store ended it, the heartbeat failed), the screen ends,
//! or the node shuts down. Then `bye` and a close frame with the reason's code, the session
//! ended in the store (unless it was there already), and one `StreamSession` audit entry.
//!
//! The WebSocket's limits keep a viewer's memory bounded: messages from the viewer of at most
//! 64 KiB, and a write buffer that flushes past 64 KiB and refuses to grow past 16 MiB (one
//! frame of at most 8 MiB and slack). The connection's write-stall timeout (`--idle-timeout`)
//! drops a viewer whose TCP window stays shut.

mod admit;
mod reader;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, State};
use axum::response::Response;
use cloudphone_backend::{Input, InputEvent, InstanceRef, TouchAction};
use cloudphone_core::InstanceStatus;
use cloudphone_core::peer::{Held, PeerAddr};
use cloudphone_store::{AuditEntry, StreamRole};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tracing::{debug, warn};

use crate::Streams;
use crate::hub::{self, PhoneStream, Status};
use crate::protocol::{Close, ServerMsg, Want};
use crate::registry::{End, Member};
use admit::Admitted;

/// The largest message a viewer may send.
const MAX_MESSAGE: usize = 64 << 10;
/// The write buffer is flushed past this.
const WRITE_BUFFER: usize = 64 << 10;
/// The write buffer never holds more than this (tungstenite's default is unbounded).
const MAX_WRITE_BUFFER: usize = 16 << 20;
/// The small texts waiting for the writer at most.
const CTRL_QUEUE: usize = 32;
/// How long the closing `bye` and close frame may take to send.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The audit action of a session's entry.
pub const AUDIT_ACTION: &str = "StreamSession";
/// The `end_reason` of a session whose viewer left.
const CLOSED: &str = "Closed";

/// What a session did, for its audit entry.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    frames: AtomicU64,
    bytes: AtomicU64,
    inputs: AtomicU64,
    /// The controller's finger is down on the screen (a gesture is in progress).
    finger_down: AtomicBool,
}

/// Why a session's live part ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Ended from outside, or by the node's shutdown.
    Ended(End),
    /// The viewer closed, or its connection failed.
    Gone,
    /// The phone's screen ended, or could not open.
    ScreenEnded,
}

/// An open session as its halves see it.
pub(crate) struct Live<'a> {
    id: &'a str,
    tag: u32,
    phone: &'a PhoneStream,
    live: hub::Live,
}

impl Live<'_> {
    /// A gesture in progress is abandoned (control lost, the viewer left).
    fn lift_finger(&self, stats: &Stats) {
        if stats.finger_down.swap(false, Ordering::Relaxed) {
            let (w, h) = self.phone.frame_size(&self.live);
            let cancel = InputEvent {
                input: Input::Touch {
                    action: TouchAction::Cancel,
                    x: 0,
                    y: 0,
                    frame_w: w,
                    frame_h: h,
                },
                tag: self.tag,
                seq: 0,
                done: None,
            };
            let _ = self.phone.send_input(&self.live, cancel);
        }
    }
}

/// `GET /streams/{InstanceId}`: upgrades to a WebSocket served by [`run`]. The node's session
/// cap is counted from here, so viewers still in their hello count too.
pub(crate) async fn upgrade(
    State(streams): State<Arc<Streams>>,
    Path(instance_id): Path<String>,
    peer: Option<Extension<PeerAddr>>,
    held: Option<Extension<Held>>,
    ws: WebSocketUpgrade,
) -> Response {
    let permit = streams.slots.clone().try_acquire_owned().ok();
    let peer = peer.map(|Extension(p)| p.0.to_string()).unwrap_or_default();
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            // The connection's slot is kept until the session is done with its socket.
            let _held = held;
            run(streams, socket, instance_id, peer, permit).await;
        })
}

fn refused(close: Close) {
    metrics::counter!("cloudphone_stream_refused_total", "reason" => close.reason).increment(1);
}

async fn run(
    streams: Arc<Streams>,
    mut socket: WebSocket,
    instance_id: String,
    peer: String,
    permit: Option<OwnedSemaphorePermit>,
) {
    let Some(_permit) = permit else {
        refused(Close::TOO_MANY_SESSIONS);
        send_close(&mut socket, Close::TOO_MANY_SESSIONS).await;
        return;
    };
    let (ticket, want) =
        match admit::hello(&mut socket, streams.limits.hello_timeout, &streams.closing).await {
            Ok(hello) => hello,
            Err(None) => return,
            Err(Some(close)) => {
                debug!(%peer, instance = %instance_id, reason = close.reason, "stream refused");
                refused(close);
                send_close(&mut socket, close).await;
                return;
            }
        };
    let admitted = match admit::admit(&streams, &ticket, &instance_id, &peer).await {
        Ok(a) => a,
        Err(close) => {
            debug!(%peer, instance = %instance_id, reason = close.reason, "stream refused");
            refused(close);
            send_close(&mut socket, close).await;
            return;
        }
    };
    serve(&streams, socket, admitted, want, &peer).await;
}

/// Sends `bye` and the close frame, within [`CLOSE_TIMEOUT`] (a viewer that does not read
/// gets neither).
async fn send_close(socket: &mut WebSocket, close: Close) {
    let bye = ServerMsg::Bye {
        reason: close.reason,
    };
    let frame = CloseFrame {
        code: close.code,
        reason: close.reason.into(),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        socket.send(Message::Text(bye.to_json().into())).await?;
        socket.send(Message::Close(Some(frame))).await
    })
    .await;
}

/// An admitted session, to its end.
async fn serve(streams: &Streams, mut socket: WebSocket, a: Admitted, want: Want, peer: &str) {
    let opened = Instant::now();
    let member = Member {
        id: a.id.clone(),
        instance_id: a.instance.id.clone(),
        account_id: a.claims.account_id.clone(),
        key_id: a.claims.key_id.clone(),
    };
    let handle = streams.registry.add(&member, a.role);
    metrics::gauge!("cloudphone_stream_sessions").increment(1.0);
    debug!(session = %a.id, instance = %a.instance.id, %peer, role = a.role.as_str(), "stream session opened");
    let phone = streams
        .hub
        .join(&InstanceRef::of(&a.instance), want.images_only());
    let viewer = phone.viewer();
    let stats = Stats::default();
    let ending = {
        let stop = stopped(handle.end.clone(), streams);
        tokio::pin!(stop);
        let ready = tokio::select! {
            end = &mut stop => Err(Ending::Ended(end)),
            ready = phone.ready(streams.limits.open_timeout) => ready.map_err(|_| Ending::ScreenEnded),
        };
        match ready {
            Err(ending) => ending,
            Ok(live) => {
                let session = Live {
                    id: &a.id,
                    tag: streams.hub.new_tag(),
                    phone: &phone,
                    live,
                };
                let ending = live_part(streams, &session, &mut socket, &handle, &stats, stop).await;
                session.lift_finger(&stats);
                ending
            }
        }
    };
    streams.registry.remove(&a.id);
    let (close, reason, recorded) = match ending {
        Ending::Ended(end) => (Some(end.close), end.close.reason, end.recorded),
        Ending::Gone => (None, CLOSED, false),
        Ending::ScreenEnded => {
            let close = screen_close(streams, &a.instance.id).await;
            (Some(close), close.reason, false)
        }
    };
    if let Some(close) = close {
        send_close(&mut socket, close).await;
    }
    drop(socket);
    let now = cloudphone_core::time::now_ms();
    if !recorded
        && let Err(e) = streams
            .store
            .end_stream_sessions(std::slice::from_ref(&a.id), reason, now)
            .await
    {
        warn!(session = %a.id, error = %e, "could not record the end of a stream session");
    }
    let role = *handle.role.borrow();
    audit(streams, &a, peer, reason, role, &stats, opened, now).await;
    drop(viewer);
    streams.hub.leave(phone);
    metrics::gauge!("cloudphone_stream_sessions").decrement(1.0);
    debug!(session = %a.id, reason, "stream session ended");
}

/// Resolves when the session must end: ended from outside, or the node shuts down.
async fn stopped(mut end: watch::Receiver<Option<End>>, streams: &Streams) -> End {
    let shutdown = End {
        close: Close::SHUTDOWN,
        recorded: false,
    };
    tokio::select! {
        _ = streams.closing.cancelled() => shutdown,
        ended = end.wait_for(Option::is_some) => match ended {
            Ok(e) => e.expect("waited for some"),
            Err(_) => shutdown,
        },
    }
}

/// Says hello, then runs both halves until the session ends.
async fn live_part(
    streams: &Streams,
    session: &Live<'_>,
    socket: &mut WebSocket,
    handle: &crate::registry::Handle,
    stats: &Stats,
    mut stop: std::pin::Pin<&mut impl Future<Output = End>>,
) -> Ending {
    let (width, height) = session.phone.frame_size(&session.live);
    let role = *handle.role.borrow();
    let hello = ServerMsg::Hello {
        session: session.id.to_string(),
        tag: session.tag,
        role: role.as_str(),
        codec: session.live.codec.name(),
        width,
        height,
        device: [session.live.device.0, session.live.device.1],
    };
    tokio::select! {
        end = &mut stop => return Ending::Ended(end),
        sent = socket.send(Message::Text(hello.to_json().into())) => if sent.is_err() {
            return Ending::Gone;
        },
    }
    let mut status = session.phone.status();
    let screen_over = async move {
        let _ = status
            .wait_for(|s| matches!(s, Status::Ended | Status::Failed(_)))
            .await;
    };
    let (ctrl_tx, ctrl_rx) = mpsc::channel(CTRL_QUEUE);
    let (mut sink, mut stream) = socket.split();
    let ending = tokio::select! {
        end = &mut stop => Ending::Ended(end),
        _ = screen_over => Ending::ScreenEnded,
        e = writer::write(streams, session, &mut sink, ctrl_rx, handle.role.clone(), stats) => e,
        e = reader::read(streams, session, &mut stream, ctrl_tx, handle.role.clone(), stats) => e,
    };
    ending
}

/// The close of a session whose screen ended: the phone stopped, or its screen is gone.
async fn screen_close(streams: &Streams, instance_id: &str) -> Close {
    match streams.store.instance(instance_id).await {
        Ok(Some(i)) if i.status == InstanceStatus::Running => Close::SCREEN_UNAVAILABLE,
        Ok(_) => Close::PHONE_STOPPED,
        Err(_) => Close::SCREEN_UNAVAILABLE,
    }
}

/// The session's `StreamSession` entry (the ADB gateway's `AdbConnection` pattern).
#[allow(clippy::too_many_arguments)]
async fn audit(
    streams: &Streams,
    a: &Admitted,
    peer: &str,
    reason: &str,
    role: StreamRole,
    stats: &Stats,
    opened: Instant,
    now: i64,
) {
    let outcome = format!(
        "{reason} seconds={} frames={} bytes={} inputs={} role={} end_user={}",
        opened.elapsed().as_secs(),
        stats.frames.load(Ordering::Relaxed),
        stats.bytes.load(Ordering::Relaxed),
        stats.inputs.load(Ordering::Relaxed),
        role.as_str(),
        a.claims.end_user_id,
    );
    let entry = AuditEntry {
        id: 0,
        at_ms: now,
        account_id: a.claims.account_id.clone(),
        user_name: String::new(),
        key_id: a.claims.key_id.clone(),
        action: AUDIT_ACTION.to_string(),
        resource_ids: vec![a.instance.id.clone()],
        request_id: a.id.clone(),
        source: peer.to_string(),
        outcome,
    };
    if let Err(e) = streams.store.append_audit(&[entry]).await {
        warn!(session = %a.id, error = %e, "could not audit a stream session");
    }
}
