//! The `adb` program as a client of one ADB server (`adb -H HOST -P PORT ...`): device lists,
//! `connect`, shell commands with their exit codes (shell v2), push, pull and `exec-out`.
//! Running the program, rather than speaking the server's protocol ourselves, keeps us on the
//! path every operator already trusts, and its process boundary keeps a stuck device from
//! blocking the runtime.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Where the `adb` program and its server are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdbServer {
    pub program: PathBuf,
    /// The server's host (`-H`); `None`: localhost.
    pub host: Option<String>,
    /// The server's port (`-P`); `None`: 5037.
    pub port: Option<u16>,
}

impl Default for AdbServer {
    fn default() -> Self {
        AdbServer {
            program: PathBuf::from("adb"),
            host: None,
            port: None,
        }
    }
}

/// Why `adb` could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum AdbError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    /// `adb` itself failed (device missing or offline, transfer refused, ...): its message.
    #[error("{0}")]
    Failed(String),
    #[error("adb did not finish within {0:?}")]
    Timeout(Duration),
}

/// What a shell command printed (stdout and stderr in the order the phone sent them) and its
/// exit code.
#[derive(Debug)]
pub struct Shell {
    pub output: Vec<u8>,
    pub exit_code: i32,
}

impl Shell {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).trim_end().to_string()
    }
}

/// The most a command's output may hold in memory.
const MAX_OUTPUT: u64 = 64 << 20;

/// How long a device-list, connect or transfer-free call may take.
const QUICK: Duration = Duration::from_secs(20);

impl AdbServer {
    fn command(&self, serial: Option<&str>) -> Command {
        let mut c = Command::new(&self.program);
        if let Some(host) = &self.host {
            c.arg("-H").arg(host);
        }
        if let Some(port) = self.port {
            c.arg("-P").arg(port.to_string());
        }
        if let Some(serial) = serial {
            c.arg("-s").arg(serial);
        }
        c.stdin(Stdio::null()).kill_on_drop(true);
        c
    }

