//! This node's part in the ADB device groups of its backends file (docs/design.md §6.6).
//!
//! Every node lists the devices of every group's ADB server (and connects its TCP devices), so
//! that it can drive any device a task names. What is written about the devices, the groups'
//! instances recorded, devices come back marked RUNNING and devices gone marked UNAVAILABLE,
//! is done for each group by one node at a time: the holder of the group's lease
//! (`adb:<group>`), renewed every tick and taken over by another node once it expires. Why: two
//! nodes watching one group would each judge the devices by what its own look saw, and one
//! node's late look would undo the other's marks. A node on a store it owns alone (SQLite)
//! holds every group without asking.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cloudphone_backends::AdbBackend;
use cloudphone_backends::adb::Discovery;
use cloudphone_engine::{Watcher, WatcherConfig};
use cloudphone_store::Store;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How the loop paces itself.
#[derive(Clone, Debug)]
pub struct AdbDevicesConfig {
    /// How often every group's server is listed (the backends file's `discover_interval_ms`).
    pub discover: Duration,
    /// How often the held groups' RUNNING devices are checked (`--watch-interval-ms`).
    pub watch: Duration,
    /// How long a group's lease lasts without renewal (`--host-lease-ms`), renewed every `tick`.
    pub lease: Duration,
    pub tick: Duration,
}

/// The lease of the group named `group`.
pub fn lease_name(group: &str) -> String {
    format!("adb:{group}")
}

pub struct AdbDevices {
    store: Arc<dyn Store>,
    adb: Arc<AdbBackend>,
    discovery: Discovery,
    watcher: Watcher,
    node: String,
    config: AdbDevicesConfig,
    /// False on a store of one node: every group is this node's, no lease asked.
    leased: bool,
    /// The groups held (by index): their lease's epoch.
    held: HashMap<usize, i64>,
}

impl AdbDevices {
    /// Takes the free leases and records the devices of the groups held before this returns:
    /// the devices there are now are instances before the node takes its first call.
    pub async fn start(
        store: Arc<dyn Store>,
        adb: Arc<AdbBackend>,
        discovery: Discovery,
        node: String,
        config: AdbDevicesConfig,
    ) -> AdbDevices {
        let watcher = Watcher::new(
            store.clone(),
            adb.clone(),
            WatcherConfig {
                interval: config.watch,
                images: Vec::new(),
            },
        );
        let leased = store.shared();
        let mut devices = AdbDevices {
            store,
            adb,
            discovery,
            watcher,
            node,
            config,
            leased,
            held: HashMap::new(),
        };
        devices.keep_leases().await;
        let found = devices.discover().await;
        info!(
            new_devices = found,
            held = devices.held.len(),
            "ADB devices discovered"
        );
        devices
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let every = |d: Duration| {
            let mut t = tokio::time::interval(d);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        };
        let (mut tick, mut discover, mut watch) = (
            every(self.config.tick),
            every(self.config.discover),
            every(self.config.watch),
        );
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => self.keep_leases().await,
                _ = discover.tick() => { self.discover().await; }
                _ = watch.tick() => { self.watch().await; }
            }
        }
        if self.leased
            && let Err(e) = self.store.release_leases(&self.node).await
        {
            warn!("cannot give up the ADB groups' leases: {e}");
        }
    }

    /// Renews the leases held, and takes those of the groups nobody holds.
    async fn keep_leases(&mut self) {
        let groups: Vec<String> = self.adb.groups().iter().map(|g| g.name.clone()).collect();
        if !self.leased {
            self.held = (0..groups.len()).map(|g| (g, 0)).collect();
            return;
        }
        let now = cloudphone_core::time::now_ms();
        let ttl = self.config.lease.as_millis() as i64;
        let kept = match self.store.renew_leases(&self.node, now, ttl).await {
            Ok(kept) => kept.into_iter().collect::<HashMap<String, i64>>(),
            Err(e) => {
                // Not renewed: the leases may lapse, so nothing is written until they are.
                warn!("cannot renew the ADB groups' leases: {e}");
                self.held.clear();
                return;
            }
        };
        self.held.retain(|g, epoch| {
            let keep = kept.get(&lease_name(&groups[*g])) == Some(epoch);
            if !keep {
                info!(group = %groups[*g], "the ADB group's lease was lost: another node watches it");
            }
            keep
        });
        for (g, name) in groups.iter().enumerate() {
            if self.held.contains_key(&g) {
                continue;
            }
            match self
                .store
                .take_lease(&self.node, &lease_name(name), now, ttl)
                .await
            {
                Ok(Some(epoch)) => {
                    info!(group = %name, epoch, "watching the ADB group's devices");
                    self.held.insert(g, epoch);
                }
                Ok(None) => {}
                Err(e) => warn!(group = %name, "cannot take the ADB group's lease: {e}"),
            }
        }
    }

    /// Lists every group's devices (this node drives any of them), and records those of the
    /// groups held; returns how many instances were new.
    async fn discover(&self) -> u64 {
        let devices = self.adb.discover().await;
        self.discovery
            .record_groups(&devices, |g| self.held.contains_key(&g))
            .await
    }

    /// Marks UNAVAILABLE the RUNNING devices of the groups held that are gone.
    async fn watch(&self) -> usize {
        let images: Vec<String> = self
            .adb
            .groups()
            .iter()
            .enumerate()
            .filter(|(g, _)| self.held.contains_key(g))
            .map(|(_, group)| group.image.id.clone())
            .collect();
        self.watcher.watch_images(&images).await
    }
}
