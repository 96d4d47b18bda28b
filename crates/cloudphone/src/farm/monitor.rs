//! One docker host watched by the node holding its lease: health from the engine's event
//! stream and a ping, not from polling each phone (the idle cost is per host: a ping every
//! 1.5 s, a list every 30 s and one long-lived events request, whatever the number of
//! phones).
//!
//! - A container that dies (or is killed, or removed) turns its RUNNING phone UNAVAILABLE; one
//!   that starts again brings its UNAVAILABLE phone back to RUNNING once Android has booted.
//!   An event older than the phone's last change is ignored: a task moved it since.
//! - An engine that stops answering (its event stream breaks and a ping fails, or two pings
//!   in a row fail) makes the host unhealthy, which turns every RUNNING phone on it
//!   UNAVAILABLE in one statement. When it answers again: healthy, with its versions, and a
//!   reconcile.
//! - The reconcile compares the engine's containers of this farm with the store's phones of the
//!   host: RUNNING without a running container → UNAVAILABLE; UNAVAILABLE with one → RUNNING
//!   after its boot; a container whose phone is gone, DELETED or placed elsewhere → removed.
//!
//! Every health write carries the lease's epoch: once another node took the host over, this
//! monitor's writes are refused and it stops.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudphone_backend::InstanceRef;
use cloudphone_backends::{ContainerEvent, DockerBackend, HostEvent};
use cloudphone_core::InstanceStatus;
use cloudphone_store::{Health, HostHealth, Store};
use futures::StreamExt;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::now_ms;

#[derive(Clone, Debug)]
pub struct MonitorConfig {
    pub ping_every: Duration,
    pub reconcile_every: Duration,
    /// Phones of one host whose boot is awaited at once.
    pub boot_checks: usize,
}

impl Default for MonitorConfig {
    fn default() -> MonitorConfig {
        MonitorConfig {
            ping_every: Duration::from_millis(1500),
            reconcile_every: Duration::from_secs(30),
            boot_checks: 8,
        }
    }
}

/// Why a monitor's round ended.
enum Next {
    /// The engine stopped answering: wait until it answers again.
    Unhealthy,
    /// Stopped, or the lease is another node's now.
    Stop,
}

pub struct Monitor {
    store: Arc<dyn Store>,
    docker: Arc<DockerBackend>,
    host: String,
    epoch: i64,
    config: MonitorConfig,
    boots: Arc<Semaphore>,
    /// Phones whose boot is being awaited (one wait per phone).
    booting: Arc<Mutex<HashSet<String>>>,
}

impl Monitor {
    pub fn new(
        store: Arc<dyn Store>,
        docker: Arc<DockerBackend>,
        host: String,
        epoch: i64,
        config: MonitorConfig,
    ) -> Monitor {
        Monitor {
            boots: Arc::new(Semaphore::new(config.boot_checks.max(1))),
            store,
            docker,
            host,
            epoch,
            config,
            booting: Arc::default(),
        }
    }

    /// One ping and the health it says, written; false when the engine did not answer or
    /// the lease is lost.
    pub async fn look(&self) -> bool {
        match self.docker.ping(&self.host).await {
            Ok(()) => {
                let (engine, api) = self
                    .docker
                    .engine_version(&self.host)
                    .await
                    .unwrap_or_default();
                self.write(Health::Healthy, String::new(), Some((engine, api)))
                    .await
                    .is_some()
            }
            Err(why) => {
                self.write(Health::Unhealthy, why, None).await;
                false
            }
        }
    }

    /// Writes the host's health under this monitor's epoch; `None` when the lease is lost.
    async fn write(
        &self,
        health: Health,
        reason: String,
        versions: Option<(String, String)>,
    ) -> Option<u64> {
        let (engine_version, api_version) = versions.unzip();
        let report = HostHealth {
            health,
            reason: reason.clone(),
            engine_version,
            api_version,
        };
        match self
            .store
            .set_host_health(&self.host, self.epoch, &report, now_ms())
            .await
        {
            Ok(Some(marked)) => {
                if health == Health::Unhealthy {
                    warn!(host = %self.host, marked, %reason, "the host is unhealthy: its running phones are UNAVAILABLE");
                }
                Some(marked)
            }
            Ok(None) => None,
            Err(e) => {
                warn!(host = %self.host, "cannot record the host's health: {e}");
                Some(0)
            }
        }
    }

