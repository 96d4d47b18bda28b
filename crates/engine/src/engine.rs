//! The claim loop and its workers: claim, commit, then run; heartbeat while running; write the
//! outcome fenced by the attempt number.

use std::sync::Arc;
use std::time::Duration;

use cloudphone_core::time::now_ms;
use cloudphone_store::{Claim, Outcome, Store};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::backend::{AttemptRef, Backend, InstanceRef};
use crate::execute::{Run, execute};
use crate::services::Services;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Names this node in lease owners and logs.
    pub node_id: String,
    /// How many tasks run at once on this node.
    pub concurrency: usize,
    pub lease: Duration,
    pub heartbeat: Duration,
    /// How often to look for work when nobody says there is some.
    pub poll: Duration,
    /// How long a shutdown waits for running operations before leaving them to their leases.
    pub shutdown_grace: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            node_id: "node".into(),
            concurrency: 64,
            lease: Duration::from_secs(15),
            heartbeat: Duration::from_secs(5),
            poll: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The task engine of one node.
pub struct Engine {
    store: Arc<dyn Store>,
    backend: Arc<dyn Backend>,
    services: Services,
    config: EngineConfig,
    wake: Arc<Notify>,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        backend: Arc<dyn Backend>,
        services: Services,
        config: EngineConfig,
    ) -> Engine {
        Engine {
            store,
            backend,
            services,
            config,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Notified by whoever queues work (the API after creating tasks), so the engine need not
    /// wait for its next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs until `shutdown` is cancelled, then waits up to the grace period for running work.
    pub async fn run(self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency));
        let workers = TaskTracker::new();
        info!(node = %self.config.node_id, concurrency = self.config.concurrency, "engine started");
        let signals = tokio::spawn(forward_signals(
            self.store.clone(),
            self.wake.clone(),
            shutdown.clone(),
        ));
        while !shutdown.is_cancelled() {
            let free = slots.available_permits();
            let mut claimed = 0;
            if free > 0 {
                let lease_ms = self.config.lease.as_millis() as i64;
                match self
                    .store
                    .claim(&self.config.node_id, now_ms(), lease_ms, free)
                    .await
                {
                    Ok(claims) => {
                        claimed = claims.len();
                        for claim in claims {
                            let Ok(permit) = slots.clone().acquire_owned().await else {
                                break;
                            };
                            let worker = Worker {
                                store: self.store.clone(),
                                backend: self.backend.clone(),
                                services: self.services.clone(),
                                config: self.config.clone(),
                                wake: self.wake.clone(),
                            };
                            let span = info_span!("task", task_id = %claim.task_id, instance_id = %claim.instance_id, attempt = claim.attempt);
                            workers.spawn(
                                async move {
                                    worker.run(claim).await;
                                    drop(permit);
                                }
                                .instrument(span),
                            );
                        }
                    }
                    Err(e) => error!(error = %e, "claiming tasks failed"),
                }
            }
            if claimed > 0 && claimed == free {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.config.poll) => {}
            }
        }
        let _ = signals.await;
        workers.close();
        if tokio::time::timeout(self.config.shutdown_grace, workers.wait())
            .await
            .is_err()
        {
            warn!("shutdown: operations still running are left to their leases");
        }
        info!("engine stopped");
    }
}

/// Wakes this node's engine when another node sharing the store queues or unblocks work (on a
/// shared store; a store one process owns forwards nothing). A broken subscription is renewed;
/// meanwhile the claim loop's polling finds the work.
async fn forward_signals(store: Arc<dyn Store>, wake: Arc<Notify>, shutdown: CancellationToken) {
    const RETRY: Duration = Duration::from_secs(1);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = store.forward_work_signals(wake.clone()) => {
                if let Err(e) = r {
                    warn!(error = %e, "listening for work from other nodes failed; retrying");
                }
                // Work may have been queued while nobody listened.
                wake.notify_one();
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

struct Worker {
    store: Arc<dyn Store>,
    backend: Arc<dyn Backend>,
    services: Services,
    config: EngineConfig,
    wake: Arc<Notify>,
}

impl Worker {
    async fn run(self, claim: Claim) {
        debug!(task_type = %claim.task_type, "running");
        let outcome = match self.store.instance(&claim.instance_id).await {
            Ok(Some(instance)) => {
                let phone = InstanceRef {
                    id: instance.id,
                    name: instance.name,
                    image_id: instance.image_id,
                    spec: instance.spec,
                    attempt: Some(AttemptRef {
                        task_id: claim.task_id.clone(),
                        attempt: claim.attempt,
                    }),
                };
                let run = Run {
                    claim: &claim,
                    account_id: &instance.account_id,
                };
                let op = execute(self.backend.as_ref(), &self.services, run, &phone);
                match self.with_heartbeat(&claim, op).await {
                    Some(outcome) => outcome,
                    None => return,
                }
            }
            Ok(None) => Outcome::Failed {
                code: cloudphone_core::TaskErrorCode::InstanceUnreachable,
                message: "The instance no longer exists.".into(),
            },
            Err(e) => {
                // The lease will expire and the sweeper will hand the task on.
                error!(error = %e, "reading the instance failed");
                return;
            }
        };
        match self
            .store
            .complete(&claim.task_id, claim.attempt, &outcome, now_ms())
            .await
        {
            Ok(true) => debug!(?outcome, "completed"),
            Ok(false) => warn!("result refused: this attempt is no longer the current one"),
            Err(e) => error!(error = %e, "writing the result failed; the lease will expire"),
        }
        // The instance's next task may now start.
        self.wake.notify_one();
    }

    /// Drives `op` while renewing the lease; `None` if the lease was lost (another attempt owns
    /// the task now, so this one must not write anything).
    async fn with_heartbeat<F: std::future::Future<Output = Outcome>>(
        &self,
        claim: &Claim,
        op: F,
    ) -> Option<Outcome> {
        tokio::pin!(op);
        let mut beat = tokio::time::interval(self.config.heartbeat);
        beat.tick().await;
        loop {
            tokio::select! {
                outcome = &mut op => return Some(outcome),
                _ = beat.tick() => {
                    let until = now_ms() + self.config.lease.as_millis() as i64;
                    match self.store.heartbeat(&claim.task_id, claim.attempt, until).await {
                        Ok(true) => {}
                        Ok(false) => {
                            warn!("lease lost; abandoning this attempt");
                            return None;
                        }
                        Err(e) => error!(error = %e, "heartbeat failed"),
                    }
                }
            }
        }
    }
}
