//! The H.264 fan-out of one phone (docs/design.md §14.5): the current *group of pictures* (its
//! key frame, SPS/PPS merged in front, and the deltas since), shared by every viewer of the
//! phone on this node. A new viewer starts at the GOP's key frame, so it can decode at once; a
//! viewer that falls behind within a GOP skips to the next one instead of queueing. Memory is
//! one GOP per phone whatever the number of viewers, and a GOP that grows too big is dropped
//! until the next key frame.
//!
//! The producer [`GopBuffer::push`]es wire frames (header and payload); each viewer holds a
//! [`GopCursor`] and takes the packets it has not sent yet with [`GopCursor::take`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

/// Past this, the GOP asks the source for a key frame.
pub const SOFT_LIMIT_BYTES: usize = 16 << 20;
/// Past this, the GOP is dropped until the next key frame.
pub const HARD_LIMIT_BYTES: usize = 32 << 20;
/// A viewer this many packets behind within a GOP skips to the next one.
pub const MAX_BEHIND_PACKETS: usize = 60;
/// A viewer whose next packet is this much older than the newest skips to the next GOP.
pub const MAX_BEHIND: Duration = Duration::from_secs(1);

/// Where the producer is: GOP `gop` has `len` packets. GOP 0 is "none yet".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub gop: u64,
    pub len: usize,
}

#[derive(Debug, Default)]
struct Inner {
    gop: u64,
    packets: Vec<(Bytes, Instant)>,
    bytes: usize,
    /// Over the hard limit: nothing more of this GOP is kept.
    dropped: bool,
}

impl Inner {
    fn position(&self) -> Position {
        Position {
            gop: self.gop,
            len: self.packets.len(),
        }
    }
}

/// What a push asks of the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    Kept,
    /// Kept, but the GOP is big (or was dropped, or none has started): a key frame would help.
    WantKeyFrame,
    /// Not kept: no GOP to add it to (none started, or this one was dropped).
    Dropped,
}

#[derive(Debug)]
pub struct GopBuffer {
    inner: Mutex<Inner>,
    published: watch::Sender<Position>,
}

impl Default for GopBuffer {
    fn default() -> Self {
        GopBuffer {
            inner: Mutex::default(),
            published: watch::Sender::new(Position::default()),
        }
    }
}

impl GopBuffer {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a wire packet: a key frame starts a new GOP (and frees the last one).
    pub fn push(&self, packet: Bytes, key: bool, now: Instant) -> Pushed {
        let (answer, position) = {
            let mut g = self.inner();
            if key {
                g.gop += 1;
                g.bytes = packet.len();
                g.packets.clear();
                g.packets.push((packet, now));
                g.dropped = false;
                (Pushed::Kept, g.position())
            } else if g.gop == 0 || g.dropped {
                return Pushed::Dropped;
            } else if g.bytes + packet.len() > HARD_LIMIT_BYTES {
                g.dropped = true;
                g.packets = Vec::new();
                g.bytes = 0;
                metrics::counter!("cloudphone_stream_gops_dropped_total").increment(1);
                (Pushed::Dropped, g.position())
            } else {
                g.bytes += packet.len();
                g.packets.push((packet, now));
                let answer = if g.bytes > SOFT_LIMIT_BYTES {
                    Pushed::WantKeyFrame
                } else {
                    Pushed::Kept
                };
                (answer, g.position())
            }
        };
        self.published.send_replace(position);
        answer
    }

    /// The bytes the current GOP holds.
    pub fn bytes(&self) -> usize {
        self.inner().bytes
    }

    /// A new viewer's cursor: its first [`GopCursor::changed`] resolves at once.
    pub fn cursor(&self) -> GopCursor {
        let mut rx = self.published.subscribe();
        rx.mark_changed();
        GopCursor {
            rx,
            gop: 0,
            next: 0,
            skipping: false,
        }
    }
}

/// One viewer's place in the shared GOP.
#[derive(Debug)]
pub struct GopCursor {
    rx: watch::Receiver<Position>,
    gop: u64,
    next: usize,
    /// Behind within this GOP: waits for the next key frame.
    skipping: bool,
}

/// What a viewer takes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Take {
    /// To send, in order.
    pub packets: Vec<Bytes>,
    /// The viewer fell behind and skips to the next GOP: the source should send a key frame
    /// soon (rate-limited by the caller).
    pub fell_behind: bool,
    /// Packets passed over.
    pub skipped: usize,
}

