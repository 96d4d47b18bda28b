//! Dropping live connections whose access went away. Two ways in, one rule ([`verdict`]):
//!
//! - **This node, at once**: the API's revocation signal names the phones whose access
//!   changed; their connections are checked against the store there and then
//!   ([`check`] with those phones).
//! - **Every node, periodically**: every `recheck_interval` (1 s) all the node's live
//!   connections are checked, which is how a change made through another node arrives. The
//!   check is batched: the ports of the phones with live connections (one per phone, however
//!   many connections it has) are read in one statement per 500 phones
//!   (`AdbStore::adb_endpoints`), and every connection of a phone is judged against its one
//!   endpoint. A node with connections to N phones thus costs the store N/500 reads a second.
//!
//! A store that fails a check (an error, or no answer within `store_timeout`) cannot confirm
//! the connections it was asked about: they go on for now (logged), and one whose access has
//! not been confirmed for longer than `revocation_grace` (30 s) is closed as
//! `AccessUnconfirmed`. **Why** fail closed after a grace: while the store cannot be read, a
//! revocation made meanwhile (a key detached, an endpoint stopped through another node) is
//! invisible here, so failing open forever would let a revoked client keep its connection for
//! as long as the outage lasts; closing at once would instead drop every client on any blip.
//! A blip shorter than the grace changes nothing; a client closed past it reconnects once the
//! store answers again, and is judged then.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cloudphone_store::AdbEndpoint;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::connection::admitted;
use crate::gateway::Inner;
use crate::verdict::{reason, verdict};

/// Ports read in one statement.
const PORTS_PER_READ: usize = 500;

/// Checks the live connections of `instance_ids` (all of them for `None`) against the store
/// and closes those that may not go on; returns how many were closed.
pub(crate) async fn check(inner: &Inner, instance_ids: Option<&[String]>) -> usize {
    let conns = inner.registry.connections(instance_ids);
    if conns.is_empty() {
        return 0;
    }
    let mut ports: Vec<u16> = conns.iter().map(|c| c.port).collect();
    ports.sort_unstable();
    ports.dedup();
    let mut endpoints: HashMap<u16, AdbEndpoint> = HashMap::new();
    let mut unread: HashSet<u16> = HashSet::new();
    for chunk in ports.chunks(PORTS_PER_READ) {
        let read =
            tokio::time::timeout(inner.config.store_timeout, inner.store.adb_endpoints(chunk));
        match read.await {
            Ok(Ok(found)) => endpoints.extend(found.into_iter().map(|e| (e.port, e))),
            Ok(Err(e)) => {
                warn!(error = %e, ports = chunk.len(), "adb connections not checked: the store failed");
                unread.extend(chunk);
            }
            Err(_) => {
                warn!(
                    ports = chunk.len(),
                    "adb connections not checked: the store did not answer"
                );
                unread.extend(chunk);
            }
        }
    }
    let mut closed = 0;
    for c in conns {
        let why = if unread.contains(&c.port) {
            if c.unconfirmed_for() <= inner.config.revocation_grace {
                continue;
            }
            reason::ACCESS_UNCONFIRMED
        } else {
            match verdict(admitted(&c), endpoints.get(&c.port)) {
                None => {
                    c.confirmed();
                    continue;
                }
                Some(why) => why,
            }
        };
        info!(instance_id = %c.instance_id, connection = %c.connection_id, why, "adb connection revoked");
        c.close(why);
        closed += 1;
    }
    closed
}

/// Closes every live connection of `instance_ids` for `reason`, whatever the store says (the
/// phone is being stopped or deleted: its status changes only when its task runs).
pub(crate) fn drop_all(inner: &Inner, instance_ids: &[String], reason: &'static str) -> usize {
    let conns = inner.registry.connections(Some(instance_ids));
    for c in &conns {
        info!(instance_id = %c.instance_id, connection = %c.connection_id, why = reason, "adb connection dropped");
        c.close(reason);
    }
    conns.len()
}

/// The periodic check, until `shutdown`.
pub(crate) async fn run_periodic(inner: Arc<Inner>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(inner.config.recheck_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        check(&inner, None).await;
    }
}
