//! Runs a [`Shell`] command behind a stream: shell protocol v2 (stdout and stderr apart, stdin
//! closed on the host's request, window sizes, the exit code in the last packet) or raw bytes
//! (`shell:` and `exec:`: output merged, no exit code). The command sees plain pipes; the
//! adapter owns the framing. Each pipe holds at most [`PIPE_BYTES`], so a command that writes
//! faster than the host reads waits, and a command that does not read its stdin makes the host
//! wait: memory stays bounded either way.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf,
    duplex,
};
use tokio::sync::watch;

use crate::proto::service::{ShellProtocol, ShellRequest};
use crate::proto::shell::{SHELL_HEADER_LEN, ShellHeader, ShellId, WindowSize, encode_packet};
use crate::session::{AdbStream, StreamReader, StreamWriter};

/// What each of a command's pipes buffers.
pub const PIPE_BYTES: usize = 64 * 1024;
/// What the adapter reads from stdout or stderr at once.
const OUTPUT_READ: usize = 16 * 1024;
/// The longest window size packet read (adb sends `ROWSxCOLS,XPIXxYPIX`).
const WINDOW_SIZE_MAX: usize = 64;

/// Runs commands. `run` returns the exit status (only its low 8 bits travel, as on Unix).
/// The output ends when `run` returns and drops its [`ShellIo`].
pub trait Shell: Send + Sync + 'static {
    fn run(&self, request: ShellRequest, io: ShellIo) -> impl Future<Output = i32> + Send;
}

/// A command's standard streams.
pub struct ShellIo {
    pub stdin: ShellInput,
    pub stdout: ShellOutput,
    pub stderr: ShellOutput,
    /// The host terminal's size, when it sent one (v2 only).
    pub window: watch::Receiver<Option<WindowSize>>,
}

/// A command's stdin: end of file when the host closes it (v2) or the stream.
pub struct ShellInput(DuplexStream);

/// A command's stdout or stderr.
pub struct ShellOutput(DuplexStream);

impl AsyncRead for ShellInput {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ShellOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// Serves `request` on `stream` with `shell` until the command ends (then, under v2, its exit
/// code is sent and the stream closed) or the host closes the stream (then the command's
/// future is dropped, which is how a command is stopped: adbd sends SIGHUP).
pub async fn serve_shell<S: Shell>(stream: AdbStream, request: ShellRequest, shell: Arc<S>) {
    let v2 = request.protocol == ShellProtocol::V2;
    let chunk = stream.max_payload().saturating_sub(SHELL_HEADER_LEN).max(1);
    let (reader, mut writer) = stream.into_split();
    let (stdin_ours, stdin_theirs) = duplex(PIPE_BYTES);
    let (stdout_theirs, stdout_ours) = duplex(PIPE_BYTES);
    let (stderr_theirs, stderr_ours) = duplex(PIPE_BYTES);
    let (window_tx, window_rx) = watch::channel(None);
    let io = ShellIo {
        stdin: ShellInput(stdin_theirs),
        stdout: ShellOutput(stdout_theirs),
        stderr: ShellOutput(stderr_theirs),
        window: window_rx,
    };
    let input = pump_input(reader, stdin_ours, window_tx, v2);
    let work = async {
        let output = pump_output(&mut writer, stdout_ours, stderr_ours, v2, chunk);
        let (sent, code) = tokio::join!(output, shell.run(request, io));
        (sent, code)
    };
    tokio::select! {
        (sent, code) = work => {
            if sent.is_ok() {
                if v2 {
                    let _ = writer.write_all(&encode_packet(ShellId::Exit, &[code as u8])).await;
                }
                let _ = writer.shutdown().await;
            }
        }
        // The host closed the stream: the command is dropped with the rest.
        () = input => {}
    }
}

/// Feeds the host's bytes to the command's stdin until the host closes the stream, straight
/// from the WRTEs they came in. Once the command stops reading, what the host sends is dropped
/// rather than left to block the host.
async fn pump_input(
    mut reader: StreamReader,
    stdin: DuplexStream,
    window: watch::Sender<Option<WindowSize>>,
    v2: bool,
) {
    let mut stdin = Some(stdin);
    if !v2 {
        loop {
            let n = match reader.fill_buf().await {
                Ok([]) | Err(_) => return,
                Ok(chunk) => {
                    feed(&mut stdin, chunk).await;
                    chunk.len()
                }
            };
            reader.consume(n);
        }
    }
    loop {
        let mut head = [0u8; SHELL_HEADER_LEN];
        if reader.read_exact(&mut head).await.is_err() {
            return;
        }
        let h = ShellHeader::parse(&head);
        let mut left = h.len as usize;
        match h.id {
            ShellId::WindowSizeChange if left <= WINDOW_SIZE_MAX => {
                let mut buf = [0u8; WINDOW_SIZE_MAX];
                if reader.read_exact(&mut buf[..left]).await.is_err() {
                    return;
                }
                if let Some(size) = WindowSize::parse(&buf[..left]) {
                    let _ = window.send(Some(size));
                }
                continue;
            }
            ShellId::CloseStdin => {
                if let Some(mut s) = stdin.take() {
                    let _ = s.shutdown().await;
                }
            }
            _ => {}
        }
        // Stdin's data goes to the command; anything else is skipped (adbd ignores ids it
        // does not know).
        while left > 0 {
            let n = match reader.fill_buf().await {
                Ok([]) | Err(_) => return,
                Ok(chunk) => {
                    let n = chunk.len().min(left);
                    if h.id == ShellId::Stdin {
                        feed(&mut stdin, &chunk[..n]).await;
                    }
                    n
                }
            };
            reader.consume(n);
            left -= n;
        }
    }
}

async fn feed(stdin: &mut Option<DuplexStream>, data: &[u8]) {
    if let Some(s) = stdin
        && s.write_all(data).await.is_err()
    {
        *stdin = None;
    }
}

/// Copies the command's stdout and stderr to the stream, each read sent as one packet (one
/// WRTE), until both are closed.
async fn pump_output(
    writer: &mut StreamWriter,
    mut stdout: DuplexStream,
    mut stderr: DuplexStream,
    v2: bool,
    chunk: usize,
) -> io::Result<()> {
    let head = if v2 { SHELL_HEADER_LEN } else { 0 };
    // A pipe holds PIPE_BYTES at most, and the stream gathers reads into full WRTEs: small
    // buffers cost nothing in throughput.
    let chunk = chunk.min(OUTPUT_READ);
    let mut out_buf = vec![0u8; head + chunk];
    let mut err_buf = vec![0u8; head + chunk];
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        let (id, buf, n) = tokio::select! {
            r = stdout.read(&mut out_buf[head..]), if out_open => (ShellId::Stdout, &mut out_buf, r?),
            r = stderr.read(&mut err_buf[head..]), if err_open => (ShellId::Stderr, &mut err_buf, r?),
        };
        if n == 0 {
            match id {
                ShellId::Stdout => out_open = false,
                _ => err_open = false,
            }
            continue;
        }
        if v2 {
            let len = n as u32;
            buf[..SHELL_HEADER_LEN].copy_from_slice(&ShellHeader { id, len }.encode());
        }
        writer.write_all(&buf[..head + n]).await?;
    }
    Ok(())
}
