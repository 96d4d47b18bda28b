//! Reset and delete of a phone whose host is gone (unhealthy, or in no live node's backends
//! file; docs/design.md §6.9). A reset places the phone on another host first (its data is
//! lost, as with any reset), so Reset is the way back for such a phone; a delete ends without
//! the engine, whose host's reconcile removes the container if the host ever comes back.
//!
//! The host's health is read only for a phone that was not RUNNING (a host that went away
//! turned its running phones UNAVAILABLE), so that resets and deletes of healthy phones cost
//! no read; a delete that finds the engine unreachable asks once more.

use cloudphone_backend::{Backend, BackendError, InstanceRef, OpResult};
use cloudphone_core::time::now_ms;
use cloudphone_core::{InstanceStatus, TaskErrorCode};
use cloudphone_store::{Claim, Health, Store, StoreError};
use tracing::info;

use crate::migrate::host_health;

/// Whether the phone's host is unhealthy or missing (a phone placed nowhere has none).
async fn host_gone(store: &dyn Store, phone: &InstanceRef) -> OpResult<bool> {
    let Some(host) = &phone.host else {
        return Ok(false);
    };
    Ok(matches!(
        host_health(store, host).await?,
        Some(Health::Unhealthy | Health::Missing)
    ))
}

async fn gone_before(store: &dyn Store, claim: &Claim, phone: &InstanceRef) -> OpResult<bool> {
    if claim.previous_status == InstanceStatus::Running {
        return Ok(false);
    }
    host_gone(store, phone).await
}

/// ResetInstance and UpdateGroupImage (to `image_id`): on another host when its own is gone.
pub(crate) async fn reset(
    backend: &dyn Backend,
    store: &dyn Store,
    claim: &Claim,
    phone: &InstanceRef,
    image_id: &str,
) -> OpResult<()> {
    if !gone_before(store, claim, phone).await? {
        return backend.reset(phone, image_id).await;
    }
    let placed = store
        .relocate(
            &claim.instance_id,
            &claim.task_id,
            claim.attempt,
            image_id,
            now_ms(),
        )
        .await
        .map_err(|e| match e {
            StoreError::NoStock { .. } => BackendError::new(
                TaskErrorCode::OperationFailed,
                format!(
                    "the host {} does not answer and no other host has room for the phone",
                    phone.host.as_deref().unwrap_or_default()
                ),
            ),
            e => BackendError::new(
                TaskErrorCode::InternalError,
                format!("the store failed: {e}"),
            ),
        })?;
    let Some((host, adb_port)) = placed else {
        return Err(BackendError::new(
            TaskErrorCode::OperationFailed,
            "this attempt lost the task before the phone was placed again",
        ));
    };
    info!(from = ?phone.host, to = %host, "the phone's host is gone: resetting it on another");
    let moved = InstanceRef {
        host: Some(host),
        adb_port,
        ..phone.clone()
    };
    backend.reset(&moved, image_id).await
}

/// DeleteInstance: done without the engine when the phone's host is gone.
pub(crate) async fn delete(
    backend: &dyn Backend,
    store: &dyn Store,
    claim: &Claim,
    phone: &InstanceRef,
) -> OpResult<()> {
    if gone_before(store, claim, phone).await? {
        info!(host = ?phone.host, "the phone's host is gone: deleted without it");
        return Ok(());
    }
    match backend.delete(phone).await {
        Err(e)
            if e.code == TaskErrorCode::InstanceUnreachable && host_gone(store, phone).await? =>
        {
            info!(host = ?phone.host, "the phone's host is gone: deleted without it");
            Ok(())
        }
        done => done,
    }
}
