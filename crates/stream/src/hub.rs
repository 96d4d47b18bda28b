//! The phones this node streams: one [`PhoneStream`] per phone with viewers here, opened with
//! [`Backend::open_screen`] for its first viewer and dropped [`Hub::linger`] after its last one
//! left (a viewer that reloads its page finds the screen still open). The stream's producer
//! task turns each frame the backend sends into wire bytes once and publishes it: image frames
//! into a latest-frame slot, which viewers read at their own pace (a slow one skips frames),
//! H.264 into the shared GOP buffer ([`crate::gop`]). Nothing a viewer does ever waits for
//! another viewer, and the producer never waits for any.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cloudphone_backend::screen::frame_size;
use cloudphone_backend::{
    Backend, BackendError, Codec, Frame, InputEvent, InstanceRef, Screen, ScreenOptions,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, warn};

use crate::gop::{GopBuffer, Pushed};
use crate::protocol;

/// How often a phone's source is asked for a key frame at most (H.264).
const KEYFRAME_EVERY: Duration = Duration::from_secs(2);
/// Inputs remembered per phone until a frame shows them (for the latency metric).
const PENDING_INPUTS: usize = 256;

/// Where a phone's screen is.
#[derive(Clone, Debug)]
pub enum Status {
    Opening,
    Open(Live),
    /// The backend could not open it.
    Failed(BackendError),
    /// The backend's frames ended (the phone stopped, its screen source died).
    Ended,
}

/// An open screen, as its viewers need it.
#[derive(Clone, Debug)]
pub struct Live {
    pub codec: Codec,
    /// The device's size in portrait.
    pub device: (u32, u32),
    pub input: mpsc::Sender<InputEvent>,
}

/// An image frame as every viewer sends it.
#[derive(Clone, Debug)]
pub struct WireFrame {
    /// The frame's number in its phone stream.
    pub seq: u32,
    pub bytes: Bytes,
}

/// Why an input was not passed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputRefused {
    /// The screen's input queue is full.
    Busy,
    /// The screen is gone.
    Closed,
}

