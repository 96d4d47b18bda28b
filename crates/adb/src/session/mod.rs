//! One host connection served as an adbd would serve it: the handshake under a deadline, then
//! the host's streams, each OPEN handed to a [`Device`] and run as a task of its own, so that
//! a slow service (or a slow relay behind it) never holds up another stream. The connection
//! ends when the host leaves, when it breaks the protocol (bad magic, a length over the limit,
//! a second WRTE before our OKAY), when the handshake overruns its deadline, or at once when
//! the owner calls [`ConnectionHandle::close`]; each ends this connection only.

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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::proto::banner::{Banner, BannerError, DeviceBanner};
use crate::proto::handshake::{
    Handshake, HandshakeConfig, HandshakeError, Negotiated, Step, TOKEN_SIZE,
};
use crate::proto::packet::{
    Command, HEADER_LEN, Header, MAX_PAYLOAD, MAX_PAYLOAD_V1, Packet, PacketError, verify_checksum,
    version_for,
};
use conn::{Conn, Entry, StreamShared};
pub use shared::{DynDevice, SharedDevice};
pub use stream::{AdbStream, StreamReader, StreamWriter};

/// What a connection is allowed.
#[derive(Debug, Clone)]
pub struct Config {
    pub banner: DeviceBanner,
    /// The largest payload we accept and announce, kept within 4096 and 1 MiB. adbd 29
    /// announces 1 MiB; 256 KiB keeps what a connection buffers per stream (two payloads in,
    /// one out) small with many streams.
    pub max_payload: u32,
    /// From accept to our CNXN. A host that cannot sign stays unauthorized (stock adb's
    /// `unauthorized` state) until this runs out, then the connection is dropped.
    pub handshake_timeout: Duration,
    /// Streams open at once; an OPEN beyond it is refused (CLSE), the connection lives on.
    pub max_streams: usize,
    /// Refused signatures before the connection is dropped (adb tries each of its keys once).
    pub max_auth_attempts: u32,
}

