//! A phone's live screen as a backend opens it ([`Backend::open_screen`](crate::Backend)): the
//! frames it sends, the input it takes, and the few rules every backend shares about input
//! (key codes, scaling a viewer's point to the device, what a gesture is). The stream server
//! (the hub) owns the viewers and the wire; a backend only produces frames and applies input.

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::DropGuard;

use crate::OpResult;

/// How a frame's payload is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// A whole PNG file per frame.
    Png,
    /// A whole JPEG file per frame.
    Jpeg,
    /// One H.264 Annex B access unit per frame; a key frame has its SPS/PPS merged in front.
    H264,
}

impl Codec {
    /// The name the wire protocol's `hello` uses.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Png => "png",
            Codec::Jpeg => "jpeg",
            Codec::H264 => "h264",
        }
    }
}

/// One frame of a phone's screen, at the size the stream was opened for. The hub numbers the
/// frames of a phone's stream itself; everything else its frame header says is here.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    pub codec: Codec,
    /// An image frame is always a key; an H.264 frame is one when it can start a decoder.
    pub key: bool,
    pub width: u16,
    pub height: u16,
    /// The device is in landscape.
    pub rotated: bool,
    /// `(tag, seq)` of the last input this frame shows applied, so that a viewer can tell when
    /// its own input became visible (`None`: no input yet, or a backend that cannot tell).
    pub shows_input: Option<(u32, u32)>,
    /// When it was captured or drawn, in ms of the node's wall clock.
    pub captured_ms: i64,
    pub data: Bytes,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("codec", &self.codec)
            .field("key", &self.key)
            .field("size", &(self.width, self.height))
            .field("rotated", &self.rotated)
            .field("shows_input", &self.shows_input)
            .field("captured_ms", &self.captured_ms)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// What a finger did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TouchAction {
    Down,
    Move,
    Up,
    /// The gesture is abandoned (the viewer lost control or left): nothing is applied.
    Cancel,
}

/// The hardware and editing keys a viewer can press.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Back,
    Home,
    Recents,
    Power,
    VolumeUp,
    VolumeDown,
    Enter,
    Del,
}

impl Key {
    pub const ALL: [Key; 8] = [
        Key::Back,
        Key::Home,
        Key::Recents,
        Key::Power,
        Key::VolumeUp,
        Key::VolumeDown,
        Key::Enter,
        Key::Del,
    ];

    /// Android's `KeyEvent` code, as `input keyevent` takes it.
    pub fn android_code(self) -> u32 {
        match self {
            Key::Back => 4,
            Key::Home => 3,
            Key::Recents => 187,
            Key::Power => 26,
            Key::VolumeUp => 24,
            Key::VolumeDown => 25,
            Key::Enter => 66,
            Key::Del => 67,
        }
    }

    /// Android's constant name (`KEYCODE_BACK`, ...), which `input keyevent` also takes.
    pub fn android_name(self) -> &'static str {
        match self {
            Key::Back => "KEYCODE_BACK",
            Key::Home => "KEYCODE_HOME",
            Key::Recents => "KEYCODE_APP_SWITCH",
            Key::Power => "KEYCODE_POWER",
            Key::VolumeUp => "KEYCODE_VOLUME_UP",
            Key::VolumeDown => "KEYCODE_VOLUME_DOWN",
            Key::Enter => "KEYCODE_ENTER",
            Key::Del => "KEYCODE_DEL",
        }
    }

    /// The wire protocol's name (`back`, `volume_up`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Key::Back => "back",
            Key::Home => "home",
            Key::Recents => "recents",
            Key::Power => "power",
            Key::VolumeUp => "volume_up",
            Key::VolumeDown => "volume_down",
            Key::Enter => "enter",
            Key::Del => "del",
        }
    }

    pub fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn from_android_code(code: u32) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.android_code() == code)
    }

    /// A key as `input keyevent` names it: a number or a `KEYCODE_` constant.
    pub fn from_android(word: &str) -> Option<Key> {
        match word.parse::<u32>() {
            Ok(code) => Key::from_android_code(code),
            Err(_) => Key::ALL.into_iter().find(|k| k.android_name() == word),
        }
    }
}

