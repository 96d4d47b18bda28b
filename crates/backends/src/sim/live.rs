//! What a simulated phone's screen shows beyond its apps' state, and how input changes it: the
//! input model. A finger's path becomes a tap, a long press or a swipe when it lifts; a tap on
//! a launcher icon opens that app (through [`PhoneState::launch`], as `am start PKG` does), a tap
//! on a recents card brings it to the front; keys go back, home, to recents, turn the screen off
//! and on, change the volume, type and delete; text goes to the foreground app's field. Every
//! input appends a line to the `dumpsys input` log in the words `input` takes. The state is
//! kept in `live.json` beside `state.json` ([`super::live_cell`]).

use std::collections::VecDeque;

use cloudphone_backend::screen::{GestureKind, TouchAction, scale_point};
use serde::{Deserialize, Serialize};

use super::phone::{LAUNCHER, PhoneState};
use super::screen::layout::{ICONS, Layout};

pub const LIVE_FILE: &str = "live.json";
/// How long a touch's mark stays on screen.
pub const MARK_MS: i64 = 3000;
const MAX_TOUCHES: usize = 8;
const MAX_LOG: usize = 64;
/// Points kept of a finger's path.
const MAX_PATH: usize = 64;
const MAX_TEXT: usize = 512;
pub const MAX_VOLUME: u8 = 15;
const VOLUME_HUD_MS: i64 = 2000;

/// Android key codes the model acts on, beside those of [`cloudphone_backend::Key`].
const KEYCODE_SPACE: u32 = 62;
const KEYCODE_SLEEP: u32 = 223;
const KEYCODE_WAKEUP: u32 = 224;

#[derive(Serialize, Deserialize)]
#[serde(remote = "GestureKind", rename_all = "lowercase")]
enum GestureKindDef {
    Tap,
    LongPress,
    Swipe,
}

/// A finished touch, in display pixels (the device's size in its current orientation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gesture {
    #[serde(with = "GestureKindDef")]
    pub kind: GestureKind,
    pub path: Vec<(u32, u32)>,
    pub duration_ms: u32,
    /// When it ended (ms of the wall clock).
    pub at_ms: i64,
}

/// A finger still down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finger {
    pub path: Vec<(u32, u32)>,
    pub down_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LiveState {
    /// Bumped on every change (by [`super::live_cell::LiveCell::change`]).
    pub seq: u64,
    /// `(session tag, seq)` of the last viewer input applied; `(0, 0)` for none.
    pub shown_input: (u32, u32),
    /// 0 portrait, 1 landscape.
    pub rotation: u8,
    pub screen_on: bool,
    pub volume: u8,
    /// The volume HUD shows until then.
    pub volume_shown_until_ms: i64,
    pub recents_open: bool,
    /// What was typed into `text_app`'s field (the launcher's is its search box); the last
    /// [`MAX_TEXT`] characters.
    pub text: String,
    pub text_app: Option<String>,
    /// The last touches, oldest first, each drawn for [`MARK_MS`].
    pub touches: VecDeque<Gesture>,
    pub finger: Option<Finger>,
    /// The last lines of `dumpsys input`, oldest first.
    pub log: VecDeque<String>,
}

impl Default for LiveState {
    fn default() -> LiveState {
        LiveState {
            seq: 0,
            shown_input: (0, 0),
            rotation: 0,
            screen_on: true,
            volume: 8,
            volume_shown_until_ms: 0,
            recents_open: false,
            text: String::new(),
            text_app: None,
            touches: VecDeque::new(),
            finger: None,
            log: VecDeque::new(),
        }
    }
}

/// One input, as the model takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Act {
    /// A viewer's finger at a point of the `frame`-sized view it shows.
    Touch {
        action: TouchAction,
        x: u32,
        y: u32,
        frame: (u16, u16),
    },
    /// A whole gesture in display pixels (the shell's `input tap` and `input swipe`).
    Gesture {
        path: Vec<(u32, u32)>,
        duration_ms: u32,
    },
    Text(String),
    /// An Android key code.
    Key(u32),
    Rotate,
}

impl Act {
    /// Whether it may change the apps' state (a finger going down or moving cannot); such an
    /// input is also written to `live.json` at once, the others at most every 30 ms.
    pub fn settles(&self) -> bool {
        !matches!(
            self,
            Act::Touch {
                action: TouchAction::Down | TouchAction::Move | TouchAction::Cancel,
                ..
            }
        )
    }
}

/// What the model needs to know besides the input: the time and the device's size (portrait).
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    pub now_ms: i64,
    pub device: (u32, u32),
}

