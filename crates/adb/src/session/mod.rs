//! One host connection served as an adbd would serve it: the handshake under a deadline, then
//! the host's streams, each OPEN handed to a [`Device`] and run as a task of its own, so that
//! a slow service (or a slow relay behind it) never holds up another stream. The connection
//! ends when the host leaves, when it breaks the protocol (bad magic, a length over the limit,
//! a second WRTE before our OKAY, an OKAY for no WRTE of ours), when the handshake overruns
//! its deadline or its message and attempt caps, when the host stops taking what we send, or
//! at once when the owner calls [`ConnectionHandle::close`]; each ends this connection only.
//!
//! What a host can make a connection hold is bounded by [`Config`]: streams (`max_streams`,
//! counting a stream until its service task has ended), device opens running at once
//! (`max_concurrent_opens`), payload bytes waiting for the host (`max_buffered_bytes`, a
//! budget every stream takes from before it queues), and time without progress
//! (`handshake_timeout`, `write_stall_timeout`). The owner reads the counters from its
//! [`ConnectionHandle`].

mod conn;
mod shared;
mod stream;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, BufReader};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::keys::AdbPublicKey;
use crate::proto::banner::{Banner, BannerError, DeviceBanner};
use crate::proto::handshake::{DEFAULT_MAX_MESSAGES, HandshakeError, TOKEN_SIZE};
use crate::proto::packet::{Command, HEADER_LEN, MAX_PAYLOAD, MAX_PAYLOAD_V1, PacketError};
use conn::Conn;
pub use shared::{DynDevice, SharedDevice};
pub use stream::{AdbStream, StreamReader, StreamWriter};

mod buffer;
mod handshake;
mod meters;
mod reader;
mod writer;

pub use buffer::WriteBuffer;

/// What a connection is allowed.
#[derive(Debug, Clone)]
pub struct Config {
    pub banner: DeviceBanner,
    /// The largest payload we accept and announce, kept within 4096 and 1 MiB. adbd 29
    /// announces 1 MiB; 256 KiB keeps what a connection buffers per stream small with many
    /// streams.
    pub max_payload: u32,
    /// From the call to [`serve_connection`] to our CNXN. A host that cannot sign stays
    /// unauthorized (stock adb's `unauthorized` state) until this runs out, then the
    /// connection is dropped.
    pub handshake_timeout: Duration,
    /// Streams at once; an OPEN beyond it is refused (CLSE), the connection lives on. A
    /// stream counts from its OPEN until its service task has ended, whoever closed it.
    pub max_streams: usize,
    /// Refused signatures and offered public keys before the connection is dropped (adb
    /// tries each of its keys once, then offers one).
    pub max_auth_attempts: u32,
    /// Messages before the host is online, whatever they are; more drop the connection.
    pub max_handshake_messages: u32,
    /// Payload bytes the connection holds for the host at once, all streams together (WRTEs
    /// queued for the socket and what streams gather while a WRTE awaits its OKAY). A stream
    /// that would go over waits, as it waits for an OKAY. Raised to `max_payload` if below.
    pub max_buffered_bytes: usize,
    /// A host that takes no byte from the socket for this long while messages wait for it is
    /// dropped.
    pub write_stall_timeout: Duration,
    /// The device's `open` running at once for one connection (a relay's opens a connection
    /// to the ADB server each); further OPENs wait their turn, counted in `max_streams`.
    pub max_concurrent_opens: usize,
}

impl Config {
    pub fn new(banner: DeviceBanner) -> Config {
        Config {
            banner,
            max_payload: 256 * 1024,
            handshake_timeout: Duration::from_secs(20),
            max_streams: 256,
            max_auth_attempts: 16,
            max_handshake_messages: DEFAULT_MAX_MESSAGES,
            max_buffered_bytes: 4 * 1024 * 1024,
            write_stall_timeout: Duration::from_secs(30),
            max_concurrent_opens: 16,
        }
    }
}

/// Decides who may connect. The gateway implements it with the keys attached to the phone.
pub trait Authorizer: Send + Sync {
    /// Who authenticated (a key pair's id, say), returned in the [`Report`].
    type Identity: Send + 'static;

    /// Asked once per connection, before the host's CNXN is answered: when false the host is
    /// let in without AUTH.
    fn auth_required(&self) -> impl Future<Output = bool> + Send;

