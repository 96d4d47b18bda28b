//! [`SharedDevice`]: a [`Device`] behind a trait object. [`Device::open`] returns an
//! `impl Future`, which keeps the protocol free of boxing but makes the trait unusable as
//! `dyn`; a caller that picks a phone's device at run time (the gateway: a simulated phone's
//! device comes from its backend) holds it as a `SharedDevice` instead, at the cost of one
//! boxed future per OPEN.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{Device, OpenError, Service};

type OpenFuture<'a> = Pin<Box<dyn Future<Output = Result<Service, OpenError>> + Send + 'a>>;

/// [`Device`] in a form a trait object can take; every `Device` is one.
pub trait DynDevice: Send + Sync + 'static {
    fn open_dyn<'a>(&'a self, service: &'a str) -> OpenFuture<'a>;
}

impl<D: Device> DynDevice for D {
    fn open_dyn<'a>(&'a self, service: &'a str) -> OpenFuture<'a> {
        Box::pin(self.open(service))
    }
}

/// Any device, shared.
#[derive(Clone)]
pub struct SharedDevice(pub Arc<dyn DynDevice>);

impl SharedDevice {
    pub fn new<D: Device>(device: D) -> SharedDevice {
        SharedDevice(Arc::new(device))
    }
}

impl std::fmt::Debug for SharedDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedDevice")
    }
}

impl Device for SharedDevice {
    async fn open(&self, service: &str) -> Result<Service, OpenError> {
        self.0.open_dyn(service).await
    }
}
