//! Wiring of a cloudphone node: [`Application::build`] opens the data dir, the store (SQLite in
//! the data dir, or a PostgreSQL database that several nodes share) and the backend, makes sure
//! a root access key exists, binds the listener (so that the port is known, also when it was 0),
//! and [`Application::run_until_stopped`] runs the API, the engine and the sweeper until one
//! shutdown token is cancelled.

mod adb_devices;
mod adb_gateway;
pub mod backends_file;
pub mod config;
mod device_sink;
pub mod docker_hosts;
pub mod farm;
pub mod listen;
pub mod object_store_url;
pub mod ops;
pub mod owner_only;
mod root_key;
pub mod sim_host;
pub mod sim_share;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cloudphone_api::{AppState, TokenKey};
use cloudphone_backends::adb::Discovery;
use cloudphone_backends::{AdbBackend, DockerBackend, Fleet, SimBackend, SimConfig};
use cloudphone_engine::{Backend, Engine, Services, Sweeper, WebhookSender};
use cloudphone_outbound::Outbound;
use cloudphone_store::{PgStore, SqliteStore, Store};
use config::SimState;
use object_store_url::ObjectStoreUrl;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::Config;
pub use root_key::RootKey;

pub struct Application {
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    address: SocketAddr,
    router: axum::Router,
    /// The `--metrics-listen` socket and its routes.
    metrics: Option<(TcpListener, axum::Router)>,
    connections: listen::ListenConfig,
    engine: Engine,
    sweeper: Sweeper,
    webhooks: WebhookSender,
    /// This node's part in the ADB device groups: listing them, and recording those it leases.
    adb_devices: Option<adb_devices::AdbDevices>,
    /// The ADB gateway (`--adb-ports`), bound.
    gateway: Option<adb_gateway::NodeGateway>,
    /// This node's watch over the docker hosts.
    farm: Option<farm::Farm>,
    root_key: RootKey,
    /// The API's "shutting down" signal (open watch streams and stream sessions end on it).
    closing: CancellationToken,
    /// The stream server (`/streams/...`), whose heartbeat runs beside the API.
    streams: Arc<cloudphone_stream::Streams>,
    /// Held for the life of the node: one server per SQLite data dir (none on PostgreSQL,
    /// where nodes share the data dir).
    _lock: Option<std::fs::File>,
}

