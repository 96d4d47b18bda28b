//! The adb backend: the devices an ADB server sees (phones on USB, emulators, phones reached
//! over TCP with `adb connect`) are the instances of one group per configured server. They
//! join and leave by themselves: [`AdbBackend::discover`] lists them (and reconnects the TCP
//! ones it was told about), the node's discovery loop records them, and the watcher marks those
//! that left UNAVAILABLE. Instance ids are derived from the group and the serial, so a device
//! is the same instance after a restart.
//!
//! Reboot, apps, files, commands, backups and screenshots go over ADB ([`AdbPhone`]); Start,
//! Stop and Reset fail with `UnsupportedOperation`: the control plane cannot power a device on
//! or wipe it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use cloudphone_adb::proto::service::ServicePolicy;
use cloudphone_backend::{
    AdbRoute, AppOp, Backend, BackendError, CommandOutput, InstanceRef, Liveness, OpResult, Screen,
    ScreenOptions,
};
use cloudphone_core::TaskErrorCode;
use cloudphone_core::ids;
use cloudphone_core::resources::Image;
use tracing::warn;

use super::screen::ScreenTarget;
use super::{AdbPhone, AdbServer, ScrcpyServer, Screens};

/// One ADB server whose devices form one instance group.
#[derive(Clone, Debug)]
pub struct AdbGroupConfig {
    /// The group's name (InstanceGroupName), also the seed of its ids.
    pub name: String,
    /// The image its devices show as (an id of their own, `imgc-...`).
    pub image: Image,
    pub server: AdbServer,
    /// Devices reached over TCP (`HOST:PORT`), connected and kept connected.
    pub connect: Vec<String>,
}

impl AdbGroupConfig {
    pub fn group_id(&self) -> String {
        ids::stable_id(ids::GROUP, &format!("adb/{}", self.name))
    }

    pub fn instance_id(&self, serial: &str) -> String {
        ids::stable_id(ids::INSTANCE, &format!("adb/{}/{serial}", self.name))
    }
}

/// A device an ADB server lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Which of the configured groups it belongs to.
    pub group: usize,
    pub serial: String,
    pub instance_id: String,
    /// `device` when usable; `offline`, `unauthorized`, ... otherwise.
    pub state: String,
}

pub struct AdbBackend {
    groups: Vec<AdbGroupConfig>,
    boot_timeout: Duration,
    /// Instance id to (group, serial), as the last discovery found them.
    known: RwLock<HashMap<String, (usize, String)>>,
    screens: Screens,
}

fn unsupported(what: &str) -> BackendError {
    BackendError::new(
        TaskErrorCode::UnsupportedOperation,
        format!(
            "{what} is not possible on a device of an ADB server: the control plane cannot do it."
        ),
    )
}

impl AdbBackend {
    pub fn new(groups: Vec<AdbGroupConfig>, boot_timeout: Duration) -> AdbBackend {
        AdbBackend {
            groups,
            boot_timeout,
            known: RwLock::new(HashMap::new()),
            screens: Screens::new(None),
        }
    }

    /// Live screens through the scrcpy server `jar` (without one: screencap and `input`).
    pub fn with_scrcpy(mut self, jar: Option<ScrcpyServer>) -> AdbBackend {
        self.screens = Screens::new(jar);
        self
    }

    pub fn groups(&self) -> &[AdbGroupConfig] {
        &self.groups
    }

    /// Starts each server, connects the TCP devices that are not connected, and lists every
    /// device; remembers them for the operations.
    pub async fn discover(&self) -> Vec<Device> {
        let mut found = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            if let Err(e) = group.server.start_server().await {
                warn!(group = %group.name, "cannot start the ADB server: {e}");
                continue;
            }
            let mut listed = match group.server.devices().await {
                Ok(list) => list,
                Err(e) => {
                    warn!(group = %group.name, "cannot list the ADB devices: {e}");
                    continue;
                }
            };
            let mut reconnected = false;
            for address in &group.connect {
                let usable = listed.iter().any(|(s, st)| s == address && st == "device");
                if !usable && group.server.connect(address).await.is_ok() {
                    reconnected = true;
                }
            }
            if reconnected && let Ok(list) = group.server.devices().await {
                listed = list;
            }
            for (serial, state) in listed {
                found.push(Device {
                    group: g,
                    instance_id: group.instance_id(&serial),
                    serial,
                    state,
                });
            }
        }
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        for d in &found {
            known.insert(d.instance_id.clone(), (d.group, d.serial.clone()));
        }
        found
    }

    fn device(&self, phone: &InstanceRef) -> OpResult<(usize, String)> {
        self.known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&phone.id)
            .cloned()
            .ok_or_else(|| {
                BackendError::new(
                    TaskErrorCode::InstanceUnreachable,
                    "the device is not connected to its ADB server",
                )
            })
    }

    fn phone(&self, phone: &InstanceRef) -> OpResult<AdbPhone<'_>> {
        let (group, serial) = self.device(phone)?;
        Ok(AdbPhone {
            server: &self.groups[group].server,
            serial,
        })
    }
}

#[async_trait]
impl Backend for AdbBackend {
    fn images(&self) -> Vec<Image> {
        self.groups.iter().map(|g| g.image.clone()).collect()
    }

    fn can_create(&self, _image_id: &str) -> bool {
        false
    }

    fn can_reimage(&self, _from: &str, _to: &str) -> bool {
        false
    }

    async fn create(&self, _phone: &InstanceRef) -> OpResult<()> {
        Err(unsupported("Creating a phone"))
    }