/// What the producer task shares with the viewers.
#[derive(Debug)]
struct Feed {
    status: watch::Sender<Status>,
    frames: watch::Sender<Option<WireFrame>>,
    gop: GopBuffer,
    /// The size of the last frame.
    size: Mutex<Option<(u16, u16)>>,
    /// Inputs passed on and not yet shown by a frame: `(tag, seq, when)`.
    pending: Mutex<VecDeque<(u32, u32, Instant)>>,
    keyframe_asked: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Feed {
    fn live(&self) -> Option<Live> {
        match &*self.status.borrow() {
            Status::Open(live) => Some(live.clone()),
            _ => None,
        }
    }

    /// Asks the source for a key frame, at most every [`KEYFRAME_EVERY`].
    fn ask_keyframe(&self) {
        let Some(live) = self.live() else { return };
        if live.codec != Codec::H264 {
            return;
        }
        {
            let mut asked = lock(&self.keyframe_asked);
            if asked.is_some_and(|at| at.elapsed() < KEYFRAME_EVERY) {
                return;
            }
            *asked = Some(Instant::now());
        }
        let _ = live.input.try_send(InputEvent {
            input: cloudphone_backend::Input::KeyFrame,
            tag: 0,
            seq: 0,
            done: None,
        });
    }

    /// The input latency of the inputs `frame` shows for the first time.
    fn shown(&self, (tag, seq): (u32, u32), now: Instant) {
        let mut pending = lock(&self.pending);
        pending.retain(|&(t, s, at)| {
            if t == tag && s <= seq {
                metrics::histogram!("cloudphone_stream_input_latency_seconds")
                    .record(now.duration_since(at).as_secs_f64());
                false
            } else {
                true
            }
        });
    }

    fn publish(&self, frame: Frame, seq: u32) {
        let now = Instant::now();
        metrics::counter!("cloudphone_stream_frames_total", "codec" => frame.codec.name())
            .increment(1);
        *lock(&self.size) = Some((frame.width, frame.height));
        if let Some(shown) = frame.shows_input {
            self.shown(shown, now);
        }
        let wire = protocol::wire(&frame, seq);
        match frame.codec {
            Codec::H264 => match self.gop.push(wire, frame.key, now) {
                Pushed::Kept => {}
                Pushed::WantKeyFrame | Pushed::Dropped => self.ask_keyframe(),
            },
            Codec::Png | Codec::Jpeg => {
                self.frames
                    .send_replace(Some(WireFrame { seq, bytes: wire }));
            }
        }
    }
}

/// One phone's screen on this node, shared by its viewers here.
#[derive(Debug)]
pub struct PhoneStream {
    pub instance_id: String,
    max_size: u16,
    feed: Arc<Feed>,
    viewers: watch::Sender<usize>,
    /// Ends the producer (and so the backend's screen) when the last viewer's hold is gone.
    _stop: DropGuard,
}

/// Counts a viewer of a phone while it lives.
#[derive(Debug)]
pub struct Viewer(Arc<PhoneStream>);

impl Drop for Viewer {
    fn drop(&mut self) {
        self.0.viewers.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl PhoneStream {
    fn start(backend: Arc<dyn Backend>, phone: InstanceRef, opts: ScreenOptions) -> PhoneStream {
        let feed = Arc::new(Feed {
            status: watch::Sender::new(Status::Opening),
            frames: watch::Sender::new(None),
            gop: GopBuffer::default(),
            size: Mutex::new(None),
            pending: Mutex::new(VecDeque::new()),
            keyframe_asked: Mutex::new(None),
        });
        let stop = CancellationToken::new();
        let instance_id = phone.id.clone();
        tokio::spawn(produce(feed.clone(), backend, phone, opts, stop.clone()));
        PhoneStream {
            instance_id,
            max_size: opts.max_size,
            feed,
            viewers: watch::Sender::new(0),
            _stop: stop.drop_guard(),
        }
    }

    fn is_over(&self) -> bool {
        matches!(
            *self.feed.status.borrow(),
            Status::Failed(_) | Status::Ended
        )
    }

    pub fn status(&self) -> watch::Receiver<Status> {
        self.feed.status.subscribe()
    }

    /// The open screen, once the backend opened it (within `timeout`); else what it came to.
    pub async fn ready(&self, timeout: Duration) -> Result<Live, Status> {
        let mut rx = self.status();
        let waited =
            tokio::time::timeout(timeout, rx.wait_for(|s| !matches!(s, Status::Opening))).await;
        match waited {
            Ok(Ok(s)) => match &*s {
                Status::Open(live) => Ok(live.clone()),
                other => Err(other.clone()),
            },
            Ok(Err(_)) => Err(Status::Ended),
            Err(_) => Err(Status::Opening),
        }
    }

    /// Counts a viewer until the returned guard is dropped.
    pub fn viewer(self: &Arc<Self>) -> Viewer {
        self.viewers.send_modify(|n| *n += 1);
        Viewer(self.clone())
    }

    pub fn viewers(&self) -> watch::Receiver<usize> {
        self.viewers.subscribe()
    }

    /// The latest image frame (image codecs).
    pub fn frames(&self) -> watch::Receiver<Option<WireFrame>> {
        self.feed.frames.subscribe()
    }

    /// The shared GOP (H.264).
    pub fn gop(&self) -> &GopBuffer {
        &self.feed.gop
    }

    /// The size frames have now: the last frame's, else the device's at the stream's size.
    pub fn frame_size(&self, live: &Live) -> (u16, u16) {
        lock(&self.feed.size).unwrap_or_else(|| frame_size(live.device, false, self.max_size))
    }

    /// Passes an input on to the screen without waiting: a full queue refuses it.
    pub fn send_input(&self, live: &Live, event: InputEvent) -> Result<(), InputRefused> {
        let (tag, seq) = (event.tag, event.seq);
        live.input.try_send(event).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => InputRefused::Busy,
            mpsc::error::TrySendError::Closed(_) => InputRefused::Closed,
        })?;
        let mut pending = lock(&self.feed.pending);
        if pending.len() >= PENDING_INPUTS {
            pending.pop_front();
        }
        pending.push_back((tag, seq, Instant::now()));
        Ok(())
    }

