//! The instance watcher: phones can die outside any task (a device unplugged). Asked for a set
//! of images (the node's ADB groups it leases, `cloudphone::adb_devices`, at its pace), it asks
//! the backend about their RUNNING instances and marks those found down UNAVAILABLE, unless a
//! task moved the instance since it was read (the store's mark is conditional).

use std::sync::Arc;
use std::time::Duration;

use cloudphone_core::InstanceStatus;
use cloudphone_core::time::now_ms;
use cloudphone_store::Store;
use tracing::{info, warn};

use crate::{Backend, InstanceRef, Liveness};

/// How often the node's watcher looks (`--watch-interval-ms`).
#[derive(Clone, Debug)]
pub struct WatcherConfig {
    pub interval: Duration,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        WatcherConfig {
            interval: Duration::from_secs(2),
        }
    }
}

pub struct Watcher {
    store: Arc<dyn Store>,
    backend: Arc<dyn Backend>,
}

impl Watcher {
    pub fn new(store: Arc<dyn Store>, backend: Arc<dyn Backend>) -> Watcher {
        Watcher { store, backend }
    }

    /// One look at the RUNNING phones of `images` (a node watches the ADB groups whose lease it
    /// holds); returns how many were marked UNAVAILABLE.
    pub async fn watch_images(&self, images: &[String]) -> usize {
        if images.is_empty() {
            return 0;
        }
        let instances = match self.store.running_instances_on(images).await {
            Ok(list) => list,
            Err(e) => {
                warn!("the instance watcher cannot read the instances: {e}");
                return 0;
            }
        };
        if instances.is_empty() {
            return 0;
        }
        let phones: Vec<InstanceRef> = instances.iter().map(InstanceRef::of).collect();
        let seen = self.backend.observe(&phones).await;
        let mut marked = 0;
        for i in &instances {
            let Some(Liveness::Down { reason }) = seen.get(&i.id) else {
                continue;
            };
            match self
                .store
                .mark_instance(
                    &i.id,
                    InstanceStatus::Running,
                    InstanceStatus::Unavailable,
                    i.modified_ms,
                    now_ms(),
                )
                .await
            {
                Ok(true) => {
                    info!(instance_id = %i.id, %reason, "the phone is down: UNAVAILABLE");
                    marked += 1;
                }
                Ok(false) => {}
                Err(e) => warn!(instance_id = %i.id, "cannot mark the phone UNAVAILABLE: {e}"),
            }
        }
        marked
    }
}
