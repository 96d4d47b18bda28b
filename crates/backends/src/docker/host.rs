//! One host of the docker farm: its engine's client (unix socket, or TCP with TLS client
//! certificates; the API version agreed on at the first request, so a host that is down when
//! the node starts does not stop it) and everything done to the phones on it: their
//! containers and volumes, their ADB ports, reaching their adbd at the host's `adb_host`.
//!
//! Lifecycle maps onto the container: Start, Stop and Reboot are container start, stop and
//! restart; Reset and a new group image recreate the container from the image with a fresh
//! volume. In-phone work runs as Android's `shell` user unless the phone's image says
//! `run_as_root` ([`AdbPhone::ensure_shell_user`] before each operation): tenants' commands
//! must not be root in containers that may be privileged (docs/design.md §8).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, KillContainerOptions, ListContainersOptions,
    RemoveContainerOptions, RemoveVolumeOptions, RestartContainerOptions, StopContainerOptions,
};
use cloudphone_backend::{
    AdbRoute, AppOp, BackendError, CommandOutput, InstanceRef, OpResult, Screen, ScreenOptions,
};
use cloudphone_core::TaskErrorCode;
use tokio::sync::OnceCell;
use tracing::info;

use super::config::{self, DockerConfig, DockerImage, Engine, HostSpec, Network};
use super::{LABEL_ADB_PORT, LABEL_IMAGE, LABEL_INSTANCE};
use crate::adb::screen::ScreenTarget;
use crate::adb::{AdbPhone, Screens};

/// Seconds a request to an engine may take (bollard's own default).
const ENGINE_TIMEOUT_SECS: u64 = 120;

pub(super) struct DockerHost {
    spec: HostSpec,
    config: Arc<DockerConfig>,
    screens: Arc<Screens>,
    client: Docker,
    negotiated: OnceCell<Docker>,
    /// Held while a port is chosen and its container created, so two phones never get one.
    ports: tokio::sync::Mutex<()>,
}

fn op_failed(msg: impl Into<String>) -> BackendError {
    BackendError::new(TaskErrorCode::OperationFailed, msg)
}

fn unreachable(msg: impl Into<String>) -> BackendError {
    BackendError::new(TaskErrorCode::InstanceUnreachable, msg)
}

/// Docker's answer status, if the engine gave one.
pub(super) fn status_of(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn docker_error(what: &str, e: bollard::errors::Error) -> BackendError {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => {
            op_failed(format!("{what}: {message}"))
        }
        other => unreachable(format!("{what}: the Docker engine did not answer: {other}")),
    }
}

/// A running phone's container, as the in-phone operations need it.
struct Reached {
    /// `127.0.0.1:PORT`: the address to `adb connect`, and the device's serial.
    address: String,
    /// Whether the image the container was made from allows root (an unknown image does not).
    run_as_root: bool,
}

/// How long adbd may take to restart as `shell` after `adb unroot`.
const UNROOT_TIMEOUT: Duration = Duration::from_secs(30);

impl DockerHost {
    /// The host's client; no request is made until the first operation.
    pub(super) fn new(
        spec: HostSpec,
        config: Arc<DockerConfig>,
        screens: Arc<Screens>,
    ) -> Result<DockerHost, String> {
        let client = match &spec.engine {
            Engine::Unix(socket) => Docker::connect_with_unix(
                socket.trim_start_matches("unix://"),
                ENGINE_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            ),
            Engine::Local => Docker::connect_with_local_defaults(),
            Engine::Tls { url, ca, cert, key } => Docker::connect_with_ssl(
                url,
                key,
                cert,
                ca,
                ENGINE_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            ),
        }
        .map_err(|e| {
            format!(
                "the host {}: cannot use {}: {e}",
                spec.name,
                spec.engine.address()
            )
        })?;
        Ok(DockerHost {
            spec,
            config,
            screens,
            client,
            negotiated: OnceCell::new(),
            ports: tokio::sync::Mutex::new(()),
        })
    }

