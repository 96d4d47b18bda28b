//! The state of one simulated phone, kept in its directory so that it survives a server restart:
//! `props.json` (system properties, from the image), `state.json` (installed packages, running
//! apps, the foreground app), `live.json` (what the screen shows beyond that: `live.rs`) and
//! `data/` (the phone's files; the phone's `/` is `data/`).
//!
//! Every write replaces a whole file through a temporary file and a rename, so a reader sees the
//! old state or the new one, never half of one. Read-modify-write goes through the phone's lock.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cloudphone_backend::InstanceRef;
use cloudphone_core::resources::Image;
use serde::{Deserialize, Serialize};

use super::live::LIVE_FILE;
use super::live_cell::LiveCell;
use super::storage::{DEFAULT_CAPACITY, Storage};
use super::work::ShellWork;

pub const PROPS_FILE: &str = "props.json";
pub const STATE_FILE: &str = "state.json";
pub const DATA_DIR: &str = "data";

/// The launcher is where a phone lands after boot and after its foreground app is stopped.
pub const LAUNCHER: &str = "com.android.launcher3";

/// Directories a fresh phone has, so that the usual push targets exist as on a real phone.
const FRESH_DIRS: &[&str] = &[
    "sdcard/Download",
    "sdcard/DCIM",
    "sdcard/Pictures",
    "sdcard/Music",
    "sdcard/Movies",
    "sdcard/Documents",
    "data/local/tmp",
];

/// (package, APK path, has a launcher activity) of the apps every image ships.
const SYSTEM_PACKAGES: &[(&str, &str, bool)] = &[
    ("android", "/system/framework/framework-res.apk", false),
    (
        "com.android.camera2",
        "/system/app/Camera2/Camera2.apk",
        true,
    ),
    ("com.android.chrome", "/product/app/Chrome/Chrome.apk", true),
    (
        "com.android.contacts",
        "/product/app/Contacts/Contacts.apk",
        true,
    ),
    (
        "com.android.documentsui",
        "/system/priv-app/DocumentsUI/DocumentsUI.apk",
        true,
    ),
    (
        "com.android.inputmethod.latin",
        "/system/app/LatinIME/LatinIME.apk",
        false,
    ),
    (
        LAUNCHER,
        "/system_ext/priv-app/Launcher3QuickStep/Launcher3QuickStep.apk",
        true,
    ),
    (
        "com.android.phone",
        "/system/priv-app/TeleService/TeleService.apk",
        false,
    ),
    (
        "com.android.providers.media",
        "/system/priv-app/MediaProvider/MediaProvider.apk",
        false,
    ),
    (
        "com.android.settings",
        "/system_ext/priv-app/Settings/Settings.apk",
        true,
    ),
    (
        "com.android.shell",
        "/system/priv-app/Shell/Shell.apk",
        false,
    ),
    (
        "com.android.systemui",
        "/system_ext/priv-app/SystemUI/SystemUI.apk",
        false,
    ),
    (
        "com.android.webview",
        "/system/app/webview/webview.apk",
        false,
    ),
];

/// Apps that run from boot until the phone stops.
const BOOT_APPS: &[&str] = &["com.android.systemui", LAUNCHER];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub apk_path: String,
    /// Shipped with the image (`pm list packages -s`), as opposed to installed (`-3`).
    pub system: bool,
    /// Has a launcher activity, so `am start PKG` can open it.
    pub launchable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneState {
    /// Sorted by name.
    pub packages: Vec<Package>,
    /// In the order they were started.
    pub running: Vec<String>,
    pub foreground: Option<String>,
}

impl PhoneState {
    /// A phone just reset from its image and booted to the home screen.
    pub fn fresh() -> PhoneState {
        let mut state = PhoneState {
            packages: SYSTEM_PACKAGES
                .iter()
                .map(|&(name, apk, launchable)| Package {
                    name: name.into(),
                    apk_path: apk.into(),
                    system: true,
                    launchable,
                })
                .collect(),
            running: Vec::new(),
            foreground: None,
        };
        state.packages.sort_by(|a, b| a.name.cmp(&b.name));
        state.boot();
        state
    }

