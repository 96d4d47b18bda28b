//! The server's listeners (the API's, plain or TLS, and the metrics address when one is
//! given): an accept loop per socket that admits each connection under the caps of
//! [`admission`] and serves it in a task of its own ([`connection`]), with the deadlines that
//! keep slow or silent clients from holding connections: the TLS handshake's, the request
//! head's, the request body's, the idle keep-alive's, and a stalled write's (docs/design.md §8).
//! No slot is shared between connections beyond those caps, so a handshake never waits for
//! another one.

mod activity;
mod admission;
mod body;
mod connection;
pub mod fds;
mod io;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use admission::Table;
use connection::Shared;

/// The deadlines and caps of a listener (`serve --header-timeout-secs` and the like).
#[derive(Clone, Debug)]
pub struct ListenConfig {
    /// A TLS handshake must be done within this.
    pub handshake_timeout: Duration,
    /// A connection's first request head must have arrived within this of the accept; a later
    /// one within this of its first byte.
    pub header_timeout: Duration,
    /// The longest pause inside a request body.
    pub body_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request, and a response wait for
    /// a client that does not read.
    pub idle_timeout: Duration,
    /// Connections open at once (lowered to fit the open-file limit).
    pub max_connections: usize,
    /// Connections from one address (0: no cap).
    pub max_connections_per_ip: usize,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            handshake_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_connections_per_ip: 256,
        }
    }
}

/// Serves `router` on `tcp` (over TLS with `tls`) until `shutdown`; then takes no more
/// connections and waits for those open to finish their request.
pub async fn serve(
    tcp: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    router: Router,
    config: ListenConfig,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        router,
        tls: tls.map(TlsAcceptor::from),
        table: Arc::new(Table::new(
            config.max_connections,
            config.max_connections_per_ip,
        )),
        config,
        shutdown: shutdown.clone(),
    });
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = tcp.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                let out_of_files = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                if out_of_files && shared.table.shed_oldest_idle() {
                    // The shed connection's task closes its socket: give it that moment.
                    warn!("out of file descriptors: closed the oldest idle connection");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                } else {
                    // Out of memory and the like: wait instead of spinning.
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
        };
        let Some(admitted) = shared.table.admit(peer.ip()) else {
            debug!(%peer, "connection refused: every connection in its way is busy");
            continue;
        };
        // Small answers go out at once instead of waiting for the client's ACK (Nagle).
        let _ = stream.set_nodelay(true);
        tasks.spawn(connection::run(shared.clone(), stream, peer, admitted));
    }
    drop(tcp);
    tasks.close();
    tasks.wait().await;
}
