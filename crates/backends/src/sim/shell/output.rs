//! What a script writes: stdout and stderr in the order written, with the stderr parts marked.
//! It is kept, up to a cap, for RunCommand, or passed on as it is made to an [`OutputSink`]
//! (`adb shell`), in which case the shell hands over what it holds after every command and
//! every chunk of a file, and the sink's pace (the host reading its stream) sets the script's.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::sim::work::ShellWork;

/// Where a streamed script's output goes.
pub(crate) trait OutputSink: Send {
    /// Passes on `bytes` (written to stderr when `stderr`); waits while the reader is behind.
    /// False once nobody takes them (the host closed the stream): the script stops.
    fn write<'a>(
        &'a mut self,
        stderr: bool,
        bytes: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
}

/// Output with a cap; what goes past it is dropped and remembered as truncation. Which bytes
/// were written to stderr is kept beside them. A streaming shell's output counts what it holds
/// in the phone's [`ShellWork`].
pub(super) struct Output {
    pub(super) buf: Vec<u8>,
    /// Byte ranges of `buf` written to stderr, in order, not overlapping.
    pub(super) stderr: Vec<(usize, usize)>,
    cap: usize,
    pub(super) truncated: bool,
    meter: Option<Arc<ShellWork>>,
}

impl Output {
    pub(super) fn new(cap: usize) -> Output {
        Output {
            buf: Vec::new(),
            stderr: Vec::new(),
            cap,
            truncated: false,
            meter: None,
        }
    }

    /// The same, counting what it holds in `work`.
    pub(super) fn metered(cap: usize, work: Arc<ShellWork>) -> Output {
        Output {
            buf: Vec::new(),
            stderr: Vec::new(),
            cap,
            truncated: false,
            meter: Some(work),
        }
    }

    pub(super) fn room(&self) -> usize {
        self.cap.saturating_sub(self.buf.len())
    }

    pub(super) fn write(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.room());
        self.buf.extend_from_slice(&bytes[..n]);
        if let Some(m) = &self.meter {
            m.hold(n);
        }
        if n < bytes.len() {
            self.truncated = true;
        }
    }

    pub(super) fn line(&mut self, s: &str) {
        self.write(s.as_bytes());
        self.write(b"\n");
    }

    /// A line on stderr.
    pub(super) fn err_line(&mut self, s: &str) {
        let start = self.buf.len();
        self.line(s);
        self.mark_stderr(start, self.buf.len());
    }

    /// `text` on stderr even past the cap (the note that output was cut).
    pub(super) fn err_note(&mut self, text: &str) {
        let start = self.buf.len();
        self.buf.extend_from_slice(text.as_bytes());
        if let Some(m) = &self.meter {
            m.hold(text.len());
        }
        self.mark_stderr(start, self.buf.len());
    }

    pub(super) fn mark_stderr(&mut self, start: usize, end: usize) {
        if end <= start {
            return;
        }
        match self.stderr.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => self.stderr.push((start, end)),
        }
    }

    pub(super) fn append(&mut self, other: Output) {
        let base = self.buf.len();
        self.write(&other.buf);
        let end = self.buf.len();
        for &(s, e) in &other.stderr {
            self.mark_stderr((base + s).min(end), (base + e).min(end));
        }
        self.truncated |= other.truncated;
    }

    /// Passes what is held to `sink` and lets it go; false when the sink took no more.
    pub(super) async fn drain_to(&mut self, sink: &mut dyn OutputSink) -> bool {
        let mut ok = true;
        for (stderr, piece) in pieces(&self.buf, &self.stderr) {
            if !sink.write(stderr, piece).await {
                ok = false;
                break;
            }
        }
        self.clear();
        ok
    }

    fn clear(&mut self) {
        if let Some(m) = &self.meter {
            m.release(self.buf.len());
        }
        self.buf.clear();
        self.stderr.clear();
    }

    /// The bytes and their stderr ranges, for a kept output.
    pub(super) fn into_parts(mut self) -> (Vec<u8>, Vec<(usize, usize)>) {
        if let Some(m) = self.meter.take() {
            m.release(self.buf.len());
        }
        (
            std::mem::take(&mut self.buf),
            std::mem::take(&mut self.stderr),
        )
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some(m) = &self.meter {
            m.release(self.buf.len());
        }
    }
}

/// `buf` as (is stderr, bytes) pieces, in order.
pub(super) fn pieces<'a>(buf: &'a [u8], stderr: &[(usize, usize)]) -> Vec<(bool, &'a [u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    for &(start, end) in stderr {
        if start > at {
            out.push((false, &buf[at..start]));
        }
        if end > start {
            out.push((true, &buf[start..end]));
        }
        at = end;
    }
    if at < buf.len() {
        out.push((false, &buf[at..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_capped_and_remembers_truncation() {
        let mut out = Output::new(5);
        out.write(b"abc");
        assert!(!out.truncated);
        out.write(b"def");
        assert_eq!(out.buf, b"abcde");
        assert!(out.truncated);
    }

    #[test]
    fn a_metered_output_counts_what_it_holds() {
        let work = Arc::new(ShellWork::default());
        let mut out = Output::metered(100, work.clone());
        out.line("hello");
        out.err_line("oops");
        assert_eq!(work.held(), 11);
        let mut other = Output::metered(100, work.clone());
        other.write(b"abc");
        out.append(other);
        assert_eq!(work.held(), 14);
        assert_eq!(
            pieces(&out.buf, &out.stderr),
            [
                (false, &b"hello\n"[..]),
                (true, &b"oops\n"[..]),
                (false, &b"abc"[..])
            ]
        );
        drop(out);
        assert_eq!((work.held(), work.peak_held()), (0, 17));
    }
}
