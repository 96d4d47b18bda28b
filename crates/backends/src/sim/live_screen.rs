//! A simulated phone's live screen ([`Backend::open_screen`](cloudphone_backend::Backend)): two
//! tasks per opened [`Screen`], both ended by its drop guard. The renderer draws a PNG frame at
//! each tick of `fps` (a late tick is skipped, never bunched) and at once when input changed
//! the phone, so the time from input to a frame showing it is the render time, not a tick; a
//! frame goes to a channel of two with `try_send`, so a reader that falls behind loses frames
//! and nothing queues. The input task applies each event through the same model as the shell's
//! `input` ([`PhoneDir::input`]) and answers its `done`. On a phone shared with other nodes
//! (`--sim-state shared`) a settling input is published before its answer, and a third task
//! follows what the other nodes publish ([`Checkouts`]).

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cloudphone_backend::screen::{
    Codec, Frame, IMAGE_FRAMES_CAPACITY, INPUT_CAPACITY, Input, InputEvent, Screen, ScreenOptions,
    frame_size,
};
use cloudphone_backend::{BackendError, OpResult};
use cloudphone_core::TaskErrorCode;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::live::Act;
use super::live_cell::{now_ms, read_stamped};
use super::phone::{PhoneDir, PhoneState};
use super::screen::{Renderer, Scene};
use super::share::Checkouts;

/// How often a screen of a phone shared with other nodes (`--sim-state shared`) looks for
/// what they published.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Opens the live screen of `phone`, a device of `device` pixels (portrait) called `name`.
/// `checkouts`: how the phone is shared with other nodes.
pub(crate) fn open(
    phone: PhoneDir,
    name: String,
    device: (u32, u32),
    opts: ScreenOptions,
    checkouts: Checkouts,
) -> Screen {
    let stop = CancellationToken::new();
    let (frames_tx, frames) = mpsc::channel(IMAGE_FRAMES_CAPACITY);
    let (input, input_rx) = mpsc::channel(INPUT_CAPACITY);
    let drawing = Drawing {
        renderer: Renderer::default(),
        state: None,
        tick: 0,
        name,
        device,
        max_size: opts.max_size,
    };
    // Subscribed here, so that input applied from now on wakes the first frames.
    let woken = phone.live().subscribe();
    tokio::spawn(render_loop(
        phone.clone(),
        drawing,
        woken,
        opts.fps,
        frames_tx,
        stop.clone(),
    ));
    if checkouts.shared() {
        tokio::spawn(follow_loop(phone.clone(), checkouts.clone(), stop.clone()));
    }
    tokio::spawn(input_loop(phone, input_rx, checkouts, stop.clone()));
    Screen {
        codec: Codec::Png,
        device,
        frames,
        input,
        stop: stop.drop_guard(),
    }
}

/// What the renderer keeps from one frame to the next.
struct Drawing {
    renderer: Renderer,
    /// The apps' state as last read, with the stamp of the bytes it was read from.
    state: Option<(Option<u64>, PhoneState)>,
    tick: u64,
    name: String,
    device: (u32, u32),
    max_size: u16,
}

impl Drawing {
    /// Reads what changed (also on another node sharing the data dir), draws and encodes a
    /// frame. Blocking.
    fn frame(&mut self, phone: &PhoneDir) -> io::Result<Frame> {
        phone.live().refresh(&phone.live_path())?;
        let file = read_stamped(&phone.state_path())?;
        let stamp = file.as_ref().map(|(_, s)| *s);
        if self.state.as_ref().is_none_or(|(s, _)| *s != stamp) {
            let state = match file {
                Some((bytes, _)) => serde_json::from_slice(&bytes).map_err(io::Error::other)?,
                None => PhoneState::fresh(),
            };
            self.state = Some((stamp, state));
        }
        let state = &self.state.as_ref().expect("read above").1;
        let live = phone.live().snapshot();
        let rotated = live.rotation == 1;
        let (width, height) = frame_size(self.device, rotated, self.max_size);
        let now = now_ms();
        let clock = chrono::Utc::now().format("%H:%M:%S").to_string();
        let scene = Scene {
            name: &self.name,
            device: self.device,
            phone: state,
            live: &live,
            now_ms: now,
            clock: &clock,
            tick: self.tick,
        };
        self.tick += 1;
        let png = self
            .renderer
            .draw(&scene, (u32::from(width), u32::from(height)))
            .frame_png()?;
        Ok(Frame {
            codec: Codec::Png,
            key: true,
            width,
            height,
            rotated,
            shows_input: (live.shown_input.0 != 0).then_some(live.shown_input),
            captured_ms: now,
            data: Bytes::from(png),
        })
    }
}

