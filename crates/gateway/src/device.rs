//! The device a connection is served by, from the phone's [`AdbRoute`]: a simulated phone's
//! own adbd as its backend made it, or a relay to a real adbd through an ADB server.
//!
//! A relayed phone is served everything its adbd offers (shells, sync, `exec:`, sockets on the
//! phone for `adb forward`, `abb`) except what would reach past the phone or take it from the
//! backend: `reverse:` (the phone's adbd would open connections on the host of the ADB server,
//! inside the control plane's network, not on the user's machine), `tcpip:` and `usb:` (adbd
//! would restart elsewhere, cutting the backend's own connection), `root:`, `unroot:` and
//! `remount:` unless the phone may run as root (the docker backend keeps tenants' work as
//! `shell`, §6.3), `reboot:` (a reboot is the API's RebootAndroidInstances, which moves the
//! phone's status; one behind the API's back would leave it RUNNING while the phone is down),
//! and every `host...` request (the ADB server would answer it itself: other phones, `kill`).
//! The allowlist is the protocol crate's ([`ServicePolicy`]).

use std::time::Duration;

use cloudphone_adb::proto::banner::DeviceBanner;
use cloudphone_adb::proto::service::{ServiceName, ServicePolicy};
use cloudphone_adb::relay::{AdbServer, RelayDevice, RelayError, relayable_features};
use cloudphone_adb::session::{Device, OpenError, Service, SharedDevice};
use cloudphone_backend::AdbRoute;
use tokio::io::AsyncWriteExt;

/// A phone behind an ADB server, with the services the gateway refuses taken out.
pub(crate) struct RelayPhone {
    relay: RelayDevice,
    allow_root: bool,
}

/// How a connection's streams are served.
pub(crate) enum PhoneDevice {
    Local(SharedDevice),
    Relay(RelayPhone),
}

/// A service that writes `message` and closes, as adbd answers `root:` on a production build.
fn say(message: &'static str) -> Service {
    Service::new(move |mut s| async move {
        let _ = s.write_all(message.as_bytes()).await;
        let _ = s.shutdown().await;
    })
}

impl Device for PhoneDevice {
    async fn open(&self, service: &str) -> Result<Service, OpenError> {
        match self {
            PhoneDevice::Local(d) => d.open(service).await,
            PhoneDevice::Relay(r) => {
                match ServiceName::parse(service.as_bytes()) {
                    ServiceName::Root if !r.allow_root => {
                        return Ok(say("adbd cannot run as root in production builds\n"));
                    }
                    ServiceName::Reverse(_) | ServiceName::Tcpip(_) | ServiceName::Usb => {
                        return Err(OpenError(format!(
                            "{service:?} is not relayed by the gateway"
                        )));
                    }
                    _ => {}
                }
                let policy = ServicePolicy {
                    root: r.allow_root,
                    remount: r.allow_root,
                    reboot: false,
                };
                r.relay.open_with(service, &policy).await
            }
        }
    }
}

/// The device for `route` and the banner to announce. A relayed phone announces its own
/// features (asked from the ADB server, which also says whether the phone is there) under the
/// gateway's name for it.
pub(crate) async fn device_for(
    route: AdbRoute,
    instance_id: &str,
    server_timeout: Duration,
) -> Result<(DeviceBanner, PhoneDevice), RelayError> {
    match route {
        AdbRoute::Local { banner, device } => Ok((banner, PhoneDevice::Local(device))),
        AdbRoute::Relay {
            server,
            serial,
            allow_root,
        } => {
            let mut server = AdbServer::new(server);
            server.timeout = server_timeout;
            let features = relayable_features(&server.device_features(&serial).await?);
            let mut banner = DeviceBanner::new("cloudphone", "Cloud_Phone", instance_id);
            banner.features = features;
            Ok((
                banner,
                PhoneDevice::Relay(RelayPhone {
                    relay: RelayDevice { server, serial },
                    allow_root,
                }),
            ))
        }
    }
}
