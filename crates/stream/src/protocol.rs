//! The wire protocol of `/streams/{InstanceId}` (docs/design.md §14.4): the JSON texts a viewer
//! sends ([`ClientMsg`]) and receives ([`ServerMsg`]), both tagged by `"t"`; the 24-byte header
//! in front of every binary frame ([`FrameHeader`]); and the close codes a session ends with
//! ([`Close`]).

use bytes::{BufMut, Bytes, BytesMut};
use cloudphone_backend::{Codec, Frame, TouchAction};
use serde::{Deserialize, Serialize};

/// The length of a binary frame's header.
pub const HEADER_LEN: usize = 24;

/// The longest `text` input, in UTF-8 bytes (scrcpy's limit for injected text).
pub const MAX_TEXT_BYTES: usize = 300;

/// What a viewer sends, as text JSON.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMsg {
    /// The first message, within the hello timeout: the ticket, and what the viewer can show
    /// (absent: `auto`).
    Hello {
        ticket: String,
        #[serde(default)]
        want: Want,
    },
    /// A finger at `(x, y)` of the frame the viewer shows, which is `w`×`h`.
    Touch {
        seq: u32,
        a: TouchWire,
        x: u32,
        y: u32,
        w: u16,
        h: u16,
    },
    Text {
        seq: u32,
        text: String,
    },
    Key {
        seq: u32,
        key: String,
    },
    Rotate {
        seq: u32,
    },
    /// Take control of the phone (`true`) or let go of it.
    Control {
        take: bool,
    },
    /// An H.264 viewer lost sync.
    Keyframe,
    Ping {
        ts: f64,
    },
}

/// What a viewer can show, from its hello.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Want {
    /// Whatever the phone streams (H.264 where it can).
    #[default]
    Auto,
    /// Images only: the viewer cannot decode video (a browser without WebCodecs).
    Png,
}

impl Want {
    pub fn images_only(self) -> bool {
        self == Want::Png
    }
}

/// A touch's action as the wire spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TouchWire {
    Down,
    Move,
    Up,
    Cancel,
}

impl From<TouchWire> for TouchAction {
    fn from(t: TouchWire) -> TouchAction {
        match t {
            TouchWire::Down => TouchAction::Down,
            TouchWire::Move => TouchAction::Move,
            TouchWire::Up => TouchAction::Up,
            TouchWire::Cancel => TouchAction::Cancel,
        }
    }
}

impl ClientMsg {
    /// The input's `seq`, for messages that are input.
    pub fn input_seq(&self) -> Option<u32> {
        match self {
            ClientMsg::Touch { seq, .. }
            | ClientMsg::Text { seq, .. }
            | ClientMsg::Key { seq, .. }
            | ClientMsg::Rotate { seq } => Some(*seq),
            _ => None,
        }
    }
}

/// What the server sends as text JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum ServerMsg {
    Hello {
        session: String,
        tag: u32,
        role: &'static str,
        codec: &'static str,
        width: u16,
        height: u16,
        device: [u32; 2],
    },
    /// The session's role changed; `controller` is the controlling session when this node
    /// knows it.
    Role {
        role: &'static str,
        controller: Option<String>,
    },
    /// Viewers of the phone on this node.
    Viewers {
        n: usize,
    },
    Ack {
        seq: u32,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<&'static str>,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u32>,
        code: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    Pong {
        ts: f64,
    },
    /// The session ends; a close frame with [`Close::code`] follows.
    Bye {
        reason: &'static str,
    },
}

impl ServerMsg {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server messages serialize")
    }
}

/// A binary frame's kind (header byte 0).
pub fn kind(codec: Codec, key: bool) -> u8 {
    match (codec, key) {
        (Codec::Png, _) => 1,
        (Codec::Jpeg, _) => 2,
        (Codec::H264, true) => 3,
        (Codec::H264, false) => 4,
    }
}

/// The 24-byte header of a binary frame, big-endian.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameHeader {
    pub kind: u8,
    pub rotated: bool,
    pub width: u16,
    pub height: u16,
    /// The frame's number in its phone stream.
    pub seq: u32,
    /// `(tag, seq)` of the last input the frame shows applied; `(0, 0)` for none.
    pub input_tag: u32,
    pub input_seq: u32,
    /// The low 32 bits of the capture time in ms of the node's clock.
    pub captured_ms: u32,
}

