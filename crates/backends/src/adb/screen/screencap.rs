//! The screen any phone can give: `screencap -p` PNGs, one `exec:` stream through the ADB
//! server per frame, passed on untouched (a real phone takes 200-800 ms per capture, so 2-5
//! frames a second there), at most 10 a second, and none while the picture stays the same.
//! Input goes through Android's `input` command, one command at a time in the order it came
//! ([`super::input`]); a capture is taken at once after each, and a frame says which input it
//! shows (the last one finished before its capture began).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cloudphone_adb::relay;
use cloudphone_backend::screen::{IMAGE_FRAMES_CAPACITY, INPUT_CAPACITY};
use cloudphone_backend::{BackendError, Codec, Frame, InputEvent, OpResult, Screen, ScreenOptions};
use cloudphone_core::TaskErrorCode;
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, mpsc};
use tokio::time::{MissedTickBehavior, interval, timeout};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::ScreenTarget;
use super::input::{Finger, Target, command};

/// Frames a second at most, whatever the viewer asks.
const MAX_FPS: u8 = 10;
/// How long one capture may take.
const CAPTURE_WITHIN: Duration = Duration::from_secs(10);
/// A PNG larger than this is not a screen.
const MAX_PNG: u64 = 64 << 20;
/// Captures failing in a row that end the screen (the phone is gone).
const FAILURES_TO_GIVE_UP: u32 = 10;
/// How long one `input` command may take.
const INPUT_WITHIN: Duration = Duration::from_secs(20);

/// The width and height a PNG's header gives.
pub fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(png[20..24].try_into().ok()?);
    Some((w, h))
}

/// One `screencap -p`.
async fn capture(relay: &relay::AdbServer, serial: &str) -> Result<(Bytes, (u32, u32)), String> {
    let mut sock = relay
        .open_service(serial, "exec:screencap -p")
        .await
        .map_err(|e| e.to_string())?;
    let mut png = Vec::new();
    match timeout(
        CAPTURE_WITHIN,
        (&mut sock).take(MAX_PNG).read_to_end(&mut png),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("screencap took over {CAPTURE_WITHIN:?}")),
    }
    let size = png_size(&png).ok_or_else(|| {
        let head = String::from_utf8_lossy(&png[..png.len().min(200)]).to_string();
        format!("screencap did not write a PNG: {}", head.trim())
    })?;
    Ok((Bytes::from(png), size))
}

/// What the capture loop and the input task share.
struct Shared {
    /// The screen's size in its current orientation (the last capture's).
    screen: Mutex<(u32, u32)>,
    /// `(tag, seq)` of the last input that finished.
    applied: Mutex<Option<(u32, u32)>>,
    /// Rung when an input finished: capture now.
    applied_now: Notify,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Opens the phone's screen with screencap; `panel` is the device's size if known. The first
/// capture is made here, so that a phone that cannot capture fails the opening.
pub(super) async fn open(
    target: ScreenTarget,
    relay: relay::AdbServer,
    opts: ScreenOptions,
    panel: Option<(u32, u32)>,
) -> OpResult<Screen> {
    let (first, size) = capture(&relay, &target.serial).await.map_err(|e| {
        BackendError::new(
            TaskErrorCode::InstanceUnreachable,
            format!("the phone's screen: {e}"),
        )
    })?;
    let panel = panel.unwrap_or(if size.0 > size.1 {
        (size.1, size.0)
    } else {
        size
    });
    let shared = Arc::new(Shared {
        screen: Mutex::new(size),
        applied: Mutex::new(None),
        applied_now: Notify::new(),
    });
    let token = CancellationToken::new();
    let (frames_tx, frames) = mpsc::channel(IMAGE_FRAMES_CAPACITY);
    let (input, input_rx) = mpsc::channel(INPUT_CAPACITY);
    let portrait = panel.1 >= panel.0;
    let frame = move |png: Bytes, (w, h): (u32, u32), shows_input| Frame {
        codec: Codec::Png,
        key: true,
        width: w.min(u32::from(u16::MAX)) as u16,
        height: h.min(u32::from(u16::MAX)) as u16,
        rotated: (h >= w) != portrait,
        shows_input,
        captured_ms: now_ms(),
        data: png,
    };
    let _ = frames_tx.try_send(frame(first.clone(), size, None));
    let fps = opts.fps.clamp(1, MAX_FPS);
    tokio::spawn({
        let (shared, token, serial) = (shared.clone(), token.clone(), target.serial.clone());
        async move {
            let mut tick = interval(Duration::from_millis(1000 / u64::from(fps)));
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            tick.tick().await;
            let hash = |b: &[u8]| {
                let mut h = DefaultHasher::new();
                b.hash(&mut h);
                h.finish()
            };
            let (mut last, mut last_shown) = (hash(&first), None);
            let mut failures = 0;
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tick.tick() => {}
                    _ = shared.applied_now.notified() => {}
                }
                let shows = *shared.applied.lock().unwrap_or_else(|p| p.into_inner());
                match capture(&relay, &serial).await {
                    Ok((png, size)) => {
                        failures = 0;
                        *shared.screen.lock().unwrap_or_else(|p| p.into_inner()) = size;
                        let h = hash(&png);
                        if h == last && shows == last_shown {
                            continue;
                        }
                        (last, last_shown) = (h, shows);
                        // A full channel: the viewer is behind, and this frame is dropped.
                        if let Err(mpsc::error::TrySendError::Closed(_)) =
                            frames_tx.try_send(frame(png, size, shows))
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        debug!(serial = %serial, "screencap failed: {e}");
                        if failures >= FAILURES_TO_GIVE_UP {
                            token.cancel();
                            return;
                        }
                    }
                }
            }
        }
    });
    tokio::spawn(apply_input(target, input_rx, shared, token.clone()));
    Ok(Screen {
        codec: Codec::Png,
        device: panel,
        frames,
        input,
        stop: token.drop_guard(),
    })
}

/// Runs each input's command in turn.
async fn apply_input(
    target: ScreenTarget,
    mut inputs: mpsc::Receiver<InputEvent>,
    shared: Arc<Shared>,
    token: CancellationToken,
) {
    let mut finger = Finger::default();
    loop {
        let event = tokio::select! {
            _ = token.cancelled() => return,
            e = inputs.recv() => match e { Some(e) => e, None => return },
        };
        let screen = *shared.screen.lock().unwrap_or_else(|p| p.into_inner());
        let result = match command(&mut finger, &event.input, &Target { screen }) {
            Ok(None) => Ok(()),
            Ok(Some(cmd)) => {
                let ran = run(&target, &cmd).await;
                if ran.is_ok() {
                    *shared.applied.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((event.tag, event.seq));
                    shared.applied_now.notify_one();
                }
                ran
            }
            Err(e) => Err(e),
        };
        if let Some(done) = event.done {
            let _ = done.send(result);
        }
    }
}

async fn run(target: &ScreenTarget, cmd: &str) -> OpResult<()> {
    let out = target.phone().run_command(cmd, INPUT_WITHIN).await?;
    if out.exit_code == 0 {
        Ok(())
    } else {
        Err(BackendError::new(
            TaskErrorCode::OperationFailed,
            format!(
                "{cmd}: exit code {}: {}",
                out.exit_code,
                String::from_utf8_lossy(&out.output).trim()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::png_size;

    #[test]
    fn a_pngs_size_is_in_its_header() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&360u32.to_be_bytes());
        png.extend_from_slice(&640u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((360, 640)));
        assert_eq!(png_size(b"/system/bin/sh: screencap: not found"), None);
    }
}
