//! The device a connection is served by, from the phone's [`AdbRoute`]: a simulated phone's
//! own adbd as its backend made it, or a relay to a real adbd through an ADB server.
//!
//! A relayed phone is served its adbd's device services (shells, sync, `exec:`, sockets on the
//! phone for `adb forward`, `abb`) and what the backend's [`ServicePolicy`] allows besides
//! (`root:`, `remount:`, `reboot:`); cloudphone-adb's relay refuses everything else before it
//! reaches the ADB server: `host...` requests (other devices, the server itself), `reverse:`
//! (the phone's adbd would open connections on the server's host, inside the control plane's
//! network), `tcpip:` and `usb:` (adbd would restart away from the server). `root:` where the
//! policy refuses it is answered as a production build's adbd answers it.

use std::time::Duration;

use cloudphone_adb::proto::banner::DeviceBanner;
use cloudphone_adb::proto::service::{ServiceName, ServicePolicy};
use cloudphone_adb::relay::{AdbServer, RelayDevice, RelayError, relayable_features};
use cloudphone_adb::session::{Device, OpenError, Service, SharedDevice};
use cloudphone_backend::AdbRoute;
use tokio::io::AsyncWriteExt;

/// A phone behind an ADB server, with what its users may do besides its device services.
pub(crate) struct RelayPhone {
    relay: RelayDevice,
    policy: ServicePolicy,
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
                if ServiceName::parse(service.as_bytes()) == ServiceName::Root && !r.policy.root {
                    return Ok(say("adbd cannot run as root in production builds\n"));
                }
                r.relay.open_with(service, &r.policy).await
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
            policy,
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
                    policy,
                }),
            ))
        }
    }
}
