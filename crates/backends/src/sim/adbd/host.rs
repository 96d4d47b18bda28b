//! A host speaking the ADB transport by hand to a simulated phone's adbd served on a loopback
//! port, for the tests: it can hold back its OKAYs (a client that reads slowly) and close a
//! stream mid-output, which stock `adb` does only at its own pace.

use std::time::Duration;

use cloudphone_adb::proto::packet::{Command, HEADER_LEN, Header, MAX_PAYLOAD, Packet, VERSION};
use cloudphone_adb::proto::sync::{Frame, ID_DATA, ID_DONE, ID_SEND};
use cloudphone_adb::session::{Config, ConnectionHandle, NoAuth, serve_connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::SimAdbd;
use crate::sim::phone::PhoneDir;

pub(crate) struct Host {
    sock: TcpStream,
    /// WRTEs that came while we waited for an OKAY, acknowledged, not yet read.
    pending: std::collections::VecDeque<Packet>,
}

/// What came back on a stream read to its end.
pub(crate) struct Read {
    pub bytes: Vec<u8>,
    /// The device closed the stream (rather than the connection).
    pub closed: bool,
}

impl Host {
    /// A connection to `phone`'s adbd, online (no authentication).
    pub async fn connect(phone: PhoneDir) -> Host {
        let checkouts = crate::sim::share::Checkouts::local(phone.clone());
        let (banner, device) = SimAdbd::for_phone(phone, checkouts).await.unwrap();
        let mut config = Config::new(banner);
        config.max_payload = MAX_PAYLOAD;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let device = std::sync::Arc::new(device);
            serve_connection(sock, &config, &NoAuth, device, ConnectionHandle::new()).await
        });
        let sock = TcpStream::connect(addr).await.unwrap();
        sock.set_nodelay(true).unwrap();
        let mut host = Host {
            sock,
            pending: Default::default(),
        };
        host.send(Packet::new(
            Command::Cnxn,
            VERSION,
            MAX_PAYLOAD,
            b"host::features=shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir".to_vec(),
        ))
        .await;
        let p = host.recv().await.expect("CNXN");
        assert_eq!(p.command, Command::Cnxn);
        host
    }

    pub async fn send(&mut self, p: Packet) {
        self.sock.write_all(&p.encode(VERSION)).await.unwrap();
    }

    /// The next message; `None` when the device closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        let mut head = [0u8; HEADER_LEN];
        tokio::time::timeout(Duration::from_secs(20), self.sock.read_exact(&mut head))
            .await
            .expect("a message within 20 s")
            .ok()?;
        let h = Header::parse(&head, u32::MAX).unwrap();
        let mut payload = vec![0u8; h.data_length as usize];
        self.sock.read_exact(&mut payload).await.ok()?;
        Some(Packet::new(h.command, h.arg0, h.arg1, payload))
    }

    /// OPENs `service` as our stream `id`; the device's id for it.
    pub async fn open(&mut self, id: u32, service: &str) -> u32 {
        let mut name = service.as_bytes().to_vec();
        name.push(0);
        self.send(Packet::new(Command::Open, id, 0, name)).await;
        // Other streams' last words (a CLSE after a push) may come first.
        let p = loop {
            let p = self.recv().await.expect("an answer to OPEN");
            if p.arg1 == id {
                break p;
            }
        };
        assert_eq!((p.command, p.arg1), (Command::Okay, id), "{service}: {p:?}");
        p.arg0
    }

    /// The next WRTE's payload on our stream `id` (not acknowledged); `None` once the device
    /// closed the stream.
    pub async fn next_write(&mut self, id: u32) -> Option<Vec<u8>> {
        if let Some(i) = self.pending.iter().position(|p| p.arg1 == id) {
            return self.pending.remove(i).map(|p| p.payload);
        }
        loop {
            let p = self.recv().await?;
            if p.arg1 != id {
                continue;
            }
            match p.command {
                Command::Wrte => return Some(p.payload),
                Command::Clse => return None,
                _ => {}
            }
        }
    }

    pub async fn okay(&mut self, id: u32, remote: u32) {
        self.send(Packet::new(Command::Okay, id, remote, Vec::new()))
            .await;
    }

    pub async fn close(&mut self, id: u32, remote: u32) {
        self.send(Packet::new(Command::Clse, id, remote, Vec::new()))
            .await;
    }

    /// Everything the device writes on our stream `id` until it closes it, each WRTE
    /// acknowledged.
    pub async fn read_to_end(&mut self, id: u32, remote: u32) -> Read {
        let mut bytes = Vec::new();
        loop {
            match self.next_write(id).await {
                Some(chunk) => {
                    bytes.extend_from_slice(&chunk);
                    self.okay(id, remote).await;
                }
                None => {
                    return Read {
                        bytes,
                        closed: true,
                    };
                }
            }
        }
    }

    /// `service` run to its end on a fresh stream: what it wrote.
    pub async fn run(&mut self, id: u32, service: &str) -> Vec<u8> {
        let remote = self.open(id, service).await;
        let read = self.read_to_end(id, remote).await;
        assert!(read.closed);
        read.bytes
    }

    /// Writes `data` on our stream `id`, waiting for the device's OKAY after each WRTE.
    pub async fn write(&mut self, id: u32, remote: u32, data: &[u8]) {
        for chunk in data.chunks(MAX_PAYLOAD as usize) {
            self.send(Packet::new(Command::Wrte, id, remote, chunk.to_vec()))
                .await;
            loop {
                let p = self.recv().await.expect("an OKAY");
                match p.command {
                    Command::Okay if p.arg1 == id => break,
                    Command::Wrte if p.arg1 == id => {
                        self.okay(id, remote).await;
                        self.pending.push_back(p);
                    }
                    Command::Clse if p.arg1 == id => panic!("the device closed the stream"),
                    _ => {}
                }
            }
        }
    }

    /// `adb push` as the sync protocol carries it: SEND, DATA chunks, DONE; the device's
    /// answer, `Ok(())` for OKAY or the text of its FAIL.
    pub async fn push(&mut self, id: u32, path: &str, data: &[u8]) -> Result<(), String> {
        let remote = self.open(id, "sync:").await;
        let spec = format!("{path},33188");
        let mut req = Frame {
            id: ID_SEND,
            arg: spec.len() as u32,
        }
        .encode()
        .to_vec();
        req.extend_from_slice(spec.as_bytes());
        for chunk in data.chunks(64 * 1024) {
            req.extend_from_slice(
                &Frame {
                    id: ID_DATA,
                    arg: chunk.len() as u32,
                }
                .encode(),
            );
            req.extend_from_slice(chunk);
        }
        req.extend_from_slice(
            &Frame {
                id: ID_DONE,
                arg: 1_700_000_000,
            }
            .encode(),
        );
        // The device answers once, after DONE (or at the first failure, and then reads on to
        // DONE): writing it all before reading is what adb does.
        self.write(id, remote, &req).await;
        let acknowledged = self.pending.iter().any(|p| p.arg1 == id);
        let answer = self.next_write(id).await.expect("an answer to the push");
        if !acknowledged {
            self.okay(id, remote).await;
        }
        self.close(id, remote).await;
        match &answer[..4] {
            b"OKAY" => Ok(()),
            b"FAIL" => Err(String::from_utf8_lossy(&answer[8..]).into_owned()),
            other => panic!("{other:?} in answer to a push"),
        }
    }
}
