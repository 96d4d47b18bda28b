//! The reader half of a session: the viewer's input and control messages. Input goes to the
//! screen only from the session in control (others get `NotController`), at most
//! [`StreamLimits::inputs_per_second`](crate::StreamLimits) a second (moves past that are
//! dropped, other input is answered `Throttled`), and never waits: a full input queue is
//! answered `Busy`. Taking and releasing control go through the store, which decides for every
//! node, and change the roles this node knows at once.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::ws::Message;
use cloudphone_backend::{Input, InputEvent, Key, OpResult, TouchAction};
use cloudphone_store::StreamRole;
use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};

use super::{Ending, Stats};
use crate::hub::InputRefused;
use crate::protocol::{ClientMsg, MAX_TEXT_BYTES, ServerMsg, TouchWire};
use crate::{Streams, stale_before};

/// Tokens refilled at a steady rate, for the input cap.
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_second: u32) -> Bucket {
        let rate = f64::from(per_second.max(1));
        Bucket {
            tokens: rate,
            rate,
            last: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

type AckWait = std::pin::Pin<Box<dyn Future<Output = (u32, Option<OpResult<()>>)> + Send>>;

fn error(seq: Option<u32>, code: &'static str) -> ServerMsg {
    ServerMsg::Error {
        seq,
        code,
        message: None,
    }
}

fn ack(seq: u32, code: Option<&'static str>) -> ServerMsg {
    ServerMsg::Ack {
        seq,
        ok: code.is_none(),
        code,
    }
}

/// What one message asks of the screen, or why it is refused.
fn input_of(msg: &ClientMsg) -> Result<Input, &'static str> {
    Ok(match msg {
        ClientMsg::Touch { a, x, y, w, h, .. } => {
            if *w == 0 || *h == 0 {
                return Err("InvalidSize");
            }
            Input::Touch {
                action: (*a).into(),
                x: *x,
                y: *y,
                frame_w: *w,
                frame_h: *h,
            }
        }
        ClientMsg::Text { text, .. } => {
            if text.len() > MAX_TEXT_BYTES {
                return Err("TextTooLong");
            }
            Input::Text(text.clone())
        }
        ClientMsg::Key { key, .. } => Input::Key(Key::from_name(key).ok_or("UnknownKey")?),
        ClientMsg::Rotate { .. } => Input::Rotate,
        _ => return Err("InvalidMessage"),
    })
}

/// Reads until the viewer closes or its connection fails.
pub(super) async fn read(
    streams: &Streams,
    session: &super::Live<'_>,
    stream: &mut (impl Stream<Item = Result<Message, axum::Error>> + Unpin),
    ctrl: mpsc::Sender<ServerMsg>,
    mut role: watch::Receiver<StreamRole>,
    stats: &Stats,
) -> Ending {
    let mut bucket = Bucket::new(streams.limits.inputs_per_second);
    let mut acks: FuturesUnordered<AckWait> = FuturesUnordered::new();
    loop {
        let reply = tokio::select! {
            m = stream.next() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ending::Gone,
                Some(Ok(Message::Text(t))) => {
                    handle(streams, session, t.as_str(), &mut bucket, &mut acks, &role, stats).await
                }
                Some(Ok(Message::Binary(_))) => Some(error(None, "InvalidMessage")),
                Some(Ok(_)) => None,
            },
            Some((seq, done)) = acks.next(), if !acks.is_empty() => Some(match done {
                Some(Ok(())) => ack(seq, None),
                Some(Err(e)) => ack(seq, Some(e.code.as_str())),
                None => ack(seq, Some("Dropped")),
            }),
            Ok(()) = role.changed() => {
                if *role.borrow_and_update() != StreamRole::Control {
                    session.lift_finger(stats);
                }
                None
            }
        };
        if let Some(reply) = reply
            && ctrl.send(reply).await.is_err()
        {
            return Ending::Gone;
        }
    }
}

/// One text message; the reply to send, if any.
async fn handle(
    streams: &Streams,
    session: &super::Live<'_>,
    text: &str,
    bucket: &mut Bucket,
    acks: &mut FuturesUnordered<AckWait>,
    role: &watch::Receiver<StreamRole>,
    stats: &Stats,
) -> Option<ServerMsg> {
    let Ok(msg) = serde_json::from_str::<ClientMsg>(text) else {
        return Some(error(None, "InvalidMessage"));
    };
    let is_move = matches!(
        msg,
        ClientMsg::Touch {
            a: TouchWire::Move,
            ..
        }
    );
    if !bucket.take() {
        metrics::counter!("cloudphone_stream_inputs_dropped_total", "reason" => "rate")
            .increment(1);
        return match msg.input_seq() {
            Some(_) if is_move => None,
            Some(seq) => Some(ack(seq, Some("Throttled"))),
            None => Some(error(None, "Throttled")),
        };
    }
    match msg {
        ClientMsg::Hello { .. } => Some(error(None, "AlreadyOpen")),
        ClientMsg::Ping { ts } => Some(ServerMsg::Pong { ts }),
        ClientMsg::Keyframe => {
            session.phone.ask_keyframe();
            None
        }
        ClientMsg::Control { take } => control(streams, session, take, role).await,
        msg => {
            let seq = msg.input_seq().unwrap_or_default();
            if *role.borrow() != StreamRole::Control {
                return Some(error(Some(seq), "NotController"));
            }
            let input = match input_of(&msg) {
                Ok(input) => input,
                Err(code) => return Some(error(Some(seq), code)),
            };
            if let Input::Touch { action, .. } = &input {
                let down = matches!(action, TouchAction::Down | TouchAction::Move);
                stats.finger_down.store(down, Ordering::Relaxed);
            }
            let (done, wait) = if is_move {
                (None, None)
            } else {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            };
            let event = InputEvent {
                input,
                tag: session.tag,
                seq,
                done,
            };
            match session.phone.send_input(&session.live, event) {
                Ok(()) => {
                    stats.inputs.fetch_add(1, Ordering::Relaxed);
                    if let Some(rx) = wait {
                        acks.push(Box::pin(async move { (seq, rx.await.ok()) }));
                    }
                    None
                }
                Err(refused) => {
                    let code = match refused {
                        InputRefused::Busy => "Busy",
                        InputRefused::Closed => "ScreenUnavailable",
                    };
                    metrics::counter!("cloudphone_stream_inputs_dropped_total", "reason" => code)
                        .increment(1);
                    (!is_move).then(|| ack(seq, Some(code)))
                }
            }
        }
    }
}

/// Takes or releases control. A move of control is told to every session of the phone on this
/// node by its writer (a `role` message); a release by a session that was not in control moves
/// nothing and is answered here.
async fn control(
    streams: &Streams,
    session: &super::Live<'_>,
    take: bool,
    role: &watch::Receiver<StreamRole>,
) -> Option<ServerMsg> {
    let now = cloudphone_core::time::now_ms();
    let id = session.id;
    let instance_id = &session.phone.instance_id;
    let moved = if take {
        streams
            .store
            .take_stream_control(id, now, stale_before(now))
            .await
    } else {
        streams.store.release_stream_control(id).await
    };
    match moved {
        Ok(true) => {
            streams.registry.control_moved(instance_id, id, take);
            None
        }
        Ok(false) if take => Some(error(None, "SessionEnded")),
        Ok(false) => Some(ServerMsg::Role {
            role: role.borrow().as_str(),
            controller: streams.registry.controller(instance_id),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "a change of control failed");
            Some(error(None, "InternalError"))
        }
    }
}
