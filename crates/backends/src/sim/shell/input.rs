//! `input` and `dumpsys`: the shell's side of the live screen. `input tap`, `swipe`,
//! `draganddrop`, `text` and `keyevent` feed the same model a viewer's touches and keys do
//! ([`crate::sim::live`]), so RunCommand and `adb shell input` drive a simulated phone as they
//! drive a real one; `dumpsys input` prints the recent input in those words (the read-back of
//! tests, alike on simulated and docker phones), `dumpsys window` the focused app and the
//! rotation, `dumpsys power` whether the screen is on.

use std::io;

use cloudphone_backend::Key;

use super::Shell;
use crate::sim::live::{Act, is_off};

const INPUT_USAGE: &str = "Usage: input [<source>] [-d DISPLAY_ID] <command> [<arg>...]

The sources are:
      keyboard
      mouse
      touchpad
      touchscreen
      stylus

The commands and default sources are:
      text <string> (Default: touchscreen)
      keyevent [--longpress|--duration <ms>] [--doubletap] <key code number or name> ... (Default: keyboard)
      tap <x> <y> (Default: touchscreen)
      swipe <x1> <y1> <x2> <y2> [duration(ms)] (Default: touchscreen)
      draganddrop <x1> <y1> <x2> <y2> [duration(ms)] (Default: touchscreen)";

const SOURCES: &[&str] = &[
    "dpad",
    "keyboard",
    "mouse",
    "touchpad",
    "gamepad",
    "touchnavigation",
    "joystick",
    "touchscreen",
    "stylus",
    "trackball",
];

/// What `input swipe` takes when no duration is given (Android's default).
const SWIPE_MS: u32 = 300;

/// Key codes by name beyond those of [`Key`]: digits, letters and a few more.
fn key_code(word: &str) -> Option<u32> {
    if let Some(k) = Key::from_android(word) {
        return Some(k.android_code());
    }
    if let Ok(n) = word.parse::<u32>() {
        return Some(n);
    }
    let name = word.strip_prefix("KEYCODE_").unwrap_or(word);
    if let Some(k) = Key::ALL
        .into_iter()
        .find(|k| k.android_name().strip_prefix("KEYCODE_") == Some(name))
    {
        return Some(k.android_code());
    }
    let mut chars = name.chars();
    match (chars.next(), chars.next()) {
        (Some(c @ '0'..='9'), None) => return Some(7 + c as u32 - '0' as u32),
        (Some(c @ 'A'..='Z'), None) => return Some(29 + c as u32 - 'A' as u32),
        _ => {}
    }
    Some(match name {
        "MENU" => 82,
        "TAB" => 61,
        "SPACE" => 62,
        "ESCAPE" => 111,
        "SLEEP" => 223,
        "WAKEUP" => 224,
        "DPAD_UP" => 19,
        "DPAD_DOWN" => 20,
        "DPAD_LEFT" => 21,
        "DPAD_RIGHT" => 22,
        "DPAD_CENTER" => 23,
        "VOLUME_MUTE" => 164,
        _ => return None,
    })
}

/// A coordinate as `input` reads it (a float; negative is the edge).
fn coord(word: &str) -> Option<u32> {
    let v: f32 = word.parse().ok()?;
    v.is_finite().then(|| v.max(0.0).round() as u32)
}