/// Opens the store: the PostgreSQL database at `database_url` when given, else the SQLite file
/// of `data_dir` (for the server and for offline admin commands).
pub async fn open_store(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = database_url {
        anyhow::ensure!(
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "--database-url must be a postgres:// URL (without it, SQLite in the data dir is used)"
        );
        let store = PgStore::connect(url)
            .await
            .with_context(|| format!("connecting to {}", redact(url)))?;
        return Ok(Arc::new(store));
    }
    owner_only::dir(data_dir)?;
    let path: PathBuf = data_dir.join("cloudphone.db");
    // The database holds every access key's secret: nobody else may read it. SQLite gives its
    // journal files the database's own mode, so these two files settle it for all of them.
    for file in [path.clone(), data_dir.join("cloudphone.nonces.db")] {
        create_owner_only(&file)?;
    }
    let store = SqliteStore::open(&path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(Arc::new(store))
}

/// Creates `path` empty and owner-only (0600) if it does not exist, and takes group and other
/// permissions off it if it does.
fn create_owner_only(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))
            .with_context(|| format!("making {} owner-only", path.display()))?;
    }
    Ok(())
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let lock = match config.database_url {
            None => Some(lock_data_dir(&config.data_dir)?),
            Some(_) => {
                owner_only::dir(&config.data_dir)?;
                None
            }
        };
        let store = open_store(&config.data_dir, config.database_url.as_deref()).await?;
        let root_key = root_key::ensure(store.as_ref(), &config).await?;
        // A process that owns its store knows that leases left by a previous run are dead; on a
        // shared store they may be another node's, and the sweeper takes over those that expire.
        if !store.shared() {
            let orphaned = store.expire_all_leases().await?;
            if orphaned > 0 {
                info!(orphaned, "resuming tasks left running by the previous run");
            }
        }
        let token_secret = cloudphone_core::ids::secret(48);
        let token_key = store
            .setting_or_init("pagination-token-key", &token_secret)
            .await?;
        // Shared by every node of a store, as the pagination key: a ticket one node issued
        // opens on any other.
        let ticket_key = store
            .setting_or_init("stream-ticket-key", &cloudphone_core::ids::secret(48))
            .await?;
        let Backends {
            backend,
            adb,
            docker,
            sim,
        } = backends(&config).await?;
        // The hosts of this node in the store (the `sim` pseudo-host, the docker engines),
        // before the node serves: placement needs them; and which phones the API places where.
        let node = cloudphone_store::NodeInfo {
            id: config.engine.node_id.clone(),
            started_ms: cloudphone_core::time::now_ms(),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        let sim_host = sim_host::sim_on(&config)
            .then(|| sim_host::sim_host_config(config.sim_capacity_phones));
        let farm = match docker {
            Some(docker) => Some(
                farm::Farm::start(store.clone(), docker, node, sim_host, config.farm.clone())
                    .await
                    .context("recording the docker hosts")?,
            ),
            None => {
                if let Some(host) = sim_host {
                    let now = cloudphone_core::time::now_ms();
                    let adopted = store.sync_hosts(&node, &[host], now).await?;
                    info!(adopted, capacity = ?config.sim_capacity_phones, "the sim host is recorded");
                }
                None
            }
        };
        let placement = sim_host::placement(&config);
        // Every node drives any device; one node at a time records each group's (§6.6).
        let adb_devices = match adb {
            Some(adb) => {
                let discover = config
                    .backends
                    .as_ref()
                    .map_or(Duration::from_secs(2), |b| {
                        Duration::from_millis(b.adb.discover_interval_ms.max(50))
                    });
                let discovery = Discovery {
                    sink: Arc::new(device_sink::StoreSink(store.clone())),
                    adb: adb.clone(),
                    account_id: root_key::ROOT_ACCOUNT.into(),
                    region: config.region.clone(),
                };
                let pace = adb_devices::AdbDevicesConfig {
                    discover,
                    watch: config.watcher.interval,
                    lease: config.farm.lease,
                    tick: config.farm.tick,
                };
                Some(
                    adb_devices::AdbDevices::start(
                        store.clone(),
                        adb,
                        discovery,
                        config.engine.node_id.clone(),
                        pace,
                    )
                    .await,
                )
            }
            None => None,
        };
        let tls = match &config.tls {
            Some((cert, key)) => Some(tls::load(cert, key)?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let address = listener.local_addr()?;
        let metrics_listener = match &config.metrics.listen {
            Some(at) => Some(
                TcpListener::bind(at)
                    .await
                    .with_context(|| format!("binding --metrics-listen {at}"))?,
            ),
            None => None,
        };
        let open_files = listen::fds::raise_open_file_limit();
        let mut connections = config.connections.clone();
        connections.max_connections =
            listen::fds::connection_cap(connections.max_connections, open_files);
        info!(
            open_files,
            max_connections = connections.max_connections,
            "connection limits"
        );
        // Links in task results point here; behind a proxy, --public-url says where that is.
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{address}"));
        let link_secret = cloudphone_core::ids::secret(48);
        let link_key = store
            .setting_or_init("object-link-key", &link_secret)
            .await?;
        let objects = Arc::new(
            object_store_url::open(
                config.object_store.as_ref(),
                &config.data_dir,
                &*store,
                link_key.as_bytes(),
                public_url.trim_end_matches('/').to_string(),
            )
            .await?,
        );
        // Simulated phones without a shared file system (`--sim-state shared`, design §7):
        // the default where nodes can share them so (a shared database and an s3:// store),
        // since there nodes need share nothing else; `--sim-state local` keeps them in the data
        // dir (one node, or nodes sharing the data dir).
        let can_share =
            store.shared() && matches!(config.object_store, Some(ObjectStoreUrl::S3(_)));
        let sim_state = config.sim_state.unwrap_or(if can_share {
            SimState::Shared
        } else {
            SimState::Local
        });
        if sim_state == SimState::Shared && !can_share {
            anyhow::bail!(
                "--sim-state shared keeps simulated phones in the database and the object store: \
                 it needs --database-url and an s3:// --object-store"
            );
        }
        if sim_state == SimState::Shared {
            info!("simulated phones are shared through the store and the object store");
            sim.set_share(Arc::new(sim_share::StoreShare::new(
                store.clone(),
                objects.internal(),
                config.engine.node_id.clone(),
            )));
        }
        let scratch = config.data_dir.join("tmp");
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        // Every connection made on a tenant's behalf goes through the outbound client: its
        // address filter, re-checked redirects, timeouts and byte cap (docs/design.md §8).
        // Every reqwest client of this binary is built through the client crate's TLS setup:
        // reqwest with `rustls-no-provider` panics on a client built without one.
        let fetch = Outbound::new(config.fetch.clone(), cloudphone_client::tls::builder(None)?)?;
        let services = Services {
            objects: objects.clone(),
            fetch: fetch.clone(),
            scratch,
            link_ttl: config.link_ttl,
            region: config.region.clone(),
        };
        let engine = Engine::new(
            store.clone(),
            backend.clone(),
            services,
            config.engine.clone(),
        );
        let sweeper = Sweeper::new(store.clone(), config.sweeper.clone(), engine.waker());
        // A receiver's redirect is its answer (a failure), never followed elsewhere.
        let webhook_targets = Outbound::new(
            config.webhooks.outbound(),
            cloudphone_client::tls::builder(None)?,
        )?;
        let webhooks = WebhookSender::new(
            store.clone(),
            webhook_targets.clone(),
            config.webhooks.clone(),
        );
        let closing = CancellationToken::new();
        let stream_revocations = cloudphone_stream::StreamRevocations::default();
        let tickets = cloudphone_stream::TicketKey::new(ticket_key.as_bytes());
        let streams = cloudphone_stream::Streams::new(
            store.clone(),
            backend.clone(),
            tickets.clone(),
            stream_revocations.clone(),
            config.streams.clone(),
            config.engine.node_id.clone(),
            closing.clone(),
        );
        let adb_revocations = cloudphone_api::AdbRevocations::default();
        let gateway = match &config.adb {
            Some(settings) => Some(
                adb_gateway::NodeGateway::bind(
                    settings,
                    &config.adb_limits,
                    open_files,
                    store.clone(),
                    backend.clone(),
                    &adb_revocations,
                )
                .await
                .context("starting the ADB gateway")?,
            ),
            None => None,
        };
        let state = Arc::new(AppState {
            store: store.clone(),
            backend,
            objects,
            wake: engine.waker(),
            stops: engine.stops(),
            fetch,
            webhook_targets,
            region: config.region.clone(),
            tokens: TokenKey::new(token_key.as_bytes()),
            host_id: config.engine.node_id.clone(),
            limits: config.limits.clone(),
            keys: Default::default(),
            throttle: cloudphone_api::Throttle::new(
                config.throttle_per_second,
                config.throttle_burst,
            ),
            https: tls.is_some(),
            closing: closing.clone(),
            watches: Default::default(),
            adb: config.adb.clone(),
            adb_revocations,
            tickets,
            ticket_ttl: config.stream_ticket_ttl,
            stream_revocations,
            placement,
        });
        let metrics =
            metrics_listener.map(|l| (l, ops::metrics_routes(store.clone(), &config.metrics)));
        Ok(Application {
            listener,
            tls,
            address,
            router: ops::routes(store.clone(), &config.metrics)
                .merge(cloudphone_console::routes(state.clone()))
                .merge(cloudphone_stream::routes(streams.clone()))
                .merge(cloudphone_api::router(state)),
            metrics,
            connections,
            engine,
            sweeper,
            webhooks,
            adb_devices,
            gateway,
            farm,
            root_key,
            closing,
            streams,
            _lock: lock,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The `--metrics-listen` address, once bound.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn root_key(&self) -> &RootKey {
        &self.root_key
    }

    /// Serves until `shutdown` is cancelled; then stops taking requests and work, and waits for
    /// the engine's grace period.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let engine = tokio::spawn(self.engine.run(shutdown.clone()));
        let sweeper = tokio::spawn(self.sweeper.run(shutdown.clone()));
        let webhooks = tokio::spawn(self.webhooks.run(shutdown.clone()));
        let adb_devices = self
            .adb_devices
            .map(|d| tokio::spawn(d.run(shutdown.clone())));
        let gateway = self.gateway.map(|g| tokio::spawn(g.run(shutdown.clone())));
        let farm = self.farm.map(|f| tokio::spawn(f.run(shutdown.clone())));
        let recheck = tokio::spawn(cloudphone_stream::recheck::run(
            self.streams.clone(),
            shutdown.clone(),
        ));
        let stop = shutdown.clone();
        let closing = self.closing.clone();
        let streams_end = shutdown.clone();
        tokio::spawn(async move {
            streams_end.cancelled().await;
            closing.cancel();
        });
        let metrics = self.metrics.map(|(listener, router)| {
            tokio::spawn(listen::serve(
                listener,
                None,
                router,
                self.connections.clone(),
                stop.clone(),
            ))
        });
        listen::serve(self.listener, self.tls, self.router, self.connections, stop).await;
        if let Some(m) = metrics {
            let _ = m.await;
        }
        shutdown.cancel();
        let _ = engine.await;
        let _ = sweeper.await;
        let _ = webhooks.await;
        if let Some(d) = adb_devices {
            let _ = d.await;
        }
        if let Some(g) = gateway {
            let _ = g.await;
        }
        if let Some(f) = farm {
            let _ = f.await;
        }
        let _ = recheck.await;
        Ok(())
    }
}

struct Backends {
    backend: Arc<dyn Backend>,
    /// The adb backend, whose devices discovery records.
    adb: Option<Arc<AdbBackend>>,
    /// The docker farm, whose hosts this node helps watch.
    docker: Option<Arc<DockerBackend>>,
    /// The simulated fleet, whose phones' files are shared per `--sim-state`.
    sim: Arc<SimBackend>,
}

/// The node's backend: the simulated fleet, and the docker and adb backends when the backends
/// file has them, behind one router.
async fn backends(config: &Config) -> anyhow::Result<Backends> {
    let sim = Arc::new(
        SimBackend::new(SimConfig {
            root: config.data_dir.join("sim"),
            delay: config.sim_delay,
            record_executions: config.sim_record_executions,
        })
        .with_storage_capacity(config.sim_storage_bytes),
    );
    let Some(file) = &config.backends else {
        return Ok(Backends {
            backend: sim.clone(),
            adb: None,
            docker: None,
            sim,
        });
    };
    let mut members: Vec<Arc<dyn Backend>> = Vec::new();
    if file.sim {
        members.push(sim.clone());
    }
    let docker = match file.docker_config()? {
        Some(docker) => {
            let (images, hosts) = (docker.images.len(), docker.hosts.len());
            let backend = Arc::new(
                DockerBackend::connect(docker)
                    .await
                    .map_err(|e| anyhow::anyhow!("the docker backend: {e}"))?,
            );
            info!(images, hosts, "docker backend ready");
            members.push(backend.clone());
            Some(backend)
        }
        None => None,
    };
    let groups = file.adb_groups()?;
    let adb = if groups.is_empty() {
        None
    } else {
        let adb = Arc::new(
            AdbBackend::new(
                groups,
                Duration::from_secs(file.adb.boot_timeout_secs.max(1)),
            )
            .with_scrcpy(file.scrcpy_server()?),
        );
        members.push(adb.clone());
        Some(adb)
    };
    anyhow::ensure!(
        !members.is_empty(),
        "the backends file leaves no backend (sim = false and nothing else)"
    );
    let fleet = Fleet::new(members).map_err(|e| anyhow::anyhow!("the backends file: {e}"))?;
    Ok(Backends {
        backend: Arc::new(fleet),
        adb,
        docker,
        sim,
    })
}

fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use fs2::FileExt;
    owner_only::dir(dir)?;
    let path = dir.join("cloudphone.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.try_lock_exclusive()
        .with_context(|| format!("another cloudphone server is using {}", dir.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://cp:s3cret@db:5432/cloudphone"),
            "postgres://cp:***@db:5432/cloudphone"
        );
        assert_eq!(redact("postgres://cp@db/x"), "postgres://cp@db/x");
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
    }
}
