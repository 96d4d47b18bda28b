//! What the docker backend is told: which engine, how phones reach the network, and which
//! Docker image each cloudphone image id runs.

use std::time::Duration;

use cloudphone_core::resources::Image;

use crate::adb::AdbServer;

/// How a phone container is networked, and so where its adbd is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Network {
    /// Docker's default bridge: the container's ADB port is published on an ephemeral port
    /// of 127.0.0.1 (what a redroid host normally does).
    Bridge,
    /// The host's network: each phone is given its own port from `adb_ports`, passed to the
    /// image as `{adb_port}` in its arguments and environment.
    Host { adb_ports: (u16, u16) },
    /// No network at all: phones run, but nothing can reach their adbd (only lifecycle works).
    None,
}

/// One image a phone can be created from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerImage {
    /// The cloudphone image id (`imgc-...`), as CreateAndroidInstanceGroup names it.
    pub id: String,
    pub name: String,
    pub android_version: String,
    pub description: String,
    /// The Docker image reference (`redroid/redroid:12.0.0_64only-latest`).
    pub reference: String,
    /// redroid needs `--privileged` (binder and ashmem devices).
    pub privileged: bool,
    /// Arguments after the image's entrypoint (redroid's `androidboot.*`); `{adb_port}` is
    /// replaced by the phone's ADB port.
    pub args: Vec<String>,
    /// `NAME=VALUE` environment entries; `{adb_port}` as in `args`.
    pub env: Vec<String>,
    /// Where the phone's data volume is mounted (`/data` for redroid).
    pub data_path: String,
    /// The port adbd listens on inside the container (5555 for redroid).
    pub adb_port: u16,
    /// Whether in-phone work may run as root. When not (the default), a phone whose adbd runs
    /// as root (redroid's does) is made to run it as Android's `shell` user first: a tenant's
    /// command must not be root in a container that may be privileged.
    pub run_as_root: bool,
}

impl DockerImage {
    pub fn image(&self) -> Image {
        Image {
            id: self.id.clone(),
            name: self.name.clone(),
            android_version: self.android_version.clone(),
            system_type: "Android".into(),
            description: self.description.clone(),
            release_ms: 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct DockerConfig {
    /// The engine's socket (`/var/run/docker.sock`, or `unix://...`); `None`: `DOCKER_HOST`,
    /// else the default socket.
    pub socket: Option<String>,
    pub network: Network,
    pub images: Vec<DockerImage>,
    /// The ADB server through which in-phone operations reach the containers.
    pub adb: AdbServer,
    /// How long a phone may take to boot (until `sys.boot_completed` is 1).
    pub boot_timeout: Duration,
    /// How long `docker stop` waits before it kills.
    pub stop_timeout: Duration,
    /// Containers and volumes are named `<prefix><instance id>`: two servers on one engine
    /// must use different prefixes.
    pub name_prefix: String,
}

impl DockerConfig {
    pub fn new(images: Vec<DockerImage>) -> DockerConfig {
        DockerConfig {
            socket: None,
            network: Network::Bridge,
            images,
            adb: AdbServer::default(),
            boot_timeout: Duration::from_secs(180),
            stop_timeout: Duration::from_secs(10),
            name_prefix: "cloudphone-".into(),
        }
    }
}
