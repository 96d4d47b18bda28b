//! A fake backend for the stream server's tests: every phone's screen is a stream of synthetic
//! "PNG" frames (bytes that only need to travel, never to decode) at the asked rate, each
//! saying which input it shows, and a frame drawn at once after each input, as the simulated
//! phone's renderer does. It counts screens opened and closed and records the input received.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cloudphone_backend::screen::{IMAGE_FRAMES_CAPACITY, INPUT_CAPACITY, frame_size};
use cloudphone_backend::{
    Backend, BackendError, Codec, Frame, Input, InputEvent, InstanceRef, OpResult, Screen,
    ScreenOptions,
};
use cloudphone_core::TaskErrorCode;
use cloudphone_core::resources::Image;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An input as the fake received it: `(instance, tag, seq, input)`.
pub type Received = (String, u32, u32, Input);

#[derive(Debug, Default)]
pub struct FakeScreens {
    /// Bytes of each frame's payload.
    pub frame_bytes: usize,
    /// open_screen fails (as a backend without screens does).
    pub unsupported: bool,
    /// Input is never taken from the queue (the queue fills).
    pub stuck_input: bool,
    pub opened: AtomicUsize,
    pub closed: Arc<AtomicUsize>,
    /// `(instance, tag, seq, input)` in the order received.
    pub inputs: Arc<Mutex<Vec<Received>>>,
}

impl FakeScreens {
    pub fn new(frame_bytes: usize) -> FakeScreens {
        FakeScreens {
            frame_bytes,
            ..FakeScreens::default()
        }
    }

    pub fn inputs(&self) -> Vec<Received> {
        self.inputs.lock().unwrap().clone()
    }
}

struct Closed(Arc<AtomicUsize>);

impl Drop for Closed {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Backend for FakeScreens {
    fn images(&self) -> Vec<Image> {
        Vec::new()
    }
    async fn create(&self, _: &InstanceRef) -> OpResult<()> {
        Ok(())
    }
    async fn delete(&self, _: &InstanceRef) -> OpResult<()> {
        Ok(())
    }
    async fn start(&self, _: &InstanceRef) -> OpResult<()> {
        Ok(())
    }
    async fn stop(&self, _: &InstanceRef, _: bool) -> OpResult<()> {
        Ok(())
    }
    async fn reboot(&self, _: &InstanceRef, _: bool) -> OpResult<()> {
        Ok(())
    }
    async fn reset(&self, _: &InstanceRef, _: &str) -> OpResult<()> {
        Ok(())
    }

    async fn open_screen(&self, phone: &InstanceRef, opts: ScreenOptions) -> OpResult<Screen> {
        if self.unsupported {
            return Err(BackendError::new(
                TaskErrorCode::UnsupportedOperation,
                "This backend's phones have no live screen.",
            ));
        }
        self.opened.fetch_add(1, Ordering::SeqCst);
        let device = (720, 1280);
        let (frames_tx, frames_rx) = mpsc::channel(IMAGE_FRAMES_CAPACITY);
        let (input_tx, mut input_rx) = mpsc::channel::<InputEvent>(INPUT_CAPACITY);
        let stop = CancellationToken::new();
        let closed = Closed(self.closed.clone());
        let inputs = self.inputs.clone();
        let instance = phone.id.clone();
        let frame_bytes = self.frame_bytes.max(8);
        let stuck = self.stuck_input;
        let ended = stop.clone();
        tokio::spawn(async move {
            let _closed = closed;
            let (w, h) = frame_size(device, false, opts.max_size);
            let mut tick =
                tokio::time::interval(Duration::from_millis(1000 / u64::from(opts.fps.max(1))));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut shown = None;
            let mut n: u64 = 0;
            loop {
                tokio::select! {
                    _ = ended.cancelled() => break,
                    ev = input_rx.recv(), if !stuck => {
                        let Some(ev) = ev else { break };
                        inputs.lock().unwrap().push((instance.clone(), ev.tag, ev.seq, ev.input.clone()));
                        if ev.tag != 0 {
                            shown = Some((ev.tag, ev.seq));
                        }
                        if let Some(done) = ev.done {
                            let _ = done.send(Ok(()));
                        }
                    }
                    _ = tick.tick() => {}
                }
                n += 1;
                let mut data = vec![0u8; frame_bytes];
                data[..8].copy_from_slice(&n.to_be_bytes());
                let frame = Frame {
                    codec: Codec::Png,
                    key: true,
                    width: w,
                    height: h,
                    rotated: false,
                    shows_input: shown,
                    captured_ms: cloudphone_core::time::now_ms(),
                    data: Bytes::from(data),
                };
                if frames_tx.is_closed() {
                    break;
                }
                let _ = frames_tx.try_send(frame);
            }
        });
        Ok(Screen {
            codec: Codec::Png,
            device,
            frames: frames_rx,
            input: input_tx,
            stop: stop.drop_guard(),
        })
    }
}
