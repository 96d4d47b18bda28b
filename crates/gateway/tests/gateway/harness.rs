//! What every test builds on: a real SQLite store in a temporary directory, the simulated
//! fleet over that directory, phones in both (RUNNING, endpoint started), a gateway on a range
//! of loopback ports; Debian's stock `adb` with a private server and a temporary HOME (its own
//! key, or one we give it as `~/.android/adbkey`) is cloudphone-adb-testkit's `StockAdb`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use cloudphone_adb::keys::GeneratedKey;
use cloudphone_backend::{Backend, InstanceRef};
use cloudphone_backends::{SimBackend, SimConfig};
use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::{Group, Instance, KeyPair};
use cloudphone_gateway::{Gateway, GatewayConfig, GatewayHandle};
use cloudphone_store::prelude::*;
use cloudphone_store::{AdbPorts, AuditEntry, AuditFilter, SqliteStore, StartAdb};
use tokio_util::sync::CancellationToken;

use crate::fake_store::FakeStore;

pub const ACCOUNT: &str = "acct-gw";
pub const IMAGE: &str = cloudphone_backends::sim::ANDROID_14;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A node's store and fleet.
pub struct World {
    /// Holds the store's and the sim's files.
    _dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
    pub sim: Arc<SimBackend>,
    pub ports: AdbPorts,
}