impl Shell<'_> {
    pub(super) async fn input(&mut self, args: &[String]) -> io::Result<i32> {
        let mut rest = args;
        if rest.first().is_some_and(|a| SOURCES.contains(&a.as_str())) {
            rest = &rest[1..];
        }
        if rest.first().is_some_and(|a| a == "-d") {
            rest = rest.get(2..).unwrap_or_default();
        }
        let Some((command, args)) = rest.split_first() else {
            self.out.line(INPUT_USAGE);
            return Ok(0);
        };
        let acts = match command.as_str() {
            "tap" => self.tap(args),
            "swipe" | "draganddrop" => self.swipe(command, args),
            "text" => self.text(args),
            "keyevent" => self.keyevent(args),
            other => {
                self.out
                    .err_line(&format!("Error: Unknown command: {other}"));
                self.out.err_line(INPUT_USAGE);
                return Ok(1);
            }
        };
        let Some(acts) = acts else {
            return Ok(1);
        };
        for act in acts {
            self.phone.input(act, None).await?;
        }
        Ok(0)
    }

    fn bad_arguments(&mut self, command: &str) -> Option<Vec<Act>> {
        self.out
            .err_line(&format!("Error: Invalid arguments for command: {command}"));
        self.out.err_line(INPUT_USAGE);
        None
    }

    fn tap(&mut self, args: &[String]) -> Option<Vec<Act>> {
        match args {
            [x, y] => match (coord(x), coord(y)) {
                (Some(x), Some(y)) => Some(vec![Act::Gesture {
                    path: vec![(x, y)],
                    duration_ms: 0,
                }]),
                _ => self.bad_arguments("tap"),
            },
            _ => self.bad_arguments("tap"),
        }
    }

    fn swipe(&mut self, command: &str, args: &[String]) -> Option<Vec<Act>> {
        if !(4..=5).contains(&args.len()) {
            return self.bad_arguments(command);
        }
        let points: Option<Vec<u32>> = args[..4].iter().map(|a| coord(a)).collect();
        let duration = match args.get(4) {
            None => Some(SWIPE_MS),
            Some(ms) => ms.parse::<i64>().ok().map(|ms| {
                if ms < 0 {
                    SWIPE_MS
                } else {
                    ms.min(i64::from(u32::MAX)) as u32
                }
            }),
        };
        match (points, duration) {
            (Some(p), Some(duration_ms)) => Some(vec![Act::Gesture {
                path: vec![(p[0], p[1]), (p[2], p[3])],
                duration_ms,
            }]),
            _ => self.bad_arguments(command),
        }
    }

    fn text(&mut self, args: &[String]) -> Option<Vec<Act>> {
        if args.is_empty() {
            return self.bad_arguments("text");
        }
        // `%s` stands for a space, as spaces cannot pass through Android's `input text`.
        Some(vec![Act::Text(args.join(" ").replace("%s", " "))])
    }

    fn keyevent(&mut self, args: &[String]) -> Option<Vec<Act>> {
        let mut codes = Vec::new();
        let mut twice = false;
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "--longpress" | "--async" => {}
                "--doubletap" => twice = true,
                "--duration" | "--delay" => i += 1,
                word => match key_code(word) {
                    Some(code) => codes.push(code),
                    None => {
                        self.out
                            .err_line(&format!("Error: Unknown keycode: {word}"));
                        return None;
                    }
                },
            }
            i += 1;
        }
        if codes.is_empty() {
            return self.bad_arguments("keyevent");
        }
        let times = if twice { 2 } else { 1 };
        Some(
            codes
                .into_iter()
                .flat_map(|c| std::iter::repeat_n(Act::Key(c), times))
                .collect(),
        )
    }

    pub(super) async fn dumpsys(&mut self, args: &[String]) -> io::Result<i32> {
        let services = ["input", "power", "window"];
        match args.first().map(String::as_str) {
            Some("-l") => {
                self.out.line("Currently running services:");
                for s in services {
                    self.out.line(&format!("  {s}"));
                }
            }
            Some(service) => {
                if services.contains(&service) {
                    self.dump(service).await?;
                } else {
                    self.out.err_line(&format!("Can't find service: {service}"));
                }
            }
            None => {
                for s in services {
                    self.out.line(&format!(
                        "-------------------------------------------------------------------------------\nDUMP OF SERVICE {s}:"
                    ));
                    self.dump(s).await?;
                }
            }
        }
        Ok(0)
    }

    async fn dump(&mut self, service: &str) -> io::Result<()> {
        let live = self.phone.live_state().await?;
        match service {
            "input" => {
                self.out.line("Recent input (newest last):");
                for line in &live.log {
                    self.out.line(&format!("  {line}"));
                }
            }
            "power" => {
                let state = self.phone.state().await?;
                let awake = live.screen_on && !is_off(&state);
                let (wake, display) = if awake {
                    ("Awake", "ON")
                } else {
                    ("Asleep", "OFF")
                };
                self.out.line("POWER MANAGER (dumpsys power)");
                self.out.line(&format!("  mWakefulness={wake}"));
                self.out.line(&format!("  Display Power: state={display}"));
            }
            _ => {
                let state = self.phone.state().await?;
                let (w, h) = live.display(self.phone.device().await);
                self.out
                    .line("WINDOW MANAGER WINDOWS (dumpsys window windows)");
                if let Some(app) = &state.foreground {
                    self.out
                        .line(&format!("  mCurrentFocus=Window{{0 u0 {app}}}"));
                    self.out
                        .line(&format!("  mFocusedApp=ActivityRecord{{0 u0 {app}}}"));
                }
                self.out.line(&format!(
                    "  mDisplayRotation=ROTATION_{} cur={w}x{h}",
                    u32::from(live.rotation) * 90
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_codes_by_number_and_name() {
        assert_eq!(key_code("4"), Some(4));
        assert_eq!(key_code("KEYCODE_BACK"), Some(4));
        assert_eq!(key_code("BACK"), Some(4));
        assert_eq!(key_code("KEYCODE_APP_SWITCH"), Some(187));
        assert_eq!(key_code("KEYCODE_A"), Some(29));
        assert_eq!(key_code("KEYCODE_7"), Some(14));
        assert_eq!(key_code("KEYCODE_WAKEUP"), Some(224));
        assert_eq!(key_code("KEYCODE_NOPE"), None);
        assert_eq!(coord("10.6"), Some(11));
        assert_eq!(coord("-3"), Some(0));
        assert_eq!(coord("x"), None);
    }
}
