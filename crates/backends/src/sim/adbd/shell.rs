//! `adb shell` on a simulated phone: the simulator's shell ([`crate::sim::shell`], the one
//! RunCommand runs) behind cloudphone-adb's shell adapter.
//!
//! - A command runs as one script; its stdout and stderr leave apart under shell protocol v2
//!   (with the exit code), merged on a raw stream (`shell:`, `exec:`) or a terminal. Output
//!   goes to the stream as it is made ([`Session::stream`]): the shell holds a chunk at a time
//!   and waits while the host is behind (the adapter's pipes are bounded), and when the host
//!   closes the stream the command's future is dropped, which stops it between two blocking
//!   trips.
//! - No command: an interactive shell reading lines from stdin, keeping its working directory
//!   and `$?` from line to line. With a terminal (`adb shell` from a terminal) it prints a
//!   prompt and does what a terminal's line discipline would: echo, backspace, `^C`, `^D`,
//!   `\n` as `\r\n`; without one (stdin piped), it runs lines silently, like `sh` reading a
//!   script.
//! - `cmd package install ... -S SIZE` and `pm install ... -S SIZE` (what `adb install` sends
//!   when the phone has `cmd`) read the APK from stdin into a scratch file outside the phone's
//!   files and install it as `pm install` does; scripts have no stdin, so this one is answered
//!   here rather than by the shell. The APK's size is reserved in the phone's storage while it
//!   is received: one that does not fit is refused before a byte is read.
//! - adb 29 ends the `rm` of its push install with `</dev/null`: a trailing redirection of
//!   stdin from `/dev/null` changes nothing here (commands read no stdin) and is dropped rather
//!   than refused as the shell's syntax error.

use cloudphone_adb::proto::service::{ShellProtocol, ShellRequest};
use std::future::Future;
use std::pin::Pin;

use cloudphone_adb::services::shell::{Shell, ShellInput, ShellIo, ShellOutput};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::sim::packages;
use crate::sim::phone::{PhoneDir, Scratch};
use crate::sim::share::Checkouts;
use crate::sim::shell::{OutputSink, Session, first_command_words};
use crate::sim::storage::file_blocks;

/// The largest APK `adb install` may stream (Android's own limit on an APK is 4 GiB).
pub const MAX_APK_BYTES: u64 = 4 << 30;
/// The longest line an interactive shell keeps; a longer one is refused, not buffered.
const MAX_LINE: usize = 64 * 1024;

pub(crate) struct SimShell {
    phone: PhoneDir,
    /// `ro.product.device`, for the prompt.
    device: String,
    checkouts: Checkouts,
}

impl SimShell {
    pub(crate) fn new(phone: PhoneDir, device: String, checkouts: Checkouts) -> SimShell {
        SimShell {
            phone,
            device,
            checkouts,
        }
    }
}

/// Where output goes: under v2 without a terminal, stdout and stderr apart; otherwise one
/// stream (a raw stream merges them; a terminal has one), with `\n` as `\r\n` on a terminal.
struct Sink {
    stdout: ShellOutput,
    stderr: ShellOutput,
    split: bool,
    terminal: bool,
}

impl Sink {
    async fn out(&mut self, bytes: &[u8]) -> bool {
        let bytes = self.translate(bytes);
        self.stdout.write_all(&bytes).await.is_ok()
    }

    async fn err(&mut self, bytes: &[u8]) -> bool {
        let bytes = self.translate(bytes);
        if self.split {
            self.stderr.write_all(&bytes).await.is_ok()
        } else {
            self.stdout.write_all(&bytes).await.is_ok()
        }
    }

    fn translate(&self, bytes: &[u8]) -> Vec<u8> {
        if !self.terminal {
            return bytes.to_vec();
        }
        let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16);
        for &b in bytes {
            if b == b'\n' {
                out.push(b'\r');
            }
            out.push(b);
        }
        out
    }
}

impl OutputSink for Sink {
    fn write<'a>(
        &'a mut self,
        stderr: bool,
        bytes: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            if stderr {
                self.err(bytes).await
            } else {
                self.out(bytes).await
            }
        })
    }
}

/// `command` without a trailing `</dev/null` (adb's push install adds one to its `rm`).
fn without_null_stdin(command: &str) -> &str {
    let trimmed = command.trim_end();
    for suffix in ["</dev/null", "< /dev/null"] {
        if let Some(rest) = trimmed.strip_suffix(suffix) {
            return rest;
        }
    }
    command
}

