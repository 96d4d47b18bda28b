//! A stream server on a loopback port over a real SQLite store, with the fake backend and the
//! node's recheck task running, and a WebSocket client that reads what the server sends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::{AccessKey, Group, Instance};
use cloudphone_store::SqliteStore;
use cloudphone_store::prelude::*;
use cloudphone_stream::protocol::FrameHeader;
use cloudphone_stream::{Claims, Epochs, StreamLimits, StreamRevocations, Streams, TicketKey};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::fake::FakeScreens;

pub const ACCOUNT: &str = "acct-a";
pub const OTHER_ACCOUNT: &str = "acct-b";
pub const KEY: &str = "testid";
pub const PHONE: &str = "acp-0000000000000001";
pub const PHONE_2: &str = "acp-0000000000000002";
/// Of the other account.
pub const OTHER_PHONE: &str = "acp-0000000000000003";

pub struct Harness {
    pub store: Arc<dyn Store>,
    pub streams: Arc<Streams>,
    pub fake: Arc<FakeScreens>,
    pub key: TicketKey,
    pub revocations: StreamRevocations,
    pub addr: SocketAddr,
    /// The node's shutdown (sessions close with 4002).
    pub closing: CancellationToken,
    _dir: tempfile::TempDir,
}

fn phone(id: &str, account: &str, group: &str) -> Instance {
    Instance {
        id: id.into(),
        account_id: account.into(),
        group_id: group.into(),
        group_name: String::new(),
        name: id.into(),
        status: InstanceStatus::Running,
        image_id: "imgc-simandroid140000".into(),
        spec: "acp.basic.small".into(),
        region_id: "cn-hangzhou".into(),
        up_bandwidth_limit: None,
        down_bandwidth_limit: None,
        charge_type: "PostPaid".into(),
        created_ms: 0,
        modified_ms: 0,
        host: None,
        adb_port: None,
    }
}

fn group(id: &str, account: &str) -> Group {
    Group {
        id: id.into(),
        account_id: account.into(),
        name: "lab".into(),
        region_id: "cn-hangzhou".into(),
        image_id: "imgc-simandroid140000".into(),
        spec: "acp.basic.small".into(),
        charge_type: "PostPaid".into(),
        tags: Vec::new(),
        created_ms: 0,
        modified_ms: 0,
        deleting: false,
    }
}