/// One input from a viewer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// `x` and `y` are pixels of the frame the viewer shows, which is `frame_w`×`frame_h`;
    /// the backend scales them to the device ([`scale_point`]).
    Touch {
        action: TouchAction,
        x: u32,
        y: u32,
        frame_w: u16,
        frame_h: u16,
    },
    Text(String),
    Key(Key),
    /// Turn the device between portrait and landscape.
    Rotate,
    /// An H.264 viewer lost sync and needs a key frame (image codecs ignore it).
    KeyFrame,
}

/// An input with who sent it: `tag` names the session on its phone's stream, `seq` counts that
/// session's inputs. `done`, when given, learns whether it was applied.
#[derive(Debug)]
pub struct InputEvent {
    pub input: Input,
    pub tag: u32,
    pub seq: u32,
    pub done: Option<oneshot::Sender<OpResult<()>>>,
}

/// What the stream wants of a screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScreenOptions {
    /// The long side of the frames at most, in pixels (the device's own size when smaller).
    pub max_size: u16,
    /// Frames a second at most.
    pub fps: u8,
    /// Image frames only, never H.264: the viewer cannot decode video (a browser without
    /// WebCodecs). A backend that streams H.264 falls back to its image source.
    pub images_only: bool,
}

/// How many frames an image screen's channel holds: when the stream is slower than the
/// screen, frames are dropped rather than queued.
pub const IMAGE_FRAMES_CAPACITY: usize = 2;
/// How many H.264 frames the channel holds (deltas cannot be dropped without breaking decode).
pub const H264_FRAMES_CAPACITY: usize = 256;
/// How many inputs wait for a screen at most; the stream answers `Busy` beyond.
pub const INPUT_CAPACITY: usize = 64;

/// An open live screen. Dropping it ends the backend's tasks behind it.
#[derive(Debug)]
pub struct Screen {
    pub codec: Codec,
    /// The device's size in its natural (portrait) orientation.
    pub device: (u32, u32),
    /// Images: capacity [`IMAGE_FRAMES_CAPACITY`], filled with `try_send`; H.264: capacity
    /// [`H264_FRAMES_CAPACITY`], filled with `send`.
    pub frames: mpsc::Receiver<Frame>,
    /// Capacity [`INPUT_CAPACITY`].
    pub input: mpsc::Sender<InputEvent>,
    pub stop: DropGuard,
}

/// An 8-bit RGB image (`width * height * 3` bytes, row by row) as a PNG file, encoded for speed
/// as image screens send their frames: png's `Compression::Fastest` (the Up filter and
/// fdeflate's fastest mode), about 0.4 ms and 40 KB for a 720x1280 screen of flat colours and
/// text. **Why here:** png's encoder is generic over its writer, so it is compiled in the crate
/// that calls it; this small crate is built optimized also in the dev profile (the workspace's
/// `Cargo.toml`), so a debug server streams at the speed of a release one.
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64 << 10);
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fastest);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer
        .write_image_data(rgb)
        .map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)?;
    Ok(out)
}

/// The size of a frame for a device of `device` (portrait) turned by `rotated`, with its long
/// side at most `max_size` (never scaled up), keeping the aspect ratio.
pub fn frame_size(device: (u32, u32), rotated: bool, max_size: u16) -> (u16, u16) {
    let (w, h) = if rotated {
        (device.1, device.0)
    } else {
        device
    };
    let long = w.max(h).max(1);
    let cap = u32::from(max_size.max(1));
    let (fw, fh) = if long <= cap {
        (w, h)
    } else {
        (
            (u64::from(w) * u64::from(cap) / u64::from(long)) as u32,
            (u64::from(h) * u64::from(cap) / u64::from(long)) as u32,
        )
    };
    (
        fw.clamp(1, u32::from(u16::MAX)) as u16,
        fh.clamp(1, u32::from(u16::MAX)) as u16,
    )
}

