//! A private server of Debian's stock `adb`: `adb -P PORT nodaemon server` as a child process
//! (so that its pid is ours to stop, and it dies with us: `kill_on_drop`), with a temporary
//! HOME for its key and none of the user's `ANDROID_*` settings. Commands such as `adb push`
//! run against it with `-P PORT`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use super::server::{free_port, process_alive};
use super::smart;

pub struct AdbHost {
    child: Child,
    binary: PathBuf,
    home: PathBuf,
    pub port: u16,
    /// For its CPU time.
    pub pid: u32,
}

impl AdbHost {
    /// Starts the server with `home` as its HOME (made if missing) and waits until it answers.
    pub async fn start(binary: &Path, home: &Path) -> anyhow::Result<AdbHost> {
        std::fs::create_dir_all(home)?;
        let mut last = None;
        // The port is free when picked, not when adb binds it: a few tries.
        for _ in 0..5 {
            let port = free_port()?;
            let log = std::fs::File::create(home.join("adb-server.log"))?;
            let mut cmd = Command::new(binary);
            cmd.arg("-P")
                .arg(port.to_string())
                .arg("nodaemon")
                .arg("server")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log))
                .kill_on_drop(true);
            clean_env(&mut cmd, home, port);
            let child = cmd
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            let pid = child.id().context("adb exited at once")?;
            let mut host = AdbHost {
                child,
                binary: binary.to_path_buf(),
                home: home.to_path_buf(),
                port,
                pid,
            };
            match host.wait_answering().await {
                Ok(()) => return Ok(host),
                Err(e) => {
                    let _ = host.child.kill().await;
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("adb server did not start")))
    }

    async fn wait_answering(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log =
                    std::fs::read_to_string(self.home.join("adb-server.log")).unwrap_or_default();
                bail!("adb server exited ({status}): {log}");
            }
            if smart::query(self.addr(), "host:version").await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!("adb server not answering on port {} after 20 s", self.port);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the server still runs (not gone, not a zombie): adb 29's server crashes now
    /// and then, which a failure should say rather than leave to "connection refused".
    pub fn alive(&self) -> bool {
        process_alive(self.pid)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `adb -P PORT ARGS...` against this server.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-P")
            .arg(self.port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        clean_env(&mut cmd, &self.home, self.port);
        cmd
    }

    /// Runs `adb ARGS...`; its stdout and stderr, or an error if it failed.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command(args)
            .output()
            .await
            .with_context(|| format!("running adb {}", args.join(" ")))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!("adb {} failed ({}): {text}", args.join(" "), out.status);
        }
        Ok(text)
    }

    /// `host:kill`, then SIGKILL if it has not exited within 5 s.
    pub async fn stop(mut self) {
        let _ = smart::query(self.addr(), "host:kill").await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// A private server: its own HOME and port, nothing from the user's adb settings.
fn clean_env(cmd: &mut Command, home: &Path, port: u16) {
    cmd.env("HOME", home)
        .env("ANDROID_ADB_SERVER_PORT", port.to_string());
    for k in [
        "ANDROID_SDK_HOME",
        "ANDROID_USER_HOME",
        "ADB_VENDOR_KEYS",
        "ANDROID_SERIAL",
        "ADB_TRACE",
    ] {
        cmd.env_remove(k);
    }
}
