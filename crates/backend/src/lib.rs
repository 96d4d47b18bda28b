//! The [`Backend`] trait: one method per operation on one phone, with the types it speaks in
//! ([`InstanceRef`], [`BackendError`], [`Fault`], [`Liveness`], ...). The engine decides when an
//! operation runs; a backend only carries it out. A crate of its own, beside core, so that a
//! backend depends on neither the engine nor the store and its database drivers.

use async_trait::async_trait;
use cloudphone_adb::proto::banner::DeviceBanner;
use cloudphone_adb::proto::service::ServicePolicy;
use cloudphone_adb::session::SharedDevice;
use cloudphone_core::resources::Image;
use cloudphone_core::task_params::MigrateMode;
use cloudphone_core::{TaskErrorCode, TaskType};

pub mod screen;
pub use screen::{Codec, Frame, Input, InputEvent, Key, Screen, ScreenOptions, TouchAction};

/// What a backend needs to know about the phone it acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceRef {
    pub id: String,
    /// The account that owns the phone (a simulated fault applies to its owner's phones only).
    pub account_id: String,
    pub name: String,
    pub image_id: String,
    pub spec: String,
    /// The task attempt the operation runs for (`None` outside the engine), so that a backend
    /// can record its executions or recognise a retry.
    pub attempt: Option<AttemptRef>,
    /// The host of the farm the phone lives on (`None`: not placed: ADB devices, simulated
    /// phones of a node that does not place yet), which a farm backend routes the call to.
    pub host: Option<String>,
    /// The phone's adbd port on its host (host-network hosts), handed out by the store.
    pub adb_port: Option<u16>,
}

impl InstanceRef {
    /// The phone as a backend outside a task sees it (a screen, a look at its health).
    pub fn of(i: &cloudphone_core::resources::Instance) -> InstanceRef {
        InstanceRef {
            id: i.id.clone(),
            account_id: i.account_id.clone(),
            name: i.name.clone(),
            image_id: i.image_id.clone(),
            spec: i.spec.clone(),
            attempt: None,
            host: i.host.clone(),
            adb_port: i.adb_port,
        }
    }
}

/// One attempt of one task: the engine runs each at most once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRef {
    pub task_id: String,
    pub attempt: i64,
}

/// Why an operation failed, in the vocabulary of [`TaskErrorCode`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct BackendError {
    pub code: TaskErrorCode,
    pub message: String,
}

impl BackendError {
    pub fn new(code: TaskErrorCode, message: impl Into<String>) -> BackendError {
        BackendError {
            code,
            message: message.into(),
        }
    }
}

pub type OpResult<T> = Result<T, BackendError>;

/// What OperateApp does to an app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppOp {
    Start,
    Stop,
    Restart,
}

/// What a shell command printed (stdout and stderr together, as `sh -c` in a terminal shows
/// them) and how it exited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutput {
    pub output: Vec<u8>,
    pub exit_code: i32,
}

fn unsupported<T>(what: &str) -> OpResult<T> {
    Err(BackendError::new(
        TaskErrorCode::InternalError,
        format!("{what} is not supported by this backend."),
    ))
}

/// A failure to inject into a simulated fleet: the next `remaining` operations (every one when
/// `None`) on phones of `account_id` that match the type and instance fail with `code`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The account that injected it: it only ever touches that account's phones, so one tenant
    /// cannot fail another's tasks.
    pub account_id: String,
    pub task_type: Option<TaskType>,
    pub instance_id: Option<String>,
    pub code: TaskErrorCode,
    pub message: String,
    pub remaining: Option<u32>,
    /// Fail only this percentage (1-100) of the matching operations, chosen at random; `None`
    /// fails every one.
    pub percent: Option<u8>,
}

