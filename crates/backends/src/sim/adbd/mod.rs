//! The simulated phone's adbd: what the ADB gateway serves for a simulated phone
//! (`Backend::adb_route`), built from cloudphone-adb's helpers over the phone's own state, so
//! that `adb shell`, `adb push`/`pull` and `adb install` act on exactly what RunCommand,
//! SendFile/FetchFile and InstallApp act on. The shell is the simulator's ([`shell`]), the file
//! system the phone's data dir through the one path mapping ([`fs`]); packages installed either
//! way are the phone's packages. Each command and each sync request holds the phone's
//! checkout while it runs and publishes what it changed ([`Checkouts`]), so nodes that share
//! no file system see what a session did as soon as it answered.
//!
//! Services: `shell:`, `shell,v2,...:` and `exec:` (commands, an interactive shell, and the
//! streamed install `adb install` sends to `exec:cmd package install -S SIZE`), `sync:`.
//! `root:`, `unroot:` and `remount:` answer as a production build's adbd does (adbd stays
//! `shell`); everything else (`reboot:`, forwards, `tcpip:`) is refused: a simulated phone's
//! lifecycle belongs to the API, and it has no network.

mod fs;
#[cfg(test)]
mod host;
mod shell;
#[cfg(test)]
mod tests;

use cloudphone_adb::proto::banner::DeviceBanner;
use cloudphone_adb::proto::service::ServiceName;
use cloudphone_adb::services::LocalDevice;
use cloudphone_adb::session::{Device, OpenError, Service, SharedDevice};
use tokio::io::AsyncWriteExt;

use super::phone::PhoneDir;
use super::share::Checkouts;
pub(crate) use fs::SimFs;
pub(crate) use shell::SimShell;

/// A simulated phone's adbd.
pub(crate) struct SimAdbd {
    inner: LocalDevice<SimShell, SimFs>,
}

impl SimAdbd {
    /// The device and the banner it announces (product, model and device from the phone's
    /// properties; the features cloudphone-adb's services speak).
    pub(crate) async fn for_phone(
        phone: PhoneDir,
        checkouts: Checkouts,
    ) -> std::io::Result<(DeviceBanner, SharedDevice)> {
        let props = phone.props().await?;
        let prop = |k: &str| props.get(k).cloned().unwrap_or_default();
        let banner = DeviceBanner::new(
            &prop("ro.product.name"),
            &prop("ro.product.model"),
            &prop("ro.product.device"),
        );
        let shell = SimShell::new(phone.clone(), prop("ro.product.device"), checkouts.clone());
        let device = SimAdbd {
            inner: LocalDevice::new(
                std::sync::Arc::new(shell),
                std::sync::Arc::new(SimFs::new(phone, checkouts)),
            ),
        };
        Ok((banner, SharedDevice::new(device)))
    }
}

/// A service that writes `message` and closes, as adbd answers `root:` and its kin.
fn say(message: &'static str) -> Service {
    Service::new(move |mut s| async move {
        let _ = s.write_all(message.as_bytes()).await;
        let _ = s.shutdown().await;
    })
}

impl Device for SimAdbd {
    async fn open(&self, service: &str) -> Result<Service, OpenError> {
        let name = ServiceName::parse(service.as_bytes());
        match &name {
            // What a production build's adbd says: the simulated phone's shell is `shell`.
            ServiceName::Root => Ok(say("adbd cannot run as root in production builds\n")),
            ServiceName::Unroot => Ok(say("adbd not running as root\n")),
            ServiceName::Remount(_) => Ok(say("Not running as root. Try \"adb root\" first.\n")),
            _ => self
                .inner
                .service(&name)
                .ok_or_else(|| OpenError(format!("a simulated phone has no service {service:?}"))),
        }
    }
}
