//! Device discovery for the adb backend: every interval, the devices each configured ADB server
//! sees are recorded as the instances of that server's group (owned by the root account), and a
//! device that came back is RUNNING again. Devices that left are the watcher's: it marks them
//! UNAVAILABLE.

use std::sync::Arc;
use std::time::Duration;

use cloudphone_backends::AdbBackend;
use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::{Group, Instance};
use cloudphone_core::time::now_ms;
use cloudphone_store::Store;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub struct Discovery {
    pub store: Arc<dyn Store>,
    pub adb: Arc<AdbBackend>,
    pub account_id: String,
    pub region: String,
    pub interval: Duration,
}

impl Discovery {
    /// One look at every ADB server; returns how many instances were new.
    pub async fn discover_once(&self) -> u64 {
        let devices = self.adb.discover().await;
        let now = now_ms();
        let mut added = 0;
        for (g, config) in self.adb.groups().iter().enumerate() {
            let group = Group {
                id: config.group_id(),
                account_id: self.account_id.clone(),
                name: config.name.clone(),
                region_id: self.region.clone(),
                image_id: config.image.id.clone(),
                spec: "acp.basic.small".into(),
                charge_type: "PostPaid".into(),
                tags: Vec::new(),
                created_ms: now,
                modified_ms: now,
                deleting: false,
            };
            let mine: Vec<_> = devices.iter().filter(|d| d.group == g).collect();
            let instances: Vec<Instance> = mine
                .iter()
                .map(|d| Instance {
                    id: d.instance_id.clone(),
                    account_id: self.account_id.clone(),
                    group_id: group.id.clone(),
                    group_name: group.name.clone(),
                    name: d.serial.clone(),
                    status: if d.state == "device" {
                        InstanceStatus::Running
                    } else {
                        InstanceStatus::Unavailable
                    },
                    image_id: group.image_id.clone(),
                    spec: group.spec.clone(),
                    region_id: group.region_id.clone(),
                    up_bandwidth_limit: None,
                    down_bandwidth_limit: None,
                    charge_type: group.charge_type.clone(),
                    created_ms: now,
                    modified_ms: now,
                })
                .collect();
            match self.store.adopt_instances(&group, &instances).await {
                Ok(0) => {}
                Ok(n) => {
                    info!(group = %config.name, new = n, "ADB devices joined");
                    added += n;
                }
                Err(e) => {
                    warn!(group = %config.name, "cannot record the ADB devices: {e}");
                    continue;
                }
            }
            let usable: Vec<String> = mine
                .iter()
                .filter(|d| d.state == "device")
                .map(|d| d.instance_id.clone())
                .collect();
            let stored = match self.store.instances_by_id(&self.account_id, &usable).await {
                Ok(list) => list,
                Err(e) => {
                    warn!(group = %config.name, "cannot read the ADB devices' instances: {e}");
                    continue;
                }
            };
            for i in stored
                .iter()
                .filter(|i| i.status == InstanceStatus::Unavailable)
            {
                match self
                    .store
                    .mark_instance(
                        &i.id,
                        InstanceStatus::Unavailable,
                        InstanceStatus::Running,
                        i.modified_ms,
                        now_ms(),
                    )
                    .await
                {
                    Ok(true) => {
                        info!(instance_id = %i.id, serial = %i.name, "the device is back: RUNNING")
                    }
                    Ok(false) => {}
                    Err(e) => warn!(instance_id = %i.id, "cannot mark the device RUNNING: {e}"),
                }
            }
        }
        added
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.discover_once().await;
        }
    }
}
