//! [`Gateway`]: binds every port of the range, accepts on each, and runs each connection in a
//! task of its own until the node shuts down; [`GatewayHandle`]: what the rest of the node
//! holds to revoke access (the API's revocation signal) and to count connections.
//!
//! **Why** one port per phone (rather than one port and a phone chosen in the protocol): a
//! stock `adb` has no way to name a device to a server it connects to; `adb connect
//! HOST:PORT` is all it does. So the port is the phone, and since the store gives ports out
//! (on any node) and any node must serve any phone, every node opens the whole range.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cloudphone_backend::Backend;
use cloudphone_store::Store;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admission::Admission;
use crate::audit::{AuditLimits, AuditSink};
use crate::config::GatewayConfig;
use crate::connection;
use crate::recheck;
use crate::registry::Registry;
use crate::store::GatewayStore;

#[derive(Debug, Error)]
pub enum GatewayError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How long connections may take to end (and be audited) once shutdown closed them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Outcome of a connection the node's shutdown closed.
const SHUTDOWN: &str = "Shutdown";

pub(crate) struct Inner {
    pub config: GatewayConfig,
    pub store: Arc<dyn GatewayStore>,
    pub backend: Arc<dyn Backend>,
    pub registry: Registry,
    pub admission: Admission,
    pub audit: AuditSink,
}

/// The gateway of one node, bound and not yet serving.
pub struct Gateway {
    inner: Arc<Inner>,
    listeners: Vec<(u16, TcpListener)>,
    audit_writer: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    audit_done: CancellationToken,
}

/// What the node holds of a running gateway.
#[derive(Clone)]
pub struct GatewayHandle {
    inner: Arc<Inner>,
}

impl Gateway {
    /// Opens every port of `config.ports` on `config.listen`; fails if any cannot be opened
    /// (the phone given that port would be unreachable through this node).
    pub async fn bind(
        config: GatewayConfig,
        store: Arc<dyn Store>,
        backend: Arc<dyn Backend>,
    ) -> Result<Gateway, GatewayError> {
        Gateway::bind_with(config, Arc::new(store), backend).await
    }

    /// [`Gateway::bind`] over what the gateway needs of a store (a test's stand-in, say).
    pub async fn bind_with(
        config: GatewayConfig,
        store: Arc<dyn GatewayStore>,
        backend: Arc<dyn Backend>,
    ) -> Result<Gateway, GatewayError> {
        let mut listeners = Vec::new();
        for port in config.ports.low..=config.ports.high {
            let addr = SocketAddr::new(config.listen, port);
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| GatewayError::Bind { addr, source })?;
            listeners.push((port, l));
        }
        let audit_done = CancellationToken::new();
        let limits = AuditLimits {
            queue: config.audit_queue,
            unauthenticated: config.unauthenticated_audit_limit,
            window: config.unauthenticated_audit_window,
        };
        let (audit, audit_writer) = AuditSink::new(store.clone(), audit_done.clone(), limits);
        let inner = Arc::new(Inner {
            admission: Admission::new(config.max_connections, config.max_connections_per_ip),
            config,
            store,
            backend,
            registry: Registry::default(),
            audit,
        });
        Ok(Gateway {
            inner,
            listeners,
            audit_writer: Box::pin(audit_writer),
            audit_done,
        })
    }

    pub fn handle(&self) -> GatewayHandle {
        GatewayHandle {
            inner: self.inner.clone(),
        }
    }

    /// Serves until `shutdown`; then stops accepting, closes every connection (outcome
    /// `Shutdown`), and returns once they ended and were audited (or after a grace period).
    pub async fn run(self, shutdown: CancellationToken) {
        let Gateway {
            inner,
            listeners,
            audit_writer,
            audit_done,
        } = self;
        let audit = tokio::spawn(audit_writer);
        let tracker = TaskTracker::new();
        info!(
            listen = %inner.config.listen,
            low = inner.config.ports.low,
            high = inner.config.ports.high,
            "ADB gateway listening"
        );
        tracker.spawn(recheck::run_periodic(inner.clone(), shutdown.clone()));
        for (port, listener) in listeners {
            tracker.spawn(accept_loop(
                inner.clone(),
                port,
                listener,
                tracker.clone(),
                shutdown.clone(),
            ));
        }
        shutdown.cancelled().await;
        for c in inner.registry.connections(None) {
            c.close(SHUTDOWN);
        }
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            warn!("ADB connections still ending after the shutdown grace");
        }
        // Every connection has ended (or is past saving): the writer writes what is queued.
        audit_done.cancel();
        if tokio::time::timeout(SHUTDOWN_GRACE, audit).await.is_err() {
            warn!("ADB connection audit entries still being written after the shutdown grace");
        }
    }
}

async fn accept_loop(
    inner: Arc<Inner>,
    port: u16,
    listener: TcpListener,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => return,
        };
        let (sock, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, most likely: let some connections end first.
                warn!(port, error = %e, "ADB gateway accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = match inner.admission.admit(peer.ip()) {
            Ok(p) => p,
            Err(cap) => {
                tracing::debug!(port, %peer, cap = cap.as_str(), "adb connection refused");
                metrics::counter!("cloudphone_adb_connections_refused_total", "reason" => cap.as_str())
                    .increment(1);
                continue;
            }
        };
        tracker.spawn(connection::serve(inner.clone(), sock, peer, port, permit));
    }
}

impl GatewayHandle {
    /// Checks the live connections of these phones against the store now and closes those
    /// whose access went (the revocation signal of StopInstanceAdb, SetAdbSecure,
    /// AttachKeyPair, DetachKeyPair, DeleteKeyPairs); returns how many it closed.
    pub async fn recheck(&self, instance_ids: &[String]) -> usize {
        self.inner.registry.bump_epoch();
        recheck::check(&self.inner, Some(instance_ids)).await
    }

    /// [`GatewayHandle::recheck`] of every live connection (a revocation signal that fell
    /// behind and lost rings).
    pub async fn recheck_all(&self) -> usize {
        self.inner.registry.bump_epoch();
        recheck::check(&self.inner, None).await
    }

    /// Closes every live connection of these phones for `reason` (their audit outcome),
    /// whatever the store says now: a phone being stopped or deleted, whose status changes
    /// only when its task runs. Returns how many it closed.
    pub fn drop_connections(&self, instance_ids: &[String], reason: &'static str) -> usize {
        self.inner.registry.bump_epoch();
        recheck::drop_all(&self.inner, instance_ids, reason)
    }

    /// Live connections of one phone on this node.
    pub fn connections_of(&self, instance_id: &str) -> usize {
        self.inner.registry.count(instance_id)
    }

    /// Connections open on this node (admitted, not yet ended), those still on their way in
    /// included.
    pub fn open_connections(&self) -> usize {
        self.inner.admission.open().max(self.inner.registry.total())
    }
}
