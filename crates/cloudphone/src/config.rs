//! The settings of a node, as `cloudphone serve` takes them.

use std::path::PathBuf;
use std::time::Duration;

use cloudphone_api::Limits;
use cloudphone_engine::{EngineConfig, SweeperConfig, WatcherConfig, WebhookConfig};
use cloudphone_outbound::OutboundConfig;

use crate::listen::ListenConfig;
use crate::ops::MetricsAccess;

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: String,
    /// The object store, the simulated phones and the generated root key; with SQLite also the
    /// database. Nodes that share a PostgreSQL database share this directory too.
    pub data_dir: PathBuf,
    /// `postgres://...`: the store is that PostgreSQL database, which several nodes may share;
    /// `None`: SQLite in the data dir, owned by this one process.
    pub database_url: Option<String>,
    /// Record every simulated execution in the sim's ledger (tests).
    pub sim_record_executions: bool,
    pub region: String,
    /// Every simulated operation takes this long; `None`: realistic durations.
    pub sim_delay: Option<Duration>,
    /// What each simulated phone's files may take.
    pub sim_storage_bytes: u64,
    /// How many phones the `sim` host holds (`--sim-capacity-phones`); `None`: no limit.
    pub sim_capacity_phones: Option<u64>,
    /// The root access key (id, secret) from the environment, if given.
    pub root_key: Option<(String, String)>,
    /// The address clients reach this node at, for links in task results (default: the
    /// listening address).
    pub public_url: Option<String>,
    /// How long links in task results stay valid.
    pub link_ttl: Duration,
    /// How long a connection ticket (BatchGetAcpConnectionTicket) opens a phone's stream.
    pub stream_ticket_ttl: Duration,
    /// The stream server's caps, frame rate and frame size (`--stream-*`).
    pub streams: cloudphone_stream::StreamLimits,
    pub engine: EngineConfig,
    pub sweeper: SweeperConfig,
    pub limits: Limits,
    /// The backends file (`--backends`); `None`: the simulated fleet alone.
    pub backends: Option<crate::backends_file::BackendsFile>,
    pub watcher: WatcherConfig,
    /// The docker hosts' leases and monitors (`--host-lease-ms`).
    pub farm: crate::farm::FarmConfig,
    pub webhooks: WebhookConfig,
    /// Downloads and app imports from URLs tenants give (SendFile, CreateApp, InstallApp):
    /// which addresses, how long, how many bytes.
    pub fetch: OutboundConfig,
    /// Calls a second per access key on this node (0: no throttling), and the burst allowed.
    pub throttle_per_second: u32,
    pub throttle_burst: u32,
    /// PEM files of the certificate chain and its key: serve HTTPS instead of HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The listeners' deadlines and connection caps.
    pub connections: ListenConfig,
    /// Where `/metrics` is served, and the token it requires.
    pub metrics: MetricsAccess,
    /// The ADB gateway (`--adb-listen`, `--adb-ports`, `--adb-public-host`); `None`: no ADB
    /// endpoints are opened on this node.
    pub adb: Option<cloudphone_api::AdbGateway>,
    /// The ADB gateway's caps and idle timeout (with `adb`).
    pub adb_limits: AdbLimits,
    /// Where the objects live (`--object-store`); `None`: `<data-dir>/objects`.
    pub object_store: Option<crate::object_store_url::ObjectStoreUrl>,
    /// How simulated phones' files are kept (`--sim-state`); `None`: shared on PostgreSQL
    /// with an S3 object store, local otherwise.
    pub sim_state: Option<SimState>,
}

/// Where a simulated phone's files live (`--sim-state`, design §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SimState {
    /// In `<data-dir>/sim/<id>/` only (one node, or nodes sharing the data dir).
    Local,
    /// In the store and the object store; the data dir holds a cache.
    Shared,
}

/// What the ADB gateway lets clients hold (`--adb-max-connections`,
/// `--adb-max-connections-per-ip`, `--adb-idle-timeout-secs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdbLimits {
    pub max_connections: usize,
    /// 0: no cap of its own.
    pub max_connections_per_ip: usize,
    /// Zero: never.
    pub idle_timeout: Duration,
}

impl Default for AdbLimits {
    fn default() -> Self {
        AdbLimits {
            max_connections: 4096,
            max_connections_per_ip: 256,
            idle_timeout: Duration::from_secs(3600),
        }
    }
}

impl Config {
    /// The embedded defaults: SQLite and the simulated fleet under `./cloudphone-data`.
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            listen: "127.0.0.1:9723".into(),
            data_dir,
            database_url: None,
            sim_record_executions: false,
            region: "cn-hangzhou".into(),
            sim_delay: None,
            sim_storage_bytes: cloudphone_backends::DEFAULT_STORAGE_BYTES,
            sim_capacity_phones: None,
            root_key: None,
            public_url: None,
            link_ttl: Duration::from_secs(7 * 24 * 3600),
            stream_ticket_ttl: Duration::from_secs(120),
            streams: cloudphone_stream::StreamLimits::default(),
            engine: EngineConfig::default(),
            sweeper: SweeperConfig::default(),
            limits: Limits::default(),
            backends: None,
            watcher: WatcherConfig::default(),
            farm: crate::farm::FarmConfig::default(),
            webhooks: WebhookConfig::default(),
            fetch: OutboundConfig::default(),
            throttle_per_second: 1000,
            throttle_burst: 2000,
            tls: None,
            connections: ListenConfig::default(),
            metrics: MetricsAccess::default(),
            adb: None,
            adb_limits: AdbLimits::default(),
            object_store: None,
            sim_state: None,
        }
    }
}
