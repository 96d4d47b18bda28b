//! This node's part in the farm of docker hosts (docs/design.md §4.1, §6.8): it records the
//! hosts of its backends file in the store at start (so placement finds them), then, every
//! second, proves it is alive, renews the leases of the hosts it watches, takes the lease of a
//! host nobody watches while it holds less than its share, and hands one over while it holds
//! more (a node joined). Each host it holds is watched
//! by one [`monitor`]: the engine's events, a ping and a periodic reconcile, whose writes are
//! fenced by the lease's epoch, so a node that lost a host can no longer change its phones.

pub mod monitor;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cloudphone_backends::{DockerBackend, HostSpec, Network};
use cloudphone_core::placement::Limits;
use cloudphone_store::{HostConfig, HostKind, NodeInfo, Store};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use monitor::Monitor;

/// How the farm loop paces itself.
#[derive(Clone, Debug)]
pub struct FarmConfig {
    /// How long a host's lease lasts without renewal: a node killed outright is replaced as
    /// its watcher this long after its last renewal (plus a tick).
    pub lease: Duration,
    pub tick: Duration,
    pub monitor: monitor::MonitorConfig,
}

impl Default for FarmConfig {
    fn default() -> FarmConfig {
        FarmConfig {
            lease: Duration::from_secs(5),
            tick: Duration::from_secs(1),
            monitor: monitor::MonitorConfig::default(),
        }
    }
}

/// The store's view of one host of this node's file.
pub fn host_config(spec: &HostSpec, adopt_images: Vec<String>) -> HostConfig {
    let ports = match spec.network {
        Network::Host { adb_ports } => Some(adb_ports),
        _ => None,
    };
    HostConfig {
        name: spec.name.clone(),
        kind: HostKind::Docker,
        address: spec.engine.address(),
        limits: Limits {
            phones: spec.max_phones,
            cpu_milli: spec.cpu_milli,
            memory_mib: spec.memory_mib,
        },
        images: spec.images.clone(),
        ports,
        digest: digest(spec),
        adopt_images,
    }
}

