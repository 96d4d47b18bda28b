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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudphone_backends::AdbBackend;
use cloudphone_backends::adb::Discovery;
use cloudphone_engine::Watcher;
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
    discovery: Discovery,
    watcher: Watcher,
    config: AdbDevicesConfig,
    leases: Leases,
}

/// The groups' leases this node holds, kept by a task of their own: a slow look at the devices
/// (an `adb connect` to a device gone can take many seconds) never delays a renewal.
#[derive(Clone)]
struct Leases {
    store: Arc<dyn Store>,
    adb: Arc<AdbBackend>,
    node: String,
    lease: Duration,
    /// False on a store of one node: every group is this node's, no lease asked.
    leased: bool,
    /// The groups held (by index): their lease's epoch, and until when this node may write
    /// for the group (the renewal's start plus two thirds of the lease, so that no write is
    /// made on a lease that may have lapsed).
    held: Arc<Mutex<HashMap<usize, (i64, Instant)>>>,
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
        let watcher = Watcher::new(store.clone(), adb.clone());
        let leases = Leases {
            leased: store.shared(),
            store,
            adb,
            node,
            lease: config.lease,
            held: Arc::default(),
        };
        let devices = AdbDevices {
            discovery,
            watcher,
            config,
            leases,
        };
        devices.leases.keep().await;
        let found = devices.discover().await;
        info!(new_devices = found, "ADB devices discovered");
        devices
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let every = |d: Duration| {
            let mut t = tokio::time::interval(d);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        };
        let leases = tokio::spawn(self.leases.clone().run(self.config.tick, shutdown.clone()));
        let (mut discover, mut watch) = (every(self.config.discover), every(self.config.watch));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = discover.tick() => { self.discover().await; }
                _ = watch.tick() => { self.watch().await; }
            }
        }
        let _ = leases.await;
    }

    /// Lists every group's devices (this node drives any of them), and records those of the
    /// groups held; returns how many instances were new.
    async fn discover(&self) -> u64 {
        let devices = self.leases.adb.discover().await;
        // Asked group by group as each is recorded, after the (maybe slow) listing.
        self.discovery
            .record_groups(&devices, |g| self.leases.may_write(g))
            .await
    }

    /// Marks UNAVAILABLE the RUNNING devices of the groups held that are gone.
    async fn watch(&self) -> usize {
        let images: Vec<String> = self
            .leases
            .adb
            .groups()
            .iter()
            .enumerate()
            .filter(|(g, _)| self.leases.may_write(*g))
            .map(|(_, group)| group.image.id.clone())
            .collect();
        self.watcher.watch_images(&images).await
    }
}

impl Leases {
    async fn run(self, tick: Duration, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => self.keep().await,
            }
        }
        if self.leased
            && let Err(e) = self.store.release_leases(&self.node).await
        {
            warn!("cannot give up the ADB groups' leases: {e}");
        }
    }

    /// Whether this node may write for group `g` now: it holds the group's lease, renewed
    /// recently enough.
    fn may_write(&self, g: usize) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&g)
            .is_some_and(|(_, until)| Instant::now() < *until)
    }

    /// Renews the leases held, and takes those of the groups nobody holds.
    async fn keep(&self) {
        let groups: Vec<String> = self.adb.groups().iter().map(|g| g.name.clone()).collect();
        let started = Instant::now();
        if !self.leased {
            let forever = started + Duration::from_secs(365 * 24 * 3600);
            *self.held.lock().unwrap_or_else(|p| p.into_inner()) =
                (0..groups.len()).map(|g| (g, (0, forever))).collect();
            return;
        }
        let until = started + self.lease * 2 / 3;
        let now = cloudphone_core::time::now_ms();
        let ttl = self.lease.as_millis() as i64;
        let kept = match self.store.renew_leases(&self.node, now, ttl).await {
            Ok(kept) => kept,
            Err(e) => {
                // Not renewed: what is held may lapse, so nothing is written until renewed.
                warn!("cannot renew the ADB groups' leases: {e}");
                self.held.lock().unwrap_or_else(|p| p.into_inner()).clear();
                return;
            }
        };
        // What the store says this node holds is what it holds: also a lease kept through a
        // failed renewal, or taken without the answer arriving.
        let mut held: HashMap<usize, (i64, Instant)> = HashMap::new();
        for (name, epoch) in kept {
            if !name.starts_with("adb:") {
                continue;
            }
            match groups.iter().position(|g| lease_name(g) == name) {
                Some(g) => {
                    held.insert(g, (epoch, until));
                }
                None => {
                    // No group of this node's file (any more): given back.
                    if let Err(e) = self.store.release_lease(&self.node, &name, epoch).await {
                        warn!(lease = %name, "cannot give the lease back: {e}");
                    }
                }
            }
        }
        for (g, (epoch, _)) in self.held.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if held.get(g).map(|(e, _)| e) != Some(epoch) {
                info!(group = %groups[*g], "the ADB group's lease was lost: another node watches it");
            }
        }
        for (g, name) in groups.iter().enumerate() {
            if held.contains_key(&g) {
                continue;
            }
            match self
                .store
                .take_lease(&self.node, &lease_name(name), now, ttl)
                .await
            {
                Ok(Some(epoch)) => {
                    info!(group = %name, epoch, "watching the ADB group's devices");
                    held.insert(g, (epoch, until));
                }
                Ok(None) => {}
                Err(e) => warn!(group = %name, "cannot take the ADB group's lease: {e}"),
            }
        }
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = held;
    }
}
