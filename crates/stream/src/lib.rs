//! Live screens (issue 23): the connection tickets that `BatchGetAcpConnectionTicket` hands out
//! ([`ticket`]), the signal `DisconnectAndroidInstance` rings ([`revocations`]), and the stream
//! server that shows a phone's screen to the holders of its tickets over one WebSocket each,
//! `GET /streams/{InstanceId}` ([`routes`], docs/design.md §14.4-14.5).
//!
//! The server's parts: [`Streams`] (what the node holds: the store, the backend's screens
//! behind the [`hub`], the ticket key, the limits, the node's sessions in a [`registry`]), one
//! task per viewer ([`session`], speaking [`protocol`]), and the node's once-a-second
//! heartbeat of its sessions, which also ends those the store, the phone's status, an access
//! key or a disconnect say must end ([`recheck::run`]).

pub mod gop;
pub mod hub;
pub mod protocol;
pub mod recheck;
pub mod registry;
pub mod revocations;
mod session;
pub mod ticket;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use cloudphone_backend::{Backend, ScreenOptions};
use cloudphone_store::Store;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use protocol::Close;
pub use revocations::{RevocationReason, StreamRevocation, StreamRevocations};
pub use ticket::{Claims, Epochs, TicketError, TicketKey};

/// A session whose node has not written its heartbeat for this long is gone (its node died or
/// lost the database): `DescribeAndroidInstances` no longer counts it as `connect`, the next
/// session opened on the phone marks it `Lost`, and so does the reaper. Nodes write a
/// heartbeat every second, so this leaves room for ten missed beats.
pub const STALE_AFTER_MS: i64 = 10_000;

/// The time before which a session's last heartbeat makes it stale, at `now_ms`.
pub fn stale_before(now_ms: i64) -> i64 {
    now_ms.saturating_sub(STALE_AFTER_MS)
}

/// What the stream server allows (`serve --stream-*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Live sessions of one phone, over every node.
    pub max_viewers_per_phone: u32,
    /// Sessions this node holds at once (counted from the upgrade, hello included).
    pub max_sessions: usize,
    /// Frames a second a screen sends at most.
    pub fps: u8,
    /// The long side of a frame at most, in pixels.
    pub max_size: u16,
    /// The first message must come within this.
    pub hello_timeout: Duration,
    /// How long a viewer waits for the backend to open the screen.
    pub open_timeout: Duration,
    /// How long a screen stays open after its last viewer left.
    pub linger: Duration,
    /// Input messages a session may send a second (moves past it are dropped).
    pub inputs_per_second: u32,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_viewers_per_phone: 8,
            max_sessions: 256,
            fps: 20,
            max_size: 1280,
            hello_timeout: Duration::from_secs(5),
            open_timeout: Duration::from_secs(20),
            linger: Duration::from_secs(5),
            inputs_per_second: 200,
        }
    }
}

/// The stream server of a node.
pub struct Streams {
    store: Arc<dyn Store>,
    hub: hub::Hub,
    tickets: TicketKey,
    revocations: StreamRevocations,
    limits: StreamLimits,
    node_id: String,
    /// Cancelled when the node shuts down: every session closes (4002).
    closing: CancellationToken,
    registry: registry::Registry,
    /// One per session held (from the upgrade on).
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("limits", &self.limits)
            .field("node_id", &self.node_id)
            .field("sessions", &self.registry.len())
            .finish_non_exhaustive()
    }
}

impl Streams {
    /// `revocations` must be the signal the node's DisconnectAndroidInstance rings; `closing`
    /// the node's shutdown.
    pub fn new(
        store: Arc<dyn Store>,
        backend: Arc<dyn Backend>,
        tickets: TicketKey,
        revocations: StreamRevocations,
        limits: StreamLimits,
        node_id: String,
        closing: CancellationToken,
    ) -> Arc<Streams> {
        let opts = ScreenOptions {
            max_size: limits.max_size,
            fps: limits.fps,
            images_only: false,
        };
        Arc::new(Streams {
            store,
            hub: hub::Hub::new(backend, opts, limits.linger),
            tickets,
            revocations,
            slots: Arc::new(Semaphore::new(limits.max_sessions.max(1))),
            limits,
            node_id,
            closing,
            registry: registry::Registry::default(),
        })
    }

    /// Sessions this node holds now (opened, past their hello).
    pub fn sessions(&self) -> usize {
        self.registry.len()
    }

    pub fn limits(&self) -> &StreamLimits {
        &self.limits
    }
}

/// `GET /streams/{InstanceId}`: a viewer's WebSocket.
pub fn routes(streams: Arc<Streams>) -> Router {
    Router::new()
        .route("/streams/{instance_id}", get(session::upgrade))
        .with_state(streams)
}
