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
//!
//! A relayed `root:` or `unroot:` that restarts the phone's adbd ends the client's connection
//! soon after the answer, as the phone's adbd exiting ends a direct one. **Why:** `adb root`
//! waits for its device to go away before it returns; behind the gateway the client's transport
//! is the gateway's, which lives on, so without this the client waited forever. Its server then
//! reconnects by itself, and finds the phone once its adbd is back.

use std::time::Duration;

use cloudphone_adb::proto::banner::DeviceBanner;
use cloudphone_adb::proto::service::{ServiceName, ServicePolicy};
use cloudphone_adb::relay::{AdbServer, RelayDevice, RelayError, relayable_features};
use cloudphone_adb::session::{ConnectionHandle, Device, OpenError, Service, SharedDevice};
use cloudphone_backend::AdbRoute;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most of adbd's answer to `root:`/`unroot:` read (a line: "restarting adbd as root").
const ROOT_ANSWER_MAX: u64 = 4096;

/// How long after adbd's "restarting" answer the connection ends: time for the answer to
/// reach the client before the socket goes.
const RESTART_CLOSE_DELAY: Duration = Duration::from_millis(200);

/// A phone behind an ADB server, with what its users may do besides its device services.
pub(crate) struct RelayPhone {
    relay: RelayDevice,
    policy: ServicePolicy,
    /// The client's connection, ended when the phone's adbd restarts.
    connection: ConnectionHandle,
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
            PhoneDevice::Relay(r) => match ServiceName::parse(service.as_bytes()) {
                ServiceName::Root if !r.policy.root => {
                    Ok(say("adbd cannot run as root in production builds\n"))
                }
                ServiceName::Root | ServiceName::Unroot => {
                    let upstream = r
                        .relay
                        .server
                        .open_service_with(&r.relay.serial, service, &r.policy)
                        .await
                        .map_err(|e| OpenError(e.to_string()))?;
                    Ok(restarting(upstream, r.connection.clone()))
                }
                _ => r.relay.open_with(service, &r.policy).await,
            },
        }
    }
}

/// Relays adbd's answer to `root:`/`unroot:` and ends `connection` if adbd said it restarts.
fn restarting(upstream: TcpStream, connection: ConnectionHandle) -> Service {
    Service::new(move |mut s| async move {
        let mut answer = Vec::new();
        let _ = upstream
            .take(ROOT_ANSWER_MAX)
            .read_to_end(&mut answer)
            .await;
        let _ = s.write_all(&answer).await;
        let _ = s.shutdown().await;
        if restarts(&answer) {
            tokio::time::sleep(RESTART_CLOSE_DELAY).await;
            connection.close();
        }
    })
}

/// Whether adbd's answer says it is restarting (and so will drop its transport).
fn restarts(answer: &[u8]) -> bool {
    answer
        .windows(b"restarting adbd".len())
        .any(|w| w == b"restarting adbd")
}

/// The device for `route` and the banner to announce. A relayed phone announces its own
/// features (asked from the ADB server, which also says whether the phone is there) under the
/// gateway's name for it.
pub(crate) async fn device_for(
    route: AdbRoute,
    instance_id: &str,
    server_timeout: Duration,
    connection: ConnectionHandle,
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
                    connection,
                }),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::restarts;

    #[test]
    fn only_a_restart_ends_the_connection() {
        assert!(restarts(b"restarting adbd as root\n"));
        assert!(restarts(b"restarting adbd as non root\n"));
        assert!(!restarts(b"adbd is already running as root\n"));
        assert!(!restarts(b"adbd not running as root\n"));
        assert!(!restarts(b"adbd cannot run as root in production builds\n"));
        assert!(!restarts(b""));
    }
}
