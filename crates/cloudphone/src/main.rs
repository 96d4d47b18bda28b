//! The `cloudphone` command: `serve` runs a node; `keys create` adds an access key to a data dir;
//! the client commands (`instances`, `groups`, `images`, `tasks`, `exec`, `apps`, `screenshot`,
//! `cp`) call a server as the SDK does; `configure` writes their profile; `completions` prints a
//! shell's completion script. (The benchmark is a binary of its own: `cloudphone-bench`.)

mod admin;
mod admin_hosts;
mod cli;
mod cp;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use cloudphone::{Application, Config};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "cloudphone",
    version,
    about = "A self-hosted control plane for fleets of Android cloud phones, speaking the Alibaba Cloud eds-aic API."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, the task engine and the backend.
    // Boxed: its many flags make it far larger than the other commands.
    Serve(Box<ServeArgs>),
    /// Developer tools (hidden).
    #[command(subcommand, hide = true)]
    Dev(DevCommand),
    /// Manage access keys in a data dir.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Accounts, access keys and the audit log, on the server's store (a data dir, or
    /// --database-url).
    Admin(admin::AdminArgs),
    /// Copy a file to or from a server's object store: `cp LOCAL oss://bucket/key` or
    /// `cp oss://bucket/key LOCAL`.
    Cp(cp::CpArgs),
    /// The task center: list, show and watch tasks on a server.
    #[command(subcommand)]
    Tasks(cli::tasks::TasksCommand),
    /// Phones: list them, start, stop, reboot and reset them.
    #[command(subcommand)]
    Instances(cli::instances::InstancesCommand),
    /// Instance groups: create, list, delete.
    #[command(subcommand)]
    Groups(cli::groups::GroupsCommand),
    /// Images a server offers.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Runs a shell command on phones and prints each one's output.
    Exec(cli::exec::ExecArgs),
    /// The app center, and installing, uninstalling, starting and stopping apps on phones.
    #[command(subcommand)]
    Apps(cli::apps::AppsCommand),
    /// Takes a screenshot of a phone and saves the PNG.
    Screenshot(cli::screenshot::ScreenshotArgs),
    /// Saves an endpoint, access key and region as a profile of the client's config file
    /// (~/.config/cloudphone/config.toml, owner-only), used when no flag or variable says
    /// otherwise.
    #[command(after_help = "\
Examples:
  cloudphone configure --endpoint http://10.0.0.5:9723 --access-key-id LTAI... --access-key-secret ...
  cloudphone configure --profile lab --region cn-shanghai
  cloudphone configure --profile tls --endpoint https://10.0.0.5:9723 --ca-file ./ca.pem
  cloudphone --help                       (then: cloudphone instances list --profile lab)

Precedence: flags, then environment variables (CLOUDPHONE_ENDPOINT, CLOUDPHONE_ACCESS_KEY_ID,
CLOUDPHONE_ACCESS_KEY_SECRET, CLOUDPHONE_REGION, CLOUDPHONE_CA_FILE, CLOUDPHONE_PROFILE), then the
profile. The file is
$CLOUDPHONE_CONFIG, else $XDG_CONFIG_HOME/cloudphone/config.toml, else ~/.config/cloudphone/config.toml.")]
    Configure(ConfigureArgs),
    /// Prints a completion script: `cloudphone completions bash > /etc/bash_completion.d/cloudphone`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Lists images (DescribeImageList).
    List(cli::images::ImagesList),
}

