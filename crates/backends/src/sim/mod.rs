//! The simulated fleet: each phone is a directory under the data dir holding its properties and
//! its user data. Operations take realistic time (or `--sim-delay-ms`), and faults can be injected
//! per task type, instance and error code.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use cloudphone_core::resources::Image;
use cloudphone_core::{TaskErrorCode, TaskType};
use cloudphone_engine::{Backend, BackendError, Fault, InstanceRef, OpResult};
use serde_json::json;

/// Images of the simulated fleet.
pub const ANDROID_12: &str = "imgc-simandroid120000";
pub const ANDROID_14: &str = "imgc-simandroid140000";

#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Where the phones live (`<data-dir>/sim`).
    pub root: PathBuf,
    /// Every operation takes this long; `None` gives each operation a realistic duration.
    pub delay: Option<Duration>,
}

pub struct SimBackend {
    config: SimConfig,
    faults: Mutex<Vec<Fault>>,
}

impl SimBackend {
    pub fn new(config: SimConfig) -> SimBackend {
        SimBackend {
            config,
            faults: Mutex::new(Vec::new()),
        }
    }

    fn phone_dir(&self, id: &str) -> PathBuf {
        self.config.root.join(id)
    }

    /// How long `op` takes: the configured delay, or a duration like a real phone's.
    fn duration(&self, op: TaskType) -> Duration {
        if let Some(d) = self.config.delay {
            return d;
        }
        Duration::from_millis(match op {
            TaskType::CreateInstance => 4000,
            TaskType::DeleteInstance => 1500,
            TaskType::StartInstance => 3000,
            TaskType::StopInstance => 2000,
            TaskType::RebootInstance => 4000,
            TaskType::ResetInstance | TaskType::UpdateGroupImage => 6000,
            _ => 1000,
        })
    }

    /// Takes the first matching fault, if any, using one of its repetitions.
    fn take_fault(&self, op: TaskType, phone: &str) -> Option<BackendError> {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        let i = faults.iter().position(|f| {
            f.task_type.is_none_or(|t| t == op)
                && f.instance_id.as_deref().is_none_or(|i| i == phone)
        })?;
        let fault = faults[i].clone();
        match faults[i].remaining {
            Some(1) => {
                faults.remove(i);
            }
            Some(n) => faults[i].remaining = Some(n - 1),
            None => {}
        }
        Some(BackendError::new(fault.code, fault.message))
    }

    /// Waits out the operation and applies an injected fault.
    async fn work(&self, op: TaskType, phone: &InstanceRef) -> OpResult<()> {
        tokio::time::sleep(self.duration(op)).await;
        match self.take_fault(op, &phone.id) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn image(&self, id: &str) -> Option<Image> {
        self.images().into_iter().find(|i| i.id == id)
    }

    async fn write_props(&self, phone: &InstanceRef, image_id: &str) -> OpResult<()> {
        let image = self.image(image_id).ok_or_else(|| {
            BackendError::new(
                TaskErrorCode::OperationFailed,
                format!("unknown image {image_id}"),
            )
        })?;
        let props = json!({
            "ro.build.version.release": image.android_version,
            "ro.product.model": "cloudphone-sim",
            "ro.product.manufacturer": "cloudphone",
            "ro.serialno": phone.id,
            "ro.cloudphone.image": image.id,
            "ro.cloudphone.spec": phone.spec,
        });
        let dir = self.phone_dir(&phone.id);
        fs(tokio::fs::create_dir_all(dir.join("data/sdcard")).await)?;
        fs(tokio::fs::write(dir.join("props.json"), props.to_string()).await)
    }
}

fn fs<T>(r: std::io::Result<T>) -> OpResult<T> {
    r.map_err(|e| BackendError::new(TaskErrorCode::InternalError, format!("simulated disk: {e}")))
}

async fn remove_dir(path: &Path) -> OpResult<()> {
    match tokio::fs::remove_dir_all(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => fs(Err(e)),
        _ => Ok(()),
    }
}

#[async_trait]
impl Backend for SimBackend {
    fn images(&self) -> Vec<Image> {
        let release = 1_735_689_600_000; // 2025-01-01
        vec![
            Image {
                id: ANDROID_12.into(),
                name: "Android 12 (simulated)".into(),
                android_version: "12".into(),
                system_type: "Android".into(),
                description: "Simulated Android 12 phone".into(),
                release_ms: release,
            },
            Image {
                id: ANDROID_14.into(),
                name: "Android 14 (simulated)".into(),
                android_version: "14".into(),
                system_type: "Android".into(),
                description: "Simulated Android 14 phone".into(),
                release_ms: release,
            },
        ]
    }

