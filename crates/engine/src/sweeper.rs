//! The sweeper: re-queues or fails tasks whose lease expired (a crashed or stalled node), and
//! forgets what retention no longer keeps (old nonces, old tasks).

use std::sync::Arc;
use std::time::Duration;

use cloudphone_core::time::now_ms;
use cloudphone_store::{Store, Swept};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How long a ClientToken is remembered, in milliseconds.
pub const CLIENT_TOKEN_MS: i64 = 24 * 3600 * 1000;
/// How long the watch stream's event log keeps an event, in milliseconds.
pub const EVENT_LOG_MS: i64 = 24 * 3600 * 1000;
/// Tasks past retention deleted in one transaction.
pub const PURGE_BATCH: u64 = 1_000;
/// Batches of old tasks a sweep round deletes at most.
const PURGE_BATCHES: usize = 50;
/// The pause between two batches, in which the engine's writes go.
const PURGE_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

#[derive(Clone, Debug)]
pub struct SweeperConfig {
    pub interval: Duration,
    pub max_attempts: i64,
    pub retry_delay: Duration,
    pub task_retention: Duration,
}

impl Default for SweeperConfig {
    fn default() -> Self {
        SweeperConfig {
            interval: Duration::from_secs(2),
            max_attempts: 3,
            retry_delay: Duration::from_secs(1),
            task_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

pub struct Sweeper {
    store: Arc<dyn Store>,
    config: SweeperConfig,
    wake: Arc<Notify>,
}

impl Sweeper {
    /// `wake` is the engine's waker: re-queued work is announced on it.
    pub fn new(store: Arc<dyn Store>, config: SweeperConfig, wake: Arc<Notify>) -> Sweeper {
        Sweeper {
            store,
            config,
            wake,
        }
    }

    /// One pass; returns what happened to expired leases.
    pub async fn sweep_once(&self) -> Vec<Swept> {
        let now = now_ms();
        let swept = match self
            .store
            .sweep_expired(
                now,
                self.config.max_attempts,
                self.config.retry_delay.as_millis() as i64,
            )
            .await
        {
            Ok(swept) => swept,
            Err(e) => {
                error!(error = %e, "sweeping expired leases failed");
                Vec::new()
            }
        };
        for s in &swept {
            match s {
                Swept::Requeued { task_id, attempt } => {
                    info!(%task_id, attempt, "lease expired; task re-queued")
                }
                Swept::Failed { task_id, code } => {
                    warn!(%task_id, %code, "lease expired; task failed")
                }
            }
        }
        if !swept.is_empty() {
            self.wake.notify_one();
        }
        if let Err(e) = self.store.purge_nonces(now).await {
            error!(error = %e, "purging nonces failed");
        }
        // The watch stream's log keeps a day: a client away longer starts again from now.
        if let Err(e) = self.store.purge_task_events(now - EVENT_LOG_MS).await {
            error!(error = %e, "purging task events failed");
        }
        // A ClientToken answers repeats for a day, as ECS's do.
        if let Err(e) = self.store.purge_idempotency(now - CLIENT_TOKEN_MS).await {
            error!(error = %e, "purging client tokens failed");
        }
        let before = now - self.config.task_retention.as_millis() as i64;
        let purged = self.purge_tasks(before).await;
        if purged > 0 {
            info!(purged, "old tasks removed");
        }
        swept
    }

    /// Deletes the tasks past retention in batches of [`PURGE_BATCH`], a pause between two, at
    /// most [`PURGE_BATCHES`] a round (the next round goes on): the engine's writes pass
    /// between the batches. Returns how many went.
    async fn purge_tasks(&self, before: i64) -> u64 {
        let mut purged = 0;
        for _ in 0..PURGE_BATCHES {
            match self.store.purge_tasks(before, PURGE_BATCH).await {
                Ok(n) => {
                    purged += n;
                    if n < PURGE_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    error!(error = %e, "purging old tasks failed");
                    break;
                }
            }
            tokio::time::sleep(PURGE_PAUSE).await;
        }
        purged
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            self.sweep_once().await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }
}