#[derive(Args)]
struct ConfigureArgs {
    /// The profile to write.
    #[arg(long, default_value = cli::config::DEFAULT_PROFILE)]
    profile: String,
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long)]
    access_key_id: Option<String>,
    #[arg(long)]
    access_key_secret: Option<String>,
    #[arg(long)]
    region: Option<String>,
    /// PEM certificates of a CA to trust for an https:// endpoint (a private CA).
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:9723")]
    listen: String,
    /// Where the object store, the simulated phones, the generated root key and (without
    /// --database-url) the SQLite database live. Nodes sharing a PostgreSQL database must
    /// share this directory too (for example over NFS).
    #[arg(long, default_value = "./cloudphone-data")]
    data_dir: PathBuf,
    /// Use this PostgreSQL database (postgres://user:password@host:port/db) instead of SQLite
    /// in the data dir. Several nodes may serve from one database at once.
    #[arg(long, env = "CLOUDPHONE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Where objects (uploads, results, screenshots, backups, APKs) live: file:///PATH, or
    /// s3://BUCKET[/PREFIX]?endpoint=URL&region=R&path_style=true&presign=false&ca_file=PEM
    /// with the access key in CLOUDPHONE_S3_ACCESS_KEY_ID and CLOUDPHONE_S3_SECRET_ACCESS_KEY
    /// (else AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), never in the URL. Nodes sharing a
    /// database share it. Default: <data-dir>/objects.
    #[arg(long, env = "CLOUDPHONE_OBJECT_STORE")]
    object_store: Option<cloudphone::object_store_url::ObjectStoreUrl>,
    /// Where simulated phones' files live: `shared` (the database and the object store, so
    /// nodes need no shared data dir; needs --database-url and an s3:// object store, and is
    /// the default with both) or `local` (the data dir; the default otherwise).
    #[arg(long, value_enum, env = "CLOUDPHONE_SIM_STATE")]
    sim_state: Option<cloudphone::config::SimState>,
    /// Append every simulated execution (task, attempt, instance, type, outcome) to
    /// <data-dir>/sim/executions.log, for tests that prove no attempt ran twice.
    #[arg(long, hide = true)]
    sim_record_executions: bool,
    /// The region this server answers for.
    #[arg(long, default_value = "cn-hangzhou")]
    region: String,
    /// Every simulated operation takes this many milliseconds (default: realistic durations).
    #[arg(long)]
    sim_delay_ms: Option<u64>,
    /// What each simulated phone's files may take on the server's disk, in bytes (`adb push`,
    /// SendFile, installs and restores past it fail with "No space left on device").
    #[arg(long, default_value_t = cloudphone_backends::DEFAULT_STORAGE_BYTES)]
    sim_storage_bytes: u64,
    /// How many simulated phones the farm holds (the `sim` host's capacity): past it,
    /// CreateAndroidInstanceGroup and UpgradeAndroidInstanceGroup fail with
    /// OperationDenied.NoStock, as on a full farm of real phones. Default: no limit.
    #[arg(long, env = "CLOUDPHONE_SIM_CAPACITY_PHONES")]
    sim_capacity_phones: Option<u64>,
    /// The URL clients reach this server at, used in the download links of task results
    /// (default: http://<listen address>).
    #[arg(long)]
    public_url: Option<String>,
    /// How long download links in task results stay valid, in seconds.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    link_ttl_secs: u64,
    /// How long a connection ticket (BatchGetAcpConnectionTicket) opens a phone's live screen
    /// after it was issued, in seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    stream_ticket_ttl_secs: u64,
    /// Viewers one phone may have at once (live stream sessions, over every node); more are
    /// refused (close code 4429).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    stream_max_viewers_per_phone: u32,
    /// Stream sessions (viewers' WebSockets) this node holds at once; more are refused (close
    /// code 4503).
    #[arg(long, default_value_t = 256)]
    stream_max_sessions: usize,
    /// Frames a second a live screen sends at most.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u8).range(1..=60))]
    stream_fps: u8,
    /// The long side of a live screen's frames at most, in pixels (smaller screens are not
    /// scaled up).
    #[arg(long, default_value_t = 1280, value_parser = clap::value_parser!(u16).range(64..=4096))]
    stream_max_size: u16,
    /// The largest file `cloudphone cp` may upload, in bytes (streamed to disk, never held in
    /// memory).
    #[arg(long, default_value_t = 5 << 30)]
    max_upload_bytes: u64,
    /// How many tasks this node runs at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How many of those slots one account's tasks may hold at once, so that one account's slow
    /// work (downloads from a slow server) leaves slots to the others (default: --concurrency
    /// less an eighth of it, at least 1 and at most 8 kept back; --concurrency turns it off).
    #[arg(long, value_name = "N")]
    account_slots: Option<usize>,
    /// How long a claimed task's lease lasts without a heartbeat, in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    lease_ms: u64,
    /// How long a docker host's or an ADB group's watcher keeps its lease without renewing it,
    /// in milliseconds: what a node killed outright watched is watched by another this long after.
    #[arg(long, default_value_t = 5_000, env = "CLOUDPHONE_HOST_LEASE_MS")]
    host_lease_ms: u64,
    /// Days that finished tasks are kept.
    #[arg(long, default_value_t = 30)]
    task_retention_days: u64,
    /// The wait before a failed webhook delivery is tried again, in milliseconds; doubled after
    /// each further failure (up to 10 minutes), 10 attempts in all.
    #[arg(long, default_value_t = 2000)]
    webhook_retry_ms: u64,
    /// Let webhooks point at loopback, private and link-local addresses (the server's own
    /// network); by default only public addresses are posted to.
    #[arg(long)]
    webhook_allow_private: bool,
    /// Let downloads and app imports (SendFile's DOWNLOAD_URL and OSS_BRIDGED, CreateApp's
    /// OssAppUrl, InstallApp of a CustomAppInfo DownloadUrl) reach loopback, private,
    /// link-local and every other non-public address (the server's own network); by default
    /// only public addresses are fetched from. Webhooks keep their own --webhook-allow-private.
    #[arg(long)]
    allow_private_fetch: bool,
    /// A non-public network that downloads and app imports may reach without
    /// --allow-private-fetch (an artifact server on the LAN): 10.1.2.3, 10.1.0.0/16, fd00::/8.
    /// Repeatable.
    #[arg(long, value_name = "CIDR")]
    allow_fetch_net: Vec<cloudphone_outbound::Net>,
    /// The largest file a download or app import may bring in, in bytes, checked while it
    /// streams: a larger one fails (FileTooLarge) and nothing of it is kept (default: the
    /// value of --max-upload-bytes).
    #[arg(long)]
    max_download_bytes: Option<u64>,
    /// How long a download or app import may take to connect, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    fetch_connect_timeout_ms: u64,
    /// How long the server of a download or app import may send nothing (before its answer,
    /// or in the middle of the file), in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    fetch_idle_timeout_ms: u64,
    /// How long a whole download or app import may take, in seconds.
    #[arg(long, default_value_t = 600)]
    fetch_timeout_secs: u64,
    /// The root access key id (with CLOUDPHONE_ACCESS_KEY_SECRET); without them a key is
    /// created on first start, stored in the data dir and printed once.
    #[arg(long, env = "CLOUDPHONE_ACCESS_KEY_ID", hide_env_values = true)]
    access_key_id: Option<String>,
    #[arg(long, env = "CLOUDPHONE_ACCESS_KEY_SECRET", hide_env_values = true)]
    access_key_secret: Option<String>,
    /// A TOML file saying which backends run which images: Docker containers (redroid) and
    /// the ADB server they are reached through (see README, "Real phones"). Without it, the
    /// simulated fleet alone.
    #[arg(long)]
    backends: Option<PathBuf>,
    /// How often phones of real backends are checked for having died outside any task, in
    /// milliseconds.
    #[arg(long, default_value_t = 2000)]
    watch_interval_ms: u64,
    /// Calls a second each access key may make on this node; more are refused with
    /// Throttling.User and x-acs-retry-after (0: no throttling).
    #[arg(long, default_value_t = 1000)]
    throttle_rps: u32,
    /// How many calls a key may make at once after being idle (at least --throttle-rps).
    #[arg(long, default_value_t = 2000)]
    throttle_burst: u32,
    /// The longest request URI (path and query), in bytes; longer ones get RequestURITooLong.
    /// The HTTP stack itself refuses targets over 64 KiB (with a bare 414).
    #[arg(long, default_value_t = 60 << 10)]
    max_uri_bytes: usize,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// How many instances (not DELETED) each account may have; more are refused with
    /// QuotaExceeded.Instances (0: no limit).
    #[arg(long, default_value_t = 0)]
    instance_quota: u64,
    /// How many ADB key pairs each account may have; more are refused with
    /// QuotaExceeded.KeyPairs.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    max_key_pairs: u64,
    /// A connection's first request head must arrive within this many seconds of its accept
    /// (a later one within this of its first byte); else the connection is closed.
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// The longest pause, in seconds, inside a request body (an upload) before the request
    /// fails and its connection closes.
    #[arg(long, default_value_t = 30)]
    body_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request, and a response (a
    /// download, a watch stream) may wait for a client that does not read.
    #[arg(long, default_value_t = 60)]
    idle_timeout_secs: u64,
    /// Seconds a TLS handshake may take.
    #[arg(long, default_value_t = 5)]
    handshake_timeout_secs: u64,
    /// Connections open at once (lowered to fit the open-file limit); over it, the oldest
    /// idle connection is closed to make room, or the new one when none is idle.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Connections open at once from one IP address (0: no cap); over it, that address's
    /// oldest idle connection is closed, or the new one when none is idle. Behind a reverse
    /// proxy every connection comes from the proxy: raise it or set 0.
    #[arg(long, default_value_t = 256)]
    max_connections_per_ip: usize,
    /// Serve /metrics (and /healthz, /readyz) on this address too, in plain HTTP: an address
    /// only the monitoring can reach.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// /metrics requires `Authorization: Bearer <token>`, and is served on the API's port too.
    /// Without this nor --metrics-listen, /metrics is not served.
    #[arg(long, env = "CLOUDPHONE_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Watch streams (GET /tasks/watch, /console/watch) open at once on this node; more are
    /// refused with Throttling.WatchStreams.
    #[arg(long, default_value_t = 1024)]
    max_watch_streams: usize,
    /// Watch streams one access key may have open at once on this node.
    #[arg(long, default_value_t = 32)]
    max_watch_streams_per_key: usize,
    /// The ports of the ADB gateway, LOW-HIGH: StartInstanceAdb gives each phone one of them
    /// (unique across the nodes of a shared database; give every node the same range). Without
    /// it, no ADB endpoint is opened and StartInstanceAdb is refused.
    #[arg(long, value_name = "LOW-HIGH", value_parser = cloudphone_api::AdbGateway::parse_ports)]
    adb_ports: Option<cloudphone_store::AdbPorts>,
    /// The address the ADB gateway's ports are opened on (with --adb-ports).
    #[arg(
        long,
        value_name = "ADDR",
        requires = "adb_ports",
        default_value = "127.0.0.1"
    )]
    adb_listen: std::net::IpAddr,
    /// The host clients reach the ADB gateway at, which ListInstanceAdbAttributes reports as
    /// ExternalIp (with --adb-ports; default: the --adb-listen address, which must then not be
    /// 0.0.0.0 or ::).
    #[arg(long, value_name = "HOST", requires = "adb_ports")]
    adb_public_host: Option<String>,
    /// ADB connections open at once on this node (lowered to what the open-file limit allows);
    /// one more is closed at once.
    #[arg(long, default_value_t = 4096)]
    adb_max_connections: usize,
    /// ADB connections open at once from one address, an IPv6 /64 counting as one (0: no cap
    /// of its own).
    #[arg(long, default_value_t = 256)]
    adb_max_connections_per_ip: usize,
    /// An ADB connection on which nothing moved for this long is closed (0: never).
    #[arg(long, default_value_t = 3600)]
    adb_idle_timeout_secs: u64,
}

