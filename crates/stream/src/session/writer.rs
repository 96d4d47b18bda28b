//! The writer half of a session: the small texts (acks, pongs, errors, role and viewer
//! changes) and the frames, one at a time. Each send returns only once the message is in the
//! socket's buffer, so a slow viewer simply takes the newest frame when it is ready again:
//! frames published meanwhile replaced each other in the phone's latest-frame slot (images) or
//! are skipped to the next key frame (H.264). The viewer holds at most one frame, one write
//! buffer and its socket's kernel buffer, and no other viewer waits for it.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::ws::Message;
use bytes::Bytes;
use cloudphone_backend::Codec;
use cloudphone_store::StreamRole;
use futures::{Sink, SinkExt};
use tokio::sync::{mpsc, watch};

use super::{Ending, Stats};
use crate::Streams;
use crate::gop::GopCursor;
use crate::hub::{PhoneStream, WireFrame};
use crate::protocol::ServerMsg;

/// H.264 packets sent in one go at most before the writer looks at its other work.
const PACKETS_PER_TURN: usize = 8;

/// Where a viewer's frames come from.
enum Source {
    Images {
        rx: watch::Receiver<Option<WireFrame>>,
        last: Option<u32>,
    },
    H264(GopCursor),
}

impl Source {
    fn new(phone: &PhoneStream, codec: Codec) -> Source {
        match codec {
            Codec::H264 => Source::H264(phone.gop().cursor()),
            Codec::Png | Codec::Jpeg => {
                let mut rx = phone.frames();
                // A viewer joining an open stream gets the current frame at once.
                rx.mark_changed();
                Source::Images { rx, last: None }
            }
        }
    }

    /// The next frames to send; pending while there are none (for good once the phone's
    /// stream is gone: the session ends on its status).
    async fn next(&mut self, phone: &PhoneStream) -> Vec<Bytes> {
        loop {
            match self {
                Source::Images { rx, last } => {
                    if rx.changed().await.is_err() {
                        return std::future::pending().await;
                    }
                    let Some(frame) = rx.borrow_and_update().clone() else {
                        continue;
                    };
                    if let Some(last) = *last {
                        let skipped = frame.seq.wrapping_sub(last).saturating_sub(1);
                        if skipped > 0 {
                            metrics::counter!("cloudphone_stream_frames_skipped_total")
                                .increment(u64::from(skipped));
                        }
                    }
                    *last = Some(frame.seq);
                    return vec![frame.bytes];
                }
                Source::H264(cursor) => {
                    if cursor.changed().await.is_err() {
                        return std::future::pending().await;
                    }
                    let took = cursor.take(phone.gop(), Instant::now(), PACKETS_PER_TURN);
                    if took.fell_behind {
                        metrics::counter!("cloudphone_stream_frames_skipped_total")
                            .increment(took.skipped as u64);
                        phone.ask_keyframe();
                    }
                    if !took.packets.is_empty() {
                        return took.packets;
                    }
                }
            }
        }
    }
}

fn text(m: &ServerMsg) -> Message {
    Message::Text(m.to_json().into())
}

/// Sends until the viewer's connection fails ([`Ending::Gone`]); the caller ends it otherwise.
pub(super) async fn write(
    streams: &Streams,
    session: &super::Live<'_>,
    sink: &mut (impl Sink<Message, Error = axum::Error> + Unpin),
    mut ctrl: mpsc::Receiver<ServerMsg>,
    mut role: watch::Receiver<StreamRole>,
    stats: &Stats,
) -> Ending {
    let phone = session.phone;
    let mut viewers = phone.viewers();
    viewers.mark_changed();
    let mut source = Source::new(phone, session.live.codec);
    loop {
        let (messages, frames): (Vec<Message>, bool) = tokio::select! {
            biased;
            Some(m) = ctrl.recv() => (vec![text(&m)], false),
            Ok(()) = role.changed() => {
                let now = *role.borrow_and_update();
                let m = ServerMsg::Role {
                    role: now.as_str(),
                    controller: streams.registry.controller(&phone.instance_id),
                };
                (vec![text(&m)], false)
            }
            Ok(()) = viewers.changed() => {
                let n = *viewers.borrow_and_update();
                (vec![text(&ServerMsg::Viewers { n })], false)
            }
            frames = source.next(phone) => (frames.into_iter().map(Message::Binary).collect(), true),
        };
        for m in messages {
            let len = match &m {
                Message::Binary(b) => b.len(),
                _ => 0,
            };
            if sink.send(m).await.is_err() {
                return Ending::Gone;
            }
            if frames {
                stats.frames.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(len as u64, Ordering::Relaxed);
                metrics::counter!("cloudphone_stream_bytes_total").increment(len as u64);
            }
        }
    }
}
