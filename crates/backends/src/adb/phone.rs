//! The in-phone operations over ADB, the way device farms do them (DeviceFarmer STF among
//! them): an APK is pushed to `/data/local/tmp` and installed with `pm install -r`, passing
//! Android's `INSTALL_*` code to the user; apps start with `monkey -p PKG -c
//! android.intent.category.LAUNCHER 1` and stop with `am force-stop`; screenshots are
//! `exec-out screencap -p`; backups are `tar` on the phone plus a pull, restores a push plus
//! `tar -x`. Shared by the docker backend (a container's adbd) and the adb backend (devices).
//!
//! All of it runs as the user the phone's adbd runs as: Android's `shell` (uid 2000) on a
//! production build, root on an image like redroid until [`AdbPhone::ensure_shell_user`]
//! restarts adbd with `adb unroot`, which the docker backend does unless an image allows root.

use std::path::Path;
use std::time::Duration;

use cloudphone_backend::{AppOp, BackendError, CommandOutput, OpResult};
use cloudphone_core::TaskErrorCode;

use super::client::{AdbError, AdbServer, Shell};

/// How long a transfer or an install may take.
const TRANSFER: Duration = Duration::from_secs(600);
/// How long a helper command (`pm`, `am`, `tar`...) may take.
const HELPER: Duration = Duration::from_secs(120);

/// One phone as the ADB server knows it.
pub struct AdbPhone<'a> {
    pub server: &'a AdbServer,
    pub serial: String,
}

fn fail(code: TaskErrorCode) -> impl Fn(AdbError) -> BackendError {
    move |e| match e {
        AdbError::Timeout(_) | AdbError::Spawn { .. } => {
            BackendError::new(TaskErrorCode::InstanceUnreachable, e.to_string())
        }
        AdbError::Failed(msg) if device_gone(&msg) => {
            BackendError::new(TaskErrorCode::InstanceUnreachable, msg)
        }
        AdbError::Failed(msg) => BackendError::new(code, msg),
    }
}

/// `s` as one word for `sh`.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A name for a file of ours in the phone's `/data/local/tmp`; `what` is ours, never the
/// caller's (a package name from CustomAppInfo is not checked as a path).
fn temp_name(what: &'static str) -> String {
    format!(
        "/data/local/tmp/cloudphone-{what}-{}",
        cloudphone_core::ids::secret(12)
    )
}

/// An `adb` failure that says the device is not there (rather than the operation failing).
fn device_gone(msg: &str) -> bool {
    [
        "device offline",
        "not found",
        "no devices",
        "closed",
        "device unauthorized",
        "Connection reset",
    ]
    .iter()
    .any(|m| msg.contains(m))
}