impl FrameHeader {
    pub fn of(frame: &Frame, seq: u32) -> FrameHeader {
        let (input_tag, input_seq) = frame.shows_input.unwrap_or((0, 0));
        FrameHeader {
            kind: kind(frame.codec, frame.key),
            rotated: frame.rotated,
            width: frame.width,
            height: frame.height,
            seq,
            input_tag,
            input_seq,
            captured_ms: frame.captured_ms as u32,
        }
    }

    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(self.kind);
        out.put_u8(u8::from(self.rotated));
        out.put_u16(self.width);
        out.put_u16(self.height);
        out.put_u16(0);
        out.put_u32(self.seq);
        out.put_u32(self.input_tag);
        out.put_u32(self.input_seq);
        out.put_u32(self.captured_ms);
    }

    pub fn decode(b: &[u8]) -> Option<FrameHeader> {
        let b: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(FrameHeader {
            kind: b[0],
            rotated: b[1] & 1 == 1,
            width: u16_at(2),
            height: u16_at(4),
            seq: u32_at(8),
            input_tag: u32_at(12),
            input_seq: u32_at(16),
            captured_ms: u32_at(20),
        })
    }
}

/// A frame as every viewer receives it: header and payload in one buffer, built once.
pub fn wire(frame: &Frame, seq: u32) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + frame.data.len());
    FrameHeader::of(frame, seq).encode(&mut out);
    out.extend_from_slice(&frame.data);
    out.freeze()
}

/// Why a session ends, as its close frame says it: a code of the private range and a reason
/// (also the `bye` message's and the session row's `end_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

impl Close {
    /// DisconnectAndroidInstance ended the session.
    pub const DISCONNECTED: Close = Close::new(4000, "Disconnected");
    /// The phone left RUNNING.
    pub const PHONE_STOPPED: Close = Close::new(4001, "PhoneStopped");
    /// The node shuts down.
    pub const SHUTDOWN: Close = Close::new(4002, "ServerShutdown");
    /// The ticket's access key or account was disabled or deleted while the session lived.
    pub const KEY_DISABLED: Close = Close::new(4003, "KeyRevoked");
    /// The session's heartbeat could not be written (the database is unreachable), or the
    /// reaper found it stale.
    pub const LOST: Close = Close::new(4004, "Lost");
    /// No hello (with a ticket) within the hello timeout, or another message first.
    pub const HELLO_EXPECTED: Close = Close::new(4400, "HelloExpected");
    pub const TICKET_INVALID: Close = Close::new(4401, "TicketInvalid");
    pub const TICKET_EXPIRED: Close = Close::new(4402, "TicketExpired");
    /// The ticket names another phone (another account's tickets name other phones too).
    pub const NOT_FOR_THIS_PHONE: Close = Close::new(4403, "TicketNotForThisPhone");
    /// The ticket's access key or account is disabled or gone.
    pub const KEY_REVOKED: Close = Close::new(4403, "KeyRevoked");
    pub const INSTANCE_NOT_FOUND: Close = Close::new(4404, "InstanceNotFound");
    pub const NOT_RUNNING: Close = Close::new(4409, "InstanceNotRunning");
    /// DisconnectAndroidInstance since the ticket was issued.
    pub const TICKET_REVOKED: Close = Close::new(4410, "TicketRevoked");
    /// The phone has `--stream-max-viewers-per-phone` live sessions.
    pub const TOO_MANY_VIEWERS: Close = Close::new(4429, "TooManyViewers");
    /// The store failed.
    pub const INTERNAL: Close = Close::new(4500, "InternalError");
    /// The backend could not open the phone's screen, or the screen ended.
    pub const SCREEN_UNAVAILABLE: Close = Close::new(4501, "ScreenUnavailable");
    /// This node holds `--stream-max-sessions` sessions.
    pub const TOO_MANY_SESSIONS: Close = Close::new(4503, "TooManySessions");

    pub const fn new(code: u16, reason: &'static str) -> Close {
        Close { code, reason }
    }