    /// Runs `adb ARGS`, stdout and stderr into one pipe (so their order is kept), within
    /// `timeout`; returns what it printed and its exit status.
    async fn run(
        &self,
        serial: Option<&str>,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Shell, AdbError> {
        let spawn_error = |source| AdbError::Spawn {
            program: self.program.display().to_string(),
            source,
        };
        let (reader, writer) = std::io::pipe().map_err(spawn_error)?;
        let mut command = self.command(serial);
        command
            .args(args)
            .stdout(writer.try_clone().map_err(spawn_error)?)
            .stderr(writer);
        let mut child = command.spawn().map_err(spawn_error)?;
        // The pipe reaches end of file only once every writer is closed: ours went with the
        // command.
        drop(command);
        let read = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut out = Vec::new();
            let _ = reader.take(MAX_OUTPUT).read_to_end(&mut out);
            out
        });
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => status.map_err(spawn_error)?,
            Err(_) => {
                let _ = child.kill().await;
                return Err(AdbError::Timeout(timeout));
            }
        };
        let output = read.await.unwrap_or_default();
        Ok(Shell {
            output,
            exit_code: status.code().unwrap_or(-1),
        })
    }

    /// Runs `adb ARGS` and expects it to succeed.
    async fn run_ok(
        &self,
        serial: Option<&str>,
        args: &[&str],
        timeout: Duration,
    ) -> Result<String, AdbError> {
        let out = self.run(serial, args, timeout).await?;
        if out.exit_code != 0 {
            return Err(AdbError::Failed(adb_message(&out.text())));
        }
        Ok(out.text())
    }

    /// Where the server listens, for speaking its protocol directly (the ADB gateway's relay):
    /// `host` (resolved) or 127.0.0.1, and `port`, else `ANDROID_ADB_SERVER_PORT`, else 5037,
    /// as the `adb` program chooses them.
    pub async fn socket_addr(&self) -> Result<std::net::SocketAddr, AdbError> {
        let port = match self.port {
            Some(p) => p,
            None => std::env::var("ANDROID_ADB_SERVER_PORT")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(5037),
        };
        let host = self.host.as_deref().unwrap_or("127.0.0.1");
        let failed = |why: String| AdbError::Failed(format!("the ADB server {host}:{port}: {why}"));
        let mut addrs = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| failed(e.to_string()))?;
        addrs
            .next()
            .ok_or_else(|| failed("the name has no address".into()))
    }

    /// Starts the server if it is not running.
    pub async fn start_server(&self) -> Result<(), AdbError> {
        self.run_ok(None, &["start-server"], QUICK).await.map(drop)
    }

    /// `adb connect HOST:PORT`, for a phone reached over TCP.
    pub async fn connect(&self, address: &str) -> Result<(), AdbError> {
        let out = self.run(None, &["connect", address], QUICK).await?;
        let text = out.text();
        // adb 29 exits 0 also when the connection was refused; its words tell.
        if out.exit_code == 0 && (text.contains("connected to") || text.contains("already")) {
            Ok(())
        } else {
            Err(AdbError::Failed(adb_message(&text)))
        }
    }

    pub async fn disconnect(&self, address: &str) {
        let _ = self.run(None, &["disconnect", address], QUICK).await;
    }

    /// The devices the server sees, with their states (`device`, `offline`, `unauthorized`...).
    pub async fn devices(&self) -> Result<Vec<(String, String)>, AdbError> {
        let text = self.run_ok(None, &["devices"], QUICK).await?;
        Ok(text
            .lines()
            .skip_while(|l| !l.starts_with("List of devices"))
            .skip(1)
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                Some((parts.next()?.to_string(), parts.next()?.to_string()))
            })
            .collect())
    }

    /// The device's state as the server sees it (`device` when it can be used).
    pub async fn state(&self, serial: &str) -> Option<String> {
        self.run(Some(serial), &["get-state"], QUICK)
            .await
            .ok()
            .filter(|o| o.exit_code == 0)
            .map(|o| o.text())
    }

    /// Runs `command` in the phone's shell; a non-zero exit code is the command's own.
    pub async fn shell(
        &self,
        serial: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<Shell, AdbError> {
        let out = self.run(Some(serial), &["shell", command], timeout).await?;
        // With shell v2, adb exits with the command's code; when adb itself fails it says so
        // on its first line, and the device's state tells whether that was adb.
        if out.exit_code == 1 {
            let text = out.text();
            if (text.starts_with("error:") || text.starts_with("adb: error:"))
                && self.state(serial).await.as_deref() != Some("device")
            {
                return Err(AdbError::Failed(adb_message(&text)));
            }
        }
        Ok(out)
    }

    /// Runs `command` with `exec-out` (stdout only, no terminal) into the local file `local`;
    /// returns its size.
    pub async fn exec_out_to_file(
        &self,
        serial: &str,
        command: &str,
        local: &Path,
        timeout: Duration,
    ) -> Result<u64, AdbError> {
        let spawn_error = |source| AdbError::Spawn {
            program: self.program.display().to_string(),
            source,
        };
        let file = std::fs::File::create(local).map_err(spawn_error)?;
        let mut child = self
            .command(Some(serial))
            .args(["exec-out", command])
            .stdout(file)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        let mut stderr = child.stderr.take();
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(s) => s.map_err(spawn_error)?,
            Err(_) => {
                let _ = child.kill().await;
                return Err(AdbError::Timeout(timeout));
            }
        };
        if !status.success() {
            let mut msg = String::new();
            if let Some(e) = stderr.as_mut() {
                use tokio::io::AsyncReadExt;
                let _ = e.read_to_string(&mut msg).await;
            }
            return Err(AdbError::Failed(adb_message(&msg)));
        }
        Ok(std::fs::metadata(local).map_err(spawn_error)?.len())
    }

    pub async fn push(
        &self,
        serial: &str,
        local: &Path,
        remote: &str,
        timeout: Duration,
    ) -> Result<(), AdbError> {
        let local = local.to_string_lossy();
        self.run_ok(Some(serial), &["push", &local, remote], timeout)
            .await
            .map(drop)
    }

    pub async fn pull(
        &self,
        serial: &str,
        remote: &str,
        local: &Path,
        timeout: Duration,
    ) -> Result<(), AdbError> {
        let local = local.to_string_lossy();
        self.run_ok(Some(serial), &["pull", remote, &local], timeout)
            .await
            .map(drop)
    }

    /// `adb unroot`: asks the device's adbd to restart as the `shell` user; adbd's answer.
    pub async fn unroot(&self, serial: &str) -> Result<String, AdbError> {
        self.run_ok(Some(serial), &["unroot"], QUICK).await
    }

    pub async fn reboot(&self, serial: &str) -> Result<(), AdbError> {
        self.run_ok(Some(serial), &["reboot"], QUICK)
            .await
            .map(drop)
    }
}

/// adb's own message without its `adb: error:` / `error:` prefix.
fn adb_message(text: &str) -> String {
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("error"))
        .or_else(|| text.lines().last())
        .unwrap_or("adb failed")
        .trim();
    line.trim_start_matches("adb: ")
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::adb_message;

    #[test]
    fn adb_messages_lose_their_prefix() {
        assert_eq!(
            adb_message("adb: error: remote object '/x' does not exist"),
            "remote object '/x' does not exist"
        );
        assert_eq!(
            adb_message("error: device '1.2.3.4:5' not found"),
            "device '1.2.3.4:5' not found"
        );
        assert_eq!(adb_message(""), "adb failed");
    }
}
