//! A fake of what the gateway needs of a store ([`GatewayStore`]): the world's real store
//! behind it, with its endpoint reads counted and, on demand, its endpoint reads failing as a
//! store that is down would (the audit's writes still go through, so that what the gateway did
//! meanwhile can be read back).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use cloudphone_gateway::GatewayStore;
use cloudphone_store::prelude::*;
use cloudphone_store::{AdbEndpoint, AuditEntry, Result, SqliteStore, StoreError};

pub struct FakeStore {
    real: Arc<SqliteStore>,
    failing: AtomicBool,
    endpoint_reads: AtomicU64,
}

impl FakeStore {
    pub fn new(real: Arc<SqliteStore>) -> Arc<FakeStore> {
        Arc::new(FakeStore {
            real,
            failing: AtomicBool::new(false),
            endpoint_reads: AtomicU64::new(0),
        })
    }

    /// From now on every endpoint read fails (`true`) or goes to the real store (`false`).
    pub fn fail_reads(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// `adb_endpoint` calls so far (one port each).
    pub fn endpoint_reads(&self) -> u64 {
        self.endpoint_reads.load(Ordering::SeqCst)
    }

    fn down(&self) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Shared {
                message: "the fake store is down".into(),
                unavailable: true,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl GatewayStore for FakeStore {
    async fn adb_endpoint(&self, port: u16) -> Result<Option<AdbEndpoint>> {
        self.endpoint_reads.fetch_add(1, Ordering::SeqCst);
        self.down()?;
        AdbStore::adb_endpoint(&*self.real, port).await
    }

    async fn adb_endpoints(&self, ports: &[u16]) -> Result<Vec<AdbEndpoint>> {
        self.down()?;
        AdbStore::adb_endpoints(&*self.real, ports).await
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        AccountStore::append_audit(&*self.real, entries).await
    }
}
