//! Many `adb shell` sessions held open through the gateway, and what they cost the server.
//!
//! Each session is the service `adb -s SERIAL shell` opens when its stdin is not a terminal
//! (`shell,v2,raw:`, an interactive shell reading lines), opened through the stock ADB server
//! over its smart-socket protocol: the bytes the `adb` client would send its server, without
//! one `adb` process per session. The gateway cannot tell the difference (an `adb` client only
//! relays its stdin and stdout to the server, which opens the same stream on the device's one
//! connection), and 200 client processes would only load the 2 cores and blur nothing but the
//! client's own memory.
//!
//! A session counts once it answered an `echo` (its own marker, read back from stdout); all of
//! them answer a second one after being held, while the server's resident memory is read.
//! Then each closes its stdin and must see its shell exit with status 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::adbhost::AdbHost;
use super::report::Samples;
use super::server::{peak_rss_of, rss_of};
use super::shellv2::{self, CLOSE_STDIN, EXIT, STDERR, STDIN, STDOUT};
use super::smart;

/// The service `adb shell` opens with stdin piped on a device with the shell_v2 feature.
pub const SERVICE: &str = "shell,v2,raw:";

/// One open session.
pub struct Session {
    sock: TcpStream,
    pub id: usize,
}

impl Session {
    pub async fn open(adb: SocketAddr, serial: &str, id: usize) -> anyhow::Result<Session> {
        let sock = smart::open(adb, serial, SERVICE).await?;
        Ok(Session { sock, id })
    }

    /// Writes `echo MARKER` and reads stdout until the marker's line came back.
    pub async fn echo(&mut self, round: usize) -> anyhow::Result<Duration> {
        let marker = format!("cp-{}-{round}", self.id);
        let started = Instant::now();
        let line = format!("echo {marker}\n");
        self.sock
            .write_all(&shellv2::message(STDIN, line.as_bytes()))
            .await?;
        let want = format!("{marker}\n");
        let mut out = String::new();
        let read = async {
            while !out.contains(&want) {
                match shellv2::read_message(&mut self.sock).await? {
                    Some((STDOUT, data)) => out.push_str(&String::from_utf8_lossy(&data)),
                    Some((STDERR, data)) => {
                        bail!("stderr: {}", String::from_utf8_lossy(&data))
                    }
                    Some((EXIT, code)) => bail!("the shell exited ({code:?}) before answering"),
                    Some(_) => {}
                    None => bail!("the stream closed before the answer"),
                }
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .context("no echo within 30 s")??;
        ensure!(out == want, "expected {want:?}, read {out:?}");
        Ok(started.elapsed())
    }

    /// Closes stdin, as `adb shell` does at the end of its input, and waits for the exit code.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.sock
            .write_all(&shellv2::message(CLOSE_STDIN, b""))
            .await?;
        let wait = async {
            loop {
                match shellv2::read_message(&mut self.sock).await? {
                    Some((EXIT, code)) => return anyhow::Ok(code),
                    Some(_) => {}
                    None => bail!("the stream closed without an exit code"),
                }
            }
        };
        let code = tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .context("no exit within 30 s of closing stdin")??;
        ensure!(code == [0], "session {} exited with {code:?}", self.id);
        Ok(())
    }
}

/// What one layout of sessions measured.
#[derive(Clone, Debug)]
pub struct ShellResult {
    pub layout: String,
    pub sessions: usize,
    pub phones: usize,
    /// The server's VmRSS with no connection from the benchmark.
    pub rss_before: u64,
    /// ... with each phone connected (the gateway's connections, no session yet).
    pub rss_connected: u64,
    /// ... with every session open and answered twice.
    pub rss_open: u64,
    /// VmHWM at that moment (the peak since the server started).
    pub hwm_open: u64,
    /// ... after every session closed and every phone was disconnected.
    pub rss_closed: u64,
    /// From the first OPEN to the last session's first echo.
    pub open_all: Duration,
    /// Each session's open and first echo.
    pub open_each: Samples,
    /// Each session's echo after the hold.
    pub echo_again: Samples,
    /// `adb -s SERIAL shell echo` run as a process of its own while all of them are held: a
    /// stock client's whole round trip beside them.
    pub one_more: Duration,
}

impl ShellResult {
    /// What each session added to the server's memory, transports included.
    pub fn per_session(&self) -> f64 {
        (self.rss_open as f64 - self.rss_before as f64) / self.sessions.max(1) as f64
    }
}

/// The sessions of one layout, `sessions` of them spread over `serials` in turn.
pub struct Layout<'a> {
    pub name: String,
    pub serials: &'a [String],
    pub sessions: usize,
}