#[derive(Subcommand)]
enum DevCommand {
    /// Write a minimal but real APK (zip with a binary AndroidManifest.xml) for tests and demos.
    MakeApk {
        #[arg(long)]
        package: String,
        #[arg(long, default_value_t = 1)]
        version_code: u64,
        #[arg(long, default_value = "1.0")]
        version_name: String,
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an access key for an account (the account is created if new) and print it as JSON.
    Create {
        #[arg(long, default_value = "./cloudphone-data")]
        data_dir: PathBuf,
        /// The PostgreSQL database of the servers, if they use one.
        #[arg(long, env = "CLOUDPHONE_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// The account the key acts for.
        #[arg(long)]
        account: String,
        /// The user name shown as the Operator of the key's tasks.
        #[arg(long)]
        user: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // File work of the simulated fleet and the object store goes to the blocking pool; its
        // default of 512 threads adds memory (stacks, allocator arenas) and no speed on a
        // machine of a few cores (with 10,000 phones rebooting at once it reached hundreds).
        .max_blocking_threads(64)
        .build()
        .context("starting the async runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // The TLS verifier logs each refused certificate as an error of its own; the
                // caller reports the failure itself, in its words.
                tracing_subscriber::EnvFilter::new("info,rustls_platform_verifier=off")
            }),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        end_quietly_on_a_closed_stdout();
    }
    match cli.command {
        Command::Dev(DevCommand::MakeApk {
            package,
            version_code,
            version_name,
            out,
        }) => cloudphone_apk::testing::apk(&out, &package, version_code, &version_name)
            .with_context(|| format!("writing {}", out.display())),
        Command::Serve(args) => serve(*args).await,
        Command::Keys(KeysCommand::Create {
            data_dir,
            database_url,
            account,
            user,
        }) => create_key(data_dir, database_url, account, user).await,
        Command::Cp(args) => cp::run(args).await,
        Command::Tasks(command) => exit_with(cli::tasks::run(command).await),
        Command::Instances(command) => exit_with(cli::instances::run(command).await),
        Command::Groups(command) => exit_with(cli::groups::run(command).await),
        Command::Images(ImagesCommand::List(args)) => exit_with(cli::images::list(args).await),
        Command::Exec(args) => exit_with(cli::exec::run(args).await),
        Command::Apps(command) => exit_with(cli::apps::run(command).await),
        Command::Screenshot(args) => exit_with(cli::screenshot::run(args).await),
        Command::Configure(args) => exit_with(configure(args)),
        Command::Admin(args) => exit_with(admin::run(args).await),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "cloudphone",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// Rust ignores SIGPIPE, so `cloudphone tasks list --all | head` would end in a panic on a
/// closed stdout; a client should end quietly instead, as Unix tools do. SIGPIPE itself stays
/// ignored: the HTTP and TLS stacks write to sockets with `writev`, which raises it when a
/// server closed first (a plain-HTTP server answering a TLS hello, a refused upload), and that
/// must be an error to report, not a silent death. So a panic while stdout or stderr has lost
/// its reader (a print to it failed) ends the process by SIGPIPE, as the default disposition
/// would have at that print.
fn end_quietly_on_a_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if lost_reader(libc::STDOUT_FILENO) || lost_reader(libc::STDERR_FILENO) {
            // SAFETY: SIG_DFL is a valid disposition; the process ends here by that signal.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
        }
        default(info)
    }));
}