    pub(super) fn spec(&self) -> &HostSpec {
        &self.spec
    }

    /// The client, if an engine answered it once.
    pub(super) fn negotiated(&self) -> Option<Docker> {
        self.negotiated.get().cloned()
    }

    /// The engine's client at the API version both speak (Debian's engine speaks 1.41), agreed
    /// on with the first request that reaches it; an engine that does not answer is tried
    /// again next time.
    pub(super) async fn docker(&self) -> OpResult<&Docker> {
        self.negotiated
            .get_or_try_init(|| async {
                self.client.clone().negotiate_version().await.map_err(|e| {
                    unreachable(format!(
                        "the host {} ({}) did not answer: {e}",
                        self.spec.name,
                        self.spec.engine.address()
                    ))
                })
            })
            .await
    }

    /// A port of a host on this machine's loopback is also checked by binding it (another
    /// program may hold it); a remote host's ports are known only by its containers' labels.
    fn port_free_here(&self, port: u16) -> bool {
        let loopback = self
            .spec
            .adb_host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
        !loopback || std::net::TcpListener::bind((self.spec.adb_host.as_str(), port)).is_ok()
    }

    pub(super) fn container(&self, phone: &InstanceRef) -> String {
        format!("{}{}", self.config.name_prefix, phone.id)
    }

    fn volume(&self, phone: &InstanceRef) -> String {
        format!("{}{}-data", self.config.name_prefix, phone.id)
    }

    pub(super) fn image_config(&self, image_id: &str) -> OpResult<&DockerImage> {
        self.config
            .images
            .iter()
            .find(|i| i.id == image_id)
            .ok_or_else(|| op_failed(format!("the image {image_id} is not a docker image here")))
    }