    /// The close of a session the store says ended for `reason` (elsewhere: another node's
    /// DisconnectAndroidInstance, the reaper).
    pub fn of_end_reason(reason: &str) -> Close {
        [
            Close::DISCONNECTED,
            Close::PHONE_STOPPED,
            Close::SHUTDOWN,
            Close::KEY_DISABLED,
            Close::LOST,
        ]
        .into_iter()
        .find(|c| c.reason == reason)
        .unwrap_or(Close::DISCONNECTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_by_their_tag() {
        let m: ClientMsg =
            serde_json::from_str(r#"{"t":"hello","ticket":"cpt1.x.y","want":"auto"}"#).unwrap();
        assert_eq!(
            m,
            ClientMsg::Hello {
                ticket: "cpt1.x.y".into(),
                want: Want::Auto
            }
        );
        let m: ClientMsg =
            serde_json::from_str(r#"{"t":"hello","ticket":"cpt1.x.y","want":"png"}"#).unwrap();
        assert!(matches!(m, ClientMsg::Hello { want, .. } if want.images_only()));
        let m: ClientMsg = serde_json::from_str(r#"{"t":"hello","ticket":"cpt1.x.y"}"#).unwrap();
        assert!(matches!(
            m,
            ClientMsg::Hello {
                want: Want::Auto,
                ..
            }
        ));
        let m: ClientMsg = serde_json::from_str(
            r#"{"t":"touch","seq":7,"a":"down","x":412,"y":903,"w":720,"h":1280}"#,
        )
        .unwrap();
        assert_eq!(m.input_seq(), Some(7));
        let m: ClientMsg = serde_json::from_str(r#"{"t":"keyframe"}"#).unwrap();
        assert_eq!(m, ClientMsg::Keyframe);
        let m: ClientMsg = serde_json::from_str(r#"{"t":"control","take":true}"#).unwrap();
        assert_eq!(m, ClientMsg::Control { take: true });
        for bad in [
            r#"{"t":"nope"}"#,
            r#"{"t":"touch","seq":1,"a":"hover","x":1,"y":1,"w":1,"h":1}"#,
            r#"{"t":"text","seq":-1,"text":"x"}"#,
            r#"{"ticket":"x"}"#,
            r#"{"t":"hello","ticket":"x","extra":1}"#,
            r#"{"t":"hello","ticket":"x","want":"vp9"}"#,
        ] {
            assert!(serde_json::from_str::<ClientMsg>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_messages_are_tagged_json() {
        let m = ServerMsg::Ack {
            seq: 7,
            ok: false,
            code: Some("Busy"),
        };
        assert_eq!(
            m.to_json(),
            r#"{"t":"ack","seq":7,"ok":false,"code":"Busy"}"#
        );
        let m = ServerMsg::Ack {
            seq: 7,
            ok: true,
            code: None,
        };
        assert_eq!(m.to_json(), r#"{"t":"ack","seq":7,"ok":true}"#);
        let m = ServerMsg::Role {
            role: "view",
            controller: Some("ss-1".into()),
        };
        assert_eq!(
            m.to_json(),
            r#"{"t":"role","role":"view","controller":"ss-1"}"#
        );
        assert_eq!(
            ServerMsg::Bye {
                reason: Close::PHONE_STOPPED.reason
            }
            .to_json(),
            r#"{"t":"bye","reason":"PhoneStopped"}"#
        );
    }

    #[test]
    fn a_frame_header_is_24_bytes_and_reads_back() {
        let frame = Frame {
            codec: Codec::H264,
            key: true,
            width: 720,
            height: 1280,
            rotated: true,
            shows_input: Some((17, 40_000)),
            captured_ms: 0x1_2345_6789,
            data: Bytes::from_static(b"\0\0\0\x01payload"),
        };
        let w = wire(&frame, 99);
        assert_eq!(w.len(), HEADER_LEN + frame.data.len());
        assert_eq!(&w[..4], &[3, 1, 0x02, 0xd0]);
        assert_eq!(&w[HEADER_LEN..], &frame.data[..]);
        let h = FrameHeader::decode(&w).unwrap();
        assert_eq!(
            h,
            FrameHeader {
                kind: 3,
                rotated: true,
                width: 720,
                height: 1280,
                seq: 99,
                input_tag: 17,
                input_seq: 40_000,
                captured_ms: 0x2345_6789,
            }
        );
        assert_eq!(kind(Codec::Png, true), 1);
        assert_eq!(kind(Codec::Jpeg, true), 2);
        assert_eq!(kind(Codec::H264, false), 4);
        assert!(FrameHeader::decode(&w[..23]).is_none());
    }

    #[test]
    fn store_end_reasons_map_to_their_close() {
        assert_eq!(Close::of_end_reason("Disconnected"), Close::DISCONNECTED);
        assert_eq!(Close::of_end_reason("Lost"), Close::LOST);
        assert_eq!(Close::of_end_reason("PhoneStopped").code, 4001);
        assert_eq!(Close::of_end_reason("whatever"), Close::DISCONNECTED);
    }
}