    pub fn package(&self, name: &str) -> Option<&Package> {
        self.packages
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.packages[i])
    }

    /// After a start or reboot: only the boot apps run, the home screen is in front.
    pub fn boot(&mut self) {
        self.running = BOOT_APPS
            .iter()
            .filter(|a| self.package(a).is_some())
            .map(|a| a.to_string())
            .collect();
        self.foreground = self.package(LAUNCHER).map(|p| p.name.clone());
    }

    /// After a stop: nothing runs.
    pub fn halt(&mut self) {
        self.running.clear();
        self.foreground = None;
    }

    /// Brings `name` to the front, starting it if needed. The caller checks it is installed.
    pub fn start_app(&mut self, name: &str) {
        if !self.running.iter().any(|r| r == name) {
            self.running.push(name.into());
        }
        self.foreground = Some(name.into());
    }

    /// Opens an app as its launcher icon does (and `am start PKG`): it must be installed and
    /// have a launcher activity. False when it cannot open.
    pub fn launch(&mut self, name: &str) -> bool {
        let ok = self.package(name).is_some_and(|p| p.launchable);
        if ok {
            self.start_app(name);
        }
        ok
    }

    /// Stops `name`; if it was in front, the home screen comes back. Unknown names are ignored,
    /// as `am force-stop` ignores them.
    pub fn stop_app(&mut self, name: &str) {
        self.running.retain(|r| r != name);
        if self.foreground.as_deref() == Some(name) {
            self.foreground = None;
            if self.package(LAUNCHER).is_some() {
                self.start_app(LAUNCHER);
            }
        }
    }

    /// Records a third-party package (replacing an earlier install of it); returns its APK path.
    pub fn install(&mut self, name: &str) -> String {
        let apk_path = format!("/data/app/{name}-1/base.apk");
        let package = Package {
            name: name.into(),
            apk_path: apk_path.clone(),
            system: false,
            launchable: true,
        };
        match self
            .packages
            .binary_search_by(|p| p.name.as_str().cmp(name))
        {
            Ok(i) => self.packages[i] = package,
            Err(i) => self.packages.insert(i, package),
        }
        apk_path
    }

    /// Removes a third-party package and stops it; false when it was not installed.
    pub fn uninstall(&mut self, name: &str) -> bool {
        let Ok(i) = self
            .packages
            .binary_search_by(|p| p.name.as_str().cmp(name))
        else {
            return false;
        };
        if self.packages[i].system {
            return false;
        }
        self.packages.remove(i);
        self.stop_app(name);
        true
    }
}

/// The SDK level Android reports for a release (`ro.build.version.sdk`).
fn sdk_level(release: &str) -> &'static str {
    match release {
        "11" => "30",
        "12" => "31",
        "13" => "33",
        "14" => "34",
        "15" => "35",
        _ => "",
    }
}

/// A build id of the shape real builds have, so scripts that parse it find one.
fn build_id(release: &str) -> &'static str {
    match release {
        "12" => "SQ3A.220705.003",
        "14" => "UQ1A.240205.004",
        _ => "CLOUDPHONE.SIM",
    }
}

/// The system properties of `phone` running `image`.
pub fn props(phone: &InstanceRef, image: &Image) -> BTreeMap<String, String> {
    let release = image.android_version.as_str();
    let brand = "cloudphone";
    let device = "cloudphone_sim";
    let fingerprint = format!(
        "{brand}/{device}/{device}:{release}/{}/1:user/release-keys",
        build_id(release)
    );
    [
        ("ro.build.version.release", release.to_string()),
        ("ro.build.version.sdk", sdk_level(release).into()),
        ("ro.build.id", build_id(release).into()),
        ("ro.build.type", "user".into()),
        ("ro.build.fingerprint", fingerprint),
        ("ro.product.model", "cloudphone-sim".into()),
        ("ro.product.manufacturer", "cloudphone".into()),
        ("ro.product.brand", brand.into()),
        ("ro.product.name", device.into()),
        ("ro.product.device", device.into()),
        ("ro.product.cpu.abi", "arm64-v8a".into()),
        ("ro.serialno", phone.id.clone()),
        ("ro.cloudphone.image", image.id.clone()),
        ("ro.cloudphone.spec", phone.spec.clone()),
        ("sys.boot_completed", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Writes `bytes` to `path` so that readers see the old content or the new, never a mix. One
/// trip to the blocking pool for the write and the rename together.
pub async fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let path = path.to_path_buf();
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || {
        let tmp = temp_sibling(&path);
        let written = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    })
    .await
    .map_err(io::Error::other)?
}

/// A hidden name next to `path` that no other writer in this process uses.
pub fn temp_sibling(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}-{n}.part", std::process::id()))
}

