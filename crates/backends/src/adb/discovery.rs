//! Device discovery for the adb backend: at each look (the node paces it), the devices each configured ADB server
//! sees are recorded as the instances of that server's group (owned by the root account), and a
//! device that came back is RUNNING again. Devices that left are the watcher's: it marks them
//! UNAVAILABLE. What is found goes to a [`DeviceSink`], which the node wires to its store: a
//! backend never depends on the store.

use std::sync::Arc;

use async_trait::async_trait;
use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::{Group, Instance};
use cloudphone_core::time::now_ms;
use tracing::{info, warn};

use super::{AdbBackend, AdbGroupConfig, Device};

/// Why the sink could not do what discovery asked; logged, and the group is tried again at the
/// next look.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Where discovery records what it finds (the store's instances, in the node).
#[async_trait]
pub trait DeviceSink: Send + Sync {
    /// Records `group` if it is new and each of `instances` that is not recorded yet (one that
    /// is, deleted or not, stays as it is); returns how many instances were new.
    async fn adopt(&self, group: &Group, instances: &[Instance]) -> Result<u64, SinkError>;
    /// The recorded, not deleted instances of `account_id` among `ids`.
    async fn instances(&self, account_id: &str, ids: &[String])
    -> Result<Vec<Instance>, SinkError>;
    /// Moves instance `id` from `from` to `to` if it is still in `from` as of `seen_ms` (its
    /// `modified_ms` when read); returns whether it moved.
    async fn mark(
        &self,
        id: &str,
        from: InstanceStatus,
        to: InstanceStatus,
        seen_ms: i64,
        now_ms: i64,
    ) -> Result<bool, SinkError>;
}

pub struct Discovery {
    pub sink: Arc<dyn DeviceSink>,
    pub adb: Arc<AdbBackend>,
    pub account_id: String,
    pub region: String,
}

impl Discovery {
    /// Records the `devices` one look found; returns how many instances were new.
    pub async fn record(&self, devices: &[Device]) -> u64 {
        self.record_groups(devices, |_| true).await
    }

