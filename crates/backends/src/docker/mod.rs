//! The docker backend: each phone is a redroid-style Android container named after its
//! instance, with a data volume of its own, on one of the farm's hosts (Docker engines, driven
//! through the Engine API with bollard); everything inside the phone goes over ADB to the
//! container's adbd ([`crate::adb`]).
//!
//! [`DockerBackend`] is the farm: it routes each call to the host the phone lives on
//! ([`host::DockerHost`] does the work). Docker is the source of truth for where a phone
//! listens (labels and published ports), so the backend keeps no state of its own and a
//! restarted server finds its phones.

mod config;
mod host;
mod migrate;
mod probe;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudphone_backend::{
    AdbRoute, AppOp, Backend, BackendError, CommandOutput, InstanceRef, OpResult, Screen,
    ScreenOptions,
};
use cloudphone_core::TaskErrorCode;
use cloudphone_core::resources::Image;
use cloudphone_core::task_params::MigrateMode;
use tracing::warn;

pub use config::{DEFAULT_HOST, DockerConfig, DockerImage, Engine, HostSpec, Network};
pub use probe::{ContainerEvent, ContainerSeen, HostEvent, PING_TIMEOUT};

use crate::adb::Screens;
use host::DockerHost;

const LABEL_INSTANCE: &str = "cloudphone.instance";
const LABEL_IMAGE: &str = "cloudphone.image";
const LABEL_ADB_PORT: &str = "cloudphone.adb-port";

pub struct DockerBackend {
    config: Arc<DockerConfig>,
    /// In the backends file's order.
    hosts: Vec<Arc<DockerHost>>,
}

impl DockerBackend {
    /// The farm's hosts, each with its client (a configuration error, such as a TLS file that
    /// cannot be read, fails here), and the ADB server started. An engine that does not answer
    /// does not: its host's phones are unreachable until it does.
    pub async fn connect(config: DockerConfig) -> Result<DockerBackend, String> {
        if config.hosts.is_empty() {
            return Err("the docker backend has no host".into());
        }
        let config = Arc::new(config);
        let screens = Arc::new(Screens::new(config.scrcpy.clone()));
        let mut hosts = Vec::new();
        for spec in &config.hosts {
            let host = DockerHost::new(spec.clone(), config.clone(), screens.clone())?;
            if let Err(e) = host.docker().await {
                warn!(host = %spec.name, "{}", e.message);
            }
            hosts.push(Arc::new(host));
        }
        if config
            .hosts
            .iter()
            .any(|h| matches!(h.network, Network::Host { .. } | Network::Bridge))
        {
            config
                .adb
                .start_server()
                .await
                .map_err(|e| format!("cannot start the ADB server: {e}"))?;
        }
        Ok(DockerBackend { config, hosts })
    }

    pub fn hosts(&self) -> impl Iterator<Item = &HostSpec> {
        self.hosts.iter().map(|h| h.spec())
    }

    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    /// Waits until the phone's Android reports boot completed (a container that came back).
    pub async fn wait_booted(&self, phone: &InstanceRef) -> OpResult<()> {
        self.host_of(phone)?.wait_booted(phone).await
    }

    /// The host a phone lives on: the one the store placed it on, or, for a phone placed
    /// nowhere (created before this node knew hosts), the first host that runs its image.
    fn host_index(&self, phone: &InstanceRef) -> OpResult<usize> {
        let placed = phone.host.as_deref();
        let found = match placed {
            Some(name) => self.hosts.iter().position(|h| h.spec().name == name),
            None => self
                .hosts
                .iter()
                .position(|h| h.spec().runs(&phone.image_id)),
        };
        found.ok_or_else(|| {
            BackendError::new(
                TaskErrorCode::InstanceUnreachable,
                match placed {
                    Some(name) => format!("the host {name} is not in this node's backends file"),
                    None => format!("no host of this node runs the image {}", phone.image_id),
                },
            )
        })
    }

    fn host_of(&self, phone: &InstanceRef) -> OpResult<&DockerHost> {
        Ok(&self.hosts[self.host_index(phone)?])
    }
}

#[async_trait]
impl Backend for DockerBackend {
    fn images(&self) -> Vec<Image> {
        self.config.images.iter().map(DockerImage::image).collect()
    }

    async fn create(&self, phone: &InstanceRef) -> OpResult<()> {
        self.host_of(phone)?.create(phone).await
    }

    async fn delete(&self, phone: &InstanceRef) -> OpResult<()> {
        self.host_of(phone)?.delete(phone).await
    }

    async fn start(&self, phone: &InstanceRef) -> OpResult<()> {
        self.host_of(phone)?.start(phone).await
    }

    async fn stop(&self, phone: &InstanceRef, force: bool) -> OpResult<()> {
        self.host_of(phone)?.stop(phone, force).await
    }

    async fn reboot(&self, phone: &InstanceRef, force: bool) -> OpResult<()> {
        self.host_of(phone)?.reboot(phone, force).await
    }

    async fn reset(&self, phone: &InstanceRef, image_id: &str) -> OpResult<()> {
        self.host_of(phone)?.reset(phone, image_id).await
    }

    async fn migrate(
        &self,
        phone: &InstanceRef,
        to: &InstanceRef,
        mode: MigrateMode,
    ) -> OpResult<()> {
        self.migrate_phone(phone, to, mode).await
    }

    async fn run_command(
        &self,
        phone: &InstanceRef,
        command: &str,
        timeout: Duration,
    ) -> OpResult<CommandOutput> {
        self.host_of(phone)?
            .run_command(phone, command, timeout)
            .await
    }

    async fn push_file(&self, phone: &InstanceRef, local: &Path, dest: &str) -> OpResult<u64> {
        self.host_of(phone)?.push_file(phone, local, dest).await
    }

    async fn pull_file(&self, phone: &InstanceRef, src: &str, local: &Path) -> OpResult<u64> {
        self.host_of(phone)?.pull_file(phone, src, local).await
    }

    async fn install_app(&self, phone: &InstanceRef, package: &str, local: &Path) -> OpResult<()> {
        self.host_of(phone)?
            .install_app(phone, package, local)
            .await
    }

    async fn uninstall_app(&self, phone: &InstanceRef, package: &str) -> OpResult<()> {
        self.host_of(phone)?.uninstall_app(phone, package).await
    }

    async fn operate_app(&self, phone: &InstanceRef, package: &str, op: AppOp) -> OpResult<()> {
        self.host_of(phone)?.operate_app(phone, package, op).await
    }

    async fn screenshot(&self, phone: &InstanceRef, local: &Path) -> OpResult<(u32, u32)> {
        self.host_of(phone)?.screenshot(phone, local).await
    }

    async fn backup(
        &self,
        phone: &InstanceRef,
        paths: &[String],
        exclude: &[String],
        local: &Path,
    ) -> OpResult<u64> {
        self.host_of(phone)?
            .backup(phone, paths, exclude, local)
            .await
    }

    async fn restore(&self, phone: &InstanceRef, local: &Path) -> OpResult<u64> {
        self.host_of(phone)?.restore(phone, local).await
    }

    async fn adb_route(&self, phone: &InstanceRef) -> OpResult<AdbRoute> {
        self.host_of(phone)?.adb_route(phone).await
    }

    async fn open_screen(&self, phone: &InstanceRef, opts: ScreenOptions) -> OpResult<Screen> {
        self.host_of(phone)?.open_screen(phone, opts).await
    }
}
