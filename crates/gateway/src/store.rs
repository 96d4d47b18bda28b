//! What the gateway needs of the store, and nothing more: a port's endpoint (on a connection's
//! way in, and once at its first signature), many ports' endpoints (the periodic check), and
//! appending audit entries. Every [`Store`] is one ([`Gateway::bind`](crate::Gateway::bind));
//! **why** a view of its own: the gateway's reads are its whole contract with the store
//! (docs/design.md §12.4), and a test can stand in for them (count the reads, fail them)
//! without implementing every area of a store.

use std::sync::Arc;

use async_trait::async_trait;
use cloudphone_store::prelude::*;
use cloudphone_store::{AdbEndpoint, AuditEntry, Result};

#[async_trait]
pub trait GatewayStore: Send + Sync + 'static {
    /// The endpoint that has `port` (`AdbStore::adb_endpoint`).
    async fn adb_endpoint(&self, port: u16) -> Result<Option<AdbEndpoint>>;
    /// The endpoints that have these ports (`AdbStore::adb_endpoints`).
    async fn adb_endpoints(&self, ports: &[u16]) -> Result<Vec<AdbEndpoint>>;
    /// `AccountStore::append_audit`.
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()>;
}

#[async_trait]
impl<S: Store + ?Sized> GatewayStore for Arc<S> {
    async fn adb_endpoint(&self, port: u16) -> Result<Option<AdbEndpoint>> {
        AdbStore::adb_endpoint(&**self, port).await
    }

    async fn adb_endpoints(&self, ports: &[u16]) -> Result<Vec<AdbEndpoint>> {
        AdbStore::adb_endpoints(&**self, ports).await
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        AccountStore::append_audit(&**self, entries).await
    }
}
