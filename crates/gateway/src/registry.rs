//! The live connections of this node, by phone, so that they can be dropped: each with what
//! decided its admission (whether it had to authenticate, the key that did), and, once the
//! gateway closes it, why. A connection is in the registry from just after its endpoint was
//! looked up to its end.
//!
//! The revocation epoch counts the checks forced by revocations; a connection reads it before
//! looking its endpoint up and again once registered, and checks itself once more if it moved,
//! so that a revocation landing between the two is not missed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cloudphone_adb::session::ConnectionHandle;

/// One live connection.
#[derive(Debug)]
pub(crate) struct Live {
    pub id: u64,
    /// `adbc-` and a UUID v7: the audit entry's request id.
    pub connection_id: String,
    pub instance_id: String,
    pub account_id: String,
    pub port: u16,
    pub handle: ConnectionHandle,
    /// The endpoint was secure when the connection came: it goes online only by signing.
    pub auth_required: bool,
    /// The key pair whose key signed, once one did.
    authorized_by: OnceLock<String>,
    /// The client got in (signed, or the endpoint is open): its audit is never capped.
    got_in: OnceLock<()>,
    /// Why the gateway closed it, when it did (the first reason wins).
    closed_for: OnceLock<&'static str>,
    pub since: Instant,
    /// When the store last said it may go on (its endpoint read on the way in, then each check
    /// that found it allowed).
    confirmed: Mutex<Instant>,
}

impl Live {
    pub(crate) fn new(
        id: u64,
        instance_id: String,
        account_id: String,
        port: u16,
        auth_required: bool,
    ) -> Live {
        Live {
            id,
            connection_id: format!("adbc-{}", uuid::Uuid::now_v7().simple()),
            instance_id,
            account_id,
            port,
            handle: ConnectionHandle::new(),
            auth_required,
            authorized_by: OnceLock::new(),
            got_in: OnceLock::new(),
            closed_for: OnceLock::new(),
            since: Instant::now(),
            confirmed: Mutex::new(Instant::now()),
        }
    }

    pub(crate) fn authorized(&self, key_pair_id: String) {
        let _ = self.authorized_by.set(key_pair_id);
    }

    pub(crate) fn authorized_by(&self) -> Option<&str> {
        self.authorized_by.get().map(String::as_str)
    }

    pub(crate) fn got_in(&self) {
        let _ = self.got_in.set(());
    }

    pub(crate) fn has_got_in(&self) -> bool {
        self.got_in.get().is_some()
    }

    /// The store said it may go on.
    pub(crate) fn confirmed(&self) {
        *self.confirmed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// How long since the store last said it may go on.
    pub(crate) fn unconfirmed_for(&self) -> Duration {
        self.confirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// Closes the connection now, for `reason` (kept for its audit entry).
    pub(crate) fn close(&self, reason: &'static str) {
        let _ = self.closed_for.set(reason);
        self.handle.close();
    }

    pub(crate) fn closed_for(&self) -> Option<&'static str> {
        self.closed_for.get().copied()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_instance: Mutex<HashMap<String, HashMap<u64, Arc<Live>>>>,
    next_id: AtomicU64,
    epoch: AtomicU64,
}

/// Removes its connection from the registry when dropped.
pub(crate) struct Registered<'a> {
    registry: &'a Registry,
    live: Arc<Live>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut map = self.registry.lock();
        if let Some(conns) = map.get_mut(&self.live.instance_id) {
            conns.remove(&self.live.id);
            if conns.is_empty() {
                map.remove(&self.live.instance_id);
            }
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<u64, Arc<Live>>>> {
        self.by_instance.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// A revocation is being handled: connections registering now check themselves again.
    pub(crate) fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn register(&self, live: Arc<Live>) -> Registered<'_> {
        self.lock()
            .entry(live.instance_id.clone())
            .or_default()
            .insert(live.id, live.clone());
        Registered {
            registry: self,
            live,
        }
    }

    /// The live connections of `instance_ids` (all of them for `None`).
    pub(crate) fn connections(&self, instance_ids: Option<&[String]>) -> Vec<Arc<Live>> {
        let map = self.lock();
        match instance_ids {
            None => map.values().flat_map(|c| c.values().cloned()).collect(),
            Some(ids) => ids
                .iter()
                .filter_map(|id| map.get(id))
                .flat_map(|c| c.values().cloned())
                .collect(),
        }
    }

    /// Live connections of one phone.
    pub(crate) fn count(&self, instance_id: &str) -> usize {
        self.lock().get(instance_id).map_or(0, HashMap::len)
    }

    /// Live connections in all.
    pub(crate) fn total(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }
}