    /// A viewer lost H.264 sync.
    pub fn ask_keyframe(&self) {
        self.feed.ask_keyframe();
    }
}

/// Opens the screen, then publishes its frames until it ends or the stream is dropped.
async fn produce(
    feed: Arc<Feed>,
    backend: Arc<dyn Backend>,
    phone: InstanceRef,
    opts: ScreenOptions,
    stop: CancellationToken,
) {
    let opened = tokio::select! {
        _ = stop.cancelled() => return,
        opened = backend.open_screen(&phone, opts) => opened,
    };
    let mut screen: Screen = match opened {
        Ok(screen) => screen,
        Err(e) => {
            warn!(instance = %phone.id, error = %e, "could not open the phone's screen");
            feed.status.send_replace(Status::Failed(e));
            return;
        }
    };
    debug!(instance = %phone.id, codec = screen.codec.name(), "screen opened");
    metrics::gauge!("cloudphone_stream_screens").increment(1.0);
    feed.status.send_replace(Status::Open(Live {
        codec: screen.codec,
        device: screen.device,
        input: screen.input.clone(),
    }));
    let mut seq: u32 = 0;
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => break,
            frame = screen.frames.recv() => frame,
        };
        let Some(frame) = frame else {
            debug!(instance = %phone.id, "the screen's frames ended");
            feed.status.send_replace(Status::Ended);
            break;
        };
        seq = seq.wrapping_add(1);
        feed.publish(frame, seq);
    }
    metrics::gauge!("cloudphone_stream_screens").decrement(1.0);
}

/// This node's phone streams.
pub struct Hub {
    backend: Arc<dyn Backend>,
    opts: ScreenOptions,
    linger: Duration,
    /// By phone and `images_only`: a viewer without a video decoder gets the phone's image
    /// source beside its H.264 one.
    phones: Mutex<HashMap<(String, bool), Weak<PhoneStream>>>,
    next_tag: AtomicU32,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("opts", &self.opts)
            .field("linger", &self.linger)
            .field("streams", &self.streams())
            .finish()
    }
}

impl Hub {
    pub fn new(backend: Arc<dyn Backend>, opts: ScreenOptions, linger: Duration) -> Hub {
        // Tags count on from a random point: what a phone shows applied outlives a stream (the
        // simulated phone keeps it in its files, which other nodes share), so a new stream
        // must not hand out the tags of an old one.
        let start = std::collections::hash_map::RandomState::new().hash_one(0u8) as u32;
        Hub {
            backend,
            opts,
            linger,
            phones: Mutex::new(HashMap::new()),
            next_tag: AtomicU32::new(start),
        }
    }

    /// A tag for a new viewer: unique among the viewers of this node for 2^32 sessions (never
    /// 0, which frames use for "no input").
    pub fn new_tag(&self) -> u32 {
        loop {
            let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
            if tag != 0 {
                return tag;
            }
        }
    }

    /// How long a screen stays open after its last viewer left.
    pub fn linger(&self) -> Duration {
        self.linger
    }

    /// The phone's stream: the one open on this node, or a new one (whose screen opens in the
    /// background; see [`PhoneStream::ready`]). A stream whose screen failed or ended is not
    /// reused. `images_only`: the viewer cannot decode H.264 (the stream is then one of image
    /// frames, a second source on a phone that streams H.264 to others).
    pub fn join(&self, phone: &InstanceRef, images_only: bool) -> Arc<PhoneStream> {
        let key = (phone.id.clone(), images_only);
        let mut phones = lock(&self.phones);
        if let Some(s) = phones.get(&key).and_then(Weak::upgrade)
            && !s.is_over()
        {
            return s;
        }
        phones.retain(|_, w| w.strong_count() > 0);
        let opts = ScreenOptions {
            images_only,
            ..self.opts
        };
        let s = Arc::new(PhoneStream::start(
            self.backend.clone(),
            phone.clone(),
            opts,
        ));
        phones.insert(key, Arc::downgrade(&s));
        s
    }

    /// A viewer is done with `stream`: it stays open for [`Hub::linger`] more, for the next.
    pub fn leave(&self, stream: Arc<PhoneStream>) {
        if stream.is_over() || self.linger.is_zero() {
            return;
        }
        let linger = self.linger;
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            drop(stream);
        });
    }

    /// Screens open on this node (open, opening, or lingering; a phone with viewers of both
    /// kinds has two).
    pub fn streams(&self) -> usize {
        lock(&self.phones)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}
