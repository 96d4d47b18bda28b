//! scrcpy 3.3.4's control messages, client to device, as its server's `ControlMessageReader`
//! reads them: a type byte, then big-endian fields. Only the messages a viewer needs.

/// `AMOTION_EVENT_ACTION_*` and `AKEY_EVENT_ACTION_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Down = 0,
    Up = 1,
    Move = 2,
    Cancel = 3,
}

/// The pointer id scrcpy gives a finger that is neither the mouse nor a virtual finger.
pub const POINTER_GENERIC_FINGER: u64 = 0xFFFF_FFFF_FFFF_FFFE;
/// `INJECT_TEXT` carries at most this many bytes (the server refuses more).
pub const TEXT_MAX_BYTES: usize = 300;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// `INJECT_KEYCODE` (0): an Android key code going down or up.
    Keycode { action: Action, code: u32 },
    /// `INJECT_TEXT` (1): at most [`TEXT_MAX_BYTES`] of UTF-8 ([`text_chunks`]).
    Text(String),
    /// `INJECT_TOUCH_EVENT` (2) of the generic finger at `(x, y)` of a video frame of
    /// `size`: the server drops an event whose size is not its video's current one.
    Touch {
        action: Action,
        x: i32,
        y: i32,
        size: (u16, u16),
    },
    /// `BACK_OR_SCREEN_ON` (4): Back, or turns the screen on when it is off.
    BackOrScreenOn(Action),
    /// `ROTATE_DEVICE` (11).
    Rotate,
    /// `RESET_VIDEO` (17): a new config and key frame.
    ResetVideo,
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::Keycode { action, code } => {
                let mut m = vec![0, *action as u8];
                m.extend_from_slice(&code.to_be_bytes());
                m.extend_from_slice(&0u32.to_be_bytes()); // repeat
                m.extend_from_slice(&0u32.to_be_bytes()); // metastate
                m
            }
            Message::Text(text) => {
                let bytes = &text.as_bytes()[..text.len().min(TEXT_MAX_BYTES)];
                let mut m = vec![1];
                m.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                m.extend_from_slice(bytes);
                m
            }
            Message::Touch { action, x, y, size } => {
                let mut m = vec![2, *action as u8];
                m.extend_from_slice(&POINTER_GENERIC_FINGER.to_be_bytes());
                m.extend_from_slice(&x.to_be_bytes());
                m.extend_from_slice(&y.to_be_bytes());
                m.extend_from_slice(&size.0.to_be_bytes());
                m.extend_from_slice(&size.1.to_be_bytes());
                // Pressure as a u16 fixed-point fraction: full while the finger is down.
                let pressure: u16 = if *action == Action::Up { 0 } else { 0xFFFF };
                m.extend_from_slice(&pressure.to_be_bytes());
                m.extend_from_slice(&0u32.to_be_bytes()); // action_button
                m.extend_from_slice(&0u32.to_be_bytes()); // buttons
                m
            }
            Message::BackOrScreenOn(action) => vec![4, *action as u8],
            Message::Rotate => vec![11],
            Message::ResetVideo => vec![17],
        }
    }
}

/// `text` cut into pieces of at most [`TEXT_MAX_BYTES`], never inside a character.
pub fn text_chunks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(TEXT_MAX_BYTES);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_encoded_byte_for_byte() {
        assert_eq!(
            Message::Keycode {
                action: Action::Down,
                code: 4
            }
            .encode(),
            [0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Message::Keycode {
                action: Action::Up,
                code: 187
            }
            .encode()[..6],
            [0, 1, 0, 0, 0, 187]
        );
        assert_eq!(
            Message::Text("hé".into()).encode(),
            [1, 0, 0, 0, 3, b'h', 0xC3, 0xA9]
        );
        let touch = Message::Touch {
            action: Action::Down,
            x: 412,
            y: 903,
            size: (720, 1280),
        }
        .encode();
        assert_eq!(
            touch,
            [
                2, 0, // type, action
                0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, // generic finger
                0, 0, 0x01, 0x9C, // x 412
                0, 0, 0x03, 0x87, // y 903
                0x02, 0xD0, 0x05, 0x00, // 720 x 1280
                0xFF, 0xFF, // pressure 1.0
                0, 0, 0, 0, 0, 0, 0, 0, // action button, buttons
            ]
        );
        assert_eq!(touch.len(), 32);
        let up = Message::Touch {
            action: Action::Up,
            x: 0,
            y: 0,
            size: (1, 1),
        }
        .encode();
        assert_eq!(
            (up[1], &up[22..24]),
            (1, &[0u8, 0][..]),
            "no pressure once up"
        );
        assert_eq!(Message::BackOrScreenOn(Action::Up).encode(), [4, 1]);
        assert_eq!(Message::Rotate.encode(), [11]);
        assert_eq!(Message::ResetVideo.encode(), [17]);
    }

    #[test]
    fn long_text_is_cut_between_characters() {
        let text = "é".repeat(200); // 400 bytes
        let chunks = text_chunks(&text);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].len(), 300);
        assert_eq!(chunks.concat(), text);
        let odd = format!("a{}", "é".repeat(200));
        let chunks = text_chunks(&odd);
        assert_eq!(chunks[0].len(), 299, "a two-byte character is never split");
        assert!(text_chunks("").is_empty());
    }
}
