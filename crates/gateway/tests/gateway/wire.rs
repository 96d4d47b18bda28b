//! ADB spoken by hand on the wire, for what stock adb never sends: connect, a CNXN, packets read
//! and written one at a time, and whether the gateway closed the socket.

use std::net::SocketAddr;
use std::time::Duration;

use cloudphone_adb::proto::packet::{Command, HEADER_LEN, Header, MAX_PAYLOAD, Packet, VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub async fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Whether the gateway closes `s` within `within` (what it sends meanwhile is dropped).
pub async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Sends a CNXN and reads the device's answer (its CNXN, or an AUTH token); `None` if the
/// connection was closed instead.
pub async fn handshake(s: &mut TcpStream) -> Option<Packet> {
    let cnxn = Packet::new(
        Command::Cnxn,
        VERSION,
        MAX_PAYLOAD,
        b"host::features=shell_v2".to_vec(),
    );
    send(s, &cnxn).await.ok()?;
    read_packet(s).await
}

pub async fn send(s: &mut TcpStream, p: &Packet) -> std::io::Result<()> {
    s.write_all(&p.encode(VERSION)).await
}

/// The next packet (10 s at most); `None` if the connection was closed instead.
pub async fn read_packet(s: &mut TcpStream) -> Option<Packet> {
    let mut head = [0u8; HEADER_LEN];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut head))
        .await
        .expect("an answer within 10 s")
        .ok()?;
    let h = Header::parse(&head, u32::MAX).unwrap();
    let mut payload = vec![0u8; h.data_length as usize];
    s.read_exact(&mut payload).await.ok()?;
    Some(Packet::new(h.command, h.arg0, h.arg1, payload))
}
