//! A host speaking the transport by hand, for what stock adb never does (break the protocol,
//! hold back its OKAYs, open many streams).

use std::net::SocketAddr;
use std::time::Duration;

use cloudphone_adb::proto::packet::{Command, HEADER_LEN, Header, MAX_PAYLOAD, Packet, VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawHost {
    pub sock: TcpStream,
}

impl RawHost {
    pub async fn connect(addr: SocketAddr) -> RawHost {
        let sock = TcpStream::connect(addr).await.unwrap();
        sock.set_nodelay(true).unwrap();
        RawHost { sock }
    }

    /// Connects and completes a handshake without authentication.
    pub async fn online(addr: SocketAddr) -> RawHost {
        let mut h = RawHost::connect(addr).await;
        h.send(Packet::new(
            Command::Cnxn,
            VERSION,
            MAX_PAYLOAD,
            b"host::features=shell_v2".to_vec(),
        ))
        .await;
        let p = h.recv().await.expect("CNXN");
        assert_eq!(p.command, Command::Cnxn);
        h
    }

    pub async fn send(&mut self, p: Packet) {
        self.sock.write_all(&p.encode(VERSION)).await.unwrap();
    }

    /// Sends `p` unless the device has already closed the connection (a host flooding a
    /// device that drops it past a cap sees its writes fail; that is the expected end).
    pub async fn try_send(&mut self, p: Packet) -> bool {
        self.sock.write_all(&p.encode(VERSION)).await.is_ok()
    }

    /// The next message, `None` when the device closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        let mut head = [0u8; HEADER_LEN];
        tokio::time::timeout(Duration::from_secs(10), self.sock.read_exact(&mut head))
            .await
            .expect("a message within 10 s")
            .ok()?;
        let h = Header::parse(&head, u32::MAX).unwrap();
        let mut payload = vec![0u8; h.data_length as usize];
        self.sock.read_exact(&mut payload).await.ok()?;
        Some(Packet::new(h.command, h.arg0, h.arg1, payload))
    }

    /// Whether the device closes the connection within `within` (reading and dropping what
    /// it sends meanwhile).
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let mut buf = [0u8; 4096];
        tokio::time::timeout(within, async {
            loop {
                match self.sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    /// OPENs `service` as our stream `id`; returns the device's id, or `None` if refused.
    pub async fn open(&mut self, id: u32, service: &str) -> Option<u32> {
        let mut name = service.as_bytes().to_vec();
        name.push(0);
        self.send(Packet::new(Command::Open, id, 0, name)).await;
        let p = self.recv().await.expect("an answer to OPEN");
        assert_eq!(p.arg1, id, "answer to our stream: {p:?}");
        match p.command {
            Command::Okay => Some(p.arg0),
            Command::Clse => None,
            other => panic!("{other:?} in answer to OPEN"),
        }
    }
}
