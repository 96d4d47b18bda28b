//! Live screens of the phones reached over ADB (docker containers and the devices of ADB
//! servers), two ways:
//!
//! - **scrcpy** ([`scrcpy`]), when the backends file names the scrcpy server 3.3.4 jar: it is
//!   pushed to the phone and run with `app_process`; its H.264 video and its control channel
//!   are abstract sockets on the phone, opened as `localabstract:` services through the ADB
//!   server (no `adb forward`). High frame rate, input injected by the server.
//! - **screencap** ([`screencap`]), everywhere else and whenever scrcpy cannot start: one
//!   `screencap -p` PNG per frame (a few a second), input through Android's `input` command
//!   ([`input`]).
//!
//! Both open their sockets and commands through the phone's ADB server, as every other
//! in-phone operation does; dropping the [`Screen`] ends all of it.

mod control;
mod demux;
mod input;
mod scrcpy;
mod screencap;
mod sps;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use cloudphone_adb::relay;
use cloudphone_backend::{BackendError, OpResult, Screen, ScreenOptions};
use cloudphone_core::TaskErrorCode;
use tracing::info;

pub use scrcpy::{SCRCPY_SERVER_SHA256, SCRCPY_VERSION, ScrcpyJarError, ScrcpyServer};

use super::{AdbPhone, AdbServer};

/// One phone as its screen reaches it: its ADB server and serial.
#[derive(Clone, Debug)]
pub struct ScreenTarget {
    pub server: AdbServer,
    pub serial: String,
}

impl ScreenTarget {
    fn phone(&self) -> AdbPhone<'_> {
        AdbPhone {
            server: &self.server,
            serial: self.serial.clone(),
        }
    }

    /// The ADB server, spoken to directly (for sockets on the phone).
    async fn relay(&self) -> OpResult<relay::AdbServer> {
        let addr =
            self.server.socket_addr().await.map_err(|e| {
                BackendError::new(TaskErrorCode::InstanceUnreachable, e.to_string())
            })?;
        Ok(relay::AdbServer::new(addr))
    }

    /// The panel's size as `wm size` says (an override wins), if it says.
    async fn panel_size(&self) -> Option<(u32, u32)> {
        let out = self
            .phone()
            .run_command("wm size", Duration::from_secs(10))
            .await
            .ok()?;
        if out.exit_code != 0 {
            return None;
        }
        parse_wm_size(&String::from_utf8_lossy(&out.output))
    }
}

/// `Physical size: 1080x1920`, and `Override size: 720x1280` when one is set.
fn parse_wm_size(text: &str) -> Option<(u32, u32)> {
    let size = |prefix: &str| {
        text.lines().find_map(|l| {
            let (w, h) = l.trim().strip_prefix(prefix)?.trim().split_once('x')?;
            Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
        })
    };
    size("Override size:").or_else(|| size("Physical size:"))
}

/// The screens of one backend's phones.
pub struct Screens {
    scrcpy: Option<ScrcpyServer>,
    /// Phones (serials) whose fall back to screencap was logged already.
    told: Mutex<HashSet<String>>,
}

impl Screens {
    pub fn new(scrcpy: Option<ScrcpyServer>) -> Screens {
        Screens {
            scrcpy,
            told: Mutex::new(HashSet::new()),
        }
    }

    pub fn scrcpy(&self) -> Option<&ScrcpyServer> {
        self.scrcpy.as_ref()
    }

    /// Opens the phone's screen with scrcpy if it can (and images are not asked for), else with
    /// screencap.
    pub async fn open(&self, target: ScreenTarget, opts: ScreenOptions) -> OpResult<Screen> {
        let relay = target.relay().await?;
        let panel = target.panel_size().await;
        if opts.images_only {
            return screencap::open(target, relay, opts, panel).await;
        }
        let why = match &self.scrcpy {
            Some(jar) => match scrcpy::open(&target, &relay, jar, opts, panel).await {
                Ok(screen) => return Ok(screen),
                Err(e) => format!("scrcpy did not start: {e}"),
            },
            None => "no scrcpy server is configured ([scrcpy] in the backends file)".into(),
        };
        let first = self
            .told
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(target.serial.clone());
        if first {
            info!(serial = %target.serial, "the phone's screen comes from screencap: {why}");
        }
        screencap::open(target, relay, opts, panel).await
    }
}

#[cfg(test)]
mod tests {
    use super::parse_wm_size;

    #[test]
    fn wm_size_is_read_with_its_override() {
        assert_eq!(
            parse_wm_size("Physical size: 1080x1920\n"),
            Some((1080, 1920))
        );
        assert_eq!(
            parse_wm_size("Physical size: 1080x1920\nOverride size: 720x1280\n"),
            Some((720, 1280))
        );
        assert_eq!(parse_wm_size("wm: not found"), None);
    }
}
