//! Forwarding a stream to a real adbd through an ADB server (AOSP `adb/OVERVIEW.TXT`,
//! `SERVICES.TXT`): a TCP connection to the server, `host:transport:SERIAL`, then the service
//! name, each request a 4-hex-digit length and the text, each answered OKAY or FAIL (then a
//! 4-hex-digit length and the reason); after the second OKAY the socket carries the service's
//! raw bytes both ways. The phone's adbd sees the server's key, never the user's.
//!
//! The server is shared by every phone behind it, and it answers any request whose name
//! starts with `host` itself, even after the transport was chosen: passed on, a user's
//! `host:devices-l` would list the other tenants' phones, `host:transport:OTHER` reach one,
//! `host:kill` stop the server. So a name is checked against an allowlist before it is sent
//! ([`ServicePolicy`]: device services only, unless the caller allows more), on its raw bytes
//! for the `host` prefix and on its parse for the rest.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::debug;

use crate::proto::banner::TRANSPORT_FEATURES;
use crate::proto::service::ServicePolicy;
use crate::session::{AdbStream, Device, OpenError, Service};

#[derive(Debug, Error)]
pub enum RelayError {
    #[error("adb server: {0}")]
    Io(#[from] io::Error),
    #[error("adb server did not answer within {0:?}")]
    Timeout(Duration),
    /// The server's FAIL reason (`device 'x' not found`, `closed`, ...).
    #[error("adb server refused: {0}")]
    Refused(String),
    #[error("adb server answered {0:?}")]
    Protocol(String),
    #[error("request of {0} bytes is too long for the adb server")]
    TooLong(usize),
    /// The service is not one a user may open through the relay ([`ServicePolicy`]); nothing
    /// was sent to the server.
    #[error("service {0:?} is not relayed")]
    NotAllowed(String),
}

/// Where an ADB server listens and how long its answers may take.
#[derive(Debug, Clone)]
pub struct AdbServer {
    pub addr: SocketAddr,
    /// For the connection and each OKAY/FAIL; not for the service's bytes afterwards.
    pub timeout: Duration,
}

impl AdbServer {
    pub fn new(addr: SocketAddr) -> AdbServer {
        AdbServer {
            addr,
            timeout: Duration::from_secs(10),
        }
    }

    /// Opens `service` on device `serial`: the returned socket carries the service's bytes.
    /// Only device services ([`ServicePolicy::DEVICE_ONLY`]); anything else, `host...` names
    /// above all, is refused before the server is contacted.
    pub async fn open_service(&self, serial: &str, service: &str) -> Result<TcpStream, RelayError> {
        self.open_service_with(serial, service, &ServicePolicy::DEVICE_ONLY)
            .await
    }

    /// [`AdbServer::open_service`] with the services `policy` allows besides device services
    /// (`root:`, `remount:`, `reboot:`, as the caller decides for this phone).
    pub async fn open_service_with(
        &self,
        serial: &str,
        service: &str,
        policy: &ServicePolicy,
    ) -> Result<TcpStream, RelayError> {
        if !policy.allows_raw(service.as_bytes()) {
            return Err(RelayError::NotAllowed(service.to_string()));
        }
        let t = self.timeout;
        let mut sock = self.connect().await?;
        let setup = async {
            request(&mut sock, &format!("host:transport:{serial}")).await?;
            request(&mut sock, service).await
        };
        timeout(t, setup)
            .await
            .map_err(|_| RelayError::Timeout(t))??;
        Ok(sock)
    }

    /// The features the device announced to the server (`host-serial:SERIAL:features`).
    pub async fn device_features(&self, serial: &str) -> Result<Vec<String>, RelayError> {
        let t = self.timeout;
        let mut sock = self.connect().await?;
        let ask = async {
            request(&mut sock, &format!("host-serial:{serial}:features")).await?;
            read_hex_string(&mut sock).await
        };
        let text = timeout(t, ask)
            .await
            .map_err(|_| RelayError::Timeout(t))??;
        Ok(text
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect())
    }

