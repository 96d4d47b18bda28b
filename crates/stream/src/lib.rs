//! Live screens (issue 23): what a viewer needs to open a phone's stream and what ends it.
//!
//! So far: the connection tickets that `BatchGetAcpConnectionTicket` hands out and the stream
//! server opens ([`ticket`]), the in-process signal `DisconnectAndroidInstance` rings so that
//! this node's sessions of a phone close at once ([`revocations`]), and how long a session
//! may go unheard before it counts as gone ([`STALE_AFTER_MS`]). The WebSocket server, the
//! per-phone hub and the heartbeat loop build on these (docs/design.md §14).

pub mod revocations;
pub mod ticket;

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
