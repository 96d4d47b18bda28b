//! Moving a phone from one host of the farm to another (issue 24's drain, docs/design.md
//! §6.9): the source container stopped, the target's leftovers of an earlier attempt removed,
//! the phone's volume and container created on the target (not started), and, in copy mode,
//! its data volume streamed from the source engine's archive API into the target's. The
//! bytes pass through this node one chunk at a time: a phone's data may be gigabytes.
//!
//! Committing the move, starting the target and removing the source are the engine's (its
//! worker fences the commit on the task's attempt); so is undoing a move that failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use cloudphone_backend::{BackendError, InstanceRef, OpResult};
use cloudphone_core::TaskErrorCode;
use cloudphone_core::task_params::MigrateMode;
use futures::TryStreamExt;
use tracing::{info, warn};

use super::DockerBackend;
use super::host::{DockerHost, status_of};

/// How long a recreate waits for the source engine to stop the phone: a host that is gone is
/// the reason to recreate, so its silence must not hold the move up.
const RECREATE_STOP_WAIT: Duration = Duration::from_secs(15);

fn op_failed(msg: impl Into<String>) -> BackendError {
    BackendError::new(TaskErrorCode::OperationFailed, msg)
}

impl DockerBackend {
    pub(super) async fn migrate_phone(
        &self,
        phone: &InstanceRef,
        to: &InstanceRef,
        mode: MigrateMode,
    ) -> OpResult<()> {
        let (from_i, to_i) = (self.host_index(phone)?, self.host_index(to)?);
        if from_i == to_i {
            // Removing the target's leftovers would remove the phone itself.
            return Err(op_failed(format!(
                "the phone is on the host {} already",
                self.hosts[to_i].spec().name
            )));
        }
        let (src, dst) = (&self.hosts[from_i], &self.hosts[to_i]);
        match mode {
            MigrateMode::Copy => src.stop(phone, false).await?,
            MigrateMode::Recreate => {
                match tokio::time::timeout(RECREATE_STOP_WAIT, src.stop(phone, false)).await {
                    Ok(Ok(())) => {}
                    // Its host's reconcile removes it if the host ever comes back.
                    Ok(Err(e)) => {
                        warn!(host = %src.spec().name, "the phone was not stopped on the host it leaves: {}", e.message)
                    }
                    Err(_) => {
                        warn!(host = %src.spec().name, "the host the phone leaves did not stop it in time")
                    }
                }
            }
        }
        dst.delete(to).await?;
        dst.create_stopped(to, &to.image_id).await?;
        if mode == MigrateMode::Copy {
            copy_data(src, dst, phone, to).await?;
        }
        Ok(())
    }
}

/// Streams the phone's data volume (its image's `data_path`, as a tar of the directory) from
/// the source container into the target one, owners and modes kept. A download that breaks
/// aborts the upload.
async fn copy_data(
    src: &Arc<DockerHost>,
    dst: &Arc<DockerHost>,
    phone: &InstanceRef,
    to: &InstanceRef,
) -> OpResult<()> {
    let data_path = src.image_config(&phone.image_id)?.data_path.clone();
    // The archive's top entry is the directory's own name: extracting it in the parent
    // directory puts it back where it was.
    let parent = std::path::Path::new(&data_path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    let started = Instant::now();
    let bytes = Arc::new(AtomicU64::new(0));
    let counted = bytes.clone();
    let download = src
        .docker()
        .await?
        .download_from_container(
            &src.container(phone),
            Some(DownloadFromContainerOptions {
                path: data_path.clone(),
            }),
        )
        .inspect_ok(move |chunk| {
            counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        })
        .map_err(|e| std::io::Error::other(format!("reading the data from the source: {e}")));
    let uploaded = dst
        .docker()
        .await?
        .upload_to_container(
            &dst.container(to),
            Some(UploadToContainerOptions {
                path: parent,
                copy_uidgid: Some("1".into()),
                ..Default::default()
            }),
            bollard::body_try_stream(download),
        )
        .await;
    let copied = bytes.load(Ordering::Relaxed);
    match uploaded {
        Ok(()) => {
            info!(
                instance_id = %phone.id,
                from = %src.spec().name,
                to = %dst.spec().name,
                bytes = copied,
                seconds = started.elapsed().as_secs_f64(),
                "copied the phone's data to its new host"
            );
            Ok(())
        }
        Err(e) => Err(op_failed(format!(
            "copying {data_path} from {} to {} failed after {copied} bytes: {}",
            src.spec().name,
            dst.spec().name,
            match &e {
                bollard::errors::Error::DockerResponseServerError { message, .. } => {
                    format!("{message} ({})", status_of(&e).unwrap_or_default())
                }
                other => other.to_string(),
            }
        ))),
    }
}
