//! The claim loop and its workers: claim, commit, then run; heartbeat while running; write the
//! outcome fenced by the attempt number. Outcomes are written by one completer per node in
//! groups (every outcome that arrived while the previous group was being written goes into the
//! next transaction), so that under load one commit serves many tasks.

use std::sync::Arc;
use std::time::Duration;

use cloudphone_core::time::now_ms;
use cloudphone_store::{Claim, Completion, Lease, Outcome, Store};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::cut::Cut;
use crate::execute::{Run, execute};
use crate::services::Services;
use crate::shares::{Shares, default_account_slots};
use crate::stops::Stops;
use cloudphone_backend::{AttemptRef, Backend, InstanceRef};

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Names this node in lease owners and logs.
    pub node_id: String,
    /// How many tasks run at once on this node.
    pub concurrency: usize,
    /// How many of those one account's tasks may hold (docs/design.md §5.10); `None`:
    /// [`default_account_slots`] of `concurrency`.
    pub account_slots: Option<usize>,
    pub lease: Duration,
    pub heartbeat: Duration,
    /// How often to look for work when nobody says there is some.
    pub poll: Duration,
    /// How long a shutdown waits for running operations before leaving them to their leases.
    pub shutdown_grace: Duration,
}

impl EngineConfig {
    /// The slots one account's tasks may hold on this node: the configured share, at most
    /// every slot.
    pub fn account_share(&self) -> usize {
        let concurrency = self.concurrency.max(1);
        self.account_slots
            .unwrap_or_else(|| default_account_slots(concurrency))
            .clamp(1, concurrency)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            node_id: "node".into(),
            concurrency: 64,
            account_slots: None,
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
    stops: Arc<Stops>,
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
            stops: Arc::default(),
        }
    }

    /// The attempts running on this node, for CancelTasks to stop at once.
    pub fn stops(&self) -> Arc<Stops> {
        self.stops.clone()
    }

    /// Notified by whoever queues work (the API after creating tasks), so the engine need not
    /// wait for its next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs until `shutdown` is cancelled, then waits up to the grace period for running work.
    pub async fn run(self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency));
        let shares = Shares::new(self.config.account_share());
        let workers = TaskTracker::new();
        info!(
            node = %self.config.node_id,
            concurrency = self.config.concurrency,
            account_slots = self.config.account_share(),
            "engine started"
        );
        let signals = tokio::spawn(forward_signals(
            self.store.clone(),
            self.wake.clone(),
            shutdown.clone(),
        ));
        let (done, done_rx) = mpsc::channel(COMPLETER_QUEUE);
        let completer = tokio::spawn(complete_in_groups(
            self.store.clone(),
            done_rx,
            self.wake.clone(),
        ));
        while !shutdown.is_cancelled() {
            let free = slots.available_permits();
            let mut claimed = 0;
            if free > 0 {
                let lease_ms = self.config.lease.as_millis() as i64;
                let asked = std::time::Instant::now();
                let claims = self
                    .store
                    .claim_fair(
                        &self.config.node_id,
                        now_ms(),
                        lease_ms,
                        free,
                        &shares.now(),
                    )
                    .await;
                metrics::histogram!("cloudphone_claim_duration_seconds")
                    .record(asked.elapsed().as_secs_f64());
                match claims {
                    Ok(claims) => {
                        claimed = claims.len();
                        for claim in claims {
                            let Ok(permit) = slots.clone().acquire_owned().await else {
                                break;
                            };
                            // Its account's share counts it until its outcome is written,
                            // as the slot does. A task whose phone is gone ends at once.
                            let held = claim.phone.as_ref().map(|p| shares.hold(&p.account_id));
                            let worker = Worker {
                                store: self.store.clone(),
                                backend: self.backend.clone(),
                                services: self.services.clone(),
                                config: self.config.clone(),
                                done: done.clone(),
                                stops: self.stops.clone(),
                            };
                            let span = info_span!("task", task_id = %claim.task_id, instance_id = %claim.instance_id, attempt = claim.attempt);
                            let freed = self.wake.clone();
                            workers.spawn(
                                async move {
                                    worker.run(claim).await;
                                    drop(held);
                                    drop(permit);
                                    // The completer's wake-up may come before this slot and
                                    // share are given back; a claim then would find its
                                    // account still at its share and wait for the next poll.
                                    freed.notify_one();
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
        // The completer ends once every worker's sender is gone, after writing what they sent.
        drop(done);
        if tokio::time::timeout(self.config.shutdown_grace, completer)
            .await
            .is_err()
        {
            warn!("shutdown: outcomes not yet written are left to their leases");
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

/// Outcomes waiting for the completer, at most.
const COMPLETER_QUEUE: usize = 4096;
/// Outcomes written in one transaction, at most.
const GROUP_MAX: usize = 256;

/// A finished attempt on its way to the store, and where to say whether it was written
/// (`Some(false)`: refused by the fence; `None`: the write failed).
struct Done {
    item: Completion,
    reply: oneshot::Sender<Option<bool>>,
}

/// Writes outcomes in groups: one transaction for everything that is waiting. A group that
/// fails is retried one outcome at a time, so that one bad outcome does not hold up the others.
async fn complete_in_groups(
    store: Arc<dyn Store>,
    mut queue: mpsc::Receiver<Done>,
    wake: Arc<Notify>,
) {
    let mut group = Vec::with_capacity(GROUP_MAX);
    while queue.recv_many(&mut group, GROUP_MAX).await > 0 {
        let (items, replies): (Vec<Completion>, Vec<_>) =
            group.drain(..).map(|d| (d.item, d.reply)).unzip();
        let answers: Vec<Option<bool>> = match store.complete_many(&items).await {
            Ok(written) => written.into_iter().map(Some).collect(),
            Err(e) if items.len() > 1 => {
                warn!(error = %e, tasks = items.len(), "writing a group of outcomes failed; writing them one by one");
                let mut answers = Vec::with_capacity(items.len());
                for item in &items {
                    let one = std::slice::from_ref(item);
                    answers.push(match store.complete_many(one).await {
                        Ok(written) => written.first().copied(),
                        Err(e) => {
                            error!(error = %e, task_id = %item.task_id, "writing the result failed; the lease will expire");
                            None
                        }
                    });
                }
                answers
            }
            Err(e) => {
                error!(error = %e, task_id = %items[0].task_id, "writing the result failed; the lease will expire");
                vec![None]
            }
        };
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
        // The instances' next tasks may now start.
        wake.notify_one();
    }
}

struct Worker {
    store: Arc<dyn Store>,
    backend: Arc<dyn Backend>,
    services: Services,
    config: EngineConfig,
    done: mpsc::Sender<Done>,
    stops: Arc<Stops>,
}

impl Worker {
    async fn run(self, claim: Claim) {
        debug!(task_type = %claim.task_type, "running");
        let started = std::time::Instant::now();
        let outcome = match &claim.phone {
            Some(p) => {
                let phone = InstanceRef {
                    id: claim.instance_id.clone(),
                    account_id: p.account_id.clone(),
                    name: p.name.clone(),
                    image_id: p.image_id.clone(),
                    spec: p.spec.clone(),
                    attempt: Some(AttemptRef {
                        task_id: claim.task_id.clone(),
                        attempt: claim.attempt,
                    }),
                    host: p.host.clone(),
                    adb_port: p.adb_port,
                };
                let cut = Cut::default();
                let run = Run {
                    claim: &claim,
                    account_id: &p.account_id,
                    cut: &cut,
                    store: self.store.as_ref(),
                };
                let op = execute(self.backend.as_ref(), &self.services, run, &phone);
                match self.with_heartbeat(&claim, &cut, op).await {
                    Some(outcome) => outcome,
                    None => return,
                }
            }
            None => Outcome::Failed {
                code: cloudphone_core::TaskErrorCode::InstanceUnreachable,
                message: "The instance no longer exists.".into(),
            },
        };
        let task_type = claim.task_type.as_str();
        metrics::histogram!("cloudphone_task_run_seconds", "type" => task_type)
            .record(started.elapsed().as_secs_f64());
        if let Outcome::Failed { code, .. } = &outcome {
            metrics::counter!(
                "cloudphone_backend_errors_total",
                "type" => task_type,
                "code" => code.as_str()
            )
            .increment(1);
        }
        let (reply, answer) = oneshot::channel();
        let item = Completion {
            task_id: claim.task_id.clone(),
            attempt: claim.attempt,
            outcome,
            now_ms: now_ms(),
        };
        if self.done.send(Done { item, reply }).await.is_err() {
            warn!("the completer has stopped; the lease will expire");
            return;
        }
        // The slot stays taken until the outcome is written, so that claims never outrun the
        // writes.
        match answer.await {
            Ok(Some(true)) => debug!("completed"),
            Ok(Some(false)) => warn!("result refused: this attempt is no longer the current one"),
            // Logged by the completer.
            Ok(None) | Err(_) => {}
        }
    }

    /// Drives `op` while renewing the lease; `None` if the lease was lost (another attempt owns
    /// the task now, so this one must not write anything). A cancel of an interruptible task
    /// cuts `op` (`cut`), which then ends as its phase allows (docs/design.md §5.7).
    async fn with_heartbeat<F: std::future::Future<Output = Outcome>>(
        &self,
        claim: &Claim,
        cut: &Cut,
        op: F,
    ) -> Option<Outcome> {
        tokio::pin!(op);
        let mut beat = tokio::time::interval(self.config.heartbeat);
        beat.tick().await;
        let bell = claim
            .task_type
            .is_interruptible()
            .then(|| self.stops.enter(&claim.task_id));
        loop {
            let rung = async {
                match &bell {
                    Some(bell) => bell.notify.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                outcome = &mut op => return Some(outcome),
                // A cancel on this node: renew the lease now, which tells whether it stops.
                _ = rung => beat.reset_immediately(),
                _ = beat.tick() => {
                    let until = now_ms() + self.config.lease.as_millis() as i64;
                    match self.store.heartbeat(&claim.task_id, claim.attempt, until).await {
                        Ok(Lease::CancelRequested)
                            if claim.task_type.is_interruptible() && !cut.is_cut() =>
                        {
                            // The operation stops at once where it may be cut (a command is
                            // killed, a download dropped) and otherwise ends its write.
                            info!("cancelled while running; stopping the operation");
                            cut.cut();
                        }
                        Ok(Lease::Held | Lease::CancelRequested) => {}
                        Ok(Lease::Lost) => {
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
