//! The universal way to drive a phone: Android's `input` command in its shell. A finger's
//! events are gathered into a path and sent when it lifts, classified as the simulated phone
//! classifies them ([`GestureKind::classify`]): `input tap X Y`, a long press as `input swipe X
//! Y X Y MS` (a swipe that does not move), a swipe from its first point to its last (`input`
//! draws no polyline). Text goes as `input text`, keys as `input keyevent`, a turn as the
//! `user_rotation` setting.

use std::time::Instant;

use cloudphone_backend::screen::{GestureKind, scale_point};
use cloudphone_backend::{BackendError, Input, Key, OpResult, TouchAction};
use cloudphone_core::TaskErrorCode;

use crate::adb::phone::quote;

/// The most points a path keeps (its ends always).
const MAX_POINTS: usize = 64;
/// A long press or a swipe lasts at most this long on the phone.
const MAX_GESTURE_MS: u32 = 10_000;

/// A finger on its way: the points it went through (device px) and when it went down.
#[derive(Default)]
pub struct Finger {
    down: Option<(Vec<(u32, u32)>, Instant)>,
}

impl Finger {
    /// One touch event at `point` (device px); the command to run when the finger lifted.
    pub fn touch(&mut self, action: TouchAction, point: (u32, u32)) -> Option<String> {
        match action {
            TouchAction::Down => {
                self.down = Some((vec![point], Instant::now()));
                None
            }
            TouchAction::Move => {
                if let Some((path, _)) = self.down.as_mut() {
                    if path.len() == MAX_POINTS {
                        path.pop();
                    }
                    path.push(point);
                }
                None
            }
            TouchAction::Up => {
                let (mut path, at) = self.down.take()?;
                path.push(point);
                let ms = at.elapsed().as_millis().min(u128::from(MAX_GESTURE_MS)) as u32;
                Some(gesture_command(&path, ms))
            }
            TouchAction::Cancel => {
                self.down = None;
                None
            }
        }
    }
}

/// The `input` command for a finger's path that lasted `ms`.
pub fn gesture_command(path: &[(u32, u32)], ms: u32) -> String {
    let (x0, y0) = path.first().copied().unwrap_or_default();
    let (x1, y1) = path.last().copied().unwrap_or_default();
    match GestureKind::classify(path, ms) {
        GestureKind::Tap => format!("input tap {x0} {y0}"),
        GestureKind::LongPress => format!("input swipe {x0} {y0} {x0} {y0} {ms}"),
        // `input swipe` takes 0 as "its default duration": a swipe always lasts 1 ms at least.
        GestureKind::Swipe => format!("input swipe {x0} {y0} {x1} {y1} {}", ms.max(1)),
    }
}

/// `input text`: printable ASCII only (what `input` types reliably), spaces as `%s` (it
/// splits its arguments), quoted for the shell; `None` for nothing to type.
pub fn text_command(text: &str) -> OpResult<Option<String>> {
    if text.is_empty() {
        return Ok(None);
    }
    if !text.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        return Err(BackendError::new(
            TaskErrorCode::UnsupportedOperation,
            "This phone's screen takes printable ASCII text only (no scrcpy server): \
             `input text` cannot type the rest.",
        ));
    }
    Ok(Some(format!(
        "input text {}",
        quote(&text.replace(' ', "%s"))
    )))
}

pub fn key_command(key: Key) -> String {
    format!("input keyevent {}", key.android_code())
}

/// Turns the screen to landscape (or back), with the accelerometer out of the way.
pub fn rotate_command(to_landscape: bool) -> String {
    format!(
        "settings put system accelerometer_rotation 0; settings put system user_rotation {}",
        u8::from(to_landscape)
    )
}

/// The phone's state an input is turned into a command against.
pub struct Target {
    /// The screen's size in its current orientation (the last frame's).
    pub screen: (u32, u32),
}