/// Scales a point of a `frame`-sized view to a screen of `screen` pixels (both in the same
/// orientation), clamped inside the screen.
pub fn scale_point(x: u32, y: u32, frame: (u16, u16), screen: (u32, u32)) -> (u32, u32) {
    let scale = |v: u32, from: u16, to: u32| -> u32 {
        let from = u64::from(from.max(1));
        let v = (u64::from(v) * u64::from(to) + from / 2) / from;
        (v as u32).min(to.saturating_sub(1))
    };
    (scale(x, frame.0, screen.0), scale(y, frame.1, screen.1))
}

/// What a finger's path was, decided when it lifts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GestureKind {
    Tap,
    LongPress,
    Swipe,
}

/// How far a finger may wander (device px) and still tap or long-press.
pub const TAP_SLOP_PX: u32 = 16;
/// How long a press lasts at least to be a long press.
pub const LONG_PRESS_MS: u32 = 500;

impl GestureKind {
    /// A tap if it lasted under [`LONG_PRESS_MS`] and never moved more than [`TAP_SLOP_PX`]
    /// from where it started, a long press if it lasted longer without moving, a swipe
    /// otherwise.
    pub fn classify(path: &[(u32, u32)], duration_ms: u32) -> GestureKind {
        let Some(&(x0, y0)) = path.first() else {
            return GestureKind::Tap;
        };
        let still = path
            .iter()
            .all(|&(x, y)| x.abs_diff(x0).max(y.abs_diff(y0)) <= TAP_SLOP_PX);
        match (still, duration_ms >= LONG_PRESS_MS) {
            (true, false) => GestureKind::Tap,
            (true, true) => GestureKind::LongPress,
            (false, _) => GestureKind::Swipe,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_names_and_codes() {
        for k in Key::ALL {
            assert_eq!(Key::from_name(k.name()), Some(k));
            assert_eq!(Key::from_android_code(k.android_code()), Some(k));
            assert_eq!(Key::from_android(k.android_name()), Some(k));
            assert_eq!(Key::from_android(&k.android_code().to_string()), Some(k));
        }
        assert_eq!(Key::from_android("KEYCODE_NOPE"), None);
    }

    #[test]
    fn frames_fit_the_long_side_and_turn_with_the_device() {
        assert_eq!(frame_size((1080, 1920), false, 1280), (720, 1280));
        assert_eq!(frame_size((1080, 1920), true, 1280), (1280, 720));
        assert_eq!(frame_size((720, 1280), false, 640), (360, 640));
        // Never scaled up.
        assert_eq!(frame_size((360, 640), false, 1280), (360, 640));
    }

    #[test]
    fn a_png_decodes_to_its_pixels() {
        let rgb: Vec<u8> = (0..4 * 3 * 3).map(|i| (i * 7) as u8).collect();
        let png_bytes = encode_png(&rgb, 4, 3).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(
            (info.width, info.height, info.color_type),
            (4, 3, png::ColorType::Rgb)
        );
        assert_eq!(&buf[..info.buffer_size()], &rgb[..]);
        assert!(
            encode_png(&rgb, 5, 3).is_err(),
            "the size must match the pixels"
        );
    }

    #[test]
    fn points_scale_and_clamp() {
        assert_eq!(scale_point(180, 320, (360, 640), (720, 1280)), (360, 640));
        assert_eq!(scale_point(360, 640, (360, 640), (720, 1280)), (719, 1279));
        assert_eq!(scale_point(0, 0, (360, 640), (720, 1280)), (0, 0));
    }

    #[test]
    fn gestures_are_classified_by_time_and_movement() {
        let still = [(100, 100), (108, 95), (110, 110)];
        assert_eq!(GestureKind::classify(&still, 120), GestureKind::Tap);
        assert_eq!(GestureKind::classify(&still, 800), GestureKind::LongPress);
        let moved = [(100, 100), (160, 100)];
        assert_eq!(GestureKind::classify(&moved, 100), GestureKind::Swipe);
        assert_eq!(GestureKind::classify(&moved, 900), GestureKind::Swipe);
    }
}
