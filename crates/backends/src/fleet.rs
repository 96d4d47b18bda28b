//! [`Fleet`]: several backends behind one, each phone routed to the backend that runs its
//! image. The engine and the API see a single [`Backend`]; configuration decides which image
//! ids the simulated fleet, the Docker engine and the ADB servers each own.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudphone_backend::{
    AdbRoute, AppOp, Backend, BackendError, CommandOutput, Fault, InstanceRef, Liveness, OpResult,
    Screen, ScreenOptions,
};
use cloudphone_core::TaskErrorCode;
use cloudphone_core::resources::Image;
use cloudphone_core::task_params::MigrateMode;

pub struct Fleet {
    members: Vec<Arc<dyn Backend>>,
    by_image: HashMap<String, usize>,
}

impl Fleet {
    /// The backends in order; an image id that two of them claim is a configuration error.
    pub fn new(members: Vec<Arc<dyn Backend>>) -> Result<Fleet, String> {
        let mut by_image = HashMap::new();
        for (i, m) in members.iter().enumerate() {
            for image in m.images() {
                if by_image.insert(image.id.clone(), i).is_some() {
                    return Err(format!("the image id {} is configured twice", image.id));
                }
            }
        }
        Ok(Fleet { members, by_image })
    }

    fn index(&self, image_id: &str) -> OpResult<usize> {
        self.by_image.get(image_id).copied().ok_or_else(|| {
            BackendError::new(
                TaskErrorCode::OperationFailed,
                format!("no backend of this server runs the image {image_id}"),
            )
        })
    }

    fn of(&self, phone: &InstanceRef) -> OpResult<&dyn Backend> {
        Ok(self.members[self.index(&phone.image_id)?].as_ref())
    }
}

#[async_trait]
impl Backend for Fleet {
    fn images(&self) -> Vec<Image> {
        self.members.iter().flat_map(|m| m.images()).collect()
    }

    fn can_create(&self, image_id: &str) -> bool {
        self.index(image_id)
            .is_ok_and(|i| self.members[i].can_create(image_id))
    }

    fn can_reimage(&self, from: &str, to: &str) -> bool {
        match (self.index(from), self.index(to)) {
            (Ok(a), Ok(b)) => a == b && self.members[a].can_reimage(from, to),
            _ => false,
        }
    }

    async fn create(&self, phone: &InstanceRef) -> OpResult<()> {
        self.of(phone)?.create(phone).await
    }

    async fn delete(&self, phone: &InstanceRef) -> OpResult<()> {
        self.of(phone)?.delete(phone).await
    }

    async fn start(&self, phone: &InstanceRef) -> OpResult<()> {
        self.of(phone)?.start(phone).await
    }

    async fn stop(&self, phone: &InstanceRef, force: bool) -> OpResult<()> {
        self.of(phone)?.stop(phone, force).await
    }

    async fn reboot(&self, phone: &InstanceRef, force: bool) -> OpResult<()> {
        self.of(phone)?.reboot(phone, force).await
    }

    async fn reset(&self, phone: &InstanceRef, image_id: &str) -> OpResult<()> {
        let (from, to) = (self.index(&phone.image_id)?, self.index(image_id)?);
        if from != to {
            // Nothing was done to the phone, which keeps its status.
            return Err(BackendError::new(
                TaskErrorCode::UnsupportedOperation,
                format!(
                    "the phone runs {} on another backend than {image_id}: a phone cannot move between backends",
                    phone.image_id
                ),
            ));
        }
        self.members[from].reset(phone, image_id).await
    }

    async fn migrate(
        &self,
        phone: &InstanceRef,
        to: &InstanceRef,
        mode: MigrateMode,
    ) -> OpResult<()> {
        self.of(phone)?.migrate(phone, to, mode).await
    }

    async fn run_command(
        &self,
        phone: &InstanceRef,
        command: &str,
        timeout: Duration,
    ) -> OpResult<CommandOutput> {
        self.of(phone)?.run_command(phone, command, timeout).await
    }

    async fn push_file(&self, phone: &InstanceRef, local: &Path, dest: &str) -> OpResult<u64> {
        self.of(phone)?.push_file(phone, local, dest).await
    }

    async fn pull_file(&self, phone: &InstanceRef, src: &str, local: &Path) -> OpResult<u64> {
        self.of(phone)?.pull_file(phone, src, local).await
    }

    async fn install_app(&self, phone: &InstanceRef, package: &str, local: &Path) -> OpResult<()> {
        self.of(phone)?.install_app(phone, package, local).await
    }

    async fn uninstall_app(&self, phone: &InstanceRef, package: &str) -> OpResult<()> {
        self.of(phone)?.uninstall_app(phone, package).await
    }

    async fn operate_app(&self, phone: &InstanceRef, package: &str, op: AppOp) -> OpResult<()> {
        self.of(phone)?.operate_app(phone, package, op).await
    }

    async fn screenshot(&self, phone: &InstanceRef, local: &Path) -> OpResult<(u32, u32)> {
        self.of(phone)?.screenshot(phone, local).await
    }

    async fn backup(
        &self,
        phone: &InstanceRef,
        paths: &[String],
        exclude: &[String],
        local: &Path,
    ) -> OpResult<u64> {
        self.of(phone)?.backup(phone, paths, exclude, local).await
    }

    async fn restore(&self, phone: &InstanceRef, local: &Path) -> OpResult<u64> {
        self.of(phone)?.restore(phone, local).await
    }

    async fn adb_route(&self, phone: &InstanceRef) -> OpResult<AdbRoute> {
        self.of(phone)?.adb_route(phone).await
    }

    async fn open_screen(&self, phone: &InstanceRef, opts: ScreenOptions) -> OpResult<Screen> {
        self.of(phone)?.open_screen(phone, opts).await
    }

    async fn observe(&self, phones: &[InstanceRef]) -> HashMap<String, Liveness> {
        let mut groups: HashMap<usize, Vec<InstanceRef>> = HashMap::new();
        for p in phones {
            if let Ok(i) = self.index(&p.image_id) {
                groups.entry(i).or_default().push(p.clone());
            }
        }
        let mut all = HashMap::new();
        for (i, group) in groups {
            all.extend(self.members[i].observe(&group).await);
        }
        all
    }

    fn inject_fault(&self, fault: Fault) -> Result<(), String> {
        let mut last = Err("no backend of this server simulates faults".to_string());
        for m in &self.members {
            last = m.inject_fault(fault.clone());
            if last.is_ok() {
                return last;
            }
        }
        last
    }

    fn clear_faults(&self, account_id: &str) {
        for m in &self.members {
            m.clear_faults(account_id);
        }
    }
}