/// The shell command for one input (`None`: nothing to run now).
pub fn command(finger: &mut Finger, input: &Input, target: &Target) -> OpResult<Option<String>> {
    Ok(match input {
        Input::Touch {
            action,
            x,
            y,
            frame_w,
            frame_h,
        } => {
            let point = scale_point(*x, *y, (*frame_w, *frame_h), target.screen);
            finger.touch(*action, point)
        }
        Input::Text(text) => text_command(text)?,
        Input::Key(key) => Some(key_command(*key)),
        Input::Rotate => Some(rotate_command(target.screen.1 >= target.screen.0)),
        Input::KeyFrame => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gestures_become_input_commands() {
        assert_eq!(
            gesture_command(&[(100, 200), (104, 198)], 90),
            "input tap 100 200"
        );
        assert_eq!(
            gesture_command(&[(100, 200), (100, 201)], 800),
            "input swipe 100 200 100 200 800"
        );
        assert_eq!(
            gesture_command(&[(100, 800), (300, 800), (600, 810)], 350),
            "input swipe 100 800 600 810 350"
        );
        assert_eq!(
            gesture_command(&[(0, 0), (50, 0)], 0),
            "input swipe 0 0 50 0 1"
        );
    }

    #[test]
    fn a_finger_is_sent_when_it_lifts() {
        let mut f = Finger::default();
        assert_eq!(f.touch(TouchAction::Down, (10, 10)), None);
        assert_eq!(f.touch(TouchAction::Move, (11, 12)), None);
        assert_eq!(
            f.touch(TouchAction::Up, (12, 12)).as_deref(),
            Some("input tap 10 10")
        );
        assert_eq!(f.touch(TouchAction::Up, (12, 12)), None, "no finger down");
        f.touch(TouchAction::Down, (10, 10));
        for i in 0..200 {
            f.touch(TouchAction::Move, (10 + i, 10));
        }
        assert_eq!(f.down.as_ref().unwrap().0.len(), MAX_POINTS);
        assert!(
            f.touch(TouchAction::Up, (300, 10))
                .unwrap()
                .starts_with("input swipe 10 10 300 10 ")
        );
        f.touch(TouchAction::Down, (10, 10));
        assert_eq!(f.touch(TouchAction::Cancel, (10, 10)), None);
        assert_eq!(f.touch(TouchAction::Up, (10, 10)), None, "cancelled");
    }

    #[test]
    fn touches_are_scaled_to_the_screen() {
        let mut f = Finger::default();
        let target = Target { screen: (360, 640) };
        let at = |action| Input::Touch {
            action,
            x: 92,
            y: 160,
            frame_w: 184,
            frame_h: 320,
        };
        command(&mut f, &at(TouchAction::Down), &target).unwrap();
        assert_eq!(
            command(&mut f, &at(TouchAction::Up), &target).unwrap(),
            Some("input tap 180 320".into())
        );
    }

    #[test]
    fn text_is_quoted_with_spaces_as_percent_s() {
        assert_eq!(
            text_command("hello world").unwrap().unwrap(),
            "input text 'hello%sworld'"
        );
        assert_eq!(
            text_command("it's $HOME; rm -rf /").unwrap().unwrap(),
            r"input text 'it'\''s%s$HOME;%srm%s-rf%s/'"
        );
        assert_eq!(text_command("").unwrap(), None);
        let e = text_command("héllo").unwrap_err();
        assert_eq!(e.code, TaskErrorCode::UnsupportedOperation);
        assert!(text_command("tab\there").is_err());
    }

    #[test]
    fn keys_and_rotation() {
        assert_eq!(key_command(Key::Back), "input keyevent 4");
        assert_eq!(key_command(Key::Recents), "input keyevent 187");
        let mut f = Finger::default();
        let portrait = Target { screen: (360, 640) };
        assert_eq!(
            command(&mut f, &Input::Rotate, &portrait).unwrap().unwrap(),
            "settings put system accelerometer_rotation 0; settings put system user_rotation 1"
        );
        let landscape = Target { screen: (640, 360) };
        assert!(
            command(&mut f, &Input::Rotate, &landscape)
                .unwrap()
                .unwrap()
                .ends_with("user_rotation 0")
        );
        assert_eq!(command(&mut f, &Input::KeyFrame, &portrait).unwrap(), None);
    }
}