/// A file removed when dropped unless kept: a push cut short (the connection dropped, the
/// gateway closed it) leaves nothing on the phone.
pub(crate) struct Scratch(Option<PathBuf>);

impl Scratch {
    pub(crate) fn new(path: PathBuf) -> Scratch {
        Scratch(Some(path))
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    /// The file stays (it was renamed into place).
    pub(crate) fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// What a phone's users share within this process, whichever way they reach it (RunCommand,
/// `adb shell`, SendFile, `adb push`, a live screen): the lock that orders changes to its state,
/// the bounds on its shells' work, its storage, and its live screen's state.
#[derive(Debug)]
pub(crate) struct PhoneShared {
    lock: tokio::sync::Mutex<()>,
    work: Arc<ShellWork>,
    storage: Arc<Storage>,
    live: LiveCell,
}

impl PhoneShared {
    pub fn new(capacity: u64) -> PhoneShared {
        PhoneShared {
            lock: Default::default(),
            work: Default::default(),
            storage: Arc::new(Storage::new(capacity)),
            live: LiveCell::default(),
        }
    }
}

impl Default for PhoneShared {
    fn default() -> PhoneShared {
        PhoneShared::new(DEFAULT_CAPACITY)
    }
}

/// One phone's directory, with what its users share.
#[derive(Clone)]
pub(crate) struct PhoneDir {
    dir: PathBuf,
    shared: Arc<PhoneShared>,
}

impl PhoneDir {
    pub fn new(dir: PathBuf, shared: Arc<PhoneShared>) -> PhoneDir {
        PhoneDir { dir, shared }
    }

    /// The bounds and counters of the phone's shells.
    pub fn work(&self) -> &Arc<ShellWork> {
        &self.shared.work
    }

    /// What the phone's files may take, and take.
    pub fn storage(&self) -> &Arc<Storage> {
        &self.shared.storage
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join(DATA_DIR)
    }

    /// The phone's directory (its files, documents and scratch space).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the phone's screen shows beyond its apps' state, in this process.
    pub fn live(&self) -> &LiveCell {
        &self.shared.live
    }

    pub fn live_path(&self) -> PathBuf {
        self.dir.join(LIVE_FILE)
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The device's display size in portrait, from its spec (720x1280 when it names none).
    pub async fn device(&self) -> (u32, u32) {
        if let Some(d) = self.live().device.get() {
            return *d;
        }
        let spec = self
            .props()
            .await
            .ok()
            .and_then(|p| p.get("ro.cloudphone.spec").cloned())
            .unwrap_or_default();
        let size =
            cloudphone_core::resources::spec(&spec).map_or((720, 1280), |s| (s.width, s.height));
        *self.live().device.get_or_init(|| size)
    }

    /// A fresh path in the phone's directory but outside its files (`data/`), for what the
    /// phone receives before it is placed (an APK `adb install` streams); gone with the phone.
    pub fn scratch(&self, name: &str) -> PathBuf {
        temp_sibling(&self.dir.join(name))
    }

    pub async fn exists(&self) -> bool {
        tokio::fs::metadata(&self.dir)
            .await
            .is_ok_and(|m| m.is_dir())
    }

    pub async fn props(&self) -> io::Result<BTreeMap<String, String>> {
        let bytes = tokio::fs::read(self.dir.join(PROPS_FILE)).await?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
        let object = value
            .as_object()
            .ok_or_else(|| io::Error::other("props.json is not an object"))?;
        Ok(object
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect())
    }

    /// The phone's state; a phone made before state was kept has the fresh state.
    pub async fn state(&self) -> io::Result<PhoneState> {
        match tokio::fs::read(self.dir.join(STATE_FILE)).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(PhoneState::fresh()),
            Err(e) => Err(e),
        }
    }

    async fn save_state(&self, state: &PhoneState) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
        write_atomic(&self.dir.join(STATE_FILE), &bytes).await
    }

    /// Changes the state under the phone's lock; writes it only if it changed (rebooting a phone
    /// that runs no app changes nothing).
    pub async fn update<R>(&self, change: impl FnOnce(&mut PhoneState) -> R) -> io::Result<R> {
        let _guard = self.shared.lock.lock().await;
        let before = self.state().await?;
        let mut state = before.clone();
        let out = change(&mut state);
        if state != before {
            self.save_state(&state).await?;
        }
        Ok(out)
    }

    /// Makes the phone as its image ships it: no user files, the image's properties, the
    /// system packages only, booted to the home screen.
    pub async fn write_fresh(&self, props: &BTreeMap<String, String>) -> io::Result<()> {
        let _guard = self.shared.lock.lock().await;
        match tokio::fs::remove_dir_all(self.data()).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for dir in FRESH_DIRS {
            tokio::fs::create_dir_all(self.data().join(dir)).await?;
        }
        let bytes = serde_json::to_vec(props).map_err(io::Error::other)?;
        write_atomic(&self.dir.join(PROPS_FILE), &bytes).await?;
        self.save_state(&PhoneState::fresh()).await?;
        match tokio::fs::remove_file(self.live_path()).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => self.live().reset(),
        }
        self.rescan_storage().await
    }