    /// Whether `signature` is a valid signature of `token` by a key allowed in (adbd: RSA
    /// PKCS#1 v1.5 over the token as a SHA-1 digest). A key the host merely offers is never
    /// enough: see [`Authorizer::public_key_offered`]. Called for each signature, at most
    /// `max_auth_attempts` per connection, unless [`Authorizer::keys_for_connection`] lists
    /// the keys; an implementation that reads keys from somewhere slow should list them there
    /// or keep what it read for the connection.
    fn verify(
        &self,
        token: &[u8; TOKEN_SIZE],
        signature: &[u8],
    ) -> impl Future<Output = Option<Self::Identity>> + Send;

    /// The host has no key we accepted and offers this `adbkey.pub` text. Informational
    /// (audit): the connection stays unauthorized whatever this does. Called at most
    /// `max_auth_attempts` times per connection.
    fn public_key_offered(&self, key: &[u8]) -> impl Future<Output = ()> + Send {
        let _ = key;
        async {}
    }

    /// The keys allowed in, each with the identity it proves, for an authorizer that would
    /// rather load them once per connection than on every signature (a store read, say).
    /// Asked at most once per connection, when the host's first signature arrives (a host
    /// that never signs costs nothing); the session then checks that signature and the
    /// connection's later ones against the keys itself ([`AdbPublicKey::verify_auth`]) and
    /// never calls [`Authorizer::verify`]. `None`, the default, leaves every signature to
    /// `verify`. A key taken away after this is not seen by the connection's later attempts:
    /// the owner closes the connection ([`ConnectionHandle::close`]) if that matters.
    fn keys_for_connection(
        &self,
    ) -> impl Future<Output = Option<Vec<(AdbPublicKey, Self::Identity)>>> + Send {
        async { None }
    }
}

/// No authentication: every host is let in.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAuth;

impl Authorizer for NoAuth {
    type Identity = ();

    async fn auth_required(&self) -> bool {
        false
    }

    async fn verify(&self, _token: &[u8; TOKEN_SIZE], _signature: &[u8]) -> Option<()> {
        None
    }
}

type ServiceFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What answers an opened stream: run once with it, until the service is done. The stream is
/// closed (CLSE) when the service drops it.
pub struct Service(Box<dyn FnOnce(AdbStream) -> ServiceFuture + Send + 'static>);

impl Service {
    pub fn new<F, Fut>(run: F) -> Service
    where
        F: FnOnce(AdbStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Service(Box::new(move |s| Box::pin(run(s))))
    }
}

/// Why a device refused to open a service. The host only sees the stream closed (adb has no
/// way to carry a reason), so this is for logs.
#[derive(Debug, Clone, Error)]
#[error("{0}")]
pub struct OpenError(pub String);

/// The services of one phone.
pub trait Device: Send + Sync + 'static {
    /// Opens `service` (the OPEN's name: `shell,v2,raw:ls`, `sync:`, `exec:cmd ...`; see
    /// [`crate::proto::service::ServiceName`]). Runs on a task of its own; the host waits for
    /// the answer, other streams do not.
    fn open(&self, service: &str) -> impl Future<Output = Result<Service, OpenError>> + Send;
}

#[derive(Debug, Default)]
struct HandleInner {
    cancel: CancellationToken,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    meters: meters::Meters,
}

/// The owner's hold on a live connection: close it, read its byte counters (every byte on the
/// wire, headers included).
#[derive(Debug, Clone, Default)]
pub struct ConnectionHandle(Arc<HandleInner>);

impl ConnectionHandle {
    pub fn new() -> ConnectionHandle {
        ConnectionHandle::default()
    }

    /// Ends the connection now: the socket is dropped and every stream's service is stopped.
    pub fn close(&self) {
        self.0.cancel.cancel();
    }

    pub fn is_closed(&self) -> bool {
        self.0.cancel.is_cancelled()
    }

    /// Waits until the connection is closed by [`ConnectionHandle::close`].
    pub async fn closed(&self) {
        self.0.cancel.cancelled().await
    }

    /// Bytes received from the host.
    pub fn bytes_in(&self) -> u64 {
        self.0.bytes_in.load(Ordering::Relaxed)
    }

    /// Bytes sent to the host.
    pub fn bytes_out(&self) -> u64 {
        self.0.bytes_out.load(Ordering::Relaxed)
    }

