//! MigrateInstance, a drain's move of one phone to another host (docs/design.md §6.9): the
//! backend readies the phone on its target ([`Backend::migrate`]: source stopped, target
//! created, data copied), the store commits the move fenced on the attempt (the point of no
//! return: the phone lives on its target from then on), then the phone is started there
//! (unless it was STOPPED) and its source removed, best effort (the source host's reconcile
//! removes what is left). A failure before the commit undoes the move: the target removed,
//! the source started again if it was running, the room held on the target given back.
//!
//! A retry (the sweeper re-queues a task whose node died) starts over before the commit and
//! only finishes the move after it.

use std::time::Duration;

use cloudphone_backend::{Backend, BackendError, InstanceRef, OpResult};
use cloudphone_core::task_params::{MigrateMode, MigrateParam};
use cloudphone_core::{InstanceStatus, TaskErrorCode};
use cloudphone_store::{Claim, Health, Phone, Store};
use tracing::{info, warn};

/// How long the undo of a failed move and the removal of a committed move's source may take:
/// a host that does not answer must not hold the task up.
const BEST_EFFORT: Duration = Duration::from_secs(30);

fn failed(msg: impl Into<String>) -> BackendError {
    BackendError::new(TaskErrorCode::OperationFailed, msg)
}

fn store_failed(e: impl std::fmt::Display) -> BackendError {
    BackendError::new(
        TaskErrorCode::InternalError,
        format!("the store failed: {e}"),
    )
}

/// Runs `what` for at most [`BEST_EFFORT`], logging a failure.
async fn best_effort(what: &str, op: impl std::future::Future<Output = OpResult<()>>) {
    match tokio::time::timeout(BEST_EFFORT, op).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!("{what} failed: {}", e.message),
        Err(_) => warn!("{what} took longer than {} s; left", BEST_EFFORT.as_secs()),
    }
}

/// The health the store has for host `name` (`None`: no such host).
pub(crate) async fn host_health(store: &dyn Store, name: &str) -> OpResult<Option<Health>> {
    let hosts = store.list_hosts().await.map_err(store_failed)?;
    Ok(hosts.into_iter().find(|h| h.name == name).map(|h| h.health))
}

pub(crate) async fn migrate(
    backend: &dyn Backend,
    store: &dyn Store,
    claim: &Claim,
    claimed: &Phone,
    phone: &InstanceRef,
    param: &MigrateParam,
) -> OpResult<()> {
    let keep_stopped = claim.previous_status == InstanceStatus::Stopped;
    if phone.host.as_deref() == Some(param.to.as_str()) && claimed.moving_to.is_none() {
        // A retry after the commit: the phone lives on its target already.
        let source = InstanceRef {
            host: Some(param.from.clone()),
            adb_port: None,
            ..phone.clone()
        };
        return finish(backend, phone, &source, keep_stopped).await;
    }
    let Some(to_host) = claimed.moving_to.clone() else {
        return Err(failed(format!(
            "the phone is not moving to {} (its move was given up)",
            param.to
        )));
    };
    let target = InstanceRef {
        host: Some(to_host.clone()),
        adb_port: claimed.moving_port,
        ..phone.clone()
    };
    let from = phone.host.clone().unwrap_or_default();
    let refused = if param.mode == MigrateMode::Copy {
        match host_health(store, &from).await {
            Ok(Some(Health::Healthy)) => None,
            Ok(_) => Some(failed(format!(
                "host {from} does not answer; drain with --recreate"
            ))),
            Err(e) => Some(e),
        }
    } else {
        None
    };
    // Whether the backend may have touched either host (a refusal touched nothing: only the
    // room held on the target is given back).
    let ready = match refused {
        Some(e) => Err((e, false)),
        None => backend
            .migrate(phone, &target, param.mode)
            .await
            .map_err(|e| {
                let touched = e.code != TaskErrorCode::UnsupportedOperation;
                (e, touched)
            }),
    };
    if let Err((e, touched)) = ready {
        warn!(error = %e.message, "the move failed; undoing it");
        if touched {
            undo_hosts(backend, phone, &target, keep_stopped).await;
        }
        abandon(store, claim).await;
        return Err(e);
    }
    match store
        .commit_move(&claim.instance_id, &claim.task_id, claim.attempt)
        .await
    {
        Ok(true) => info!(from = %from, to = %to_host, "the phone's move is committed"),
        // Another attempt owns the task now: it starts the move over, so nothing is undone.
        Ok(false) => {
            return Err(failed(
                "this attempt lost the task before the move was committed",
            ));
        }
        Err(e) => return Err(store_failed(e)),
    }
    finish(backend, &target, phone, keep_stopped).await
}

/// After the commit: the phone started on its new host (unless it was stopped), its old
/// container and volume removed.
async fn finish(
    backend: &dyn Backend,
    target: &InstanceRef,
    source: &InstanceRef,
    keep_stopped: bool,
) -> OpResult<()> {
    let started = if keep_stopped {
        Ok(())
    } else {
        backend.start(target).await
    };
    best_effort(
        "removing the phone from the host it left",
        backend.delete(source),
    )
    .await;
    started
}

/// A move that failed before its commit: the target's container and volume removed, the
/// source started again if the phone was running.
async fn undo_hosts(
    backend: &dyn Backend,
    source: &InstanceRef,
    target: &InstanceRef,
    keep_stopped: bool,
) {
    best_effort("removing the phone from its target", backend.delete(target)).await;
    if !keep_stopped {
        best_effort("starting the phone where it was", backend.start(source)).await;
    }
}

/// Gives back the room held on the target.
async fn abandon(store: &dyn Store, claim: &Claim) {
    match store
        .abandon_move(&claim.instance_id, &claim.task_id, claim.attempt)
        .await
    {
        Ok(true) => {}
        Ok(false) => warn!("the move was not abandoned: this attempt no longer holds the task"),
        Err(e) => warn!(error = %e, "abandoning the move failed"),
    }
}