/// How the ADB gateway reaches a phone (docs/design.md, "ADB gateway").
#[derive(Clone, Debug)]
pub enum AdbRoute {
    /// The phone has an adbd of its own behind an ADB server: the gateway relays each stream to
    /// the device `serial` through the server at `server` (its smart-socket protocol), so the
    /// phone's adbd sees the server's key, never the user's.
    Relay {
        server: std::net::SocketAddr,
        serial: String,
        /// What the user may do to the phone's adbd besides its device services (`adb root`,
        /// `remount`, `reboot`): none unless the backend says so.
        policy: ServicePolicy,
    },
    /// The backend answers ADB itself (a simulated phone): the gateway serves `device` under
    /// `banner`.
    Local {
        banner: DeviceBanner,
        device: SharedDevice,
    },
}

/// Whether a phone is alive as its backend sees it, for the instance watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    Up,
    /// Gone or dead (a container that exited, a device that left its ADB server).
    Down {
        reason: String,
    },
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The images this backend can run.
    fn images(&self) -> Vec<Image>;
    /// Whether CreateAndroidInstanceGroup may order new phones of `image_id` (devices of an
    /// ADB server cannot be ordered: they join by themselves).
    fn can_create(&self, image_id: &str) -> bool {
        let _ = image_id;
        true
    }
    /// Whether a phone of image `from` can be moved to image `to` (UpdateInstanceGroupImage):
    /// only within one backend, and not for devices, which have no image to change.
    fn can_reimage(&self, from: &str, to: &str) -> bool {
        let _ = (from, to);
        true
    }
    /// Brings a new phone up from its image.
    async fn create(&self, phone: &InstanceRef) -> OpResult<()>;
    /// Removes a phone and its data.
    async fn delete(&self, phone: &InstanceRef) -> OpResult<()>;
    async fn start(&self, phone: &InstanceRef) -> OpResult<()>;
    async fn stop(&self, phone: &InstanceRef, force: bool) -> OpResult<()>;
    async fn reboot(&self, phone: &InstanceRef, force: bool) -> OpResult<()>;
    /// Wipes the phone's data and applies `image_id` (its own image on a plain reset).
    async fn reset(&self, phone: &InstanceRef, image_id: &str) -> OpResult<()>;
    /// Readies the phone's move to another host (issue 24's drain): `phone` where it lives now,
    /// `to` the same phone on its target (its host and port there). Stops the phone, clears
    /// what an earlier attempt left on the target, creates the phone there without starting
    /// it, and with [`MigrateMode::Copy`] copies its data over (`Recreate`: nothing). The
    /// source is left stopped and in place: the engine commits the move, then starts the
    /// target and removes the source, or on a failure removes the target and restarts the
    /// source. A backend without hosts cannot move phones.
    async fn migrate(
        &self,
        phone: &InstanceRef,
        to: &InstanceRef,
        mode: MigrateMode,
    ) -> OpResult<()> {
        let _ = (phone, to, mode);
        Err(BackendError::new(
            TaskErrorCode::UnsupportedOperation,
            "This backend's phones cannot move between hosts.",
        ))
    }
    /// Runs `command` in the phone's shell; fails with `CommandTimeout` when it outlives
    /// `timeout`. A non-zero exit code is not a failure: the command ran.
    async fn run_command(
        &self,
        phone: &InstanceRef,
        command: &str,
        timeout: std::time::Duration,
    ) -> OpResult<CommandOutput> {
        let _ = (phone, command, timeout);
        unsupported("RunCommand")
    }
    /// Copies the local file `local` onto the phone as the file `dest` (an absolute path on the
    /// phone, parent directories created); returns the bytes written. Streams, never holding the
    /// whole file in memory.
    async fn push_file(
        &self,
        phone: &InstanceRef,
        local: &std::path::Path,
        dest: &str,
    ) -> OpResult<u64> {
        let _ = (phone, local, dest);
        unsupported("SendFile")
    }
    /// Copies the file `src` (an absolute path on the phone) to the local file `local`; returns
    /// the bytes copied. Streams.
    async fn pull_file(
        &self,
        phone: &InstanceRef,
        src: &str,
        local: &std::path::Path,
    ) -> OpResult<u64> {
        let _ = (phone, src, local);
        unsupported("FetchFile")
    }
    /// Installs the APK at `local` as `package`.
    async fn install_app(
        &self,
        phone: &InstanceRef,
        package: &str,
        local: &std::path::Path,
    ) -> OpResult<()> {
        let _ = (phone, package, local);
        unsupported("InstallApp")
    }
    /// Uninstalls `package`; one that is not installed is an `UninstallAppFailed`.
    async fn uninstall_app(&self, phone: &InstanceRef, package: &str) -> OpResult<()> {
        let _ = (phone, package);
        unsupported("UninstallApp")
    }
    /// Starts, stops or restarts `package`; one that is not installed is an `OperateAppFailed`.
    async fn operate_app(&self, phone: &InstanceRef, package: &str, op: AppOp) -> OpResult<()> {
        let _ = (phone, package, op);
        unsupported("OperateApp")
    }
    /// Captures the phone's screen as a PNG written to `local`; returns its (width, height).
    async fn screenshot(
        &self,
        phone: &InstanceRef,
        local: &std::path::Path,
    ) -> OpResult<(u32, u32)> {
        let _ = (phone, local);
        unsupported("Screenshot")
    }
    /// Writes a tar archive of the phone paths `paths` (files, or directories taken
    /// recursively), leaving out `exclude` and everything under it, to the local file `local`;
    /// returns the archive's size. A path that does not exist is a `BackupFileFailed`.
    async fn backup(
        &self,
        phone: &InstanceRef,
        paths: &[String],
        exclude: &[String],
        local: &std::path::Path,
    ) -> OpResult<u64> {
        let _ = (phone, paths, exclude, local);
        unsupported("BackupFile")
    }
    /// Extracts the tar archive `local` (as [`Backend::backup`] writes it) onto the phone,
    /// overwriting what is there; returns the bytes of file data written. An entry that would
    /// land outside the phone's files (`..`, absolute, links) is a `RecoverFileFailed`.
    async fn restore(&self, phone: &InstanceRef, local: &std::path::Path) -> OpResult<u64> {
        let _ = (phone, local);
        unsupported("RecoverFile")
    }
    /// How the ADB gateway reaches the phone's adbd, asked on each connection to its
    /// endpoint. The gateway knows the phone by its endpoint: `phone` carries its id, account
    /// and image, with an empty name and spec. A phone that cannot be reached now is an
    /// `InstanceUnreachable`; a backend without ADB, `UnsupportedOperation`.
    async fn adb_route(&self, phone: &InstanceRef) -> OpResult<AdbRoute> {
        let _ = phone;
        Err(BackendError::new(
            TaskErrorCode::UnsupportedOperation,
            "This backend's phones have no ADB endpoint.",
        ))
    }
    /// Opens the phone's live screen: frames at most `opts.fps` a second, at most
    /// `opts.max_size` on their long side, and the input it takes. Dropping the [`Screen`] ends
    /// whatever the backend started for it. A phone that is not running is an
    /// `InstanceUnreachable`; a backend without screens, `UnsupportedOperation`.
    async fn open_screen(&self, phone: &InstanceRef, opts: ScreenOptions) -> OpResult<Screen> {
        let _ = (phone, opts);
        Err(BackendError::new(
            TaskErrorCode::UnsupportedOperation,
            "This backend's phones have no live screen.",
        ))
    }
    /// The liveness of each of `phones` that this backend can tell about now (a simulated
    /// phone never dies: none). Read by the instance watcher, which marks a RUNNING phone that
    /// is Down as UNAVAILABLE.
    async fn observe(&self, phones: &[InstanceRef]) -> std::collections::HashMap<String, Liveness> {
        let _ = phones;
        std::collections::HashMap::new()
    }
    /// Adds a fault; a backend that cannot simulate faults says so.
    fn inject_fault(&self, fault: Fault) -> Result<(), String> {
        let _ = fault;
        Err("this backend does not simulate faults".into())
    }
    /// Drops every fault `account_id` injected (and none of another account's).
    fn clear_faults(&self, account_id: &str) {
        let _ = account_id;
    }
}
