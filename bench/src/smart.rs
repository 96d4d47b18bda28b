//! A client of the stock ADB server's smart-socket protocol (AOSP `adb/OVERVIEW.TXT`,
//! `SERVICES.TXT`): each request is a 4-hex-digit length and the text, answered OKAY (with a
//! 4-hex-digit length and a string for queries) or FAIL and a reason. After
//! `host:transport:SERIAL` and a service's OKAY the socket carries that service's bytes: this is
//! what `adb -s SERIAL shell` itself sends its server. Written here rather than borrowed from
//! cloudphone-adb so that the measuring side of the wire shares no code with the gateway.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bytes of one request.
pub fn encode(request: &str) -> anyhow::Result<Vec<u8>> {
    if request.len() > 0xffff {
        bail!(
            "request of {} bytes is too long for an ADB server",
            request.len()
        );
    }
    Ok(format!("{:04x}{request}", request.len()).into_bytes())
}

/// Sends `request` and reads its OKAY; a FAIL becomes an error with the server's reason.
pub async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    sock: &mut S,
    request: &str,
) -> anyhow::Result<()> {
    sock.write_all(&encode(request)?).await?;
    let mut status = [0u8; 4];
    sock.read_exact(&mut status)
        .await
        .with_context(|| format!("no answer to {request:?}"))?;
    match &status {
        b"OKAY" => Ok(()),
        b"FAIL" => bail!("adb server: {request:?}: {}", read_string(sock).await?),
        other => bail!(
            "adb server answered {request:?} with {:?}",
            String::from_utf8_lossy(other)
        ),
    }
}

/// A 4-hex-digit length and that many bytes.
pub async fn read_string<R: AsyncRead + Unpin>(r: &mut R) -> anyhow::Result<String> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let n = std::str::from_utf8(&len)
        .ok()
        .and_then(|t| usize::from_str_radix(t, 16).ok())
        .with_context(|| format!("bad length {:?}", String::from_utf8_lossy(&len)))?;
    let mut body = vec![0u8; n];
    r.read_exact(&mut body).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

async fn connect(server: SocketAddr) -> anyhow::Result<TcpStream> {
    let sock = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(server))
        .await
        .context("the adb server did not accept within 10 s")?
        .with_context(|| format!("connecting to the adb server at {server}"))?;
    sock.set_nodelay(true)?;
    Ok(sock)
}

/// A host query answered with a string (`host:version`, `host:connect:HOST:PORT`,
/// `host-serial:SERIAL:get-state`).
pub async fn query(server: SocketAddr, text: &str) -> anyhow::Result<String> {
    let mut sock = connect(server).await?;
    tokio::time::timeout(Duration::from_secs(30), async {
        request(&mut sock, text).await?;
        read_string(&mut sock).await
    })
    .await
    .with_context(|| format!("no answer to {text:?} within 30 s"))?
}

/// Opens `service` on `serial`; the socket then carries the service's bytes.
pub async fn open(server: SocketAddr, serial: &str, service: &str) -> anyhow::Result<TcpStream> {
    let mut sock = connect(server).await?;
    tokio::time::timeout(Duration::from_secs(30), async {
        request(&mut sock, &format!("host:transport:{serial}")).await?;
        request(&mut sock, service).await
    })
    .await
    .with_context(|| format!("opening {service:?} on {serial} took over 30 s"))??;
    Ok(sock)
}

/// `adb connect SERIAL`, then waits until the server lists the device as `device` (the
/// handshake done): the server answers the connect before the device is online.
pub async fn connect_device(server: SocketAddr, serial: &str) -> anyhow::Result<()> {
    // adb 29's server now and then answers a bare "failed to connect to SERIAL" (no reason, so
    // not from the socket) on a loaded machine; a user would try again, and so do we.
    let mut attempt = 0;
    loop {
        let said = query(server, &format!("host:connect:{serial}")).await?;
        if said.starts_with("connected to") || said.starts_with("already connected") {
            break;
        }
        attempt += 1;
        if attempt == 5 {
            bail!("adb connect {serial}, 5 times: {said}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    loop {
        let state = query(server, &format!("host-serial:{serial}:get-state")).await;
        match state {
            Ok(s) if s == "device" => return Ok(()),
            Ok(s) if s == "unauthorized" => bail!("{serial} is unauthorized"),
            _ if started.elapsed() > Duration::from_secs(30) => {
                let state = state.map_err(|e| format!("{e:#}"));
                bail!("{serial} not online 30 s after adb connect: {state:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// `adb disconnect SERIAL`.
pub async fn disconnect_device(server: SocketAddr, serial: &str) -> anyhow::Result<()> {
    query(server, &format!("host:disconnect:{serial}")).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_their_length_in_hex() {
        assert_eq!(encode("host:version").unwrap(), b"000chost:version");
        assert_eq!(encode("").unwrap(), b"0000");
        assert!(encode(&"x".repeat(0x10000)).is_err());
    }

    #[tokio::test]
    async fn okay_fail_and_strings() {
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move {
            let mut got = vec![0u8; 16];
            theirs.read_exact(&mut got).await.unwrap();
            assert_eq!(got, b"000chost:version");
            theirs.write_all(b"OKAY00040029").await.unwrap();
            let mut got = vec![0u8; 11];
            theirs.read_exact(&mut got).await.unwrap();
            theirs
                .write_all(b"FAIL0014device 'x' not found")
                .await
                .unwrap();
        });
        request(&mut ours, "host:version").await.unwrap();
        assert_eq!(read_string(&mut ours).await.unwrap(), "0029");
        let e = request(&mut ours, "host:x:y").await.unwrap_err();
        assert!(format!("{e:#}").contains("device 'x' not found"), "{e:#}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_bad_status_is_an_error() {
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let mut got = vec![0u8; 8];
            theirs.read_exact(&mut got).await.unwrap();
            theirs.write_all(b"WHAT").await.unwrap();
        });
        assert!(request(&mut ours, "abcd").await.is_err());
    }
}
