//! Services a device implementation assembles from: the shell adapters ([`shell`]), the sync
//! server ([`sync`]), and [`LocalDevice`], which routes a phone's shell, exec and sync
//! streams to them (what a simulated phone needs).

pub mod shell;
pub mod sync;

use std::sync::Arc;

use crate::proto::service::ServiceName;
use crate::session::{Device, OpenError, Service};
use shell::{Shell, serve_shell};
use sync::{SyncFs, serve_sync};

/// A device made of a shell and a file system: `shell:`, `shell,v2,...:` and `exec:` go to
/// the shell, `sync:` to the file system; anything else is refused.
pub struct LocalDevice<S, F> {
    pub shell: Arc<S>,
    pub fs: Arc<F>,
}

impl<S, F> LocalDevice<S, F> {
    pub fn new(shell: Arc<S>, fs: Arc<F>) -> LocalDevice<S, F> {
        LocalDevice { shell, fs }
    }

    /// The service for `name`, or `None` when this device has none: for a wrapper that
    /// answers some services itself (`reboot:`, say) and leaves the rest to this one.
    pub fn service(&self, name: &ServiceName) -> Option<Service>
    where
        S: Shell,
        F: SyncFs,
    {
        match name {
            ServiceName::Shell(req) => {
                let (req, shell) = (req.clone(), self.shell.clone());
                Some(Service::new(move |s| serve_shell(s, req, shell)))
            }
            ServiceName::Sync => {
                let fs = self.fs.clone();
                Some(Service::new(move |s| async move {
                    if let Err(e) = serve_sync(s, fs).await {
                        tracing::debug!(error = %e, "sync session ended");
                    }
                }))
            }
            _ => None,
        }
    }
}

impl<S: Shell, F: SyncFs> Device for LocalDevice<S, F> {
    async fn open(&self, service: &str) -> Result<Service, OpenError> {
        self.service(&ServiceName::parse(service.as_bytes()))
            .ok_or_else(|| OpenError(format!("no service {service:?}")))
    }
}