impl Harness {
    pub async fn start(limits: StreamLimits, fake: FakeScreens) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("cloudphone.db"))
            .await
            .unwrap();
        for (account, g, phones) in [
            (ACCOUNT, "ag-0000000000000001", vec![PHONE, PHONE_2]),
            (OTHER_ACCOUNT, "ag-0000000000000002", vec![OTHER_PHONE]),
        ] {
            store.ensure_account(account, account).await.unwrap();
            let phones: Vec<Instance> = phones.iter().map(|p| phone(p, account, g)).collect();
            store
                .create_groups(&[group(g, account)], &phones, &[], None, None)
                .await
                .unwrap();
        }
        for (key, account) in [(KEY, ACCOUNT), ("otherkey", OTHER_ACCOUNT)] {
            store
                .put_access_key(&AccessKey {
                    key_id: key.into(),
                    secret: "secret".into(),
                    account_id: account.into(),
                    user_name: String::new(),
                })
                .await
                .unwrap();
        }
        let store: Arc<dyn Store> = Arc::new(store);
        let fake = Arc::new(fake);
        let key = TicketKey::new(b"the key every node shares");
        let revocations = StreamRevocations::default();
        let closing = CancellationToken::new();
        let streams = Streams::new(
            store.clone(),
            fake.clone(),
            key.clone(),
            revocations.clone(),
            limits,
            "node-test".into(),
            closing.clone(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes = cloudphone_stream::routes(streams.clone());
        tokio::spawn(async move { axum::serve(listener, routes).await });
        tokio::spawn(cloudphone_stream::recheck::run(
            streams.clone(),
            CancellationToken::new(),
        ));
        Harness {
            store,
            streams,
            fake,
            key,
            revocations,
            addr,
            closing,
            _dir: dir,
        }
    }

    /// A ticket for `instance` as BatchGetAcpConnectionTicket makes it now, valid for `ttl_ms`.
    pub async fn ticket_for(
        &self,
        account: &str,
        key_id: &str,
        instance: &str,
        user: &str,
        ttl_ms: i64,
    ) -> String {
        let epochs = self
            .store
            .stream_epochs(&[instance.to_string()], user)
            .await
            .unwrap()[0]
            .1;
        let now = cloudphone_core::time::now_ms();
        self.key.issue(&Claims {
            account_id: account.into(),
            instance_id: instance.into(),
            end_user_id: user.into(),
            key_id: key_id.into(),
            epochs: Epochs {
                phone: epochs.phone,
                user: epochs.user,
            },
            task_id: "cn-hangzhou@7f8c2d4e-1a2b-4c3d-9e8f-0a1b2c3d4e5f".into(),
            iat: now,
            exp: now + ttl_ms,
        })
    }

    pub async fn ticket(&self, instance: &str) -> String {
        self.ticket_for(ACCOUNT, KEY, instance, "", 120_000).await
    }

    /// A WebSocket to `/streams/{instance}`, nothing sent yet.
    pub async fn connect(&self, instance: &str) -> Viewer {
        let url = format!("ws://{}/streams/{instance}", self.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Viewer { ws }
    }

    /// A viewer past its hello: the server's `hello` answer read.
    pub async fn open(&self, instance: &str) -> (Viewer, Value) {
        let ticket = self.ticket(instance).await;
        let mut v = self.connect(instance).await;
        v.hello(&ticket).await;
        let hello = v.text_of("hello").await;
        (v, hello)
    }

    /// Waits until `pred` holds (polling every 20 ms), for at most `secs`.
    pub async fn eventually<F: AsyncFnMut() -> bool>(secs: u64, what: &str, mut pred: F) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !pred().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub struct Viewer {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a viewer read next.
#[derive(Debug)]
pub enum Got {
    Text(Value),
    Frame(FrameHeader, usize),
    Closed(u16, String),
}

impl Viewer {
    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn hello(&mut self, ticket: &str) {
        self.send(serde_json::json!({"t": "hello", "ticket": ticket}))
            .await;
    }

    /// The next message, within 10 s.
    pub async fn next(&mut self) -> Got {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a message within 10 s");
            match m {
                None | Some(Err(_)) => return Got::Closed(1006, String::new()),
                Some(Ok(Message::Text(t))) => {
                    return Got::Text(serde_json::from_str(t.as_str()).unwrap());
                }
                Some(Ok(Message::Binary(b))) => {
                    let h = FrameHeader::decode(&b).expect("a 24-byte header");
                    return Got::Frame(h, b.len() - cloudphone_stream::protocol::HEADER_LEN);
                }
                Some(Ok(Message::Close(c))) => {
                    return match c {
                        Some(c) => Got::Closed(c.code.into(), c.reason.to_string()),
                        None => Got::Closed(1005, String::new()),
                    };
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next text of type `t`, skipping frames and other texts (within 10 s).
    pub async fn text_of(&mut self, t: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "no {t} within 10 s");
            match self.next().await {
                Got::Text(v) if v["t"] == t => return v,
                Got::Closed(code, reason) => panic!("closed {code} {reason} waiting for {t}"),
                _ => {}
            }
        }
    }

    /// The next frame's header.
    pub async fn frame(&mut self) -> FrameHeader {
        loop {
            match self.next().await {
                Got::Frame(h, _) => return h,
                Got::Closed(code, reason) => panic!("closed {code} {reason} waiting for a frame"),
                _ => {}
            }
        }
    }

    /// The close code and reason, skipping what comes before (a `bye` with the same reason
    /// must come first).
    pub async fn closed(&mut self) -> (u16, String) {
        let mut bye = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "not closed within 10 s");
            match self.next().await {
                Got::Text(v) if v["t"] == "bye" => {
                    bye = Some(v["reason"].as_str().unwrap().to_string())
                }
                Got::Closed(code, reason) => {
                    if code >= 4000 {
                        assert_eq!(bye.as_deref(), Some(reason.as_str()), "bye before close");
                    }
                    return (code, reason);
                }
                _ => {}
            }
        }
    }
}