/// The apps the launcher shows, in order: every launchable package but the launcher itself.
pub fn launcher_icons(phone: &PhoneState) -> Vec<&str> {
    phone
        .packages
        .iter()
        .filter(|p| p.launchable && p.name != LAUNCHER)
        .map(|p| p.name.as_str())
        .take(ICONS)
        .collect()
}

/// The apps recents lists, the most recently started first.
pub fn recent_apps(phone: &PhoneState) -> Vec<&str> {
    phone
        .running
        .iter()
        .rev()
        .filter(|r| *r != LAUNCHER && phone.package(r).is_some_and(|p| p.launchable))
        .map(String::as_str)
        .collect()
}

/// A phone that is stopped runs nothing, not even its launcher.
pub fn is_off(phone: &PhoneState) -> bool {
    phone.foreground.is_none()
}

impl LiveState {
    /// The device's size in its current orientation.
    pub fn display(&self, device: (u32, u32)) -> (u32, u32) {
        if self.rotation == 1 {
            (device.1, device.0)
        } else {
            device
        }
    }

    /// Applies one input. `phone` is the apps' state, needed by the inputs that
    /// [`Act::settles`]; without it they change only what the screen shows. `shown`: the
    /// viewer input this is, if any.
    pub fn apply(
        &mut self,
        phone: Option<&mut PhoneState>,
        act: Act,
        ctx: &Ctx,
        shown: Option<(u32, u32)>,
    ) {
        if let Some(s) = shown {
            self.shown_input = s;
        }
        let now = ctx.now_ms;
        self.touches.retain(|g| now - g.at_ms < MARK_MS);
        match act {
            Act::Touch {
                action,
                x,
                y,
                frame,
            } => {
                let p = scale_point(x, y, frame, self.display(ctx.device));
                self.touch(phone, action, p, ctx);
            }
            Act::Gesture { path, duration_ms } => self.gesture(phone, path, duration_ms, ctx),
            Act::Text(text) => {
                self.log(format!("text {}", text.escape_debug()));
                if let Some(phone) = phone {
                    self.type_text(phone, &text);
                }
            }
            Act::Key(code) => {
                self.log(format!("keyevent {code}"));
                self.key(phone, code, now);
            }
            Act::Rotate => {
                self.rotation ^= 1;
                self.finger = None;
                self.log(format!("rotate {}", self.rotation));
            }
        }
    }

    /// After a boot: the screen on, nothing half done.
    pub fn boot(&mut self) {
        self.screen_on = true;
        self.recents_open = false;
        self.finger = None;
        self.text.clear();
        self.text_app = None;
    }

    fn log(&mut self, line: String) {
        if self.log.len() == MAX_LOG {
            self.log.pop_front();
        }
        self.log.push_back(line);
    }

    fn touch(
        &mut self,
        phone: Option<&mut PhoneState>,
        action: TouchAction,
        p: (u32, u32),
        ctx: &Ctx,
    ) {
        let now = ctx.now_ms;
        match action {
            TouchAction::Down => {
                self.finger = Some(Finger {
                    path: vec![p],
                    down_ms: now,
                })
            }
            TouchAction::Move => match &mut self.finger {
                Some(f) => push_point(&mut f.path, p),
                None => {
                    self.finger = Some(Finger {
                        path: vec![p],
                        down_ms: now,
                    })
                }
            },
            TouchAction::Cancel => self.finger = None,
            TouchAction::Up => {
                let mut f = self.finger.take().unwrap_or(Finger {
                    path: Vec::new(),
                    down_ms: now,
                });
                push_point(&mut f.path, p);
                let duration = (now - f.down_ms).clamp(0, i64::from(u32::MAX)) as u32;
                self.gesture(phone, f.path, duration, ctx);
            }
        }
    }

    fn gesture(
        &mut self,
        phone: Option<&mut PhoneState>,
        path: Vec<(u32, u32)>,
        duration_ms: u32,
        ctx: &Ctx,
    ) {
        let Some(&start) = path.first() else { return };
        let end = *path.last().unwrap_or(&start);
        let kind = GestureKind::classify(&path, duration_ms);
        self.log(match kind {
            GestureKind::Tap => format!("tap {} {}", start.0, start.1),
            GestureKind::LongPress => format!("longpress {} {} {duration_ms}", start.0, start.1),
            GestureKind::Swipe => format!(
                "swipe {} {} {} {} {duration_ms}",
                start.0, start.1, end.0, end.1
            ),
        });
        if self.touches.len() == MAX_TOUCHES {
            self.touches.pop_front();
        }
        self.touches.push_back(Gesture {
            kind,
            path,
            duration_ms,
            at_ms: ctx.now_ms,
        });
        if let (GestureKind::Tap, Some(phone)) = (kind, phone) {
            self.tap(phone, start, self.display(ctx.device));
        }
    }