    /// Ports given to other phones (host network), read off their containers' labels.
    async fn ports_in_use(&self) -> OpResult<HashSet<u16>> {
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![LABEL_ADB_PORT.to_string()]);
        let list = self
            .docker()
            .await?
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| docker_error("listing containers", e))?;
        Ok(list
            .iter()
            .filter_map(|c| c.labels.as_ref()?.get(LABEL_ADB_PORT)?.parse().ok())
            .collect())
    }

    /// Creates the phone's volume and container from `image_id` and starts it.
    async fn create_from(&self, phone: &InstanceRef, image_id: &str) -> OpResult<()> {
        self.create_stopped(phone, image_id).await?;
        self.start_and_wait(phone).await
    }

    /// Creates the phone's volume and container from `image_id`, not started (a move fills
    /// the volume first).
    pub(super) async fn create_stopped(&self, phone: &InstanceRef, image_id: &str) -> OpResult<()> {
        let image = self.image_config(image_id)?.clone();
        let name = self.container(phone);
        let volume = self.volume(phone);
        let mut labels = HashMap::new();
        labels.insert(LABEL_INSTANCE.to_string(), phone.id.clone());
        labels.insert(LABEL_IMAGE.to_string(), image.id.clone());
        self.docker()
            .await?
            .create_volume(VolumeCreateRequest {
                name: Some(volume.clone()),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .map_err(|e| docker_error("creating the data volume", e))?;
        let guard = self.ports.lock().await;
        let adb_port = match &self.spec.network {
            // The store handed the phone its port with its place: no other phone has it.
            Network::Host { .. } if phone.adb_port.is_some() => {
                let port = phone.adb_port.unwrap_or_default();
                labels.insert(LABEL_ADB_PORT.to_string(), port.to_string());
                port
            }
            // A phone placed before the store handed out ports: the first port no container
            // of this host is labelled with.
            Network::Host { adb_ports } => {
                let used = self.ports_in_use().await?;
                let free = (adb_ports.0..=adb_ports.1)
                    .find(|p| !used.contains(p) && self.port_free_here(*p));
                let port = free.ok_or_else(|| {
                    op_failed(format!(
                        "no free ADB port left in {}-{}",
                        adb_ports.0, adb_ports.1
                    ))
                })?;
                labels.insert(LABEL_ADB_PORT.to_string(), port.to_string());
                port
            }
            _ => image.adb_port,
        };
        let fill = |s: &String| s.replace("{adb_port}", &adb_port.to_string());
        let exposed = format!("{}/tcp", image.adb_port);
        let mut host = HostConfig {
            binds: Some(vec![format!("{volume}:{}", image.data_path)]),
            privileged: Some(image.privileged),
            ..Default::default()
        };
        let mut exposed_ports = None;
        match &self.spec.network {
            Network::Host { .. } => host.network_mode = Some("host".into()),
            Network::None => host.network_mode = Some("none".into()),
            Network::Bridge => {
                let mut map = HashMap::new();
                map.insert(
                    exposed.clone(),
                    Some(vec![PortBinding {
                        host_ip: Some(self.spec.adb_host.clone()),
                        host_port: Some(String::new()),
                    }]),
                );
                host.port_bindings = Some(map);
                exposed_ports = Some(vec![exposed.clone()]);
            }
        }
        let body = ContainerCreateBody {
            image: Some(image.reference.clone()),
            cmd: (!image.args.is_empty()).then(|| image.args.iter().map(fill).collect()),
            env: Some(image.env.iter().map(fill).collect()),
            labels: Some(labels),
            hostname: Some(phone.id.clone()),
            exposed_ports,
            host_config: Some(host),
            ..Default::default()
        };
        self.docker()
            .await?
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| {
                docker_error(
                    &format!("creating the container from {}", image.reference),
                    e,
                )
            })?;
        drop(guard);
        Ok(())
    }

    async fn start_and_wait(&self, phone: &InstanceRef) -> OpResult<()> {
        let name = self.container(phone);
        match self.docker().await?.start_container(&name, None).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(304) => {}
            Err(e) => return Err(docker_error("starting the container", e)),
        }
        self.wait_booted(phone).await
    }

    pub(super) async fn wait_booted(&self, phone: &InstanceRef) -> OpResult<()> {
        if self.spec.network == Network::None {
            return Ok(());
        }
        let reached = self.reach(phone).await?;
        let adb = AdbPhone {
            server: &self.config.adb,
            serial: reached.address.clone(),
        };
        adb.wait_booted(Some(&reached.address), self.config.boot_timeout)
            .await
    }

    /// Tells the ADB server to drop a phone that is about to go down, so that it does not keep
    /// a stale entry (in bridge mode the phone's port changes with every start).
    async fn disconnect(&self, phone: &InstanceRef) {
        if let Ok(r) = self.reach(phone).await {
            self.config.adb.disconnect(&r.address).await;
        }
    }

    /// Removes the container and its volume; both may be gone already.
    async fn remove(&self, phone: &InstanceRef) -> OpResult<()> {
        self.disconnect(phone).await;
        match self
            .docker()
            .await?
            .remove_container(
                &self.container(phone),
                Some(RemoveContainerOptions {
                    force: true,
                    v: false,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(docker_error("removing the container", e)),
        }
        match self
            .docker()
            .await?
            .remove_volume(
                &self.volume(phone),
                Some(RemoveVolumeOptions { force: true }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(docker_error("removing the data volume", e)),
        }
    }

    /// The running container's ADB address; a container that is gone or not running is an
    /// `InstanceUnreachable`.
    async fn reach(&self, phone: &InstanceRef) -> OpResult<Reached> {
        let name = self.container(phone);
        let c = self
            .docker()
            .await?
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
            .map_err(|e| match status_of(&e) {
                Some(404) => unreachable(format!("the phone's container {name} does not exist")),
                _ => docker_error("inspecting the container", e),
            })?;
        let state = c.state.unwrap_or_default();
        if state.running != Some(true) {
            return Err(unreachable(format!(
                "the phone's container {name} is not running (exit code {})",
                state.exit_code.unwrap_or(0)
            )));
        }
        let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
        // The image the container was made from, which a reimage in progress may not have
        // recorded on the instance yet.
        let image = labels
            .get(LABEL_IMAGE)
            .and_then(|i| self.config.images.iter().find(|x| &x.id == i));
        let port = match &self.spec.network {
            Network::Host { .. } => labels.get(LABEL_ADB_PORT).cloned(),
            Network::Bridge => {
                let key = format!("{}/tcp", image.map_or(5555, |i| i.adb_port));
                c.network_settings
                    .and_then(|n| n.ports)
                    .and_then(|p| p.get(&key).cloned().flatten())
                    .and_then(|b| b.into_iter().find_map(|b| b.host_port))
            }
            Network::None => None,
        };
        let port = port.ok_or_else(|| {
            unreachable(format!(
                "the phone's container {name} publishes no ADB port"
            ))
        })?;
        Ok(Reached {
            address: format!("{}:{port}", self.spec.adb_host),
            run_as_root: image.is_some_and(|i| i.run_as_root),
        })
    }

    /// The phone's adbd, connected, and running as `shell` unless the image allows root.
    async fn adb(&self, phone: &InstanceRef) -> OpResult<AdbPhone<'_>> {
        Ok(self.adb_reached(phone).await?.0)
    }

    /// [`DockerBackend::adb`], and where the phone was reached.
    async fn adb_reached(&self, phone: &InstanceRef) -> OpResult<(AdbPhone<'_>, Reached)> {
        let reached = self.reach(phone).await?;
        let server = &self.config.adb;
        if server.state(&reached.address).await.as_deref() != Some("device") {
            server.connect(&reached.address).await.map_err(|e| {
                unreachable(format!(
                    "the phone's adbd at {} did not answer: {e}",
                    reached.address
                ))
            })?;
        }
        let adb = AdbPhone {
            server,
            serial: reached.address.clone(),
        };
        if !reached.run_as_root {
            adb.ensure_shell_user(Some(&reached.address), UNROOT_TIMEOUT)
                .await?;
        }
        Ok((adb, reached))
    }
}

impl DockerHost {
    pub(super) async fn create(&self, phone: &InstanceRef) -> OpResult<()> {
        // A retried creation finds what the lost attempt left and starts over.
        self.remove(phone).await?;
        info!(instance_id = %phone.id, image_id = %phone.image_id, "creating the phone's container");
        self.create_from(phone, &phone.image_id).await
    }

    pub(super) async fn delete(&self, phone: &InstanceRef) -> OpResult<()> {
        self.remove(phone).await
    }

    pub(super) async fn start(&self, phone: &InstanceRef) -> OpResult<()> {
        self.start_and_wait(phone).await
    }

    pub(super) async fn stop(&self, phone: &InstanceRef, force: bool) -> OpResult<()> {
        self.disconnect(phone).await;
        let name = self.container(phone);
        let docker = self.docker().await?;
        let result = if force {
            docker
                .kill_container(&name, None::<KillContainerOptions>)
                .await
        } else {
            docker
                .stop_container(
                    &name,
                    Some(StopContainerOptions {
                        t: Some(self.config.stop_timeout.as_secs() as i32),
                        ..Default::default()
                    }),
                )
                .await
        };
        match result {
            Ok(()) => Ok(()),
            // 304: stopped already; 409 on a kill: not running.
            Err(e) if matches!(status_of(&e), Some(304 | 409)) => Ok(()),
            Err(e) => Err(docker_error("stopping the container", e)),
        }
    }

    pub(super) async fn reboot(&self, phone: &InstanceRef, force: bool) -> OpResult<()> {
        self.disconnect(phone).await;
        let t = if force {
            0
        } else {
            self.config.stop_timeout.as_secs() as i32
        };
        self.docker()
            .await?
            .restart_container(
                &self.container(phone),
                Some(RestartContainerOptions {
                    t: Some(t),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| docker_error("restarting the container", e))?;
        self.wait_booted(phone).await
    }

    pub(super) async fn reset(&self, phone: &InstanceRef, image_id: &str) -> OpResult<()> {
        self.image_config(image_id)?;
        self.remove(phone).await?;
        self.create_from(phone, image_id).await
    }

    pub(super) async fn run_command(
        &self,
        phone: &InstanceRef,
        command: &str,
        timeout: Duration,
    ) -> OpResult<CommandOutput> {
        self.adb(phone).await?.run_command(command, timeout).await
    }

    pub(super) async fn push_file(
        &self,
        phone: &InstanceRef,
        local: &std::path::Path,
        dest: &str,
    ) -> OpResult<u64> {
        self.adb(phone).await?.push_file(local, dest).await
    }

    pub(super) async fn pull_file(
        &self,
        phone: &InstanceRef,
        src: &str,
        local: &std::path::Path,
    ) -> OpResult<u64> {
        self.adb(phone).await?.pull_file(src, local).await
    }

    pub(super) async fn install_app(
        &self,
        phone: &InstanceRef,
        package: &str,
        local: &std::path::Path,
    ) -> OpResult<()> {
        self.adb(phone).await?.install_app(package, local).await
    }

    pub(super) async fn uninstall_app(&self, phone: &InstanceRef, package: &str) -> OpResult<()> {
        self.adb(phone).await?.uninstall_app(package).await
    }

    pub(super) async fn operate_app(
        &self,
        phone: &InstanceRef,
        package: &str,
        op: AppOp,
    ) -> OpResult<()> {
        self.adb(phone).await?.operate_app(package, op).await
    }

    pub(super) async fn screenshot(
        &self,
        phone: &InstanceRef,
        local: &std::path::Path,
    ) -> OpResult<(u32, u32)> {
        self.adb(phone).await?.screenshot(local).await
    }

    pub(super) async fn backup(
        &self,
        phone: &InstanceRef,
        paths: &[String],
        exclude: &[String],
        local: &std::path::Path,
    ) -> OpResult<u64> {
        self.adb(phone).await?.backup(paths, exclude, local).await
    }

    pub(super) async fn restore(
        &self,
        phone: &InstanceRef,
        local: &std::path::Path,
    ) -> OpResult<u64> {
        self.adb(phone).await?.restore(local).await
    }

    /// The container's adbd through the backend's ADB server, connected and running as
    /// `shell` unless the image allows root (checked on every connection, as before every
    /// operation: a restart of the container brings root back).
    pub(super) async fn adb_route(&self, phone: &InstanceRef) -> OpResult<AdbRoute> {
        if self.spec.network == Network::None {
            return Err(BackendError::new(
                TaskErrorCode::UnsupportedOperation,
                "The phone has no network: nothing can reach its adbd.",
            ));
        }
        let (adb, reached) = self.adb_reached(phone).await?;
        let server = self
            .config
            .adb
            .socket_addr()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(AdbRoute::Relay {
            server,
            serial: adb.serial,
            policy: config::relay_policy(reached.run_as_root, &self.spec.network),
        })
    }

    /// Through the container's adbd, as the in-phone operations (as `shell` unless the image
    /// allows root): scrcpy when configured, else screencap and `input`.
    pub(super) async fn open_screen(
        &self,
        phone: &InstanceRef,
        opts: ScreenOptions,
    ) -> OpResult<Screen> {
        if self.spec.network == Network::None {
            return Err(BackendError::new(
                TaskErrorCode::UnsupportedOperation,
                "The phone has no network: nothing can reach its screen.",
            ));
        }
        let adb = self.adb(phone).await?;
        let target = ScreenTarget {
            server: self.config.adb.clone(),
            serial: adb.serial,
        };
        self.screens.open(target, opts).await
    }
}
