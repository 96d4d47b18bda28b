//! The push's second reference: the same `adb push` to a plain adbd, the project's test
//! fixture `test-adbd` (tests/fixtures/test-adbd: threads, std::fs, 256 KiB payloads), on a
//! loopback port of its own. Stock adb's path to it (client, server, one WRTE in flight) is the
//! same as to the gateway, so "gateway / plain adbd" is what the gateway itself costs, and
//! "plain adbd / loopback" what adb 29's path costs on this machine.
//!
//! test-adbd is a phone's stand-in that runs as `/`'s owner: it writes a push wherever the path
//! says, so the benchmark only ever names a path in its own work dir, and it runs no command.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use super::server::free_port;

pub struct RefAdbd {
    child: Child,
    /// `127.0.0.1:PORT`, as `adb connect` takes it.
    pub serial: String,
    pub pid: u32,
}

impl RefAdbd {
    /// Starts `test-adbd serve` on a free loopback port with `state` as its state dir and
    /// waits until it accepts connections.
    pub async fn start(binary: &Path, state: &Path) -> anyhow::Result<RefAdbd> {
        std::fs::create_dir_all(state)?;
        let port = free_port()?;
        let log = std::fs::File::create(state.with_extension("log"))?;
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--state")
            .arg(state)
            .arg("--boot-ms")
            .arg("0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("test-adbd exited at once")?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("test-adbd exited at once ({status})");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(RefAdbd {
                    child,
                    serial: format!("127.0.0.1:{port}"),
                    pid,
                });
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("test-adbd not listening on port {port} after 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// It has no orderly shutdown of its own: killed.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// `test-adbd` beside this binary, as `cargo build -p test-adbd` puts it.
pub fn beside_us() -> Option<PathBuf> {
    let p = std::env::current_exe().ok()?.with_file_name("test-adbd");
    p.is_file().then_some(p)
}
