//! The peer: the same number of durable no-op tasks through Celery with a Redis broker, in the
//! same run. A private `redis-server` (append-only file on, fsync every second: the durability
//! SQLite's WAL with synchronous=NORMAL gives) on a free loopback port, and
//! `bench/celery_peer.py`, which starts a Celery worker (2 processes, `acks_late`), submits the
//! tasks and times first submit to last result.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::server::free_port;

pub struct PeerOptions {
    pub python: PathBuf,
    pub script: PathBuf,
    pub tasks: u64,
    pub concurrency: u32,
}

pub struct PeerResult {
    pub tasks: u64,
    pub seconds: f64,
}

impl PeerResult {
    pub fn tasks_per_s(&self) -> f64 {
        self.tasks as f64 / self.seconds
    }
}

pub async fn run(work: &Path, opts: &PeerOptions) -> anyhow::Result<PeerResult> {
    // Absolute: the script runs from its own directory (so that Celery imports it).
    let python = std::path::absolute(&opts.python)?;
    let script = std::fs::canonicalize(&opts.script)
        .with_context(|| format!("finding {}", opts.script.display()))?;
    let dir = work.join("redis");
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let log = std::fs::File::create(work.join("redis.log"))?;
    let mut redis = tokio::process::Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .args(["--save", "", "--daemonize", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .context("starting redis-server (bench/run installs it: apt-get install redis-server)")?;
    let result = async {
        wait_for_redis(port).await?;
        let broker = format!("redis://127.0.0.1:{port}");
        let out = tokio::process::Command::new(&python)
            .arg(&script)
            .arg("--redis")
            .arg(&broker)
            .arg("--tasks")
            .arg(opts.tasks.to_string())
            .arg("--concurrency")
            .arg(opts.concurrency.to_string())
            .current_dir(script.parent().unwrap_or(Path::new(".")))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("running {}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "the Celery peer failed ({}): {stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        parse_result(&stdout)
    }
    .await;
    let _ = redis.kill().await;
    result
}

/// The last line of celery_peer.py's output: `{"tasks": N, "seconds": S}`.
pub fn parse_result(stdout: &str) -> anyhow::Result<PeerResult> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("the Celery peer printed no result")?;
    let v: Value = serde_json::from_str(line)?;
    Ok(PeerResult {
        tasks: v.get("tasks").and_then(Value::as_u64).unwrap_or(0),
        seconds: v.get("seconds").and_then(Value::as_f64).unwrap_or(f64::NAN),
    })
}

async fn wait_for_redis(port: u16) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            s.write_all(b"PING\r\n").await?;
            let mut buf = [0u8; 16];
            let n = s.read(&mut buf).await?;
            if buf[..n].starts_with(b"+PONG") {
                return Ok(());
            }
        }
        if started.elapsed() > Duration::from_secs(20) {
            bail!("redis-server did not answer on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_peer_result() {
        let r = parse_result("worker ready\n{\"tasks\": 10000, \"seconds\": 12.5}\n").unwrap();
        assert_eq!(r.tasks, 10_000);
        assert_eq!(r.tasks_per_s(), 800.0);
        assert!(parse_result("no json").is_err());
    }
}