impl AdbPhone<'_> {
    async fn sh(&self, command: &str, timeout: Duration, code: TaskErrorCode) -> OpResult<Shell> {
        self.server
            .shell(&self.serial, command, timeout)
            .await
            .map_err(fail(code))
    }

    /// Removes a file of ours; a failure only leaves a file in the phone's temp dir.
    async fn remove(&self, path: &str) {
        let _ = self
            .server
            .shell(&self.serial, &format!("rm -f {}", quote(path)), HELPER)
            .await;
    }

    /// Waits until the phone answers and says `sys.boot_completed` is 1; `reconnect` is the
    /// address to `adb connect` again while it does not (a phone reached over TCP).
    pub async fn wait_booted(&self, reconnect: Option<&str>, timeout: Duration) -> OpResult<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut refused = None;
            if let Some(address) = reconnect
                && self.server.state(&self.serial).await.as_deref() != Some("device")
                && let Err(e) = self.server.connect(address).await
            {
                refused = Some(e.to_string());
            }
            let last = match self
                .server
                .shell(
                    &self.serial,
                    "getprop sys.boot_completed",
                    Duration::from_secs(10),
                )
                .await
            {
                Ok(out) if out.exit_code == 0 && out.text() == "1" => return Ok(()),
                Ok(out) => format!("sys.boot_completed is '{}'", out.text()),
                Err(e) => refused.unwrap_or_else(|| e.to_string()),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(BackendError::new(
                    TaskErrorCode::InstanceUnreachable,
                    format!("the phone did not finish booting within {timeout:?}: {last}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The uid the phone's adbd runs commands as.
    async fn uid(&self) -> Result<u32, String> {
        match self
            .server
            .shell(&self.serial, "id -u", Duration::from_secs(10))
            .await
        {
            Ok(out) if out.exit_code == 0 => out
                .text()
                .trim()
                .parse()
                .map_err(|_| format!("`id -u` printed {:?}", out.text())),
            Ok(out) => Err(format!("`id -u` failed: {}", out.text())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Makes sure what follows runs as Android's `shell` user, not root: a phone whose adbd
    /// runs as root is told `adb unroot` (adbd restarts, dropping to `shell`, as it does on
    /// redroid and any debuggable build) and waited for, within `timeout`, reconnecting to
    /// `reconnect` (a phone reached over TCP). Checked before every operation, since any
    /// restart of the phone (or of its adbd) brings root back. Fails with `OperationFailed`,
    /// the phone untouched, when adbd stays root.
    pub async fn ensure_shell_user(
        &self,
        reconnect: Option<&str>,
        timeout: Duration,
    ) -> OpResult<()> {
        let refused = |why: String| {
            BackendError::new(
                TaskErrorCode::OperationFailed,
                format!(
                    "The phone's adbd runs commands as root and did not drop to Android's shell \
                     user ({why}); an image whose phones may run commands as root says \
                     run_as_root = true."
                ),
            )
        };
        match self.uid().await {
            Ok(0) => {}
            Ok(_) => return Ok(()),
            Err(e) => return Err(BackendError::new(TaskErrorCode::InstanceUnreachable, e)),
        }
        let answer = self
            .server
            .unroot(&self.serial)
            .await
            .map_err(|e| refused(format!("adb unroot: {e}")))?;
        tracing::info!(serial = %self.serial, answer = %answer.trim(), "adb unroot");
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = "adbd still runs as root".to_string();
        while tokio::time::Instant::now() < deadline {
            if let Some(address) = reconnect
                && self.server.state(&self.serial).await.as_deref() != Some("device")
            {
                let _ = self.server.connect(address).await;
            }
            match self.uid().await {
                Ok(0) => last = "adbd still runs as root".into(),
                Ok(_) => return Ok(()),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        Err(refused(last))
    }

    pub async fn run_command(&self, command: &str, timeout: Duration) -> OpResult<CommandOutput> {
        match self.server.shell(&self.serial, command, timeout).await {
            Ok(out) => Ok(CommandOutput {
                output: out.output,
                exit_code: out.exit_code,
            }),
            Err(AdbError::Timeout(t)) => Err(BackendError::new(
                TaskErrorCode::CommandTimeout,
                format!("the command did not finish within {t:?}"),
            )),
            Err(e) => Err(fail(TaskErrorCode::InstanceUnreachable)(e)),
        }
    }

    pub async fn push_file(&self, local: &Path, dest: &str) -> OpResult<u64> {
        self.server
            .push(&self.serial, local, dest, TRANSFER)
            .await
            .map_err(fail(TaskErrorCode::SendFileFailed))?;
        local_size(local, TaskErrorCode::SendFileFailed)
    }

    pub async fn pull_file(&self, src: &str, local: &Path) -> OpResult<u64> {
        let code = TaskErrorCode::FetchFileFailed;
        // `adb pull` of a directory would make a directory where a file is expected.
        let kind = self
            .sh(
                &format!(
                    "if [ -f {q} ]; then echo file; elif [ -e {q} ]; then echo other; else echo none; fi",
                    q = quote(src)
                ),
                HELPER,
                code,
            )
            .await?;
        match kind.text().as_str() {
            "file" => {}
            "none" => {
                return Err(BackendError::new(
                    code,
                    format!("{src}: No such file or directory"),
                ));
            }
            _ => {
                return Err(BackendError::new(
                    code,
                    format!("{src} is not a regular file"),
                ));
            }
        }
        self.server
            .pull(&self.serial, src, local, TRANSFER)
            .await
            .map_err(fail(TaskErrorCode::FetchFileFailed))?;
        local_size(local, TaskErrorCode::FetchFileFailed)
    }

    /// (`pm` reads the package name from the APK itself.)
    pub async fn install_app(&self, _package: &str, local: &Path) -> OpResult<()> {
        let remote = format!("{}.apk", temp_name("install"));
        let pushed = self
            .server
            .push(&self.serial, local, &remote, TRANSFER)
            .await;
        if let Err(e) = pushed {
            self.remove(&remote).await;
            return Err(fail(TaskErrorCode::InstallAppFailed)(e));
        }
        let out = self
            .sh(
                &format!("pm install -r {}", quote(&remote)),
                TRANSFER,
                TaskErrorCode::InstallAppFailed,
            )
            .await;
        self.remove(&remote).await;
        let out = out?;
        let text = out.text();
        if out.exit_code == 0 && text.lines().any(|l| l.trim() == "Success") {
            return Ok(());
        }
        // Android's own words, `Failure [INSTALL_FAILED_...: ...]`, are what the user needs.
        let failure = text
            .lines()
            .find(|l| l.contains("Failure") || l.contains("INSTALL_"))
            .unwrap_or(&text);
        Err(BackendError::new(
            TaskErrorCode::InstallAppFailed,
            failure.trim().to_string(),
        ))
    }

    async fn installed(&self, package: &str, code: TaskErrorCode) -> OpResult<()> {
        let out = self
            .sh(&format!("pm path {}", quote(package)), HELPER, code)
            .await?;
        if out.exit_code == 0 && out.text().starts_with("package:") {
            Ok(())
        } else {
            Err(BackendError::new(
                code,
                format!("{package} is not installed on the phone."),
            ))
        }
    }

    pub async fn uninstall_app(&self, package: &str) -> OpResult<()> {
        let out = self
            .sh(
                &format!("pm uninstall {}", quote(package)),
                HELPER,
                TaskErrorCode::UninstallAppFailed,
            )
            .await?;
        let text = out.text();
        if out.exit_code == 0 && text.lines().any(|l| l.trim() == "Success") {
            return Ok(());
        }
        Err(BackendError::new(
            TaskErrorCode::UninstallAppFailed,
            format!("{package}: {text}"),
        ))
    }

    pub async fn operate_app(&self, package: &str, op: AppOp) -> OpResult<()> {
        let code = TaskErrorCode::OperateAppFailed;
        self.installed(package, code).await?;
        if matches!(op, AppOp::Stop | AppOp::Restart) {
            let out = self
                .sh(&format!("am force-stop {}", quote(package)), HELPER, code)
                .await?;
            if out.exit_code != 0 {
                return Err(BackendError::new(code, out.text()));
            }
        }
        if matches!(op, AppOp::Start | AppOp::Restart) {
            let out = self
                .sh(
                    &format!(
                        "monkey -p {} -c android.intent.category.LAUNCHER 1",
                        quote(package)
                    ),
                    HELPER,
                    code,
                )
                .await?;
            if out.exit_code != 0 || !out.text().contains("Events injected") {
                return Err(BackendError::new(code, out.text()));
            }
        }
        Ok(())
    }

    pub async fn screenshot(&self, local: &Path) -> OpResult<(u32, u32)> {
        let code = TaskErrorCode::ScreenshotFailed;
        self.server
            .exec_out_to_file(&self.serial, "screencap -p", local, HELPER)
            .await
            .map_err(fail(code))?;
        png_size(local).ok_or_else(|| {
            BackendError::new(code, "screencap did not write a PNG image".to_string())
        })
    }

    /// `tar` of `paths` on the phone into a temporary file there, pulled to `local`.
    pub async fn backup(
        &self,
        paths: &[String],
        exclude: &[String],
        local: &Path,
    ) -> OpResult<u64> {
        let code = TaskErrorCode::BackupFileFailed;
        // Members as `./sdcard/...`: a path can never be read as an option of tar.
        let rel = |p: &str| {
            let trimmed = p.trim_start_matches('/').trim_end_matches('/');
            if trimmed.is_empty() {
                ".".to_string()
            } else {
                format!("./{trimmed}")
            }
        };
        let words = |list: &[String]| {
            list.iter()
                .map(|p| quote(&rel(p)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let remote = format!("{}.tar", temp_name("backup"));
        // Every path must exist; a directory given through a link (`/sdcard`) is archived as
        // the directory it leads to. Exclusions are applied here, to the pulled archive:
        // phones' tars differ in whether they can exclude at all (busybox cannot).
        let script = format!(
            "cd / || exit 3; \
             for p in {all}; do [ -e \"$p\" ] || {{ echo \"${{p#.}}: No such file or directory\"; exit 3; }}; done; \
             set --; \
             for p in {all}; do if [ -d \"$p\" ] && [ -L \"$p\" ]; then set -- \"$@\" \"$p/\"; else set -- \"$@\" \"$p\"; fi; done; \
             tar -c -f {out} \"$@\"",
            all = words(paths),
            out = quote(&remote),
        );
        match self.sh(&script, TRANSFER, code).await {
            Ok(out) if out.exit_code == 0 => {}
            Ok(out) => {
                self.remove(&remote).await;
                return Err(BackendError::new(code, out.text()));
            }
            Err(e) => {
                self.remove(&remote).await;
                return Err(e);
            }
        }
        let raw = local.with_extension("phone-tar");
        let pulled = self
            .server
            .pull(&self.serial, &remote, &raw, TRANSFER)
            .await;
        self.remove(&remote).await;
        if let Err(e) = pulled {
            let _ = std::fs::remove_file(&raw);
            return Err(fail(code)(e));
        }
        let (raw_path, out, exclude) = (raw.clone(), local.to_path_buf(), exclude.to_vec());
        let rewritten = tokio::task::spawn_blocking(move || {
            crate::archive_check::rewrite_backup(&raw_path, &out, &exclude)
        })
        .await;
        let _ = std::fs::remove_file(&raw);
        rewritten.map_err(|e| BackendError::new(code, e.to_string()))?
    }

    /// Checks the archive here, pushes it and extracts it at `/` on the phone; returns the
    /// bytes of file data.
    pub async fn restore(&self, local: &Path) -> OpResult<u64> {
        let code = TaskErrorCode::RecoverFileFailed;
        let local_copy = local.to_path_buf();
        let bytes = tokio::task::spawn_blocking(move || crate::archive_check::check(&local_copy))
            .await
            .map_err(|e| BackendError::new(code, e.to_string()))??;
        let remote = format!("{}.tar", temp_name("restore"));
        let pushed = self
            .server
            .push(&self.serial, local, &remote, TRANSFER)
            .await;
        if let Err(e) = pushed {
            self.remove(&remote).await;
            return Err(fail(code)(e));
        }
        let out = self
            .sh(
                &format!("tar -x -f {} -C /", quote(&remote)),
                TRANSFER,
                code,
            )
            .await;
        self.remove(&remote).await;
        let out = out?;
        if out.exit_code != 0 {
            return Err(BackendError::new(code, out.text()));
        }
        Ok(bytes)
    }
}

/// The size of a local file a transfer just wrote or read.
fn local_size(local: &Path, code: TaskErrorCode) -> OpResult<u64> {
    std::fs::metadata(local)
        .map(|m| m.len())
        .map_err(|e| BackendError::new(code, format!("{}: {e}", local.display())))
}

/// The width and height in a PNG file's header, if it is one.
fn png_size(path: &Path) -> Option<(u32, u32)> {
    use std::io::Read;
    let mut head = [0u8; 24];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    if &head[..8] != b"\x89PNG\r\n\x1a\n" || &head[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(head[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(head[20..24].try_into().ok()?);
    Some((w, h))
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quoting_keeps_one_word() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
