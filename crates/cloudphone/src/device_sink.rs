//! Where ADB device discovery ([`cloudphone_backends::adb::Discovery`]) records what it finds:
//! the store's instances. The backends know no store; the node joins the two here.

use std::sync::Arc;

use async_trait::async_trait;
use cloudphone_backends::adb::{DeviceSink, SinkError};
use cloudphone_core::InstanceStatus;
use cloudphone_core::resources::{Group, Instance};
use cloudphone_store::Store;

pub struct StoreSink(pub Arc<dyn Store>);

#[async_trait]
impl DeviceSink for StoreSink {
    async fn adopt(&self, group: &Group, instances: &[Instance]) -> Result<u64, SinkError> {
        Ok(self.0.adopt_instances(group, instances).await?)
    }

    async fn instances(
        &self,
        account_id: &str,
        ids: &[String],
    ) -> Result<Vec<Instance>, SinkError> {
        Ok(self.0.instances_by_id(account_id, ids).await?)
    }

    async fn mark(
        &self,
        id: &str,
        from: InstanceStatus,
        to: InstanceStatus,
        seen_ms: i64,
        now_ms: i64,
    ) -> Result<bool, SinkError> {
        Ok(self.0.mark_instance(id, from, to, seen_ms, now_ms).await?)
    }
}