async fn render_loop(
    phone: PhoneDir,
    drawing: Drawing,
    mut woken: tokio::sync::watch::Receiver<u64>,
    fps: u8,
    frames: mpsc::Sender<Frame>,
    stop: CancellationToken,
) {
    let period = Duration::from_secs(1) / u32::from(fps.max(1));
    // Input wakes a frame at once, but a stream of moves does not draw faster than this.
    let min_gap = (period / 3).max(Duration::from_millis(5));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut drawing = Some(drawing);
    let mut last: Option<Instant> = None;
    let mut failed = false;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            changed = woken.changed() => {
                if changed.is_err() {
                    return;
                }
                if let Some(t) = last {
                    tokio::time::sleep_until((t + min_gap).into()).await;
                }
            }
            _ = ticks.tick() => {}
        }
        if frames.is_closed() {
            return;
        }
        let (mut job, me) = (drawing.take().expect("put back each frame"), phone.clone());
        let Ok((job, frame)) = tokio::task::spawn_blocking(move || {
            let frame = job.frame(&me);
            (job, frame)
        })
        .await
        else {
            return;
        };
        drawing = Some(job);
        last = Some(Instant::now());
        match frame {
            Ok(frame) => {
                failed = false;
                if let Err(mpsc::error::TrySendError::Closed(_)) = frames.try_send(frame) {
                    return;
                }
            }
            Err(e) if !failed => {
                failed = true;
                tracing::warn!(error = %e, "a simulated phone's frame could not be drawn");
            }
            Err(_) => {}
        }
        // A finger's moves are written at most every 30 ms: what the last left is written now.
        if let Err(e) = phone.live().save(&phone.live_path(), false).await {
            tracing::warn!(error = %e, "a simulated phone's live state could not be written");
        }
    }
}

/// Brings the phone's copy here up to what other nodes published (a tap through another
/// node's screen, a command there), and wakes the renderer when it changed.
async fn follow_loop(phone: PhoneDir, checkouts: Checkouts, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(FOLLOW_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failed = false;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match checkouts.refresh().await {
            Ok(true) => {
                failed = false;
                phone.live().notify();
            }
            Ok(false) => failed = false,
            Err(e) if !failed => {
                failed = true;
                tracing::warn!(error = %e, "a simulated phone's screen cannot follow the other nodes");
            }
            Err(_) => {}
        }
    }
}

async fn input_loop(
    phone: PhoneDir,
    mut input: mpsc::Receiver<InputEvent>,
    checkouts: Checkouts,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            event = input.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        let applied = apply(&phone, &checkouts, event.input, (event.tag, event.seq)).await;
        if let Some(done) = event.done {
            let _ = done.send(applied);
        }
    }
}

/// Applies one input. On a phone shared with other nodes, an input that settles (a finger
/// lifting, a key, text, a rotation) holds the phone's checkout and publishes what it changed
/// before it is acknowledged; a finger's moves stay on this node (they change only what this
/// node's screens draw) until the input that ends them.
async fn apply(
    phone: &PhoneDir,
    checkouts: &Checkouts,
    input: Input,
    shown: (u32, u32),
) -> OpResult<()> {
    let act = match input {
        Input::Touch {
            action,
            x,
            y,
            frame_w,
            frame_h,
        } => Act::Touch {
            action,
            x,
            y,
            frame: (frame_w, frame_h),
        },
        Input::Text(text) => Act::Text(text),
        Input::Key(key) => Act::Key(key.android_code()),
        Input::Rotate => Act::Rotate,
        // Every frame of a PNG stream is a key frame.
        Input::KeyFrame => return Ok(()),
    };
    let failed = |e: String| {
        BackendError::new(
            TaskErrorCode::InternalError,
            format!("simulated screen: {e}"),
        )
    };
    let held = if checkouts.shared() && act.settles() {
        Some(checkouts.take().await.map_err(|e| failed(e.message))?)
    } else {
        None
    };
    phone
        .input(act, Some(shown))
        .await
        .map_err(|e| failed(e.to_string()))?;
    match held {
        Some(held) => held.published().await.map_err(failed),
        None => Ok(()),
    }
}