    pub async fn run(self, stop: CancellationToken) {
        let mut since = now_ms() / 1000 - 1;
        loop {
            // Healthy first: until the engine answers, nothing else is asked of it.
            let mut wait = tokio::time::interval(self.config.ping_every);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = wait.tick() => {}
                }
                if self.docker.ping(&self.host).await.is_ok() {
                    if !self.look().await {
                        return;
                    }
                    break;
                }
            }
            match self.follow(&stop, &mut since).await {
                Next::Unhealthy => continue,
                Next::Stop => return,
            }
        }
    }

    /// Follows a healthy engine: its events, pings and reconciles, until it stops answering.
    async fn follow(&self, stop: &CancellationToken, since: &mut i64) -> Next {
        let (tx, mut events) = mpsc::channel::<Result<HostEvent, String>>(256);
        let feed = match self.docker.events(&self.host, *since) {
            Ok(stream) => tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(e) = stream.next().await {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
            }),
            Err(why) => {
                debug!(host = %self.host, %why, "no event stream yet");
                return Next::Unhealthy;
            }
        };
        let _feed = AbortOnDrop(feed);
        self.reconcile().await;
        let mut pings = tokio::time::interval(self.config.ping_every);
        pings.reset();
        let mut reconciles = tokio::time::interval(self.config.reconcile_every);
        reconciles.reset();
        let mut failed = 0;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Next::Stop,
                event = events.recv() => match event {
                    Some(Ok(e)) => {
                        *since = e.time;
                        self.on_event(e).await;
                    }
                    // The stream broke (or ended): the engine went away, or restarted.
                    Some(Err(_)) | None => return self.ping_again().await,
                },
                _ = pings.tick() => {
                    match self.docker.ping(&self.host).await {
                        Ok(()) => failed = 0,
                        Err(why) => {
                            failed += 1;
                            if failed >= 2 {
                                return self.unhealthy(why).await;
                            }
                        }
                    }
                }
                _ = reconciles.tick() => self.reconcile().await,
            }
        }
    }

    /// The event stream broke: one more ping says whether the engine is gone.
    async fn ping_again(&self) -> Next {
        match self.docker.ping(&self.host).await {
            // It answers (an engine restart ends the stream too): follow it again.
            Ok(()) => Next::Unhealthy,
            Err(why) => self.unhealthy(why).await,
        }
    }

    async fn unhealthy(&self, why: String) -> Next {
        match self.write(Health::Unhealthy, why, None).await {
            Some(_) => Next::Unhealthy,
            None => Next::Stop,
        }
    }

    async fn on_event(&self, e: HostEvent) {
        let Ok(Some(phone)) = self.store.instance(&e.instance_id).await else {
            return;
        };
        if phone.host.as_deref() != Some(self.host.as_str()) || phone.modified_ms > e.time_ms {
            return;
        }
        match (e.event, phone.status) {
            (ContainerEvent::Gone, InstanceStatus::Running) => {
                self.mark(
                    &phone,
                    InstanceStatus::Running,
                    InstanceStatus::Unavailable,
                    "its container stopped",
                )
                .await;
            }
            (ContainerEvent::Started, InstanceStatus::Unavailable) => self.await_boot(phone),
            _ => {}
        }
    }

    async fn mark(
        &self,
        phone: &cloudphone_core::resources::Instance,
        from: InstanceStatus,
        to: InstanceStatus,
        why: &str,
    ) {
        match self
            .store
            .mark_instance(&phone.id, from, to, phone.modified_ms, now_ms())
            .await
        {
            Ok(true) => {
                info!(host = %self.host, instance_id = %phone.id, %why, "the phone is {}", to.as_str())
            }
            Ok(false) => {}
            Err(e) => warn!(instance_id = %phone.id, "cannot mark the phone {}: {e}", to.as_str()),
        }
    }

    /// A container of an UNAVAILABLE phone runs again: RUNNING once its Android has booted.
    fn await_boot(&self, phone: cloudphone_core::resources::Instance) {
        if !self
            .booting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(phone.id.clone())
        {
            return;
        }
        let (store, docker, boots, booting, host) = (
            self.store.clone(),
            self.docker.clone(),
            self.boots.clone(),
            self.booting.clone(),
            self.host.clone(),
        );
        tokio::spawn(async move {
            let _permit = boots.acquire().await;
            let booted = docker.wait_booted(&InstanceRef::of(&phone)).await;
            booting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&phone.id);
            match booted {
                Ok(()) => {
                    if let Ok(true) = store
                        .mark_instance(
                            &phone.id,
                            InstanceStatus::Unavailable,
                            InstanceStatus::Running,
                            phone.modified_ms,
                            now_ms(),
                        )
                        .await
                    {
                        info!(%host, instance_id = %phone.id, "the phone's container is back: RUNNING");
                    }
                }
                Err(e) => {
                    debug!(%host, instance_id = %phone.id, "the phone did not boot: {}", e.message)
                }
            }
        });
    }

    /// The engine's containers against the store's phones of this host.
    async fn reconcile(&self) {
        // The list first: a phone recorded after it cannot be taken for an orphan, and a
        // phone changed after it is left alone.
        let listed_ms = now_ms();
        let containers = match self.docker.containers(&self.host).await {
            Ok(list) => list,
            Err(why) => {
                debug!(host = %self.host, %why, "no reconcile");
                return;
            }
        };
        let phones = match self.store.host_phones(&self.host).await {
            Ok(p) => p,
            Err(e) => {
                warn!(host = %self.host, "cannot read the host's phones: {e}");
                return;
            }
        };
        let running: HashMap<&str, bool> = containers
            .iter()
            .map(|c| (c.instance_id.as_str(), c.running))
            .collect();
        let known: HashSet<&str> = phones.iter().map(|p| p.id.as_str()).collect();
        for p in &phones {
            if p.host != self.host || p.modified_ms >= listed_ms {
                continue;
            }
            let up = running.get(p.id.as_str()).copied().unwrap_or(false);
            match (p.status, up) {
                (InstanceStatus::Running, false) | (InstanceStatus::Unavailable, true) => {
                    if let Ok(Some(phone)) = self.store.instance(&p.id).await {
                        if phone.status == InstanceStatus::Running {
                            self.mark(
                                &phone,
                                InstanceStatus::Running,
                                InstanceStatus::Unavailable,
                                "its container is not running",
                            )
                            .await;
                        } else if phone.status == InstanceStatus::Unavailable {
                            self.await_boot(phone);
                        }
                    }
                }
                _ => {}
            }
        }
        for c in &containers {
            if known.contains(c.instance_id.as_str()) {
                continue;
            }
            // Not this host's: read it alone (a phone placed after the list is on `phones`).
            let orphan = match self.store.instance(&c.instance_id).await {
                Ok(None) => true,
                Ok(Some(i)) => {
                    i.status == InstanceStatus::Deleted
                        || i.host.as_deref().is_some_and(|h| h != self.host)
                }
                Err(_) => false,
            };
            if orphan {
                match self.docker.remove_orphan(&self.host, &c.instance_id).await {
                    Ok(()) => {
                        info!(host = %self.host, instance_id = %c.instance_id, "removed a container whose phone is not on this host")
                    }
                    Err(why) => {
                        warn!(host = %self.host, instance_id = %c.instance_id, %why, "cannot remove an orphan container")
                    }
                }
            }
        }
    }
}

/// Ends the event feed with the round that opened it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