impl Config {
    pub fn new(banner: DeviceBanner) -> Config {
        Config {
            banner,
            max_payload: 256 * 1024,
            handshake_timeout: Duration::from_secs(20),
            max_streams: 256,
            max_auth_attempts: 16,
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
    /// enough: see [`Authorizer::public_key_offered`].
    fn verify(
        &self,
        token: &[u8; TOKEN_SIZE],
        signature: &[u8],
    ) -> impl Future<Output = Option<Self::Identity>> + Send;

    /// The host has no key we accepted and offers this `adbkey.pub` text. Informational
    /// (audit): the connection stays unauthorized whatever this does.
    fn public_key_offered(&self, key: &[u8]) -> impl Future<Output = ()> + Send {
        let _ = key;
        async {}
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

/// Serves one host connection until it ends; never fails as a whole (the [`Report`] says how
/// it ended). `io` is usually an accepted `TcpStream`.
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
    let (rd, wr) = tokio::io::split(io);
    let max_payload = config.max_payload.clamp(MAX_PAYLOAD_V1, MAX_PAYLOAD);
    let (conn, outgoing) = Conn::new(max_payload);
    let mut tasks = JoinSet::new();
    let mut seen = Seen {
        identity: None,
        host: None,
        streams_opened: 0,
    };
    let end = {
        let reader = read_loop(
            BufReader::with_capacity(64 * 1024, rd),
            config,
            authorizer,
            max_payload,
            &device,
            &conn,
            &handle,
            &mut tasks,
            &mut seen,
        );
        let writer = write_loop(wr, outgoing, &conn, &handle);
        tokio::select! {
            _ = handle.0.cancel.cancelled() => End::Closed,
            r = reader => r.unwrap_or_else(ended),
            r = writer => match r {
                Ok(()) => End::HostClosed,
                Err(e) => ended(e.into()),
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

async fn write_loop<W: AsyncWrite>(
    wr: W,
    mut outgoing: mpsc::UnboundedReceiver<Packet>,
    conn: &Conn,
    handle: &ConnectionHandle,
) -> io::Result<()> {
    let w = BufWriter::with_capacity(64 * 1024, wr);
    tokio::pin!(w);
    while let Some(p) = outgoing.recv().await {
        let header = p.header(conn.version.load(Ordering::Relaxed)).encode();
        w.write_all(&header).await?;
        w.write_all(&p.payload).await?;
        handle.add_out(HEADER_LEN + p.payload.len());
        conn.outbox.written();
        // Messages queued together leave in one write; the last one is not held back.
        if outgoing.is_empty() {
            w.flush().await?;
        }
    }
    Ok(())
}

/// Reads one message; `None` when the host closed the connection between messages. The
/// length is checked against `max_payload` before the payload is read or allocated.
async fn read_packet<R: AsyncRead + Unpin>(
    r: &mut R,
    max_payload: u32,
    negotiated: Option<u32>,
    handle: &ConnectionHandle,
) -> Result<Option<Packet>, SessionError> {
    let mut head = [0u8; HEADER_LEN];
    let first = r.read(&mut head).await?;
    if first == 0 {
        return Ok(None);
    }
    r.read_exact(&mut head[first..]).await?;
    handle.add_in(HEADER_LEN);
    let header = Header::parse(&head, max_payload)?;
    let mut payload = vec![0u8; header.data_length as usize];
    r.read_exact(&mut payload).await?;
    handle.add_in(payload.len());
    verify_checksum(&header, &payload, version_for(&header, negotiated))?;
    Ok(Some(Packet::new(
        header.command,
        header.arg0,
        header.arg1,
        payload,
    )))
}

#[allow(clippy::too_many_arguments)]
async fn read_loop<R, A, D>(
    mut r: R,
    config: &Config,
    authorizer: &A,
    max_payload: u32,
    device: &Arc<D>,
    conn: &Arc<Conn>,
    handle: &ConnectionHandle,
    tasks: &mut JoinSet<()>,
    seen: &mut Seen<A::Identity>,
) -> Result<End, SessionError>
where
    R: AsyncRead + Unpin,
    A: Authorizer,
    D: Device,
{
    let Some(negotiated) =
        handshake(&mut r, max_payload, config, authorizer, conn, handle, seen).await?
    else {
        return Ok(End::HostClosed);
    };
    info!(
        host_features = ?negotiated.host.features,
        max_payload = negotiated.max_payload,
        "adb host online"
    );
    seen.host = Some(negotiated.host);
    conn.max_payload
        .store(negotiated.max_payload, Ordering::Relaxed);
    loop {
        while tasks.try_join_next().is_some() {}
        conn.outbox.wait_for_room().await;
        let Some(p) = read_packet(
            &mut r,
            negotiated.max_payload,
            Some(negotiated.version),
            handle,
        )
        .await?
        else {
            return Ok(End::HostClosed);
        };
        match p.command {
            Command::Open => {
                if on_open(p, config, device, conn, tasks) {
                    seen.streams_opened += 1;
                }
            }
            Command::Okay => on_okay(&p, conn),
            Command::Wrte => on_write(p, conn)?,
            Command::Clse => on_close(&p, conn),
            Command::Cnxn => {
                return Err(HandshakeError::OutOfOrder("CNXN after the handshake").into());
            }
            Command::Stls => return Err(SessionError::Unexpected(Command::Stls)),
            // Late AUTH answers and the obsolete SYNC carry nothing for an online connection.
            Command::Auth | Command::Sync => {}
        }
    }
}

/// Runs the handshake; `None` if the host left during it.
async fn handshake<R, A>(
    r: &mut R,
    max_payload: u32,
    config: &Config,
    authorizer: &A,
    conn: &Conn,
    handle: &ConnectionHandle,
    seen: &mut Seen<A::Identity>,
) -> Result<Option<Negotiated>, SessionError>
where
    R: AsyncRead + Unpin,
    A: Authorizer,
{
    let deadline = Instant::now() + config.handshake_timeout;
    let late = |_| SessionError::HandshakeTimeout(config.handshake_timeout);
    let auth_required = timeout_at(deadline, authorizer.auth_required())
        .await
        .map_err(late)?;
    let mut hs = Handshake::new(HandshakeConfig {
        banner: config.banner.encode()?,
        max_payload,
        auth_required,
        max_auth_attempts: config.max_auth_attempts,
    });
    // A token is drawn inside the state machine; a failure is reported after it returns and
    // before anything is sent, so a zero token never leaves.
    let rng_error = std::sync::Mutex::new(None);
    let mut fresh = || {
        let mut token = [0u8; TOKEN_SIZE];
        if let Err(e) = getrandom::fill(&mut token) {
            *rng_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
        token
    };
    loop {
        let read = read_packet(r, hs.max_incoming(), hs.negotiated_version(), handle);
        let Some(packet) = timeout_at(deadline, read).await.map_err(late)?? else {
            return Ok(None);
        };
        let step = match hs.on_packet(&packet, &mut fresh)? {
            None => continue,
            Some(Step::PublicKey(key)) => {
                debug!("adb host offered a public key we do not know");
                timeout_at(deadline, authorizer.public_key_offered(&key))
                    .await
                    .map_err(late)?;
                continue;
            }
            Some(Step::Verify { token, signature }) => {
                let verdict = timeout_at(deadline, authorizer.verify(&token, &signature))
                    .await
                    .map_err(late)?;
                let accepted = verdict.is_some();
                if accepted {
                    seen.identity = verdict;
                } else {
                    debug!("adb host signature refused");
                }
                hs.on_verdict(accepted, &mut fresh)?
            }
            Some(step) => step,
        };
        if let Some(e) = rng_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(SessionError::Random(e));
        }
        conn.version.store(hs.version(), Ordering::Relaxed);
        match step {
            Step::Send(p) => conn.outbox.send(p),
            Step::Online { cnxn, negotiated } => {
                conn.outbox.send(cnxn);
                return Ok(Some(negotiated));
            }
            // on_packet's other steps were handled above; on_verdict returns no others.
            Step::Verify { .. } | Step::PublicKey(_) => {}
        }
    }
}

/// Returns whether a stream was opened (or is being opened).
fn on_open<D: Device>(
    p: Packet,
    config: &Config,
    device: &Arc<D>,
    conn: &Arc<Conn>,
    tasks: &mut JoinSet<()>,
) -> bool {
    let remote = p.arg0;
    if remote == 0 || p.arg1 != 0 {
        return false;
    }
    let end = p
        .payload
        .iter()
        .rposition(|b| *b != 0)
        .map(|i| i + 1)
        .unwrap_or(0);
    let name = String::from_utf8_lossy(&p.payload[..end]).into_owned();
    let (shared, incoming) = {
        let mut table = conn.table();
        if table.map.len() >= config.max_streams {
            drop(table);
            warn!(service = %name, limit = config.max_streams, "adb stream refused: too many open");
            conn.outbox
                .send(Packet::new(Command::Clse, 0, remote, Vec::new()));
            return false;
        }
        let local = table.allocate();
        let shared = Arc::new(StreamShared::new(local, remote));
        let (tx, rx) = mpsc::channel(1);
        table.map.insert(
            local,
            Entry {
                shared: shared.clone(),
                incoming: tx,
            },
        );
        (shared, rx)
    };
    let device = device.clone();
    let conn = conn.clone();
    tasks.spawn(async move {
        match device.open(&name).await {
            Ok(service) => {
                debug!(service = %name, local = shared.local, remote, "adb stream open");
                conn.outbox
                    .send(Packet::new(Command::Okay, shared.local, remote, Vec::new()));
                (service.0)(AdbStream::new(conn, shared, incoming)).await;
            }
            Err(e) => {
                debug!(service = %name, error = %e, "adb service refused");
                conn.table().map.remove(&shared.local);
                conn.outbox
                    .send(Packet::new(Command::Clse, 0, remote, Vec::new()));
            }
        }
    });
    true
}

fn on_okay(p: &Packet, conn: &Conn) {
    if p.arg0 == 0 || p.arg1 == 0 {
        return;
    }
    let table = conn.table();
    if let Some(e) = table.map.get(&p.arg1)
        && e.shared.remote == p.arg0
    {
        e.shared.on_okay();
    }
}

fn on_write(p: Packet, conn: &Conn) -> Result<(), SessionError> {
    if p.arg0 == 0 || p.arg1 == 0 {
        return Ok(());
    }
    let (local, remote) = (p.arg1, p.arg0);
    let ack = Packet::new(Command::Okay, local, remote, Vec::new());
    let table = conn.table();
    let Some(e) = table.map.get(&local).filter(|e| e.shared.remote == remote) else {
        return Ok(());
    };
    if p.payload.is_empty() {
        drop(table);
        conn.outbox.send(ack);
        return Ok(());
    }
    match e.incoming.try_send(p.payload) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(_)) => Err(SessionError::FlowControl(local)),
        // The service stopped reading but still writes: the data goes nowhere, and the host
        // must not wait for it.
        Err(mpsc::error::TrySendError::Closed(_)) => {
            drop(table);
            conn.outbox.send(ack);
            Ok(())
        }
    }
}

fn on_close(p: &Packet, conn: &Conn) {
    if p.arg1 == 0 {
        return;
    }
    let removed = {
        let mut table = conn.table();
        match table.map.get(&p.arg1) {
            Some(e) if p.arg0 == 0 || e.shared.remote == p.arg0 => table.map.remove(&p.arg1),
            _ => None,
        }
    };
    if let Some(e) = removed {
        debug!(local = e.shared.local, "adb stream closed by the host");
        e.shared.on_host_close();
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
