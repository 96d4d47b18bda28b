//! Installing and removing a simulated phone's packages: one set of rules for every way in
//! (InstallApp and UninstallApp, `pm install`/`pm uninstall` in the shell, which RunCommand and
//! `adb shell` reach, and `adb install`'s streamed install through the ADB gateway), so that
//! what the API shows and what `adb` shows always agree. An APK given as a file is read for
//! its manifest's package name, as Android's package manager does; nothing else of it is kept.

use std::io;
use std::path::{Path, PathBuf};

use super::phone::PhoneDir;

/// Why a package was not installed, worded as `pm` reports it (`Failure [...]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InstallRefused {
    InvalidName(String),
    /// A system package cannot be replaced.
    System(String),
    /// The file is not an APK we can read (no zip, no manifest, no valid package name).
    NotApk(String),
}

impl InstallRefused {
    /// The line `pm install` prints.
    pub fn failure(&self) -> String {
        match self {
            InstallRefused::InvalidName(p) => {
                format!(
                    "Failure [INSTALL_PARSE_FAILED_BAD_PACKAGE_NAME: Invalid package name: {p}]"
                )
            }
            InstallRefused::System(p) => format!(
                "Failure [INSTALL_FAILED_UPDATE_INCOMPATIBLE: Package {p} is a system package and cannot be replaced]"
            ),
            InstallRefused::NotApk(why) => {
                format!("Failure [INSTALL_PARSE_FAILED_NOT_APK: Failed to parse the APK: {why}]")
            }
        }
    }
}

/// A Java-style package name: two or more dot-separated identifiers.
pub(crate) fn valid_package_name(name: &str) -> bool {
    name.len() <= 255
        && name.split('.').count() >= 2
        && name.split('.').all(|seg| {
            seg.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Records `package` as installed by the user (replacing an earlier install of it); returns
/// its APK path on the phone.
pub(crate) async fn install(
    dir: &PhoneDir,
    package: &str,
) -> io::Result<Result<String, InstallRefused>> {
    if !valid_package_name(package) {
        return Ok(Err(InstallRefused::InvalidName(package.to_string())));
    }
    let name = package.to_string();
    dir.update(|s| match s.package(&name) {
        Some(p) if p.system => Err(InstallRefused::System(name.clone())),
        _ => Ok(s.install(&name)),
    })
    .await
}

/// Installs the APK at the host path `apk` (a file under the phone's data dir, or one the
/// gateway received on stdin); returns the package installed.
pub(crate) async fn install_apk(
    dir: &PhoneDir,
    apk: &Path,
) -> io::Result<Result<String, InstallRefused>> {
    let path: PathBuf = apk.to_path_buf();
    let read = tokio::task::spawn_blocking(move || cloudphone_apk::read_apk(&path))
        .await
        .map_err(io::Error::other)?;
    let info = match read {
        Ok(info) => info,
        Err(e) => return Ok(Err(InstallRefused::NotApk(e.to_string()))),
    };
    Ok(install(dir, &info.package).await?.map(|_| info.package))
}

/// Removes a user-installed package (stopping it). `None` when it is a system package;
/// `Some(false)` when it was not installed.
pub(crate) async fn uninstall(dir: &PhoneDir, package: &str) -> io::Result<Option<bool>> {
    let name = package.to_string();
    dir.update(|s| match s.package(&name) {
        Some(p) if p.system => None,
        _ => Some(s.uninstall(&name)),
    })
    .await
}
