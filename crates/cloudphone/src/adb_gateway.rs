//! The node's ADB gateway (`--adb-ports`): built from the flags over the node's store and
//! backend, run under the node's shutdown token, and told by the API's revocation signal which
//! phones lost access (docs/design.md §13).
//!
//! What each ring does: a phone being stopped or deleted has its connections dropped at once
//! (its status changes only when its task runs, later and maybe on another node); any other
//! change (StopInstanceAdb, SetAdbSecure, AttachKeyPair, DetachKeyPair, DeleteKeyPairs) has the
//! phones' connections checked against the store there and then, which ends exactly those that
//! lost access (a connection signed by the new key of AttachKeyPair stays). A listener that
//! fell behind and lost rings checks every connection.

use std::sync::Arc;

use cloudphone_api::{AdbGateway, AdbRevocation, AdbRevocations, RevocationReason};
use cloudphone_engine::Backend;
use cloudphone_gateway::{Gateway, GatewayConfig, GatewayHandle};
use cloudphone_store::Store;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::AdbLimits;

/// A bound gateway and the signal it follows.
pub struct NodeGateway {
    gateway: Gateway,
    revocations: Receiver<AdbRevocation>,
}

impl NodeGateway {
    /// Opens every port of the range (an error if one cannot be opened).
    pub async fn bind(
        settings: &AdbGateway,
        limits: &AdbLimits,
        open_files: Option<u64>,
        store: Arc<dyn Store>,
        backend: Arc<dyn Backend>,
        signal: &AdbRevocations,
    ) -> anyhow::Result<NodeGateway> {
        let mut config = GatewayConfig::new(settings.listen, settings.ports);
        config.max_connections =
            crate::listen::fds::connection_cap(limits.max_connections, open_files);
        config.max_connections_per_ip = limits.max_connections_per_ip;
        config.idle_timeout = limits.idle_timeout;
        // Subscribed before anything can ring.
        let revocations = signal.subscribe();
        let gateway = Gateway::bind(config, store, backend).await?;
        Ok(NodeGateway {
            gateway,
            revocations,
        })
    }

    /// Serves until `shutdown`, then ends every connection (audited) and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let follow = tokio::spawn(follow(
            self.gateway.handle(),
            self.revocations,
            shutdown.clone(),
        ));
        self.gateway.run(shutdown).await;
        follow.abort();
    }
}

async fn follow(
    gateway: GatewayHandle,
    mut rings: Receiver<AdbRevocation>,
    shutdown: CancellationToken,
) {
    loop {
        let ring = tokio::select! {
            r = rings.recv() => r,
            () = shutdown.cancelled() => return,
        };
        match ring {
            Ok(r) => match r.reason {
                RevocationReason::PhoneStopped | RevocationReason::PhoneDeleted => {
                    gateway.drop_connections(&r.instance_ids, r.reason.as_str());
                }
                _ => {
                    gateway.recheck(&r.instance_ids).await;
                }
            },
            Err(RecvError::Lagged(missed)) => {
                warn!(missed, "ADB revocations missed: checking every connection");
                gateway.recheck_all().await;
            }
            Err(RecvError::Closed) => return,
        }
    }
}
