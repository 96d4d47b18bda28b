//! The simulated fleet: each phone is a directory under the data dir holding its properties, its
//! apps' state and its user data (see [`phone`]). Operations take realistic time (or
//! `--sim-delay-ms`), and faults can be injected per task type, instance and error code; a fault
//! belongs to the account that injected it and touches only that account's phones.
//! RunCommand runs the [`shell`]; SendFile and FetchFile stream files in and out of the phone's
//! data dir, through the one path mapping in [`paths`]. A phone's files stay within its storage
//! capacity (`storage.rs`), whatever writes them. Its live screen ([`live_screen`]) is drawn by
//! [`screen`] from its state, and input (a viewer's, or the shell's `input`) changes it through
//! one model ([`live`]). Every operation on a phone's files holds the phone's checkout
//! ([`share`]): free on one node, a lease and a synced copy when nodes share no file system.

mod adbd;
pub mod archive;
pub mod live;
mod live_cell;
mod live_screen;
mod packages;
pub mod paths;
pub mod phone;
pub mod screen;
pub mod share;
pub mod shell;
mod storage;
mod work;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use cloudphone_backend::{
    AdbRoute, AppOp, Backend, BackendError, CommandOutput, Fault, InstanceRef, OpResult, Screen,
    ScreenOptions,
};
use cloudphone_core::resources::Image;
use cloudphone_core::{TaskErrorCode, TaskType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use phone::{Package, PhoneState};
use phone::{PhoneDir, PhoneShared};
use share::{Held, SimShare};

pub use storage::DEFAULT_CAPACITY as DEFAULT_STORAGE_BYTES;

/// Images of the simulated fleet.
pub const ANDROID_12: &str = "imgc-simandroid120000";
pub const ANDROID_14: &str = "imgc-simandroid140000";

#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Where the phones live (`<data-dir>/sim`).
    pub root: PathBuf,
    /// Every operation takes this long; `None` gives each operation a realistic duration.
    pub delay: Option<Duration>,
    /// Appends one line per operation run for a task attempt to [`EXECUTIONS_LEDGER`] under
    /// `root`: `TASK_ID ATTEMPT INSTANCE_ID TASK_TYPE OUTCOME PID` (`ok` or the injected
    /// fault's code; the id of the process that ran it). Tests read it to prove that no attempt ran twice, also across nodes that share
    /// `root`. Off by default: it grows with every task.
    pub record_executions: bool,
}

/// The executions ledger's file name under the sim root.
pub const EXECUTIONS_LEDGER: &str = "executions.log";

pub struct SimBackend {
    config: SimConfig,
    /// What each phone's files may take ([`storage`]).
    storage_capacity: u64,
    faults: Mutex<Vec<Fault>>,
    /// What each phone's users share in this process: the lock that orders changes to its
    /// state (`am start` against a reset, say) and the bounds on its shells' work.
    phones: Mutex<HashMap<String, Arc<PhoneShared>>>,
    /// How the phones' files are shared with other nodes ([`share::Local`] by default).
    share: RwLock<Arc<dyn SimShare>>,
}

impl SimBackend {
    pub fn new(config: SimConfig) -> SimBackend {
        SimBackend {
            config,
            storage_capacity: storage::DEFAULT_CAPACITY,
            faults: Mutex::new(Vec::new()),
            phones: Mutex::new(HashMap::new()),
            share: RwLock::new(Arc::new(share::Local)),
        }
    }

    /// Shares the phones' files with other nodes through `share` (set before the node serves).
    pub fn set_share(&self, share: Arc<dyn SimShare>) {
        *self.share.write().unwrap_or_else(|p| p.into_inner()) = share;
    }

    /// Takes the checkout of phone `id` for one operation, its directory brought up to date.
    async fn checkout(&self, id: &str) -> OpResult<Held> {
        self.checkouts(id, self.phone(id)).take().await
    }

    /// The phone's checkouts, for one operation or for what outlives one call (gateway
    /// sessions, live screens).
    fn checkouts(&self, id: &str, dir: PhoneDir) -> share::Checkouts {
        let share = self.share.read().unwrap_or_else(|p| p.into_inner()).clone();
        share::Checkouts::new(share, id, dir)
    }