/// The APK size of a streamed install (`cmd package install [OPTIONS] -S SIZE`, or `pm
/// install ... -S SIZE`, with no file named), if `command` is one.
fn streamed_install(command: &str) -> Option<u64> {
    let argv = first_command_words(command)?;
    let rest = match argv
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["cmd", "package", "install", ..] => &argv[3..],
        ["pm", "install", ..] => &argv[2..],
        _ => return None,
    };
    let mut size = None;
    let mut i = 0;
    while i < rest.len() {
        match rest[i].as_str() {
            "-S" => {
                size = rest.get(i + 1)?.parse().ok();
                i += 1;
            }
            // Options with a value, which is not a file name.
            "--user" | "-i" | "--install-reason" | "-p" | "--pkg" | "--abi"
            | "--originating-uri" | "--referrer" | "--install-location" => i += 1,
            a if a.starts_with('-') => {}
            // A file named: `pm install PATH` runs in the shell.
            _ => return None,
        }
        i += 1;
    }
    size
}

impl Shell for SimShell {
    async fn run(&self, request: ShellRequest, io: ShellIo) -> i32 {
        let ShellIo {
            stdin,
            stdout,
            stderr,
            ..
        } = io;
        let mut sink = Sink {
            stdout,
            stderr,
            split: request.protocol == ShellProtocol::V2 && !request.pty,
            terminal: request.pty,
        };
        if request.command.trim().is_empty() {
            // Each line takes the checkout for itself (`run_line`).
            return self.interactive(stdin, &mut sink, request.pty).await;
        }
        let held = match self.checkouts.take().await {
            Ok(held) => held,
            Err(e) => {
                sink.err(format!("sh: {}\n", e.message).as_bytes()).await;
                return 1;
            }
        };
        let command = without_null_stdin(&request.command);
        let status = if let Some(size) = streamed_install(command) {
            self.install_from(stdin, size, &mut sink).await
        } else {
            match Session::new(&self.phone).stream(command, &mut sink).await {
                Ok(done) => done.status,
                Err(e) => {
                    sink.err(format!("sh: the phone's state: {e}\n").as_bytes())
                        .await;
                    1
                }
            }
        };
        match held.published().await {
            Ok(()) => status,
            Err(e) => {
                sink.err(format!("sh: {e}\n").as_bytes()).await;
                1
            }
        }
    }
}