/// What two nodes must agree on about a host, hashed: `hosts list` flags a host whose nodes'
/// files differ.
fn digest(spec: &HostSpec) -> String {
    let text = format!("{spec:?}");
    let hash = Sha256::digest(text.as_bytes());
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The hosts of this node's file as the store records them. Phones placed nowhere (created
/// before hosts existed) are adopted by the file's first host, where a one-engine farm had
/// them.
pub fn host_configs(docker: &DockerBackend) -> Vec<HostConfig> {
    let all: Vec<String> = docker
        .config()
        .images
        .iter()
        .map(|i| i.id.clone())
        .collect();
    docker
        .hosts()
        .enumerate()
        .map(|(i, spec)| {
            let adopt = if i == 0 { all.clone() } else { Vec::new() };
            host_config(spec, adopt)
        })
        .collect()
}

/// The loop that keeps this node's share of the hosts watched.
pub struct Farm {
    store: Arc<dyn Store>,
    docker: Arc<DockerBackend>,
    node: NodeInfo,
    /// The docker hosts of this node's file.
    hosts: Vec<HostConfig>,
    /// Recorded with them: the `sim` pseudo-host when the node runs the sim (never leased).
    others: Vec<HostConfig>,
    config: FarmConfig,
    /// The hosts watched: their lease's epoch, and the token that stops their monitor.
    watched: HashMap<String, (i64, CancellationToken)>,
    /// Parent of every monitor's token.
    stop: CancellationToken,
    /// Rounds since the hosts were last recorded.
    rounds: u32,
}

/// Every this many rounds the node records its hosts again (placement trusts a host only while
/// some node recorded it within `SEEN_TRUST_MS`) and marks missing the hosts nobody records.
const RECORD_EVERY: u32 = 10;

impl Farm {
    /// Records the node and its hosts in the store and takes this node's first host leases,
    /// each host looked at once (its health written) before this returns: placement needs
    /// hosts known healthy before the node serves.
    pub async fn start(
        store: Arc<dyn Store>,
        docker: Arc<DockerBackend>,
        node: NodeInfo,
        sim: Option<HostConfig>,
        config: FarmConfig,
    ) -> anyhow::Result<Farm> {
        let hosts = host_configs(&docker);
        let others: Vec<HostConfig> = sim.into_iter().collect();
        let all: Vec<HostConfig> = hosts.iter().chain(&others).cloned().collect();
        let adopted = store.sync_hosts(&node, &all, now_ms()).await?;
        if adopted > 0 {
            info!(
                adopted,
                "phones of before the farm recorded on its first host"
            );
        }
        let mut farm = Farm {
            store,
            docker,
            node,
            hosts,
            others,
            config,
            watched: HashMap::new(),
            stop: CancellationToken::new(),
            rounds: 0,
        };
        farm.tick(true).await;
        Ok(farm)
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.config.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            self.tick(false).await;
        }
        self.stop.cancel();
        if let Err(e) = self.store.release_host_leases(&self.node.id).await {
            warn!("cannot give up the host leases: {e}");
        }
    }

    /// One round: heartbeat, renewal, more leases while below this node's share (at most one
    /// a round, unless `first`: then all of the share at once), monitors started and stopped.
    async fn tick(&mut self, first: bool) {
        let now = now_ms();
        let ttl = self.config.lease.as_millis() as i64;
        self.rounds += 1;
        let alive = self.store.node_heartbeat(&self.node.id, now).await;
        // Recorded again now and then (the row may also have gone: an operator's clean-up).
        if matches!(alive, Ok(false)) || self.rounds >= RECORD_EVERY {
            self.rounds = 0;
            let all: Vec<HostConfig> = self.hosts.iter().chain(&self.others).cloned().collect();
            if let Err(e) = self.store.sync_hosts(&self.node, &all, now).await {
                warn!("cannot record this node's hosts: {e}");
            }
            match self
                .store
                .mark_missing_hosts(now, cloudphone_store::SEEN_TRUST_MS)
                .await
            {
                Ok(missing) => {
                    for (host, marked) in missing {
                        warn!(%host, marked, "the host is in no live node's backends file: missing, its running phones UNAVAILABLE");
                    }
                }
                Err(e) => warn!("cannot look for missing hosts: {e}"),
            }
        }
        let kept = match self.store.renew_host_leases(&self.node.id, now, ttl).await {
            Ok(kept) => kept,
            Err(e) => {
                warn!("cannot renew the host leases: {e}");
                return;
            }
        };
        let kept: HashMap<String, i64> = kept.into_iter().collect();
        self.watched.retain(|name, (epoch, stop)| {
            let keep = kept.get(name) == Some(epoch);
            if !keep {
                info!(host = %name, "the host's lease was lost: no longer watching it");
                stop.cancel();
            }
            keep
        });
        for (name, epoch) in &kept {
            if !self.watched.contains_key(name) {
                self.watch(name, *epoch, false).await;
            }
        }
        let nodes = self.store.live_nodes(now, ttl).await.unwrap_or_default();
        let share = self.hosts.len().div_ceil(nodes.len().max(1));
        if self.watched.len() > share {
            self.hand_over_one(&nodes, share).await;
            return;
        }
        let names: Vec<String> = self.hosts.iter().map(|h| h.name.clone()).collect();
        for name in names {
            if self.watched.len() >= share {
                break;
            }
            if self.watched.contains_key(&name) {
                continue;
            }
            match self
                .store
                .take_host_lease(&self.node.id, &name, now, ttl)
                .await
            {
                Ok(Some(epoch)) => {
                    info!(host = %name, epoch, "watching the host");
                    self.watch(&name, epoch, first).await;
                    if !first {
                        break;
                    }
                }
                Ok(None) => {}
                Err(e) => warn!(host = %name, "cannot take the host's lease: {e}"),
            }
        }
    }

    /// Gives up one host for a node below its share to take: a node that joined a running
    /// farm gets its share within a few rounds, one host a round, handed over rather than left
    /// to expire. Only a host that such a node lists in its own file: nodes' files may differ,
    /// and a host nobody else lists is kept rather than left unwatched.
    async fn hand_over_one(&mut self, nodes: &[cloudphone_store::NodeRow], share: usize) {
        let Ok(hosts) = self.store.list_hosts().await else {
            return;
        };
        let holds = |node: &str| {
            hosts
                .iter()
                .filter(|h| h.owner_node.as_deref() == Some(node))
                .count()
        };
        let takers: Vec<&cloudphone_store::NodeRow> = nodes
            .iter()
            .filter(|n| n.id != self.node.id && holds(&n.id) < share)
            .collect();
        let Some(name) = self
            .watched
            .keys()
            .filter(|name| {
                takers
                    .iter()
                    .any(|n| n.hosts.iter().any(|(h, _)| h == *name))
            })
            .max()
            .cloned()
        else {
            return;
        };
        let (epoch, stop) = self.watched[&name].clone();
        match self
            .store
            .release_host_lease(&self.node.id, &name, epoch)
            .await
        {
            Ok(released) => {
                if released {
                    info!(host = %name, "above this node's share: the host is handed over");
                }
                stop.cancel();
                self.watched.remove(&name);
            }
            Err(e) => warn!(host = %name, "cannot hand the host over: {e}"),
        }
    }

    /// Starts the host's monitor; `look_first`: its first health check is done before this
    /// returns.
    async fn watch(&mut self, name: &str, epoch: i64, look_first: bool) {
        let stop = self.stop.child_token();
        let monitor = Monitor::new(
            self.store.clone(),
            self.docker.clone(),
            name.to_string(),
            epoch,
            self.config.monitor.clone(),
        );
        if look_first {
            monitor.look().await;
        }
        tokio::spawn(monitor.run(stop.clone()));
        self.watched.insert(name.to_string(), (epoch, stop));
    }
}

pub fn now_ms() -> i64 {
    cloudphone_core::time::now_ms()
}
