//! What operations need besides a backend: the object store (sources and destinations of files,
//! the full copy of long command output), the outbound client for sources given as URLs, and a
//! scratch directory for files in transit.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cloudphone_objects::Objects;

#[derive(Clone)]
pub struct Services {
    pub objects: Arc<Objects>,
    /// Fetches `DOWNLOAD_URL` and `OSS_BRIDGED` sources and apps' URLs: address filter,
    /// re-checked redirects, timeouts and the byte cap (`cloudphone_outbound`).
    pub fetch: cloudphone_outbound::Outbound,
    /// Files in transit live here (under the data dir), never in memory.
    pub scratch: PathBuf,
    /// How long the links in task results stay valid.
    pub link_ttl: Duration,
    /// The region, for the default bucket name.
    pub region: String,
}

impl Services {
    /// A scratch path for one attempt of one task; the caller removes it.
    pub fn scratch_file(&self, task_id: &str, attempt: i64, what: &str) -> PathBuf {
        self.scratch.join(format!("{task_id}-{attempt}-{what}"))
    }

    /// The account's default bucket (see [`cloudphone_core::resources::default_bucket`]).
    pub fn default_bucket(&self, account_id: &str) -> String {
        cloudphone_core::resources::default_bucket(&self.region, account_id)
    }
}