impl SimShell {
    /// Reads exactly `size` bytes of APK from `stdin` into a scratch file and installs it.
    async fn install_from(&self, stdin: ShellInput, size: u64, sink: &mut Sink) -> i32 {
        // The APK takes the phone's storage while it is received (Android's package manager
        // checks the free space first, and says so in these words).
        let storage = self.phone.storage().clone();
        let (data, wanted) = (self.phone.data(), size);
        let reserved = tokio::task::spawn_blocking(move || {
            storage.refresh(&data)?;
            storage.reserve(file_blocks(wanted))
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        let _reserved = match reserved {
            Ok(r) if size <= MAX_APK_BYTES => r,
            _ => {
                sink.out(b"Failure [INSTALL_FAILED_INSUFFICIENT_STORAGE]\n")
                    .await;
                return 1;
            }
        };
        let scratch = Scratch::new(self.phone.scratch("install.apk"));
        let received = async {
            let mut file = tokio::fs::File::create(scratch.path()).await?;
            let n = tokio::io::copy(&mut stdin.take(size), &mut file).await?;
            file.flush().await?;
            Ok::<u64, std::io::Error>(n)
        }
        .await;
        match received {
            Ok(n) if n == size => {}
            Ok(n) => {
                let msg = format!(
                    "Failure [INSTALL_FAILED_INVALID_APK: the APK ended after {n} of {size} bytes]\n"
                );
                sink.out(msg.as_bytes()).await;
                return 1;
            }
            Err(e) => {
                let msg = format!("Failure [INSTALL_FAILED_INTERNAL_ERROR: {e}]\n");
                sink.out(msg.as_bytes()).await;
                return 1;
            }
        }
        // adb reads one status line from the stream: both answers go to stdout.
        match packages::install_apk(&self.phone, scratch.path()).await {
            Ok(Ok(package)) => {
                tracing::debug!(%package, "installed through adb");
                sink.out(b"Success\n").await;
                0
            }
            Ok(Err(refused)) => {
                sink.out(format!("{}\n", refused.failure()).as_bytes())
                    .await;
                1
            }
            Err(e) => {
                let msg = format!("Failure [INSTALL_FAILED_INTERNAL_ERROR: {e}]\n");
                sink.out(msg.as_bytes()).await;
                1
            }
        }
    }

    fn prompt(&self, session: &Session<'_>) -> Vec<u8> {
        format!("{}:{} $ ", self.device, session.cwd()).into_bytes()
    }

    /// An interactive shell until `exit`, end of input (`^D` on a terminal) or the host
    /// closing the stream; returns the last status.
    async fn interactive(&self, mut stdin: ShellInput, sink: &mut Sink, terminal: bool) -> i32 {
        let mut session = Session::new(&self.phone);
        let mut status = 0;
        let mut line: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 4096];
        if terminal && !sink.out(&self.prompt(&session)).await {
            return status;
        }
        loop {
            let n = match read(&mut stdin, &mut buf).await {
                Some(n) => n,
                None => {
                    // End of input: what is left of a line runs, as `sh` runs a last line
                    // without a newline.
                    if !terminal && !line.is_empty() {
                        let text = String::from_utf8_lossy(&line).into_owned();
                        if let Some(s) = self.run_line(&mut session, &text, sink).await {
                            status = s.0;
                        }
                    }
                    return status;
                }
            };
            let mut echo = Vec::new();
            for &b in &buf[..n] {
                let end_of_line = if terminal {
                    matches!(b, b'\r' | b'\n')
                } else {
                    b == b'\n'
                };
                if end_of_line {
                    if terminal {
                        echo.extend_from_slice(b"\n");
                        sink.out(&std::mem::take(&mut echo)).await;
                    }
                    let text = String::from_utf8_lossy(&std::mem::take(&mut line)).into_owned();
                    match self.run_line(&mut session, &text, sink).await {
                        Some((s, false)) => status = s,
                        Some((s, true)) => return s,
                        None => return status,
                    }
                    if terminal {
                        echo.extend_from_slice(&self.prompt(&session));
                    }
                    continue;
                }
                if !terminal {
                    if line.len() < MAX_LINE {
                        line.push(b);
                    }
                    continue;
                }
                match b {
                    // Backspace (DEL or ^H): the last character goes, on the screen too.
                    0x7f | 0x08 if line.pop().is_some() => echo.extend_from_slice(b"\x08 \x08"),
                    // ^C: the line is dropped.
                    0x03 => {
                        line.clear();
                        echo.extend_from_slice(b"^C\n");
                        echo.extend_from_slice(&self.prompt(&session));
                    }
                    // ^D on an empty line: end of input.
                    0x04 if line.is_empty() => {
                        sink.out(&echo).await;
                        return status;
                    }
                    // ^U: the line is dropped, on the screen too.
                    0x15 => {
                        for _ in 0..line.len() {
                            echo.extend_from_slice(b"\x08 \x08");
                        }
                        line.clear();
                    }
                    b if (b == b'\t' || (b >= 0x20 && b != 0x7f)) && line.len() < MAX_LINE => {
                        line.push(b);
                        echo.push(b);
                    }
                    _ => {}
                }
            }
            if !echo.is_empty() && !sink.out(&echo).await {
                return status;
            }
        }
    }

    /// Runs one line; `(status, exited)`, or `None` when the output cannot be written (the
    /// host went away).
    async fn run_line(
        &self,
        session: &mut Session<'_>,
        line: &str,
        sink: &mut Sink,
    ) -> Option<(i32, bool)> {
        if line.trim().is_empty() {
            return Some((0, false));
        }
        let held = match self.checkouts.take().await {
            Ok(held) => held,
            Err(e) => {
                let msg = format!("sh: {}\n", e.message);
                return sink.err(msg.as_bytes()).await.then_some((1, false));
            }
        };
        let ran = session.stream(without_null_stdin(line), sink).await;
        // What the line changed is published even when the host went away meanwhile.
        let published = held.published().await;
        let ran = match ran {
            // The host went away: the shell ends.
            Ok(done) if done.gone => return None,
            Ok(done) => Some((done.status, done.exited)),
            Err(e) => {
                let msg = format!("sh: the phone's state: {e}\n");
                return sink.err(msg.as_bytes()).await.then_some((1, false));
            }
        };
        match published {
            Ok(()) => ran,
            Err(e) => {
                let msg = format!("sh: {e}\n");
                sink.err(msg.as_bytes()).await.then_some((1, false))
            }
        }
    }
}

/// One read; `None` at end of input or on error.
async fn read(stdin: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> Option<usize> {
    match stdin.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_installs_are_recognised_by_their_size() {
        assert_eq!(
            streamed_install("cmd package 'install' -S 100000"),
            Some(100000)
        );
        assert_eq!(
            streamed_install("cmd package 'install' -r -t -S 7"),
            Some(7)
        );
        assert_eq!(streamed_install("pm install --user 0 -S 12"), Some(12));
        // A file named: the shell's `pm install PATH`.
        assert_eq!(streamed_install("pm install /data/local/tmp/a.apk"), None);
        assert_eq!(streamed_install("pm install -S 5 /sdcard/a.apk"), None);
        assert_eq!(streamed_install("cmd package list packages"), None);
        assert_eq!(streamed_install("cmd package install -S"), None);
        assert_eq!(streamed_install("echo -S 5"), None);
    }

    #[test]
    fn a_trailing_null_stdin_is_dropped() {
        assert_eq!(
            without_null_stdin("rm -f '/data/local/tmp/a.apk' </dev/null"),
            "rm -f '/data/local/tmp/a.apk' "
        );
        assert_eq!(without_null_stdin("echo hi"), "echo hi");
        assert_eq!(without_null_stdin("cat < /dev/null "), "cat ");
    }
}