    /// Runs `op` holding the phone's checkout, and publishes what it changed before its
    /// result is reported (also when it failed part way: what it wrote stays written).
    async fn changing<T>(
        &self,
        id: &str,
        op: impl std::future::Future<Output = OpResult<T>>,
    ) -> OpResult<T> {
        let held = self.checkout(id).await?;
        let out = op.await;
        held.publish().await?;
        out
    }

    /// Runs `op` holding the phone's checkout, without publishing: it only reads.
    async fn reading<T>(
        &self,
        id: &str,
        op: impl std::future::Future<Output = OpResult<T>>,
    ) -> OpResult<T> {
        let _held = self.checkout(id).await?;
        op.await
    }

    /// Each phone's files may take at most `bytes` (default [`DEFAULT_STORAGE_BYTES`]); a write
    /// past it fails with "No space left on device".
    pub fn with_storage_capacity(mut self, bytes: u64) -> SimBackend {
        self.storage_capacity = bytes;
        self
    }

    fn phone_dir(&self, id: &str) -> PathBuf {
        self.config.root.join(id)
    }

    fn phone(&self, id: &str) -> PhoneDir {
        let shared = self
            .phones
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(PhoneShared::new(self.storage_capacity)))
            .clone();
        PhoneDir::new(self.phone_dir(id), shared)
    }

    /// The phone, which must have been created and not deleted.
    async fn existing(&self, phone: &InstanceRef) -> OpResult<PhoneDir> {
        let dir = self.phone(&phone.id);
        if dir.exists().await {
            Ok(dir)
        } else {
            Err(BackendError::new(
                TaskErrorCode::InstanceUnreachable,
                format!(
                    "The simulated phone {} does not exist (never created, or deleted).",
                    phone.id
                ),
            ))
        }
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

    /// Takes the first matching fault of the phone's own account, if any, using one of its
    /// repetitions.
    fn take_fault(&self, op: TaskType, phone: &InstanceRef) -> Option<BackendError> {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        let i = faults.iter().position(|f| {
            f.account_id == phone.account_id
                && f.task_type.is_none_or(|t| t == op)
                && f.instance_id.as_deref().is_none_or(|i| i == phone.id)
                && f.percent.is_none_or(|p| rand::random_range(0..100u8) < p)
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

    /// Waits out the operation and applies an injected fault; the operation's effect follows
    /// at once, so this is where an execution is recorded.
    async fn work(&self, op: TaskType, phone: &InstanceRef) -> OpResult<()> {
        tokio::time::sleep(self.duration(op)).await;
        let fault = self.take_fault(op, phone);
        if self.config.record_executions {
            let outcome = fault
                .as_ref()
                .map_or("ok".to_string(), |e| e.code.to_string());
            self.record(phone, op, &outcome)?;
        }
        match fault {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn record(&self, phone: &InstanceRef, op: TaskType, outcome: &str) -> OpResult<()> {
        use std::io::Write;
        let Some(attempt) = &phone.attempt else {
            return Ok(());
        };
        let line = format!(
            "{} {} {} {op} {outcome} {}\n",
            attempt.task_id,
            attempt.attempt,
            phone.id,
            std::process::id()
        );
        // One short write to a file opened for appending lands whole, also when several
        // processes append to the same ledger.
        fs(std::fs::create_dir_all(&self.config.root))?;
        let mut file = fs(std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.config.root.join(EXECUTIONS_LEDGER)))?;
        fs(file.write_all(line.as_bytes()))
    }

    fn image(&self, id: &str) -> Option<Image> {
        self.images().into_iter().find(|i| i.id == id)
    }

    /// Lays the phone out fresh from `image_id`: its properties, system apps, no user data.
    async fn write_fresh(&self, phone: &InstanceRef, image_id: &str) -> OpResult<()> {
        let image = self.image(image_id).ok_or_else(|| {
            BackendError::new(
                TaskErrorCode::OperationFailed,
                format!("unknown image {image_id}"),
            )
        })?;
        let props = phone::props(phone, &image);
        self.changing(&phone.id, async {
            fs(self.phone(&phone.id).write_fresh(&props).await)
        })
        .await
    }

    /// Applies a power change to the apps' state; a phone without files has none to change. A
    /// boot also turns the screen on and drops what was half done on it.
    async fn power(&self, phone: &InstanceRef, boot: bool) -> OpResult<()> {
        self.changing(&phone.id, async {
            let dir = self.phone(&phone.id);
            if dir.exists().await {
                if boot {
                    fs(dir.update(PhoneState::boot).await)?;
                    fs(dir.change_live(live::LiveState::boot).await)?;
                } else {
                    fs(dir.update(PhoneState::halt).await)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// The phone's installed packages, running apps and foreground app.
    pub async fn phone_state(&self, phone: &InstanceRef) -> OpResult<PhoneState> {
        self.reading(&phone.id, async {
            fs(self.existing(phone).await?.state().await)
        })
        .await
    }

    /// Records `package` as installed by the user (`pm list packages -3`, `pm path`, `am start`
    /// see it; a reset forgets it); returns its APK path on the phone. Takes no simulated time:
    /// the caller's operation does.
    pub async fn install_package(&self, phone: &InstanceRef, package: &str) -> OpResult<String> {
        if !packages::valid_package_name(package) {
            return Err(BackendError::new(
                TaskErrorCode::InstallAppFailed,
                format!("Invalid package name: {package:?}"),
            ));
        }
        self.changing(&phone.id, async {
            let dir = self.existing(phone).await?;
            fs(packages::install(&dir, package).await)?.map_err(|_| {
                BackendError::new(
                    TaskErrorCode::InstallAppFailed,
                    "A system package cannot be replaced.",
                )
            })
        })
        .await
    }

    /// Removes a user-installed package (stopping it); false when it was not installed.
    pub async fn uninstall_package(&self, phone: &InstanceRef, package: &str) -> OpResult<bool> {
        self.changing(&phone.id, async {
            let dir = self.existing(phone).await?;
            fs(packages::uninstall(&dir, package).await)?.ok_or_else(|| {
                BackendError::new(
                    TaskErrorCode::UninstallAppFailed,
                    "A system package cannot be uninstalled.",
                )
            })
        })
        .await
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

/// Runs blocking file work (metadata checks along a path) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> OpResult<T> + Send + 'static,
) -> OpResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        BackendError::new(TaskErrorCode::InternalError, format!("simulated disk: {e}"))
    })?
}

/// Where SendFile writes `dest` on the phone whose data dir is `data`, with its parent
/// directories made. Blocking.
fn prepare_push(data: &Path, dest: &str) -> OpResult<PathBuf> {
    let failed = |msg: String| BackendError::new(TaskErrorCode::SendFileFailed, msg);
    let r = match paths::resolve(data, "/", dest) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(failed(format!("Invalid destination path {dest:?}: {e}."))),
        Err(e) => return Err(failed(format!("Cannot reach {dest}: {e}"))),
    };
    match std::fs::symlink_metadata(&r.host) {
        Ok(m) if m.is_dir() => {
            return Err(failed(format!(
                "The destination {} is a directory; name the file to write.",
                r.phone
            )));
        }
        Ok(m) if !m.is_file() => {
            return Err(failed(format!(
                "The destination {} is not a regular file.",
                r.phone
            )));
        }
        _ => {}
    }
    let parent = r.host.parent().unwrap_or(data);
    if let Err(e) = std::fs::create_dir_all(parent) {
        let parent_phone = r.phone.rsplit_once('/').map_or("/", |(p, _)| p);
        return Err(failed(format!(
            "Cannot create the directory {parent_phone}: {}.",
            io_text(&e)
        )));
    }
    Ok(r.host)
}

/// Where FetchFile reads `src` on the phone whose data dir is `data`. Blocking.
fn prepare_pull(data: &Path, src: &str) -> OpResult<PathBuf> {
    let failed = |msg: String| BackendError::new(TaskErrorCode::FetchFileFailed, msg);
    let r = match paths::resolve(data, "/", src) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(failed(format!("Invalid source path {src:?}: {e}."))),
        Err(e) => return Err(failed(format!("Cannot reach {src}: {e}"))),
    };
    match std::fs::symlink_metadata(&r.host) {
        Ok(m) if m.is_dir() => Err(failed(format!("{src} is a directory."))),
        Ok(m) if m.is_file() => Ok(r.host),
        Ok(_) => Err(failed(format!("{src} is not a regular file."))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(failed(format!("No such file or directory: {src}")))
        }
        Err(e) => Err(failed(format!("Cannot read {src}: {}.", io_text(&e)))),
    }
}

/// An I/O error without the "(os error N)" tail, for messages users read.
fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotADirectory => "a component of the path is a file".into(),
        std::io::ErrorKind::NotFound => "No such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        std::io::ErrorKind::StorageFull => "No space left on device".into(),
        kind => kind.to_string(),
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
        self.write_fresh(phone, &phone.image_id).await
    }

    async fn delete(&self, phone: &InstanceRef) -> OpResult<()> {
        self.work(TaskType::DeleteInstance, phone).await?;
        let held = self.checkout(&phone.id).await?;
        remove_dir(&self.phone_dir(&phone.id)).await?;
        let share = self.share.read().unwrap_or_else(|p| p.into_inner()).clone();
        fs(share.forget(&phone.id).await)?;
        drop(held);
        self.phones
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&phone.id);
        Ok(())
    }

    async fn start(&self, phone: &InstanceRef) -> OpResult<()> {
        self.work(TaskType::StartInstance, phone).await?;
        self.power(phone, true).await
    }

    async fn stop(&self, phone: &InstanceRef, _force: bool) -> OpResult<()> {
        self.work(TaskType::StopInstance, phone).await?;
        self.power(phone, false).await
    }

    async fn reboot(&self, phone: &InstanceRef, _force: bool) -> OpResult<()> {
        self.work(TaskType::RebootInstance, phone).await?;
        self.power(phone, true).await
    }

    async fn reset(&self, phone: &InstanceRef, image_id: &str) -> OpResult<()> {
        let op = if image_id == phone.image_id {
            TaskType::ResetInstance
        } else {
            TaskType::UpdateGroupImage
        };
        self.work(op, phone).await?;
        // A reset wipes user data and user apps, and re-applies the image.
        self.write_fresh(phone, image_id).await
    }

    async fn run_command(
        &self,
        phone: &InstanceRef,
        command: &str,
        timeout: Duration,
    ) -> OpResult<CommandOutput> {
        self.work(TaskType::RunCommand, phone).await?;
        self.changing(&phone.id, async {
            let dir = self.existing(phone).await?;
            match tokio::time::timeout(timeout, shell::run(&dir, command, shell::MAX_OUTPUT)).await
            {
                Ok(result) => fs(result),
                Err(_) => Err(BackendError::new(
                    TaskErrorCode::CommandTimeout,
                    format!(
                        "The command did not finish within its timeout of {} ms.",
                        timeout.as_millis()
                    ),
                )),
            }
        })
        .await
    }

    async fn push_file(&self, phone: &InstanceRef, local: &Path, dest: &str) -> OpResult<u64> {
        self.work(TaskType::SendFile, phone).await?;
        self.changing(&phone.id, async {
            let dir = self.existing(phone).await?;
            let data = dir.data();
            let dest_owned = dest.to_string();
            let target = blocking(move || prepare_push(&data, &dest_owned)).await?;
            let source = tokio::fs::File::open(local).await;
            let size = match &source {
                Ok(f) => f.metadata().await.map(|m| m.len()),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            };
            let (mut source, size) = match (source, size) {
                (Ok(f), Ok(n)) => (f, n),
                (Err(e), _) | (_, Err(e)) => {
                    return Err(BackendError::new(
                        TaskErrorCode::InternalError,
                        format!("Cannot read the file to send: {e}"),
                    ));
                }
            };
            let failed = |e: std::io::Error| {
                BackendError::new(
                    TaskErrorCode::SendFileFailed,
                    format!("Writing {dest} failed: {}.", io_text(&e)),
                )
            };
            // The phone's storage holds the file's blocks before a byte is written.
            let (storage, data, t) = (dir.storage().clone(), dir.data(), target.clone());
            let reserved = blocking(move || {
                fs(storage.refresh(&data))?;
                Ok(storage.reserve(0).and_then(|r| {
                    let mut r = r.replacing(storage::replaced_blocks(&t));
                    r.cover(size)?;
                    Ok(r)
                }))
            })
            .await?
            .map_err(failed)?;
            // Written to a scratch file outside the phone's files and renamed over the target, so
            // the phone never shows half a file; a copy cut short leaves nothing.
            let tmp = phone::Scratch::new(dir.scratch("push"));
            let storage = dir.storage().clone();
            let copied = async {
                let mut file = tokio::fs::File::create(tmp.path()).await?;
                let n = tokio::io::copy(&mut (&mut source).take(size), &mut file).await?;
                file.flush().await?;
                drop(file);
                tokio::task::spawn_blocking(move || {
                    storage.commit(reserved, tmp.path(), &target)?;
                    tmp.keep();
                    Ok::<(), std::io::Error>(())
                })
                .await
                .map_err(std::io::Error::other)??;
                Ok::<u64, std::io::Error>(n)
            }
            .await;
            copied.map_err(failed)
        })
        .await
    }

    async fn pull_file(&self, phone: &InstanceRef, src: &str, local: &Path) -> OpResult<u64> {
        self.work(TaskType::FetchFile, phone).await?;
        self.reading(&phone.id, async {
            let data = self.existing(phone).await?.data();
            let src_owned = src.to_string();
            let host = blocking(move || prepare_pull(&data, &src_owned)).await?;
            let mut source = tokio::fs::File::open(&host).await.map_err(|e| {
                BackendError::new(
                    TaskErrorCode::FetchFileFailed,
                    format!("Cannot read {src}: {}.", io_text(&e)),
                )
            })?;
            let mut file = tokio::fs::File::create(local).await.map_err(|e| {
                BackendError::new(
                    TaskErrorCode::InternalError,
                    format!("Cannot write the fetched file locally: {e}"),
                )
            })?;
            let copied = async {
                let n = tokio::io::copy(&mut source, &mut file).await?;
                file.flush().await?;
                Ok::<u64, std::io::Error>(n)
            }
            .await;
            copied.map_err(|e| {
                BackendError::new(
                    TaskErrorCode::FetchFileFailed,
                    format!("Reading {src} failed: {}.", io_text(&e)),
                )
            })
        })
        .await
    }

    async fn install_app(&self, phone: &InstanceRef, package: &str, _apk: &Path) -> OpResult<()> {
        self.work(TaskType::InstallApp, phone).await?;
        self.install_package(phone, package).await.map(|_| ())
    }

    async fn uninstall_app(&self, phone: &InstanceRef, package: &str) -> OpResult<()> {
        self.work(TaskType::UninstallApp, phone).await?;
        if self.uninstall_package(phone, package).await? {
            Ok(())
        } else {
            Err(BackendError::new(
                TaskErrorCode::UninstallAppFailed,
                format!("{package} is not installed."),
            ))
        }
    }

    async fn operate_app(&self, phone: &InstanceRef, package: &str, op: AppOp) -> OpResult<()> {
        let kind = match op {
            AppOp::Start => TaskType::StartApp,
            AppOp::Stop => TaskType::StopApp,
            AppOp::Restart => TaskType::RestartApp,
        };
        self.work(kind, phone).await?;
        self.changing(&phone.id, async {
            let dir = self.existing(phone).await?;
            let package = package.to_string();
            let done = dir
                .update(|s| {
                    if s.package(&package).is_none() {
                        return false;
                    }
                    if op != AppOp::Start {
                        s.stop_app(&package);
                    }
                    if op != AppOp::Stop {
                        s.start_app(&package);
                    }
                    true
                })
                .await;
            if fs(done)? {
                Ok(())
            } else {
                Err(BackendError::new(
                    TaskErrorCode::OperateAppFailed,
                    format!("{package} is not installed."),
                ))
            }
        })
        .await
    }

    async fn screenshot(&self, phone: &InstanceRef, local: &Path) -> OpResult<(u32, u32)> {
        self.work(TaskType::Screenshot, phone).await?;
        self.reading(&phone.id, async {
            let dir = self.existing(phone).await?;
            let state = fs(dir.state().await)?;
            let device = dir.device().await;
            let name = phone.name.clone();
            let path = local.to_path_buf();
            // Drawing and encoding a PNG is CPU work: keep it off the async workers.
            let drawn = tokio::task::spawn_blocking(move || {
                // What the live screen shows, at the device's full size.
                dir.live().refresh(&dir.live_path())?;
                let live = dir.live().snapshot();
                let size = live.display(device);
                let clock = chrono::Utc::now().format("%H:%M:%S").to_string();
                let scene = screen::Scene {
                    name: &name,
                    device,
                    phone: &state,
                    live: &live,
                    now_ms: live_cell::now_ms(),
                    clock: &clock,
                    tick: 0,
                };
                let png = screen::Renderer::default()
                    .draw(&scene, size)
                    .png(png::Compression::Balanced)?;
                std::fs::write(&path, png)?;
                Ok::<_, std::io::Error>(size)
            })
            .await;
            match drawn {
                Ok(Ok(size)) => Ok(size),
                Ok(Err(e)) => Err(BackendError::new(
                    TaskErrorCode::ScreenshotFailed,
                    format!("writing the image: {e}"),
                )),
                Err(e) => Err(BackendError::new(
                    TaskErrorCode::ScreenshotFailed,
                    format!("drawing the image: {e}"),
                )),
            }
        })
        .await
    }

    async fn backup(
        &self,
        phone: &InstanceRef,
        paths: &[String],
        exclude: &[String],
        local: &Path,
    ) -> OpResult<u64> {
        self.work(TaskType::BackupFile, phone).await?;
        self.reading(&phone.id, async {
            let data = self.existing(phone).await?.data();
            let (paths, exclude, local) = (paths.to_vec(), exclude.to_vec(), local.to_path_buf());
            blocking(move || archive::write(&data, &paths, &exclude, &local)).await
        })
        .await
    }

    async fn restore(&self, phone: &InstanceRef, local: &Path) -> OpResult<u64> {
        self.work(TaskType::RecoverFile, phone).await?;
        self.changing(&phone.id, async {
            let dir = self.existing(phone).await?;
            let (data, storage) = (dir.data(), dir.storage().clone());
            let local = local.to_path_buf();
            blocking(move || {
                archive::checked(&local)?;
                // What the archive adds must fit, as a push's bytes must.
                fs(storage.rescan(&data))?;
                let growth = archive::growth(&data, &local)?;
                let _reserved = storage.reserve(growth).map_err(|e| {
                    BackendError::new(
                        TaskErrorCode::RecoverFileFailed,
                        format!("Restoring the backup failed: {}.", io_text(&e)),
                    )
                })?;
                let restored = archive::extract_checked(&data, &local);
                fs(storage.rescan(&data))?;
                restored
            })
            .await
        })
        .await
    }

    /// The gateway itself is the phone's adbd ([`adbd`]), over the phone's own state.
    async fn adb_route(&self, phone: &InstanceRef) -> OpResult<AdbRoute> {
        self.reading(&phone.id, async {
            let dir = self.existing(phone).await?;
            let checkouts = self.checkouts(&phone.id, dir.clone());
            let (banner, device) = fs(adbd::SimAdbd::for_phone(dir, checkouts).await)?;
            Ok(AdbRoute::Local { banner, device })
        })
        .await
    }

    /// Frames drawn from the phone's state, and input through the same model as the shell's
    /// `input` ([`live_screen`]).
    async fn open_screen(&self, phone: &InstanceRef, opts: ScreenOptions) -> OpResult<Screen> {
        self.reading(&phone.id, async {
            let dir = self.existing(phone).await?;
            if live::is_off(&fs(dir.state().await)?) {
                return Err(BackendError::new(
                    TaskErrorCode::InstanceUnreachable,
                    format!("The simulated phone {} is stopped.", phone.id),
                ));
            }
            let device = dir.device().await;
            let checkouts = self.checkouts(&phone.id, dir.clone());
            Ok(live_screen::open(
                dir,
                phone.name.clone(),
                device,
                opts,
                checkouts,
            ))
        })
        .await
    }

    fn inject_fault(&self, fault: Fault) -> Result<(), String> {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fault);
        Ok(())
    }

    fn clear_faults(&self, account_id: &str) {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|f| f.account_id != account_id);
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_live;