    fn tap(&mut self, phone: &mut PhoneState, (x, y): (u32, u32), display: (u32, u32)) {
        if !self.screen_on || is_off(phone) {
            return;
        }
        let layout = Layout::new(display.0, display.1);
        if self.recents_open {
            self.recents_open = false;
            let recents = recent_apps(phone);
            if let Some(app) = layout.recents_row_at(x, y).and_then(|i| recents.get(i)) {
                let app = app.to_string();
                phone.start_app(&app);
            }
            return;
        }
        if phone.foreground.as_deref() == Some(LAUNCHER) {
            let icons = launcher_icons(phone);
            if let Some(app) = layout.icon_at(x, y).and_then(|i| icons.get(i)) {
                let app = app.to_string();
                phone.launch(&app);
            }
        }
    }

    fn key(&mut self, phone: Option<&mut PhoneState>, code: u32, now: i64) {
        use cloudphone_backend::Key;
        match (code, Key::from_android_code(code)) {
            (_, Some(Key::Power)) => self.screen_on = !self.screen_on,
            (KEYCODE_WAKEUP, _) => self.screen_on = true,
            (KEYCODE_SLEEP, _) => self.screen_on = false,
            (_, Some(k @ (Key::VolumeUp | Key::VolumeDown))) => {
                self.volume = if k == Key::VolumeUp {
                    (self.volume + 1).min(MAX_VOLUME)
                } else {
                    self.volume.saturating_sub(1)
                };
                self.volume_shown_until_ms = now + VOLUME_HUD_MS;
            }
            _ => {
                let Some(phone) = phone else { return };
                if !self.screen_on || is_off(phone) {
                    return;
                }
                match Key::from_android_code(code) {
                    Some(Key::Back) if self.recents_open => self.recents_open = false,
                    Some(Key::Back) => {
                        if phone.foreground.as_deref() != Some(LAUNCHER) {
                            go_home(phone);
                        }
                    }
                    Some(Key::Home) => {
                        self.recents_open = false;
                        go_home(phone);
                    }
                    Some(Key::Recents) => self.recents_open = !self.recents_open,
                    Some(Key::Enter) => self.type_text(phone, "\n"),
                    Some(Key::Del) => {
                        if self.text_app == phone.foreground {
                            self.text.pop();
                        }
                    }
                    _ => {
                        if let Some(c) = typed_char(code) {
                            self.type_text(phone, &c.to_string());
                        }
                    }
                }
            }
        }
    }

    fn type_text(&mut self, phone: &PhoneState, text: &str) {
        if !self.screen_on || is_off(phone) {
            return;
        }
        if self.text_app != phone.foreground {
            self.text.clear();
            self.text_app = phone.foreground.clone();
        }
        self.text.push_str(text);
        let extra = self.text.chars().count().saturating_sub(MAX_TEXT);
        if extra > 0 {
            let cut = self
                .text
                .char_indices()
                .nth(extra)
                .map_or(self.text.len(), |(i, _)| i);
            self.text.drain(..cut);
        }
    }

    /// The text to show in the foreground app's field (empty when it was typed elsewhere).
    pub fn shown_text(&self, phone: &PhoneState) -> &str {
        if self.text_app == phone.foreground {
            &self.text
        } else {
            ""
        }
    }
}

fn go_home(phone: &mut PhoneState) {
    if phone.package(LAUNCHER).is_some() {
        phone.start_app(LAUNCHER);
    }
}

/// Adds a point to a finger's path; a long path keeps every other point (and the newest).
fn push_point(path: &mut Vec<(u32, u32)>, p: (u32, u32)) {
    if path.last() == Some(&p) {
        return;
    }
    if path.len() >= MAX_PATH {
        let mut i = 0;
        path.retain(|_| {
            i += 1;
            i % 2 == 1
        });
    }
    path.push(p);
}