/// Whether `fd` is a pipe or socket whose other end is closed (poll reports an error on it).
fn lost_reader(fd: libc::c_int) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready == 1 && poll.revents & libc::POLLERR != 0
}

/// How a client command ends: the reason in one line (the vendor's Code: Message), never a
/// backtrace, and an exit status that says whether everything asked for succeeded.
fn exit_with(result: anyhow::Result<i32>) -> ! {
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code)
}

fn configure(args: ConfigureArgs) -> anyhow::Result<i32> {
    let change = cli::config::FileProfile {
        endpoint: args.endpoint,
        access_key_id: args.access_key_id,
        access_key_secret: args.access_key_secret,
        region: args.region,
        ca_file: match args.ca_file {
            // Kept absolute: later calls may run from another directory.
            Some(p) => Some(
                std::path::absolute(&p)
                    .with_context(|| format!("the CA file {}", p.display()))?
                    .display()
                    .to_string(),
            ),
            None => None,
        },
    };
    if change == cli::config::FileProfile::default() {
        anyhow::bail!(
            "nothing to set: give --endpoint, --access-key-id, --access-key-secret, --region or \
             --ca-file"
        );
    }
    let path = cli::config::update(&args.profile, &change)?;
    println!("profile [{}] written to {}", args.profile, path.display());
    Ok(0)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Before anything is written: every file of the node is owner-only (see owner_only.rs).
    cloudphone::owner_only::restrict_new_files();
    let mut config = Config::new(args.data_dir);
    config.database_url = args.database_url;
    config.object_store = args.object_store;
    config.sim_state = args.sim_state;
    config.sim_record_executions = args.sim_record_executions;
    config.listen = args.listen;
    config.region = args.region;
    config.sim_delay = args.sim_delay_ms.map(Duration::from_millis);
    config.sim_storage_bytes = args.sim_storage_bytes;
    config.sim_capacity_phones = args.sim_capacity_phones;
    config.public_url = args.public_url;
    config.link_ttl = Duration::from_secs(args.link_ttl_secs.max(1));
    config.stream_ticket_ttl = Duration::from_secs(args.stream_ticket_ttl_secs);
    config.streams.max_viewers_per_phone = args.stream_max_viewers_per_phone;
    config.streams.max_sessions = args.stream_max_sessions.max(1);
    config.streams.fps = args.stream_fps;
    config.streams.max_size = args.stream_max_size;
    config.limits.max_upload_bytes = args.max_upload_bytes;
    config.limits.max_uri_bytes = args.max_uri_bytes.max(1024);
    config.limits.instance_quota = (args.instance_quota > 0).then_some(args.instance_quota);
    config.limits.max_key_pairs = args.max_key_pairs;
    config.throttle_per_second = args.throttle_rps;
    config.tls = args.tls_cert.zip(args.tls_key);
    let secs = |n: u64| Duration::from_secs(n.max(1));
    config.connections = cloudphone::listen::ListenConfig {
        handshake_timeout: secs(args.handshake_timeout_secs),
        header_timeout: secs(args.header_timeout_secs),
        body_timeout: secs(args.body_timeout_secs),
        idle_timeout: secs(args.idle_timeout_secs),
        max_connections: args.max_connections.max(1),
        max_connections_per_ip: args.max_connections_per_ip,
    };
    if args
        .metrics_token
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        anyhow::bail!("--metrics-token is empty");
    }
    config.metrics = cloudphone::ops::MetricsAccess {
        listen: args.metrics_listen,
        token: args.metrics_token,
    };
    config.limits.max_watch_streams = args.max_watch_streams.max(1);
    config.limits.max_watch_streams_per_key = args.max_watch_streams_per_key.max(1);
    config.throttle_burst = args.throttle_burst;
    config.engine.concurrency = args.concurrency.max(1);
    config.engine.account_slots = args.account_slots;
    config.engine.lease = Duration::from_millis(args.lease_ms.max(100));
    config.engine.heartbeat = config.engine.lease / 3;
    config.farm.lease = Duration::from_millis(args.host_lease_ms.max(1_500));
    // Lease owners must differ between nodes (72 random bits). It is also the HostId of error
    // answers, so it says nothing about the host (no process id).
    config.engine.node_id = format!("node-{}", cloudphone_core::ids::secret(12));
    config.backends = match &args.backends {
        Some(path) => Some(cloudphone::backends_file::BackendsFile::read(path)?),
        None => None,
    };
    config.watcher.interval = Duration::from_millis(args.watch_interval_ms.max(50));
    config.sweeper.task_retention = Duration::from_secs(args.task_retention_days * 24 * 3600);
    config.webhooks.first_retry = Duration::from_millis(args.webhook_retry_ms.max(10));
    config.webhooks.allow_private = args.webhook_allow_private;
    config.fetch = cloudphone_outbound::OutboundConfig {
        policy: cloudphone_outbound::AddressPolicy {
            allow_private: args.allow_private_fetch,
            allowed: args.allow_fetch_net,
        },
        connect_timeout: Duration::from_millis(args.fetch_connect_timeout_ms.max(1)),
        idle_timeout: Duration::from_millis(args.fetch_idle_timeout_ms.max(1)),
        total_timeout: Duration::from_secs(args.fetch_timeout_secs.max(1)),
        max_bytes: args.max_download_bytes.unwrap_or(args.max_upload_bytes),
        ..config.fetch
    };
    config.adb = match args.adb_ports {
        None => None,
        Some(ports) => {
            let public_host = match args.adb_public_host {
                Some(host) => host,
                None if args.adb_listen.is_unspecified() => anyhow::bail!(
                    "--adb-listen {} is every address: say with --adb-public-host where clients \
                     reach the gateway",
                    args.adb_listen
                ),
                None => args.adb_listen.to_string(),
            };
            cloudphone_api::AdbGateway::check_public_host(&public_host)
                .map_err(|e| anyhow::anyhow!("--adb-public-host: {e}"))?;
            Some(cloudphone_api::AdbGateway {
                listen: args.adb_listen,
                ports,
                public_host,
            })
        }
    };
    config.adb_limits = cloudphone::config::AdbLimits {
        max_connections: args.adb_max_connections.max(1),
        max_connections_per_ip: args.adb_max_connections_per_ip,
        idle_timeout: Duration::from_secs(args.adb_idle_timeout_secs),
    };
    config.root_key = match (args.access_key_id, args.access_key_secret) {
        (Some(id), Some(secret)) => Some((id, secret)),
        (None, None) => None,
        _ => anyhow::bail!(
            "set both CLOUDPHONE_ACCESS_KEY_ID and CLOUDPHONE_ACCESS_KEY_SECRET, or neither"
        ),
    };
    // Signals are watched before the address is announced, so a supervisor that stops the
    // server right after it started is heard.
    let shutdown = CancellationToken::new();
    let term = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    let int = signal(SignalKind::interrupt()).context("watching SIGINT")?;
    tokio::spawn(stop_on_signal(term, int, shutdown.clone()));
    let app = Application::build(config).await?;
    let key = app.root_key();
    if key.created {
        println!("Created the root access key (stored in the data dir; shown only this once):");
        println!("  AccessKeyId:     {}", key.key_id);
        println!("  AccessKeySecret: {}", key.secret);
    }
    if let Some(at) = app.metrics_address() {
        println!("cloudphone metrics on http://{at}/metrics");
    }
    println!(
        "cloudphone listening on {}://{}",
        app.scheme(),
        app.address()
    );
    app.run_until_stopped(shutdown).await
}

async fn stop_on_signal(mut term: Signal, mut int: Signal, shutdown: CancellationToken) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

async fn create_key(
    data_dir: PathBuf,
    database_url: Option<String>,
    account: String,
    user: Option<String>,
) -> anyhow::Result<()> {
    let store = cloudphone::open_store(&data_dir, database_url.as_deref()).await?;
    admin::create_key(store.as_ref(), &account, user).await
}