impl World {
    /// A fresh store and sim, with a range of `n` ports free on both 127.0.0.1 and 127.0.0.2.
    pub async fn new(n: u16) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("db.sqlite"))
                .await
                .unwrap(),
        );
        let sim = Arc::new(SimBackend::new(SimConfig {
            root: dir.path().join("sim"),
            delay: Some(Duration::from_millis(1)),
            record_executions: false,
        }));
        World {
            _dir: dir,
            store,
            sim,
            ports: free_range(n),
        }
    }

    pub fn phone(&self, id: &str) -> InstanceRef {
        InstanceRef {
            id: id.into(),
            account_id: ACCOUNT.into(),
            name: id.into(),
            image_id: IMAGE.into(),
            spec: "acp.basic.small".into(),
            attempt: None,
            ..InstanceRef::default()
        }
    }

    /// Phones `ids`, RUNNING in the store and created on the sim, their endpoints started;
    /// returns their ports.
    pub async fn phones(&self, ids: &[&str]) -> Vec<u16> {
        self.phones_on(ids, IMAGE).await
    }

    pub async fn phones_on(&self, ids: &[&str], image: &str) -> Vec<u16> {
        let gid = format!("ag-{}", ids[0]);
        let t = now_ms();
        let group = Group {
            id: gid.clone(),
            account_id: ACCOUNT.into(),
            name: gid.clone(),
            region_id: "cn-hangzhou".into(),
            image_id: image.into(),
            spec: "acp.basic.small".into(),
            charge_type: "PostPaid".into(),
            tags: vec![],
            created_ms: t,
            modified_ms: t,
            deleting: false,
        };
        let instances: Vec<Instance> = ids
            .iter()
            .map(|id| Instance {
                id: id.to_string(),
                account_id: ACCOUNT.into(),
                group_id: gid.clone(),
                group_name: gid.clone(),
                name: id.to_string(),
                status: InstanceStatus::Running,
                image_id: image.into(),
                spec: "acp.basic.small".into(),
                region_id: "cn-hangzhou".into(),
                up_bandwidth_limit: None,
                down_bandwidth_limit: None,
                charge_type: "PostPaid".into(),
                created_ms: t,
                modified_ms: t,
                host: None,
                adb_port: None,
            })
            .collect();
        self.store
            .create_groups(&[group], &instances, &[], None, None)
            .await
            .unwrap();
        if image == IMAGE {
            for id in ids {
                self.sim.create(&self.phone(id)).await.unwrap();
            }
        }
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        match self
            .store
            .start_adb(ACCOUNT, &ids, self.ports, now_ms())
            .await
            .unwrap()
        {
            StartAdb::Started { ports, .. } => ports.into_iter().map(|(_, p)| p).collect(),
            StartAdb::NoFreePort => panic!("no free port"),
        }
    }

    /// Moves a phone to `to` (as a task would).
    pub async fn set_status(&self, id: &str, to: InstanceStatus) {
        let i = self.store.instance(id).await.unwrap().unwrap();
        assert!(
            self.store
                .mark_instance(id, i.status, to, i.modified_ms, now_ms())
                .await
                .unwrap()
        );
    }

    /// Stores `key` as key pair `id` of the account and attaches it to `instance`.
    pub async fn attach(&self, id: &str, key: &GeneratedKey, instance: &str) {
        let kp = KeyPair {
            id: id.into(),
            account_id: ACCOUNT.into(),
            name: id.into(),
            public_key: key.public.to_string(),
            fingerprint: key.public.fingerprint(),
            created_ms: now_ms(),
        };
        let _ = self.store.create_key_pair(&kp, 1_000).await.unwrap();
        self.store
            .attach_key_pair(ACCOUNT, id, &[instance.to_string()], now_ms())
            .await
            .unwrap()
            .expect("the key pair is the account's");
    }

    /// The account's `AdbConnection` entries of connections that ended (not those written
    /// when a client got in, nor summaries of entries left out).
    pub async fn audit(&self) -> Vec<AuditEntry> {
        let mut all = self.audit_all().await;
        all.retain(|e| !e.outcome.starts_with("Connected") && !e.outcome.starts_with("Suppressed"));
        all
    }

    /// All the account's `AdbConnection` entries.
    pub async fn audit_all(&self) -> Vec<AuditEntry> {
        self.store
            .audit(&AuditFilter {
                account_id: Some(ACCOUNT.into()),
                action: Some("AdbConnection".into()),
                after_id: 0,
                limit: 1000,
            })
            .await
            .unwrap()
    }

    /// Waits until `n` connections were audited as ended.
    pub async fn audited(&self, n: usize) -> Vec<AuditEntry> {
        for _ in 0..200 {
            let a = self.audit().await;
            if a.len() >= n {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "fewer than {n} connections audited: {:?}",
            self.audit().await
        );
    }

    /// Waits until an entry of an ended connection is as `wanted` says (entries are written
    /// by the gateway's writer a moment after the connection ends); the entries then, or all
    /// of them after 5 s.
    pub async fn audited_with(&self, wanted: impl Fn(&AuditEntry) -> bool) -> Vec<AuditEntry> {
        for _ in 0..200 {
            let a = self.audit().await;
            if a.iter().any(&wanted) {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.audit().await
    }

    /// A gateway of this world on `ip`, serving `backend`.
    pub async fn gateway_on(
        &self,
        ip: IpAddr,
        backend: Arc<dyn Backend>,
        tune: impl FnOnce(&mut GatewayConfig),
    ) -> Node {
        let mut config = GatewayConfig::new(ip, self.ports);
        tune(&mut config);
        let gw = Gateway::bind(config, self.store.clone(), backend)
            .await
            .expect("the range is free");
        Node::run(ip, gw)
    }

    /// A [`FakeStore`] over this world's store.
    pub fn fake_store(&self) -> Arc<FakeStore> {
        FakeStore::new(self.store.clone())
    }

    /// The usual gateway (127.0.0.1, the sim) over `store` instead of the world's store.
    pub async fn gateway_over(
        &self,
        store: Arc<FakeStore>,
        tune: impl FnOnce(&mut GatewayConfig),
    ) -> Node {
        let ip: IpAddr = [127, 0, 0, 1].into();
        let mut config = GatewayConfig::new(ip, self.ports);
        tune(&mut config);
        let gw = Gateway::bind_with(config, store, self.sim.clone())
            .await
            .expect("the range is free");
        Node::run(ip, gw)
    }

    /// The usual gateway: 127.0.0.1, the sim.
    pub async fn gateway(&self) -> Node {
        self.gateway_on([127, 0, 0, 1].into(), self.sim.clone(), |_| {})
            .await
    }
}

/// A range of `n` ports free on 127.0.0.1 and 127.0.0.2 (each test has its own).
fn free_range(n: u16) -> AdbPorts {
    for _ in 0..50 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let low = probe.local_addr().unwrap().port();
        drop(probe);
        let Some(high) = low.checked_add(n - 1) else {
            continue;
        };
        let free = (low..=high).all(|p| {
            ["127.0.0.1", "127.0.0.2"]
                .iter()
                .all(|ip| std::net::TcpListener::bind((*ip, p)).is_ok())
        });
        if free {
            return AdbPorts { low, high };
        }
    }
    panic!("no free port range");
}

/// A running gateway.
pub struct Node {
    pub ip: IpAddr,
    pub handle: GatewayHandle,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Node {
    fn run(ip: IpAddr, gw: Gateway) -> Node {
        let handle = gw.handle();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(gw.run(shutdown.clone()));
        Node {
            ip,
            handle,
            shutdown,
            task: Some(task),
        }
    }

    pub fn serial(&self, port: u16) -> String {
        SocketAddr::new(self.ip, port).to_string()
    }

    /// Shuts the gateway down and waits for it (its connections audited).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("the gateway stops")
                .unwrap();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A new adb key (made off the async threads: it takes a good fraction of a second).
pub async fn new_key() -> GeneratedKey {
    tokio::task::spawn_blocking(|| cloudphone_adb::keys::generate("tester@gateway-test"))
        .await
        .unwrap()
        .unwrap()
}