    async fn create(&self, phone: &InstanceRef) -> OpResult<()> {
        self.work(TaskType::CreateInstance, phone).await?;
        self.write_props(phone, &phone.image_id).await
    }

    async fn delete(&self, phone: &InstanceRef) -> OpResult<()> {
        self.work(TaskType::DeleteInstance, phone).await?;
        remove_dir(&self.phone_dir(&phone.id)).await
    }

    async fn start(&self, phone: &InstanceRef) -> OpResult<()> {
        self.work(TaskType::StartInstance, phone).await
    }

    async fn stop(&self, phone: &InstanceRef, _force: bool) -> OpResult<()> {
        self.work(TaskType::StopInstance, phone).await
    }

    async fn reboot(&self, phone: &InstanceRef, _force: bool) -> OpResult<()> {
        self.work(TaskType::RebootInstance, phone).await
    }

    async fn reset(&self, phone: &InstanceRef, image_id: &str) -> OpResult<()> {
        let op = if image_id == phone.image_id {
            TaskType::ResetInstance
        } else {
            TaskType::UpdateGroupImage
        };
        self.work(op, phone).await?;
        // A reset wipes user data and re-applies the image.
        remove_dir(&self.phone_dir(&phone.id).join("data")).await?;
        self.write_props(phone, image_id).await
    }

    fn inject_fault(&self, fault: Fault) -> Result<(), String> {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fault);
        Ok(())
    }

    fn clear_faults(&self) {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(id: &str) -> InstanceRef {
        InstanceRef {
            id: id.into(),
            name: "p".into(),
            image_id: ANDROID_14.into(),
            spec: "acp.basic.small".into(),
        }
    }

    fn sim(root: &Path) -> SimBackend {
        SimBackend::new(SimConfig {
            root: root.to_path_buf(),
            delay: Some(Duration::from_millis(1)),
        })
    }

    #[tokio::test]
    async fn create_reset_delete_touch_real_files() {
        let dir = tempfile::tempdir().unwrap();
        let sim = sim(dir.path());
        let p = phone("acp-a");
        sim.create(&p).await.unwrap();
        let props = std::fs::read_to_string(dir.path().join("acp-a/props.json")).unwrap();
        assert!(
            props.contains(r#""ro.build.version.release":"14""#),
            "{props}"
        );
        std::fs::write(dir.path().join("acp-a/data/sdcard/x.txt"), "hello").unwrap();
        sim.reset(&p, ANDROID_14).await.unwrap();
        assert!(!dir.path().join("acp-a/data/sdcard/x.txt").exists());
        sim.reset(&p, ANDROID_12).await.unwrap();
        let props = std::fs::read_to_string(dir.path().join("acp-a/props.json")).unwrap();
        assert!(
            props.contains(r#""ro.build.version.release":"12""#),
            "{props}"
        );
        sim.delete(&p).await.unwrap();
        assert!(!dir.path().join("acp-a").exists());
    }

    #[tokio::test]
    async fn faults_match_type_and_instance_and_run_out() {
        let dir = tempfile::tempdir().unwrap();
        let sim = sim(dir.path());
        sim.inject_fault(Fault {
            task_type: Some(TaskType::RebootInstance),
            instance_id: Some("acp-b".into()),
            code: TaskErrorCode::OperationFailed,
            message: "boom".into(),
            remaining: Some(1),
        })
        .unwrap();
        assert!(sim.reboot(&phone("acp-a"), false).await.is_ok());
        assert!(sim.start(&phone("acp-b")).await.is_ok());
        let err = sim.reboot(&phone("acp-b"), false).await.unwrap_err();
        assert_eq!(err.code, TaskErrorCode::OperationFailed);
        assert!(sim.reboot(&phone("acp-b"), false).await.is_ok());
    }
}
