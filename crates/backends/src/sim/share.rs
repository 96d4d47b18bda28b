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

use super::phone::PhoneDir;

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
    /// Brings `dir` up to what another node published since, if that can be done at once
    /// (nobody holds the phone, or this node does); true when the files changed. Never waits:
    /// a live screen calls it often to follow the phone.
    async fn refresh(&self, id: &str, dir: &Path) -> io::Result<bool>;
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
    async fn refresh(&self, _id: &str, _dir: &Path) -> io::Result<bool> {
        Ok(false)
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

/// A phone's checkouts for what outlives the call that opened it, the ADB gateway's services
/// (an `adb shell` may stay open for hours) and live screens: each command, each line of an
/// interactive shell, each sync request and each settling input takes the checkout for its
/// own length, and one that changes the phone publishes before it answers, so the other nodes
/// see what `adb push`, `adb shell` and a tap did at once, and a task on another node never
/// waits on an idle session.
#[derive(Clone)]
pub(crate) struct Checkouts {
    share: Arc<dyn SimShare>,
    id: String,
    phone: PhoneDir,
}

impl Checkouts {
    pub(crate) fn new(share: Arc<dyn SimShare>, id: &str, phone: PhoneDir) -> Checkouts {
        Checkouts {
            share,
            id: id.to_string(),
            phone,
        }
    }

    /// This process's phone only, shared with no one (tests of the adbd alone).
    #[cfg(test)]
    pub(crate) fn local(phone: PhoneDir) -> Checkouts {
        Checkouts::new(Arc::new(Local), "local", phone)
    }

    /// Takes the checkout, the phone's files brought up to date (their use counted again when
    /// another node changed them).
    pub(crate) async fn take(&self) -> OpResult<Held> {
        let (held, synced) =
            Held::take(self.share.clone(), &self.id, self.phone.dir().to_path_buf()).await?;
        if synced && self.phone.exists().await {
            super::fs(self.phone.rescan_storage().await)?;
        }
        Ok(held)
    }
}

impl Checkouts {
    /// False when the phone's directory is the phone (one node, or a shared data dir).
    pub(crate) fn shared(&self) -> bool {
        self.share.shared()
    }

    /// Brings the phone up to what another node published, if that can be done at once;
    /// true when it changed ([`SimShare::refresh`]).
    pub(crate) async fn refresh(&self) -> io::Result<bool> {
        let synced = self.share.refresh(&self.id, self.phone.dir()).await?;
        if synced && self.phone.exists().await {
            self.phone.rescan_storage().await?;
        }
        Ok(synced)
    }
}

impl Held {
    /// Publishes what a gateway service changed; the error is a sentence for the client.
    pub(crate) async fn published(&self) -> Result<(), String> {
        self.publish().await.map_err(|e| e.message)
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
