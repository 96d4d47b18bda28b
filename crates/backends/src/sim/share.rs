//! How a simulated phone's files are shared with the other nodes of a farm (issue 24, design
//! §9). Every operation that reads or changes a phone's files first takes the phone's
//! checkout ([`SimShare::acquire`]), which brings this node's copy of the phone's directory
//! up to date; after a change it publishes what changed ([`SimShare::publish`]) before its
//! result is reported, and gives the checkout back at its end ([`SimShare::release`]).
//!
//! [`Local`] is the one-node (or shared data dir) case: the directory is the phone itself and
//! every step is free. The farm's implementation (the store and the object store) lives in
//! the binary, so this crate stays free of both.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use cloudphone_backend::{BackendError, OpResult};
use cloudphone_core::TaskErrorCode;

#[async_trait]
pub trait SimShare: Send + Sync + 'static {
    /// False for [`Local`]: nothing to take, publish or give back.
    fn shared(&self) -> bool;
    /// Takes the checkout of phone `id` for this node, waiting while another node holds it,
    /// and brings `dir` (the phone's directory here) up to what was last published. True
    /// when the files changed under `dir` (counts kept of them are stale). An error of kind
    /// `WouldBlock` means another node kept the phone busy too long.
    async fn acquire(&self, id: &str, dir: &Path) -> io::Result<bool>;
    /// Publishes what changed in `dir` since it was last synced, fenced on this node's
    /// checkout; nothing changed, nothing is written.
    async fn publish(&self, id: &str, dir: &Path) -> io::Result<()>;
    /// One user of the checkout taken by [`SimShare::acquire`] is done.
    async fn release(&self, id: &str);
    /// The phone is deleted: what is shared of it goes.
    async fn forget(&self, id: &str) -> io::Result<()>;
}

/// Today's behaviour: the phone's directory is the phone.
pub struct Local;

#[async_trait]
impl SimShare for Local {
    fn shared(&self) -> bool {
        false
    }
    async fn acquire(&self, _id: &str, _dir: &Path) -> io::Result<bool> {
        Ok(false)
    }
    async fn publish(&self, _id: &str, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    async fn release(&self, _id: &str) {}
    async fn forget(&self, _id: &str) -> io::Result<()> {
        Ok(())
    }
}

/// A checkout held for one operation; given back when dropped.
pub(crate) struct Held {
    share: Arc<dyn SimShare>,
    id: String,
    dir: PathBuf,
}

impl Held {
    /// Takes the checkout of phone `id` whose directory is `dir`; true with it when the files
    /// changed under `dir`.
    pub(crate) async fn take(
        share: Arc<dyn SimShare>,
        id: &str,
        dir: PathBuf,
    ) -> OpResult<(Held, bool)> {
        let synced = share
            .acquire(id, &dir)
            .await
            .map_err(|e| unreachable(id, e))?;
        let held = Held {
            share,
            id: id.to_string(),
            dir,
        };
        Ok((held, synced))
    }

    /// Publishes what the operation changed.
    pub(crate) async fn publish(&self) -> OpResult<()> {
        self.share
            .publish(&self.id, &self.dir)
            .await
            .map_err(|e| unreachable(&self.id, e))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.share.shared() {
            return;
        }
        let (share, id) = (self.share.clone(), std::mem::take(&mut self.id));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { share.release(&id).await });
        }
    }
}

fn unreachable(id: &str, e: io::Error) -> BackendError {
    let text = if e.kind() == io::ErrorKind::WouldBlock {
        format!("The simulated phone {id} is busy on another node: {e}")
    } else {
        format!("The simulated phone {id} could not be shared with the other nodes: {e}")
    };
    BackendError::new(TaskErrorCode::InstanceUnreachable, text)
}