/// How many sessions are being opened at a time: the stock ADB server takes each OPEN on one
/// thread, so more at once only queues there.
pub const OPENING: usize = 32;

pub async fn run(
    host: &AdbHost,
    server_pid: u32,
    layout: &Layout<'_>,
    hold: Duration,
) -> anyhow::Result<ShellResult> {
    ensure!(!layout.serials.is_empty(), "no phone to open shells on");
    let adb: SocketAddr = host.addr();
    let settle = Duration::from_millis(500);
    let rss_before = rss_of(server_pid)?;
    // One after another: the stock adb server 29 has been seen to crash (SIGSEGV) when
    // dozens of `adb connect` handshakes ran at once, and this is not what is measured.
    for serial in layout.serials {
        smart::connect_device(adb, serial).await?;
    }
    let gate = Arc::new(Semaphore::new(OPENING));
    tokio::time::sleep(settle).await;
    let rss_connected = rss_of(server_pid)?;

    let started = Instant::now();
    let mut opening = tokio::task::JoinSet::new();
    for id in 0..layout.sessions {
        let serial = layout.serials[id % layout.serials.len()].clone();
        let gate = gate.clone();
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let t = Instant::now();
            let mut s = Session::open(adb, &serial, id)
                .await
                .with_context(|| format!("opening session {id} on {serial}"))?;
            s.echo(0)
                .await
                .with_context(|| format!("session {id} on {serial}"))?;
            anyhow::Ok((s, t.elapsed()))
        });
    }
    let mut sessions = Vec::with_capacity(layout.sessions);
    let mut open_each = Samples::new();
    while let Some(r) = opening.join_next().await {
        let (s, d) = r??;
        sessions.push(s);
        open_each.push(d);
    }
    let open_all = started.elapsed();

    // Held, then every one must still answer: none was dropped along the way.
    tokio::time::sleep(hold).await;
    let mut echo_again = Samples::new();
    let mut echoing = tokio::task::JoinSet::new();
    for mut s in sessions {
        echoing.spawn(async move {
            let d = s
                .echo(1)
                .await
                .with_context(|| format!("session {}", s.id))?;
            anyhow::Ok((s, d))
        });
    }
    let mut sessions = Vec::with_capacity(layout.sessions);
    while let Some(r) = echoing.join_next().await {
        let (s, d) = r??;
        sessions.push(s);
        echo_again.push(d);
    }
    tokio::time::sleep(settle).await;
    let rss_open = rss_of(server_pid)?;
    let hwm_open = peak_rss_of(server_pid)?;
    let t = Instant::now();
    let said = host
        .run(&["-s", &layout.serials[0], "shell", "echo", "one-more"])
        .await?;
    let one_more = t.elapsed();
    ensure!(
        said == "one-more\n",
        "adb shell echo beside the sessions said {said:?}"
    );

    let mut closing = tokio::task::JoinSet::new();
    for s in sessions {
        closing.spawn(s.close());
    }
    while let Some(r) = closing.join_next().await {
        r??;
    }
    for serial in layout.serials {
        smart::disconnect_device(adb, serial).await?;
    }
    // The gateway sees each connection end a moment later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_closed = rss_of(server_pid)?;
    Ok(ShellResult {
        layout: layout.name.clone(),
        sessions: layout.sessions,
        phones: layout.serials.len(),
        rss_before,
        rss_connected,
        rss_open,
        hwm_open,
        rss_closed,
        open_all,
        open_each,
        echo_again,
        one_more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_session_cost() {
        let r = ShellResult {
            layout: "x".into(),
            sessions: 200,
            phones: 1,
            rss_before: 50 << 20,
            rss_connected: 51 << 20,
            rss_open: 60 << 20,
            hwm_open: 61 << 20,
            rss_closed: 55 << 20,
            open_all: Duration::from_secs(1),
            open_each: Samples::new(),
            echo_again: Samples::new(),
            one_more: Duration::ZERO,
        };
        assert_eq!(r.per_session(), (10 << 20) as f64 / 200.0);
    }
}