    /// A device's instance is forgotten; the device itself is left as it is.
    async fn delete(&self, _phone: &InstanceRef) -> OpResult<()> {
        Ok(())
    }

    async fn start(&self, _phone: &InstanceRef) -> OpResult<()> {
        Err(unsupported("Starting a device"))
    }

    async fn stop(&self, _phone: &InstanceRef, _force: bool) -> OpResult<()> {
        Err(unsupported("Stopping a device"))
    }

    async fn reboot(&self, phone: &InstanceRef, _force: bool) -> OpResult<()> {
        let (group, serial) = self.device(phone)?;
        let config = &self.groups[group];
        config.server.reboot(&serial).await.map_err(|e| {
            BackendError::new(TaskErrorCode::OperationFailed, format!("adb reboot: {e}"))
        })?;
        // A phone answers from its old boot for a while after `adb reboot`: first it must drop
        // off the server, then come back booted (one reached over TCP is connected again).
        let dropped = tokio::time::Instant::now() + Duration::from_secs(60);
        while config.server.state(&serial).await.as_deref() == Some("device") {
            if tokio::time::Instant::now() >= dropped {
                return Err(BackendError::new(
                    TaskErrorCode::OperationFailed,
                    "the device did not go down within 60 s of adb reboot",
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reconnect = config.connect.iter().find(|a| **a == serial).cloned();
        let adb = AdbPhone {
            server: &config.server,
            serial,
        };
        adb.wait_booted(reconnect.as_deref(), self.boot_timeout)
            .await
    }

    async fn reset(&self, _phone: &InstanceRef, _image_id: &str) -> OpResult<()> {
        Err(unsupported("Resetting a device"))
    }

    async fn run_command(
        &self,
        phone: &InstanceRef,
        command: &str,
        timeout: Duration,
    ) -> OpResult<CommandOutput> {
        self.phone(phone)?.run_command(command, timeout).await
    }

    async fn push_file(&self, phone: &InstanceRef, local: &Path, dest: &str) -> OpResult<u64> {
        self.phone(phone)?.push_file(local, dest).await
    }

    async fn pull_file(&self, phone: &InstanceRef, src: &str, local: &Path) -> OpResult<u64> {
        self.phone(phone)?.pull_file(src, local).await
    }

    async fn install_app(&self, phone: &InstanceRef, package: &str, local: &Path) -> OpResult<()> {
        self.phone(phone)?.install_app(package, local).await
    }

    async fn uninstall_app(&self, phone: &InstanceRef, package: &str) -> OpResult<()> {
        self.phone(phone)?.uninstall_app(package).await
    }

    async fn operate_app(&self, phone: &InstanceRef, package: &str, op: AppOp) -> OpResult<()> {
        self.phone(phone)?.operate_app(package, op).await
    }

    async fn screenshot(&self, phone: &InstanceRef, local: &Path) -> OpResult<(u32, u32)> {
        self.phone(phone)?.screenshot(local).await
    }

    async fn backup(
        &self,
        phone: &InstanceRef,
        paths: &[String],
        exclude: &[String],
        local: &Path,
    ) -> OpResult<u64> {
        self.phone(phone)?.backup(paths, exclude, local).await
    }

    async fn restore(&self, phone: &InstanceRef, local: &Path) -> OpResult<u64> {
        self.phone(phone)?.restore(local).await
    }

    /// The device through its group's server; `adb root`, `remount` and `reboot` are the
    /// device's own business (a production build refuses root), as everything else on the
    /// operator's devices is.
    async fn adb_route(&self, phone: &InstanceRef) -> OpResult<AdbRoute> {
        let (group, serial) = self.device(phone)?;
        let server =
            self.groups[group].server.socket_addr().await.map_err(|e| {
                BackendError::new(TaskErrorCode::InstanceUnreachable, e.to_string())
            })?;
        Ok(AdbRoute::Relay {
            server,
            serial,
            // The operator's own devices, each with a network of its own.
            policy: ServicePolicy {
                root: true,
                remount: true,
                reboot: true,
                host_network: false,
            },
        })
    }

    /// Through the device's server: scrcpy when configured, else screencap and `input`.
    async fn open_screen(&self, phone: &InstanceRef, opts: ScreenOptions) -> OpResult<Screen> {
        let (group, serial) = self.device(phone)?;
        let target = ScreenTarget {
            server: self.groups[group].server.clone(),
            serial,
        };
        self.screens.open(target, opts).await
    }

    async fn observe(&self, phones: &[InstanceRef]) -> HashMap<String, Liveness> {
        let mut states: HashMap<String, String> = HashMap::new();
        let mut answered = vec![false; self.groups.len()];
        for (g, group) in self.groups.iter().enumerate() {
            if let Ok(list) = group.server.devices().await {
                answered[g] = true;
                for (serial, state) in list {
                    states.insert(group.instance_id(&serial), state);
                }
            }
        }
        phones
            .iter()
            .filter_map(|p| {
                // A server that did not answer says nothing about its devices (the image tells
                // the group: each group has an image of its own).
                let group = self.groups.iter().position(|g| g.image.id == p.image_id)?;
                if !answered[group] {
                    return None;
                }
                let liveness = match states.get(&p.id).map(String::as_str) {
                    Some("device") => Liveness::Up,
                    Some(state) => Liveness::Down {
                        reason: format!("the device is {state} on its ADB server"),
                    },
                    None => Liveness::Down {
                        reason: "the device left its ADB server".into(),
                    },
                };
                Some((p.id.clone(), liveness))
            })
            .collect()
    }
}
