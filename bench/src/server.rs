//! The server under test, as a child process: the real `cloudphone serve` binary on a free
//! loopback port, with the benchmark's root key in its environment. Started, stopped with
//! SIGTERM (so that SQLite closes cleanly), and asked for its peak memory (VmHWM).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use cloudphone_client::Credentials;

/// How to start a server.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub sim_delay_ms: Option<u64>,
    pub concurrency: Option<usize>,
    pub creds: Credentials,
    /// More `serve` flags (the ADB benchmark's `--adb-ports`).
    pub extra_args: Vec<String>,
}

/// A running server; killed if dropped without [`Server::stop`].
pub struct Server {
    child: Child,
    pub address: String,
    pub pid: u32,
}

impl Server {
    pub async fn start(spec: &ServerSpec) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&spec.data_dir)?;
        let log = std::fs::File::create(spec.data_dir.join("server.log"))
            .context("creating the server log")?;
        let mut cmd = Command::new(&spec.binary);
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&spec.data_dir)
            // The benchmark measures the server's limits, not the throttle's.
            .arg("--throttle-rps")
            .arg("0")
            .env("CLOUDPHONE_ACCESS_KEY_ID", &spec.creds.key_id)
            .env("CLOUDPHONE_ACCESS_KEY_SECRET", &spec.creds.secret)
            .env_remove("CLOUDPHONE_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        if let Some(url) = &spec.database_url {
            cmd.arg("--database-url").arg(url);
        }
        if let Some(d) = spec.sim_delay_ms {
            cmd.arg("--sim-delay-ms").arg(d.to_string());
        }
        if let Some(c) = spec.concurrency {
            cmd.arg("--concurrency").arg(c.to_string());
        }
        cmd.args(&spec.extra_args);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", spec.binary.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let address = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("cloudphone listening on http://") {
                    return Ok(url.trim().to_string());
                }
            }
            anyhow::Ok(String::new())
        })
        .await
        .context("the server did not announce its address within 120 s")??;
        if address.is_empty() {
            let log = std::fs::read_to_string(spec.data_dir.join("server.log")).unwrap_or_default();
            bail!("the server exited before listening; its log:\n{log}");
        }
        // Keep reading stdout so that the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server {
            child,
            address,
            pid,
        })
    }

    /// Peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        peak_rss_of(self.pid)
    }

    /// SIGTERM, then wait (SIGKILL after 30 s).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        terminate(self.pid);
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// Sends SIGTERM to one process by its id.
pub fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

pub fn peak_rss_of(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM:").map(|k| k * 1024)
}

pub fn rss_of(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:").map(|k| k * 1024)
}

fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_status_kib(&text, field).with_context(|| format!("{path} has no {field}"))
}

/// The value in kB of a `/proc/PID/status` field such as `VmHWM:`.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Whether process `pid` runs: it exists and is not a zombie (dead, not yet waited for).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s[s.rfind(')')? + 1..].split_whitespace().next()?;
            Some(state != "Z")
        })
        .unwrap_or(false)
}

/// A free loopback port (bound and released; good enough for a private child process).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// `path`, which must not exist yet or is removed first (a previous run's leftovers).
pub fn fresh_dir(path: &Path) -> anyhow::Result<PathBuf> {
    if path.exists() {
        std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
    }
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_status() {
        let status =
            "Name:\tcloudphone\nVmPeak:\t  900000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t 40000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(51234));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(40000));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
        assert!(peak_rss_of(std::process::id()).unwrap() > 0);
        assert!(rss_of(std::process::id()).unwrap() > 0);
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!process_alive(pid), "exited, not waited for: a zombie");
        child.wait().unwrap();
    }
}