    /// Counts the phone's files again after a change made outside [`Storage`]'s writes (a
    /// reset, a restore).
    pub async fn rescan_storage(&self) -> io::Result<()> {
        let (storage, data) = (self.storage().clone(), self.data());
        tokio::task::spawn_blocking(move || storage.rescan(&data))
            .await
            .map_err(io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_state_is_booted_with_system_packages_only() {
        let s = PhoneState::fresh();
        assert!(s.packages.iter().all(|p| p.system));
        assert!(s.packages.windows(2).all(|w| w[0].name < w[1].name));
        assert_eq!(
            s.package("com.android.settings").unwrap().apk_path,
            "/system_ext/priv-app/Settings/Settings.apk"
        );
        assert_eq!(s.foreground.as_deref(), Some(LAUNCHER));
        assert!(s.running.contains(&"com.android.systemui".to_string()));
    }

    #[test]
    fn start_stop_install_uninstall_keep_state_coherent() {
        let mut s = PhoneState::fresh();
        s.start_app("com.android.settings");
        assert_eq!(s.foreground.as_deref(), Some("com.android.settings"));
        s.stop_app("com.android.settings");
        assert!(!s.running.contains(&"com.android.settings".to_string()));
        assert_eq!(s.foreground.as_deref(), Some(LAUNCHER));

        assert_eq!(
            s.install("com.example.app"),
            "/data/app/com.example.app-1/base.apk"
        );
        assert!(!s.package("com.example.app").unwrap().system);
        s.start_app("com.example.app");
        assert!(s.uninstall("com.example.app"));
        assert!(s.package("com.example.app").is_none());
        assert!(!s.running.contains(&"com.example.app".to_string()));
        assert!(!s.uninstall("com.android.settings"), "system apps stay");

        s.halt();
        assert!(s.running.is_empty() && s.foreground.is_none());
    }

    #[tokio::test]
    async fn state_round_trips_through_disk_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let phone = PhoneDir::new(dir.path().to_path_buf(), Default::default());
        let mut props = BTreeMap::new();
        props.insert("ro.serialno".to_string(), "acp-x".to_string());
        phone.write_fresh(&props).await.unwrap();
        phone
            .update(|s| s.install("com.example.app"))
            .await
            .unwrap();
        let again = PhoneDir::new(dir.path().to_path_buf(), Default::default());
        assert!(
            again
                .state()
                .await
                .unwrap()
                .package("com.example.app")
                .is_some()
        );
        assert_eq!(again.props().await.unwrap()["ro.serialno"], "acp-x");
        assert!(dir.path().join("data/sdcard/Download").is_dir());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".part"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