    fn add_in(&self, n: usize) {
        self.0.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn add_out(&self, n: usize) {
        self.0.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[derive(Debug, Error)]
pub enum SessionError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Packet(#[from] PacketError),
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error(transparent)]
    Banner(#[from] BannerError),
    #[error("no handshake within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("the host wrote to stream {0} again before our OKAY")]
    FlowControl(u32),
    #[error("the host sent {0:?}, which this device never asked for")]
    Unexpected(Command),
    #[error("no randomness for the AUTH token: {0}")]
    Random(String),
    /// The host acknowledged a stream on which no WRTE of ours was waiting: accepting it would
    /// let the stream queue more than one WRTE while the host reads nothing.
    #[error("the host sent OKAY for stream {0}, which had no WRTE in flight")]
    UnexpectedOkay(u32),
    /// Messages waited for the host, which took no byte of them for this long.
    #[error("the host took nothing from the connection for {0:?}")]
    Stalled(Duration),
    /// [`serve_connection_with`]: the device could not be had once the host was in.
    #[error("no device: {0}")]
    Unavailable(OpenError),
}

/// How a connection ended.
#[derive(Debug)]
pub enum End {
    /// The host closed the connection.
    HostClosed,
    /// [`ConnectionHandle::close`].
    Closed,
    Failed(SessionError),
}

/// What the owner learns when a connection ends (for its audit).
#[derive(Debug)]
pub struct Report<I> {
    /// Who authenticated; `None` without authentication or when nobody did.
    pub identity: Option<I>,
    /// The host's banner, once it sent one.
    pub host: Option<Banner>,
    pub streams_opened: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub end: End,
}

/// A device found once the host is in ([`serve_connection_with`]): its services and, when it
/// has a banner of its own, the banner our CNXN carries (otherwise `Config::banner`).
pub struct ResolvedDevice<D> {
    pub device: Arc<D>,
    pub banner: Option<DeviceBanner>,
}

impl<D> ResolvedDevice<D> {
    /// `device`, announced with `Config::banner`.
    pub fn new(device: Arc<D>) -> ResolvedDevice<D> {
        ResolvedDevice {
            device,
            banner: None,
        }
    }

    /// `device`, announced with `banner`.
    pub fn with_banner(device: Arc<D>, banner: DeviceBanner) -> ResolvedDevice<D> {
        ResolvedDevice {
            device,
            banner: Some(banner),
        }
    }
}

/// Serves one host connection until it ends; never fails as a whole (the [`Report`] says how
/// it ended). `io` is usually an accepted `TcpStream`.
///
/// The handshake deadline (`Config::handshake_timeout`) starts when this is called, not when
/// the connection was accepted: call it at once after accepting, with nothing slow before it
/// (no store read, no backend lookup), or an unauthenticated client can hold the caller's
/// resources for longer than the deadline says. When the device takes work to find (a
/// backend's route to the phone, the phone's features from its ADB server), use
/// [`serve_connection_with`], which looks it up only once the host is in.
pub async fn serve_connection<S, A, D>(
    io: S,
    config: &Config,
    authorizer: &A,
    device: Arc<D>,
    handle: ConnectionHandle,
) -> Report<A::Identity>
where
    S: AsyncRead + AsyncWrite + Send,
    A: Authorizer,
    D: Device,
{
    let resolve = move || async move { Ok(ResolvedDevice::new(device)) };
    serve_connection_with(io, config, authorizer, resolve, handle).await
}

/// [`serve_connection`] with the device found only after the host is in: `resolve` is called
/// once the host has authenticated (or, without authentication, once its CNXN is read), and
/// before our CNXN, which carries the banner it returns; a host that never gets in never
/// causes a lookup. Its time does not count against the handshake deadline: bound it
/// yourself (the host waits for our CNXN meanwhile), and [`ConnectionHandle::close`] ends it
/// at once. When it fails, the connection ends with [`SessionError::Unavailable`].
pub async fn serve_connection_with<S, A, F, Fut, D>(
    io: S,
    config: &Config,
    authorizer: &A,
    resolve: F,
    handle: ConnectionHandle,
) -> Report<A::Identity>
where
    S: AsyncRead + AsyncWrite + Send,
    A: Authorizer,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Result<ResolvedDevice<D>, OpenError>> + Send,
    D: Device,
{
    let deadline = Instant::now() + config.handshake_timeout;
    let (rd, wr) = tokio::io::split(io);
    let max_payload = config.max_payload.clamp(MAX_PAYLOAD_V1, MAX_PAYLOAD);
    let (conn, outgoing) = Conn::new(
        max_payload,
        config.max_buffered_bytes,
        config.max_concurrent_opens,
        handle.clone(),
    );
    let mut tasks = JoinSet::new();
    let mut seen = Seen {
        identity: None,
        host: None,
        streams_opened: 0,
    };
    let end = {
        let side = ReadSide {
            config,
            authorizer,
            conn: &conn,
            handle: &handle,
            max_payload,
            deadline,
        };
        let reader = side.run(rd, resolve, &mut tasks, &mut seen);
        let writer = writer::write_loop(wr, outgoing, &conn, &handle, config.write_stall_timeout);
        tokio::select! {
            _ = handle.0.cancel.cancelled() => End::Closed,
            r = reader => r.unwrap_or_else(ended),
            r = writer => match r {
                Ok(()) => End::HostClosed,
                Err(e) => ended(e),
            },
        }
    };
    tasks.abort_all();
    conn.shut();
    match &end {
        // Not a warning: anyone who can reach the port can cause it.
        End::Failed(e) => info!(error = %e, "adb connection dropped"),
        _ => debug!(?end, "adb connection ended"),
    }
    Report {
        identity: seen.identity,
        host: seen.host,
        streams_opened: seen.streams_opened,
        bytes_in: handle.bytes_in(),
        bytes_out: handle.bytes_out(),
        end,
    }
}

/// A connection the host dropped mid-message is a host leaving, not a fault of the protocol.
fn ended(e: SessionError) -> End {
    match &e {
        SessionError::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
            ) =>
        {
            End::HostClosed
        }
        _ => End::Failed(e),
    }
}

struct Seen<I> {
    identity: Option<I>,
    host: Option<Banner>,
    streams_opened: u64,
}

/// What reads from the host: the handshake, the device, then the streams.
struct ReadSide<'a, A> {
    config: &'a Config,
    authorizer: &'a A,
    conn: &'a Arc<Conn>,
    handle: &'a ConnectionHandle,
    max_payload: u32,
    deadline: Instant,
}

/// What the reader buffers before the host is in: a handshake message is at most 4096 bytes,
/// so a connection that never authenticates costs little.
const HANDSHAKE_READ: usize = HEADER_LEN + MAX_PAYLOAD_V1 as usize;
/// What it buffers once online.
const ONLINE_READ: usize = 64 * 1024;

impl<A: Authorizer> ReadSide<'_, A> {
    async fn run<R, F, Fut, D>(
        self,
        rd: R,
        resolve: F,
        tasks: &mut JoinSet<()>,
        seen: &mut Seen<A::Identity>,
    ) -> Result<End, SessionError>
    where
        R: AsyncRead + Unpin,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<ResolvedDevice<D>, OpenError>>,
        D: Device,
    {
        let mut r = BufReader::with_capacity(HANDSHAKE_READ, rd);
        let Some(admitted) = handshake::handshake(
            &mut r,
            self.max_payload,
            self.config,
            self.authorizer,
            self.conn,
            self.handle,
            &mut seen.identity,
            self.deadline,
        )
        .await?
        else {
            return Ok(End::HostClosed);
        };
        let negotiated = admitted.negotiated;
        let mut cnxn = admitted.cnxn;
        let resolved = resolve().await.map_err(SessionError::Unavailable)?;
        if let Some(banner) = &resolved.banner {
            cnxn.payload = banner.encode()?.into_bytes();
        }
        info!(
            host_features = ?negotiated.host.features,
            max_payload = negotiated.max_payload,
            "adb host online"
        );
        seen.host = Some(negotiated.host);
        self.conn
            .max_payload
            .store(negotiated.max_payload, Ordering::Relaxed);
        self.conn.outbox.send(cnxn);
        // A larger buffer from now on, keeping what the small one had read ahead.
        let ahead = r.buffer().to_vec();
        let mut r = BufReader::with_capacity(
            ONLINE_READ,
            std::io::Cursor::new(ahead).chain(r.into_inner()),
        );
        let online = reader::Online {
            config: self.config,
            device: &resolved.device,
            conn: self.conn,
            handle: self.handle,
            max_payload: negotiated.max_payload,
            version: negotiated.version,
        };
        reader::streams(&mut r, online, tasks, &mut seen.streams_opened).await
    }
}

/// The gateway spawns each connection: its future must be `Send`.
#[allow(dead_code)]
fn serve_connection_is_send<A: Authorizer, D: Device>(
    io: tokio::net::TcpStream,
    config: &Config,
    authorizer: &A,
    device: Arc<D>,
) -> impl Send {
    serve_connection(io, config, authorizer, device, ConnectionHandle::new())
}

#[allow(dead_code)]
fn serve_connection_with_is_send<A: Authorizer, D: Device>(
    io: tokio::net::TcpStream,
    config: &Config,
    authorizer: &A,
    device: Arc<D>,
) -> impl Send {
    let resolve = || async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(ResolvedDevice::new(device))
    };
    serve_connection_with(io, config, authorizer, resolve, ConnectionHandle::new())
}