impl GopCursor {
    /// Resolves when the producer pushed since the last [`GopCursor::take`]; `Err` once the
    /// buffer is gone.
    pub async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        self.rx.changed().await
    }

    /// The packets this viewer has not sent yet (at most `max` of them, so that a writer
    /// checks for other work between batches).
    pub fn take(&mut self, buf: &GopBuffer, now: Instant, max: usize) -> Take {
        self.rx.borrow_and_update();
        let g = buf.inner();
        let mut out = Take::default();
        if g.gop == 0 {
            return out;
        }
        if g.gop != self.gop {
            self.gop = g.gop;
            self.next = 0;
            self.skipping = false;
        }
        if self.skipping || g.dropped {
            return out;
        }
        let len = g.packets.len();
        if self.next >= len {
            return out;
        }
        let behind = len - self.next;
        let stale = g.packets[self.next].1 + MAX_BEHIND < g.packets[len - 1].1
            && now.saturating_duration_since(g.packets[self.next].1) > MAX_BEHIND;
        if self.next > 0 && (behind > MAX_BEHIND_PACKETS || stale) {
            // A key frame it missed cannot be made up for by deltas: wait for the next one.
            self.skipping = true;
            out.fell_behind = true;
            out.skipped = behind;
            self.next = len;
            return out;
        }
        let end = len.min(self.next + max.max(1));
        out.packets = g.packets[self.next..end]
            .iter()
            .map(|(p, _)| p.clone())
            .collect();
        self.next = end;
        // More are waiting: make the next `changed` resolve at once.
        if end < len {
            self.rx.mark_changed();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8, len: usize) -> Bytes {
        let mut v = vec![n; len];
        v[0] = n;
        Bytes::from(v)
    }

    #[test]
    fn a_viewer_starts_at_the_key_frame_of_the_current_gop() {
        let buf = GopBuffer::default();
        let t0 = Instant::now();
        assert_eq!(buf.push(p(9, 10), false, t0), Pushed::Dropped, "no GOP yet");
        assert_eq!(buf.push(p(1, 10), true, t0), Pushed::Kept);
        buf.push(p(2, 10), false, t0);
        buf.push(p(3, 10), false, t0);
        // A viewer joining now gets the key and both deltas, in order.
        let mut late = buf.cursor();
        let got = late.take(&buf, t0, 100);
        assert_eq!(got.packets, vec![p(1, 10), p(2, 10), p(3, 10)]);
        assert!(late.take(&buf, t0, 100).packets.is_empty());
        buf.push(p(4, 10), false, t0);
        assert_eq!(late.take(&buf, t0, 100).packets, vec![p(4, 10)]);
        // A new key frame frees the old GOP and restarts every cursor at it.
        buf.push(p(5, 10), true, t0);
        assert_eq!(buf.bytes(), 10);
        assert_eq!(late.take(&buf, t0, 100).packets, vec![p(5, 10)]);
    }

    #[test]
    fn batches_are_bounded_and_the_rest_stays_signalled() {
        let buf = GopBuffer::default();
        let t0 = Instant::now();
        buf.push(p(1, 4), true, t0);
        for n in 2..=5 {
            buf.push(p(n, 4), false, t0);
        }
        let mut c = buf.cursor();
        assert_eq!(c.take(&buf, t0, 2).packets.len(), 2);
        assert!(c.rx.has_changed().unwrap(), "more waiting");
        assert_eq!(c.take(&buf, t0, 2).packets.len(), 2);
        assert_eq!(c.take(&buf, t0, 2).packets, vec![p(5, 4)]);
        assert!(!c.rx.has_changed().unwrap());
    }

    #[test]
    fn a_viewer_too_far_behind_skips_to_the_next_gop() {
        let buf = GopBuffer::default();
        let t0 = Instant::now();
        buf.push(p(1, 4), true, t0);
        let mut slow = buf.cursor();
        let mut fast = buf.cursor();
        assert_eq!(slow.take(&buf, t0, 1).packets.len(), 1);
        for _ in 0..=MAX_BEHIND_PACKETS {
            buf.push(p(2, 4), false, t0);
            assert!(!fast.take(&buf, t0, 100).packets.is_empty());
        }
        let got = slow.take(&buf, t0, 100);
        assert!(got.fell_behind && got.packets.is_empty());
        assert_eq!(got.skipped, MAX_BEHIND_PACKETS + 1);
        // It sends nothing more of this GOP...
        buf.push(p(2, 4), false, t0);
        assert_eq!(slow.take(&buf, t0, 100), Take::default());
        assert_eq!(fast.take(&buf, t0, 100).packets.len(), 1, "others go on");
        // ...and resumes at the next key frame.
        buf.push(p(7, 4), true, t0);
        assert_eq!(slow.take(&buf, t0, 100).packets, vec![p(7, 4)]);
    }

    #[test]
    fn a_viewer_behind_by_time_skips_too() {
        let buf = GopBuffer::default();
        let t0 = Instant::now();
        buf.push(p(1, 4), true, t0);
        let mut c = buf.cursor();
        assert_eq!(c.take(&buf, t0, 1).packets.len(), 1);
        buf.push(p(2, 4), false, t0 + Duration::from_millis(100));
        buf.push(p(3, 4), false, t0 + Duration::from_millis(1500));
        let got = c.take(&buf, t0 + Duration::from_millis(1500), 100);
        assert!(got.fell_behind);
        // A viewer that is merely at the start of a long GOP is not behind.
        let mut fresh = buf.cursor();
        let got = fresh.take(&buf, t0 + Duration::from_millis(1500), 100);
        assert_eq!(got.packets.len(), 3);
    }

    #[test]
    fn a_gop_over_the_limits_asks_for_a_key_then_is_dropped() {
        let buf = GopBuffer::default();
        let t0 = Instant::now();
        buf.push(p(1, 1 << 20), true, t0);
        let mut c = buf.cursor();
        let mut asked = false;
        let mut pushes = 0;
        loop {
            match buf.push(p(2, 1 << 20), false, t0) {
                Pushed::Kept => {}
                Pushed::WantKeyFrame => asked = true,
                Pushed::Dropped => break,
            }
            pushes += 1;
            assert!(pushes < 40);
        }
        assert!(asked, "asked for a key frame past the soft limit first");
        assert_eq!(buf.bytes(), 0, "the dropped GOP's memory is freed");
        assert_eq!(c.take(&buf, t0, 100), Take::default());
        assert_eq!(buf.push(p(3, 10), false, t0), Pushed::Dropped);
        buf.push(p(4, 10), true, t0);
        assert_eq!(c.take(&buf, t0, 100).packets, vec![p(4, 10)]);
    }
}