/// The character a key types: letters, digits and space (`input keyevent KEYCODE_A` types a).
fn typed_char(code: u32) -> Option<char> {
    match code {
        7..=16 => char::from_digit(code - 7, 10),
        29..=54 => Some((b'a' + (code - 29) as u8) as char),
        KEYCODE_SPACE => Some(' '),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: (u32, u32) = (720, 1280);

    fn ctx(now_ms: i64) -> Ctx {
        Ctx {
            now_ms,
            device: DEVICE,
        }
    }

    fn touch(action: TouchAction, x: u32, y: u32, frame: (u16, u16)) -> Act {
        Act::Touch {
            action,
            x,
            y,
            frame,
        }
    }

    /// A finger down at `a` and up at `b` `ms` later, on a 360x640 view.
    fn drag(live: &mut LiveState, phone: &mut PhoneState, a: (u32, u32), b: (u32, u32), ms: i64) {
        let f = (360, 640);
        live.apply(
            None,
            touch(TouchAction::Down, a.0, a.1, f),
            &ctx(1000),
            Some((1, 1)),
        );
        live.apply(
            None,
            touch(TouchAction::Move, (a.0 + b.0) / 2, (a.1 + b.1) / 2, f),
            &ctx(1000 + ms / 2),
            None,
        );
        live.apply(
            Some(phone),
            touch(TouchAction::Up, b.0, b.1, f),
            &ctx(1000 + ms),
            Some((1, 2)),
        );
    }

    #[test]
    fn a_finger_becomes_a_tap_a_long_press_or_a_swipe_in_device_pixels() {
        let (mut live, mut phone) = (LiveState::default(), PhoneState::fresh());
        // Off the icons, so nothing opens.
        drag(&mut live, &mut phone, (100, 620), (102, 621), 80);
        drag(&mut live, &mut phone, (100, 620), (100, 620), 900);
        drag(&mut live, &mut phone, (50, 600), (300, 600), 350);
        let log: Vec<_> = live.log.iter().map(String::as_str).collect();
        assert_eq!(
            log,
            [
                "tap 200 1240",
                "longpress 200 1240 900",
                "swipe 100 1200 600 1200 350"
            ]
        );
        let kinds: Vec<_> = live.touches.iter().map(|g| g.kind).collect();
        assert_eq!(
            kinds,
            [GestureKind::Tap, GestureKind::LongPress, GestureKind::Swipe]
        );
        assert_eq!(
            live.touches[2].path,
            [(100, 1200), (350, 1200), (600, 1200)]
        );
        assert_eq!(live.shown_input, (1, 2));
        assert!(live.finger.is_none());
    }

    #[test]
    fn points_scale_to_the_turned_display() {
        let (mut live, mut phone) = (LiveState::default(), PhoneState::fresh());
        live.apply(Some(&mut phone), Act::Rotate, &ctx(0), None);
        assert_eq!(live.display(DEVICE), (1280, 720));
        // A landscape view of 640x360: its point (320, 90) is the display's (640, 180).
        live.apply(
            None,
            touch(TouchAction::Down, 320, 90, (640, 360)),
            &ctx(10),
            None,
        );
        live.apply(
            Some(&mut phone),
            touch(TouchAction::Up, 320, 90, (640, 360)),
            &ctx(20),
            None,
        );
        assert_eq!(live.log.back().unwrap(), "tap 640 180");
        live.apply(Some(&mut phone), Act::Rotate, &ctx(30), None);
        assert_eq!(
            live.log.iter().filter(|l| l.starts_with("rotate")).count(),
            2
        );
        assert_eq!(live.rotation, 0);
    }

    #[test]
    fn a_launcher_icon_opens_its_app_and_back_and_home_return() {
        let (mut live, mut phone) = (LiveState::default(), PhoneState::fresh());
        let icons: Vec<String> = launcher_icons(&phone)
            .iter()
            .map(|s| s.to_string())
            .collect();
        let settings = icons
            .iter()
            .position(|a| a == "com.android.settings")
            .unwrap();
        let r = Layout::new(DEVICE.0, DEVICE.1).icon(settings);
        let (x, y) = ((r.x + r.w / 2) as u32, (r.y + r.h / 2) as u32);
        live.apply(
            Some(&mut phone),
            Act::Gesture {
                path: vec![(x, y)],
                duration_ms: 0,
            },
            &ctx(0),
            None,
        );
        assert_eq!(phone.foreground.as_deref(), Some("com.android.settings"));
        live.apply(Some(&mut phone), Act::Key(4), &ctx(1), None);
        assert_eq!(phone.foreground.as_deref(), Some(LAUNCHER));
        assert!(
            phone.running.iter().any(|r| r == "com.android.settings"),
            "back keeps it running"
        );
        // Recents lists it; a tap on its card brings it back; home leaves it again.
        live.apply(Some(&mut phone), Act::Key(187), &ctx(2), None);
        assert!(live.recents_open);
        let card = Layout::new(DEVICE.0, DEVICE.1).recents_row(0);
        let tap = Act::Gesture {
            path: vec![(card.x as u32 + 5, card.y as u32 + 5)],
            duration_ms: 10,
        };
        live.apply(Some(&mut phone), tap, &ctx(3), None);
        assert!(!live.recents_open);
        assert_eq!(phone.foreground.as_deref(), Some("com.android.settings"));
        live.apply(Some(&mut phone), Act::Key(3), &ctx(4), None);
        assert_eq!(phone.foreground.as_deref(), Some(LAUNCHER));
        assert_eq!(
            live.log.iter().cloned().collect::<Vec<_>>(),
            [
                format!("tap {x} {y}"),
                "keyevent 4".into(),
                "keyevent 187".into(),
                format!("tap {} {}", card.x + 5, card.y + 5),
                "keyevent 3".into()
            ]
        );
    }

    #[test]
    fn text_goes_to_the_foreground_app_and_del_removes_a_character() {
        let (mut live, mut phone) = (LiveState::default(), PhoneState::fresh());
        phone.start_app("com.android.contacts");
        live.apply(Some(&mut phone), Act::Text("hello".into()), &ctx(0), None);
        live.apply(Some(&mut phone), Act::Key(67), &ctx(1), None);
        live.apply(Some(&mut phone), Act::Key(66), &ctx(2), None);
        live.apply(Some(&mut phone), Act::Key(29), &ctx(3), None);
        assert_eq!(live.shown_text(&phone), "hell\na");
        assert_eq!(
            live.log.iter().cloned().collect::<Vec<_>>(),
            ["text hello", "keyevent 67", "keyevent 66", "keyevent 29"]
        );
        // Another app has its own (empty) field; typing there starts afresh.
        phone.start_app("com.android.settings");
        assert_eq!(live.shown_text(&phone), "");
        live.apply(Some(&mut phone), Act::Text("x".repeat(600)), &ctx(4), None);
        assert_eq!(live.shown_text(&phone).len(), MAX_TEXT);
    }

    #[test]
    fn power_volume_and_a_stopped_phone() {
        let (mut live, mut phone) = (LiveState::default(), PhoneState::fresh());
        live.apply(Some(&mut phone), Act::Key(26), &ctx(0), None);
        assert!(!live.screen_on);
        // With the screen off, taps and home do nothing but are logged.
        phone.start_app("com.android.settings");
        live.apply(Some(&mut phone), Act::Key(3), &ctx(1), None);
        assert_eq!(phone.foreground.as_deref(), Some("com.android.settings"));
        live.apply(Some(&mut phone), Act::Key(224), &ctx(2), None);
        assert!(live.screen_on);
        live.apply(Some(&mut phone), Act::Key(24), &ctx(3), None);
        assert_eq!((live.volume, live.volume_shown_until_ms), (9, 2003));
        for _ in 0..20 {
            live.apply(Some(&mut phone), Act::Key(25), &ctx(4), None);
        }
        assert_eq!(live.volume, 0);
        phone.halt();
        live.apply(Some(&mut phone), Act::Key(3), &ctx(5), None);
        assert!(phone.foreground.is_none());
    }

    #[test]
    fn marks_expire_and_logs_and_paths_stay_bounded() {
        let (mut live, mut phone) = (LiveState::default(), PhoneState::fresh());
        for i in 0..100 {
            live.apply(
                Some(&mut phone),
                Act::Gesture {
                    path: vec![(1, 1)],
                    duration_ms: 0,
                },
                &ctx(i),
                None,
            );
        }
        assert_eq!((live.touches.len(), live.log.len()), (MAX_TOUCHES, MAX_LOG));
        live.apply(Some(&mut phone), Act::Key(4), &ctx(100 + MARK_MS), None);
        assert!(live.touches.is_empty());
        live.apply(
            None,
            touch(TouchAction::Down, 0, 0, (720, 1280)),
            &ctx(0),
            None,
        );
        for i in 0..500 {
            live.apply(
                None,
                touch(TouchAction::Move, i, i, (720, 1280)),
                &ctx(0),
                None,
            );
        }
        let path = &live.finger.as_ref().unwrap().path;
        assert!(path.len() <= MAX_PATH && path.last() == Some(&(499, 499)) && path[0] == (0, 0));
        let json = serde_json::to_string(&live).unwrap();
        assert_eq!(serde_json::from_str::<LiveState>(&json).unwrap(), live);
    }
}
