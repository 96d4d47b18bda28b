//! One connection, in a task of its own: its TLS handshake (if any, within the handshake
//! timeout), then HTTP/1.1 with hyper in front of the router, until the client closes it, a
//! deadline of its [`Activity`] passes, the admission table sheds it, or the server shuts
//! down (then it finishes the request in flight, as a graceful shutdown does).
//!
//! A request that upgrades its connection (a viewer's WebSocket, `/streams/...`) carries a
//! [`Held`] to its handler, which keeps it in the task serving the upgraded socket: until every
//! hold is dropped the connection counts as busy (never shed, no idle deadline) and its slot
//! stays taken, and this task waits. The socket stays [`Watched`], so a viewer that stops
//! reading for the idle timeout still fails its writes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use cloudphone_api::PeerAddr;
use cloudphone_core::peer::Held;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::debug;

use super::ListenConfig;
use super::activity::{Activity, Busy, Deadlines};
use super::admission::{Admitted, Table};
use super::body::{Answering, TimedBody};
use super::io::Watched;

/// What every connection of a listener shares.
pub(crate) struct Shared {
    pub router: Router,
    pub tls: Option<TlsAcceptor>,
    pub config: ListenConfig,
    pub table: Arc<Table>,
    pub shutdown: CancellationToken,
}

/// Serves one admitted connection to its end.
pub(crate) async fn run(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
) {
    let activity = Activity::new(shared.table.clone(), admitted.id);
    let io = Watched::new(stream, activity.clone(), shared.config.idle_timeout);
    match &shared.tls {
        None => http(&shared, io, peer, &admitted, activity).await,
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(shared.config.handshake_timeout, acceptor.accept(io));
            let tls = tokio::select! {
                _ = admitted.shed.cancelled() => None,
                _ = shared.shutdown.cancelled() => None,
                done = handshake => match done {
                    Ok(Ok(tls)) => Some(tls),
                    Ok(Err(e)) => {
                        debug!(%peer, error = %e, "TLS handshake failed");
                        None
                    }
                    Err(_) => {
                        debug!(%peer, "TLS handshake timed out");
                        metrics::counter!("cloudphone_connections_timed_out_total", "phase" => "handshake")
                            .increment(1);
                        None
                    }
                },
            };
            if let Some(tls) = tls {
                http(&shared, tls, peer, &admitted, activity).await;
            }
        }
    }
    shared.table.remove(admitted.id);
}

async fn http<I>(
    shared: &Shared,
    io: I,
    peer: SocketAddr,
    admitted: &Admitted,
    activity: Arc<Activity>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Every hold carries a sender: once the connection and every hold are gone, `held` ends.
    let (hold, mut held) = mpsc::channel::<()>(1);
    serve_http(shared, io, peer, admitted, activity, hold).await;
    // An upgraded socket keeps the connection's slot until its session is done with it.
    let _ = held.recv().await;
}

/// What an upgraded connection's [`Held`] keeps: its busy mark and its task waiting.
struct Hold {
    _done: mpsc::Sender<()>,
    _busy: Busy,
}

fn is_upgrade(request: &hyper::Request<Incoming>) -> bool {
    request.headers().contains_key(hyper::header::UPGRADE)
}

async fn serve_http<I>(
    shared: &Shared,
    io: I,
    peer: SocketAddr,
    admitted: &Admitted,
    activity: Arc<Activity>,
    hold: mpsc::Sender<()>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = shared.router.clone();
    let body_timeout = shared.config.body_timeout;
    let watched = activity.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let busy = watched.busy();
        let upgrade = is_upgrade(&request).then(|| {
            Held::new(Hold {
                _done: hold.clone(),
                _busy: watched.busy(),
            })
        });
        let mut request: Request =
            request.map(|body| Body::new(TimedBody::new(body, body_timeout)));
        // The caller's address reaches the handlers, for the audit log.
        request.extensions_mut().insert(PeerAddr(peer));
        if let Some(held) = upgrade {
            request.extensions_mut().insert(held);
        }
        let answer = router.clone().oneshot(request);
        async move {
            let response = answer.await?;
            Ok::<_, std::convert::Infallible>(
                response.map(|inner| Body::new(Answering { inner, _busy: busy })),
            )
        }
    });
    let deadlines = Deadlines {
        header: shared.config.header_timeout,
        idle: shared.config.idle_timeout,
    };
    // The head's timeout is the connection's own (it also counts from accept); hyper's would
    // restart at every idle wait.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let mut closing = false;
    loop {
        let deadline = activity.deadline(deadlines);
        let sleep = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            done = connection.as_mut() => {
                if let Err(e) = done {
                    debug!(%peer, error = %e, "connection ended");
                }
                return;
            }
            _ = admitted.shed.cancelled() => {
                debug!(%peer, "connection shed to make room");
                return;
            }
            _ = shared.shutdown.cancelled(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = activity.changed() => {}
            _ = sleep => {
                if let Some((at, why)) = activity.deadline(deadlines)
                    && at <= tokio::time::Instant::now()
                {
                    debug!(%peer, timeout = why.as_str(), "closing an idle connection");
                    metrics::counter!("cloudphone_connections_timed_out_total", "phase" => why.as_str())
                        .increment(1);
                    return;
                }
            }
        }
    }
}