    /// Records the `devices` one look found of the groups (by index) that `mine` accepts: on a
    /// farm of nodes, only those whose lease this node holds. Returns how many were new.
    pub async fn record_groups(&self, devices: &[Device], mine: impl Fn(usize) -> bool) -> u64 {
        let now = now_ms();
        let mut added = 0;
        for (g, config) in self.adb.groups().iter().enumerate() {
            if !mine(g) {
                continue;
            }
            let mine: Vec<&Device> = devices.iter().filter(|d| d.group == g).collect();
            let (group, instances) = self.found(config, &mine, now);
            match self.sink.adopt(&group, &instances).await {
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
            self.revive(config, &usable).await;
        }
        added
    }

    /// The group of `config` and an instance for each of its devices, as of `now`.
    fn found(&self, config: &AdbGroupConfig, mine: &[&Device], now: i64) -> (Group, Vec<Instance>) {
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
        let instances = mine
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
                host: None,
                adb_port: None,
            })
            .collect();
        (group, instances)
    }

    /// Marks RUNNING again the instances among `usable` (devices the server lists as usable)
    /// that are recorded UNAVAILABLE.
    async fn revive(&self, config: &AdbGroupConfig, usable: &[String]) {
        let stored = match self.sink.instances(&self.account_id, usable).await {
            Ok(list) => list,
            Err(e) => {
                warn!(group = %config.name, "cannot read the ADB devices' instances: {e}");
                return;
            }
        };
        for i in stored
            .iter()
            .filter(|i| i.status == InstanceStatus::Unavailable)
        {
            match self
                .sink
                .mark(
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
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use cloudphone_core::resources::Image;

    use super::*;
    use crate::adb::AdbServer;

    /// A sink over a map of instances, as the store keeps them.
    #[derive(Default)]
    struct Memory {
        groups: Mutex<Vec<Group>>,
        instances: Mutex<HashMap<String, Instance>>,
        /// Refuse every adoption, as a store that cannot be reached.
        broken: bool,
    }

    #[async_trait]
    impl DeviceSink for Memory {
        async fn adopt(&self, group: &Group, instances: &[Instance]) -> Result<u64, SinkError> {
            if self.broken {
                return Err("the database is gone".into());
            }
            let mut groups = self.groups.lock().unwrap();
            if !groups.iter().any(|g| g.id == group.id) {
                groups.push(group.clone());
            }
            let mut stored = self.instances.lock().unwrap();
            let mut new = 0;
            for i in instances {
                if !stored.contains_key(&i.id) {
                    stored.insert(i.id.clone(), i.clone());
                    new += 1;
                }
            }
            Ok(new)
        }

        async fn instances(
            &self,
            account_id: &str,
            ids: &[String],
        ) -> Result<Vec<Instance>, SinkError> {
            let stored = self.instances.lock().unwrap();
            Ok(ids
                .iter()
                .filter_map(|id| stored.get(id))
                .filter(|i| i.account_id == account_id && i.status != InstanceStatus::Deleted)
                .cloned()
                .collect())
        }

        async fn mark(
            &self,
            id: &str,
            from: InstanceStatus,
            to: InstanceStatus,
            seen_ms: i64,
            now_ms: i64,
        ) -> Result<bool, SinkError> {
            let mut stored = self.instances.lock().unwrap();
            match stored.get_mut(id) {
                Some(i) if i.status == from && i.modified_ms == seen_ms => {
                    i.status = to;
                    i.modified_ms = now_ms;
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
    }

    fn discovery(sink: Arc<Memory>) -> Discovery {
        let group = |name: &str| AdbGroupConfig {
            name: name.into(),
            image: Image {
                id: format!("imgc-{name}"),
                name: name.into(),
                android_version: "14".into(),
                system_type: "Android".into(),
                description: String::new(),
                release_ms: 0,
            },
            server: AdbServer::default(),
            connect: Vec::new(),
        };
        Discovery {
            sink,
            adb: Arc::new(AdbBackend::new(
                vec![group("lab"), group("desk")],
                std::time::Duration::from_secs(1),
            )),
            account_id: "root".into(),
            region: "cn-hangzhou".into(),
        }
    }

    fn device(d: &Discovery, group: usize, serial: &str, state: &str) -> Device {
        Device {
            group,
            serial: serial.into(),
            instance_id: d.adb.groups()[group].instance_id(serial),
            state: state.into(),
        }
    }

    #[tokio::test]
    async fn devices_become_instances_of_their_servers_group() {
        let sink = Arc::new(Memory::default());
        let d = discovery(sink.clone());
        let found = [
            device(&d, 0, "emulator-5554", "device"),
            device(&d, 0, "R58M", "unauthorized"),
            device(&d, 1, "10.0.0.2:5555", "device"),
        ];
        assert_eq!(d.record(&found).await, 3);
        // A second look at the same devices adds nothing.
        assert_eq!(d.record(&found).await, 0);
        let groups = sink.groups.lock().unwrap().clone();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].id, d.adb.groups()[0].group_id());
        assert_eq!(groups[0].image_id, "imgc-lab");
        assert_eq!(groups[0].account_id, "root");
        let stored = sink.instances.lock().unwrap().clone();
        let usable = &stored[&found[0].instance_id];
        assert_eq!(usable.status, InstanceStatus::Running);
        assert_eq!(usable.name, "emulator-5554");
        assert_eq!(usable.group_id, groups[0].id);
        assert_eq!(usable.region_id, "cn-hangzhou");
        assert_eq!(
            stored[&found[1].instance_id].status,
            InstanceStatus::Unavailable
        );
        assert_eq!(stored[&found[2].instance_id].group_name, "desk");
    }

    #[tokio::test]
    async fn a_device_that_came_back_is_running_again() {
        let sink = Arc::new(Memory::default());
        let d = discovery(sink.clone());
        let phone = device(&d, 0, "emulator-5554", "device");
        d.record(std::slice::from_ref(&phone)).await;
        // The watcher saw it leave.
        sink.instances
            .lock()
            .unwrap()
            .get_mut(&phone.instance_id)
            .unwrap()
            .status = InstanceStatus::Unavailable;
        // Listed but not usable yet: it stays UNAVAILABLE.
        let offline = device(&d, 0, "emulator-5554", "offline");
        d.record(&[offline]).await;
        let status = |s: &Memory| s.instances.lock().unwrap()[&phone.instance_id].status;
        assert_eq!(status(&sink), InstanceStatus::Unavailable);
        assert_eq!(d.record(std::slice::from_ref(&phone)).await, 0);
        assert_eq!(status(&sink), InstanceStatus::Running);
    }

    #[tokio::test]
    async fn a_sink_that_fails_records_nothing_and_counts_nothing() {
        let sink = Arc::new(Memory {
            broken: true,
            ..Memory::default()
        });
        let d = discovery(sink.clone());
        let found = [device(&d, 0, "emulator-5554", "device")];
        assert_eq!(d.record(&found).await, 0);
        assert!(sink.instances.lock().unwrap().is_empty());
    }
}
