//! What the docker backend is told: the hosts (Docker engines) phones run on, how each is
//! reached and networked, and which Docker image each cloudphone image id runs.

use std::path::PathBuf;
use std::time::Duration;

use cloudphone_adb::proto::service::ServicePolicy;
use cloudphone_core::resources::Image;

use crate::adb::{AdbServer, ScrcpyServer};

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

/// What a tenant may do through the ADB gateway to the adbd of a phone of `image` on
/// `network`, besides its device services: root and remount where the image allows root (§6.3
/// of docs/design.md); never a reboot (the API's, which waits for the container to boot
/// again); and no forward into the host's network when the phone shares it.
pub fn relay_policy(image_allows_root: bool, network: &Network) -> ServicePolicy {
    ServicePolicy {
        root: image_allows_root,
        remount: image_allows_root,
        reboot: false,
        host_network: matches!(network, Network::Host { .. }),
    }
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

/// How a node reaches one host's Docker engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Engine {
    /// A local socket (`/var/run/docker.sock` or `unix://...`).
    Unix(String),
    /// `DOCKER_HOST` if set, else the default socket (the legacy `[docker]` without `socket`).
    Local,
    /// `tcp://HOST:PORT` with TLS both ways: the Docker API is root on its host, so a plain
    /// TCP engine is never accepted.
    Tls {
        url: String,
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
}

impl Engine {
    /// For display and logs (never a secret: the key is a path).
    pub fn address(&self) -> String {
        match self {
            Engine::Unix(s) if s.starts_with("unix://") => s.clone(),
            Engine::Unix(s) => format!("unix://{s}"),
            Engine::Local => std::env::var("DOCKER_HOST")
                .unwrap_or_else(|_| "unix:///var/run/docker.sock".into()),
            Engine::Tls { url, .. } => url.clone(),
        }
    }
}

/// One host of the farm: a Docker engine and what its phones may use of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSpec {
    /// `[a-z0-9][a-z0-9-]{0,62}`: the phones placed on it are recorded with this name.
    pub name: String,
    pub engine: Engine,
    /// Where nodes reach its phones' adbd (and where bridge networking publishes it).
    pub adb_host: String,
    pub network: Network,
    /// The images it runs (empty: every docker image).
    pub images: Vec<String>,
    /// Its capacity: phones, milli-CPUs and MiB of memory its phones' specs may take (`None`:
    /// not limited by that measure).
    pub max_phones: Option<u64>,
    pub cpu_milli: Option<u64>,
    pub memory_mib: Option<u64>,
}

impl HostSpec {
    /// The one host of a backends file without `[[docker.hosts]]`.
    pub fn legacy(socket: Option<String>, network: Network) -> HostSpec {
        HostSpec {
            name: DEFAULT_HOST.into(),
            engine: socket.map_or(Engine::Local, Engine::Unix),
            adb_host: "127.0.0.1".into(),
            network,
            images: Vec::new(),
            max_phones: None,
            cpu_milli: None,
            memory_mib: None,
        }
    }

    pub fn runs(&self, image_id: &str) -> bool {
        self.images.is_empty() || self.images.iter().any(|i| i == image_id)
    }
}

/// The name of the host a backends file's legacy `[docker] socket` describes.
pub const DEFAULT_HOST: &str = "default";

#[derive(Clone, Debug)]
pub struct DockerConfig {
    /// The engines phones run on (at least one).
    pub hosts: Vec<HostSpec>,
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
    /// The scrcpy server jar for live screens (`None`: screencap and `input`).
    pub scrcpy: Option<ScrcpyServer>,
}

impl DockerConfig {
    /// One host, `default`, on the local engine's bridge network.
    pub fn new(images: Vec<DockerImage>) -> DockerConfig {
        DockerConfig {
            hosts: vec![HostSpec::legacy(None, Network::Bridge)],
            images,
            adb: AdbServer::default(),
            boot_timeout: Duration::from_secs(180),
            stop_timeout: Duration::from_secs(10),
            name_prefix: "cloudphone-".into(),
            scrcpy: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A phone on the host's network may not forward into it (the control plane's loopback:
    /// the database, the API); one on a bridge keeps its forwards, which reach its own
    /// loopback.
    #[test]
    fn forwards_into_the_hosts_network_are_refused_to_its_phones() {
        let host = Network::Host {
            adb_ports: (20000, 20099),
        };
        for root in [false, true] {
            let p = relay_policy(root, &host);
            assert!(!p.allows_raw(b"tcp:5432"));
            assert!(!p.allows_raw(b"localabstract:x"));
            assert!(p.allows_raw(b"localfilesystem:/dev/socket/x"));
            assert!(p.allows_raw(b"shell:id"));
            assert_eq!(p.allows_raw(b"root:"), root);
            assert!(!p.allows_raw(b"reboot:"));
            let bridge = relay_policy(root, &Network::Bridge);
            assert!(bridge.allows_raw(b"tcp:5432"));
            assert!(bridge.allows_raw(b"localabstract:x"));
            assert_eq!(bridge.allows_raw(b"root:"), root);
        }
    }
}
