//! The SQLite side: a fresh database file in a temp dir per test, and what only SQLite has to
//! show (a file re-opened).

use std::sync::Arc;

use cloudphone_store::SqliteStore;
use cloudphone_store::prelude::*;

/// A store on a new file; the directory goes with the returned guard.
pub(crate) async fn store() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("cloudphone.db"))
        .await
        .unwrap();
    (dir, Arc::new(store))
}

/// Re-opening a database keeps its data and runs no migration twice.
#[tokio::test]
async fn reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloudphone.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.setting_or_init("k", "v1").await.unwrap();
    store.close().await;
    drop(store);
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.setting_or_init("k", "v2").await.unwrap(), "v1");
}
