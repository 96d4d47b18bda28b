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
        match self.store.purge_tasks(before).await {
            Ok(0) => {}
            Ok(n) => info!(purged = n, "old tasks removed"),
            Err(e) => error!(error = %e, "purging old tasks failed"),
        }
        swept
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