    async fn connect(&self) -> Result<TcpStream, RelayError> {
        let t = self.timeout;
        let sock = timeout(t, TcpStream::connect(self.addr))
            .await
            .map_err(|_| RelayError::Timeout(t))??;
        sock.set_nodelay(true)?;
        Ok(sock)
    }
}

/// What a gateway may announce for a relayed phone: the phone's features but those of the
/// transport, which the gateway speaks itself.
pub fn relayable_features(device_features: &[String]) -> Vec<String> {
    device_features
        .iter()
        .filter(|f| !TRANSPORT_FEATURES.contains(&f.as_str()))
        .cloned()
        .collect()
}

/// Sends one request and reads its OKAY or FAIL.
async fn request(sock: &mut TcpStream, text: &str) -> Result<(), RelayError> {
    if text.len() > 0xffff {
        return Err(RelayError::TooLong(text.len()));
    }
    let msg = format!("{:04x}{text}", text.len());
    sock.write_all(msg.as_bytes()).await?;
    let mut status = [0u8; 4];
    sock.read_exact(&mut status).await?;
    match &status {
        b"OKAY" => Ok(()),
        b"FAIL" => Err(RelayError::Refused(read_hex_string(sock).await?)),
        other => Err(RelayError::Protocol(
            String::from_utf8_lossy(other).into_owned(),
        )),
    }
}

/// A 4-hex-digit length and that many bytes.
async fn read_hex_string(sock: &mut TcpStream) -> Result<String, RelayError> {
    let mut len = [0u8; 4];
    sock.read_exact(&mut len).await?;
    let text = std::str::from_utf8(&len).unwrap_or("");
    let n = usize::from_str_radix(text, 16)
        .map_err(|_| RelayError::Protocol(String::from_utf8_lossy(&len).into_owned()))?;
    let mut body = vec![0u8; n];
    sock.read_exact(&mut body).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// What a relayed stream reads from the server at once.
const RELAY_READ: usize = 16 * 1024;

/// Copies bytes both ways between the host's stream and the service's socket until either
/// side closes: the phone's end of file closes the host's stream (CLSE after the last OKAY),
/// the host's CLSE drops the socket, which makes the server close the phone's stream.
pub async fn relay(stream: AdbStream, upstream: TcpStream) -> io::Result<()> {
    let (mut from_host, mut to_host) = stream.into_split();
    let (up_read, mut up_write) = upstream.into_split();
    // A small buffer: the stream gathers what is read while a WRTE is in flight into the next
    // one (under the connection's budget), so WRTEs still fill up without each relayed stream
    // holding a payload of its own.
    let mut up_read = BufReader::with_capacity(RELAY_READ, up_read);
    let host_to_phone = tokio::io::copy_buf(&mut from_host, &mut up_write);
    let phone_to_host = async {
        tokio::io::copy_buf(&mut up_read, &mut to_host).await?;
        to_host.shutdown().await
    };
    tokio::select! {
        r = host_to_phone => r.map(drop),
        r = phone_to_host => r,
    }
}

/// A device whose every device service is the same service of a phone behind an ADB server
/// ([`Device::open`]: [`ServicePolicy::DEVICE_ONLY`]; [`RelayDevice::open_with`] for more).
#[derive(Debug, Clone)]
pub struct RelayDevice {
    pub server: AdbServer,
    pub serial: String,
}

impl RelayDevice {
    /// Opens `service` on the phone if `policy` allows it: for a caller that lets some phones'
    /// users run `adb root` or `adb reboot`.
    pub async fn open_with(
        &self,
        service: &str,
        policy: &ServicePolicy,
    ) -> Result<Service, OpenError> {
        match self
            .server
            .open_service_with(&self.serial, service, policy)
            .await
        {
            Ok(upstream) => Ok(Service::new(move |s| async move {
                if let Err(e) = relay(s, upstream).await {
                    debug!(error = %e, "relay ended");
                }
            })),
            Err(e) => Err(OpenError(e.to_string())),
        }
    }
}

impl Device for RelayDevice {
    async fn open(&self, service: &str) -> Result<Service, OpenError> {
        self.open_with(service, &ServicePolicy::DEVICE_ONLY).await
    }
}
