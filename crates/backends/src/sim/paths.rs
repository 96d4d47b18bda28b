//! Where a path on a simulated phone lives on the host. Every file operation of the sim (the
//! shell, SendFile, FetchFile) resolves phone paths here, so that one function decides that no
//! host file outside the phone's data dir is ever read or written.
//!
//! Resolution is lexical: `.` and `..` are folded away (`..` at `/` stays at `/`), relative
//! paths start at the shell's working directory, and the result is joined under the data dir.
//! Symbolic links are never followed: the sim itself never creates one, so one found inside a
//! data dir was planted from outside and could point anywhere on the host.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A phone path that cannot name a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The empty string names no file (`cat ''` fails the same way on Android).
    Empty,
    /// The kernel cannot take a path with a NUL byte in it.
    Nul,
    /// A component of the path (the normalized phone path up to it is given) is a symlink.
    Symlink(String),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Empty => f.write_str("empty path"),
            PathError::Nul => f.write_str("path contains a NUL byte"),
            PathError::Symlink(at) => write!(f, "{at} is a symbolic link, which is not followed"),
        }
    }
}

/// Folds `path` into an absolute, normalized phone path (`/` or `/a/b`), reading nothing.
/// `cwd` must itself be normalized; it is where a relative `path` starts.
pub fn normalize(cwd: &str, path: &str) -> Result<String, PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    let mut parts: Vec<&str> = Vec::new();
    let start = if path.starts_with('/') { "" } else { cwd };
    for part in start.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The host path of the normalized phone path `phone` under `data`. Each component is a plain
/// name (no `/`, `.` or `..` survive [`normalize`]), so the result stays under `data`.
pub fn host_path(data: &Path, phone: &str) -> PathBuf {
    let mut out = data.to_path_buf();
    out.extend(phone.split('/').filter(|p| !p.is_empty()));
    out
}

/// Fails when any existing component of `phone` under `data` is a symlink. Components past
/// the first missing one cannot be links yet; the caller creates them as plain directories.
pub fn check_no_symlinks(data: &Path, phone: &str) -> io::Result<Result<(), PathError>> {
    let mut host = data.to_path_buf();
    let mut at = String::new();
    for part in phone.split('/').filter(|p| !p.is_empty()) {
        host.push(part);
        at.push('/');
        at.push_str(part);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => return Ok(Err(PathError::Symlink(at))),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            // A regular file used as a directory: the operation itself reports it.
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => break,
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(()))
}

/// A phone path resolved for use: its normalized phone form and where it lives on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub phone: String,
    pub host: PathBuf,
}

/// [`normalize`], [`host_path`] and [`check_no_symlinks`] together: the one way the sim turns a
/// phone path into a host path it may touch. Blocking (it reads metadata).
pub fn resolve(data: &Path, cwd: &str, path: &str) -> io::Result<Result<Resolved, PathError>> {
    let phone = match normalize(cwd, path) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    if let Err(e) = check_no_symlinks(data, &phone)? {
        return Ok(Err(e));
    }
    let host = host_path(data, &phone);
    Ok(Ok(Resolved { phone, host }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_dots_and_never_climbs_above_root() {
        assert_eq!(normalize("/", "/sdcard/a.txt").unwrap(), "/sdcard/a.txt");
        assert_eq!(normalize("/", "sdcard//./a.txt").unwrap(), "/sdcard/a.txt");
        assert_eq!(normalize("/", "../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(normalize("/", "/../..").unwrap(), "/");
        assert_eq!(normalize("/", "/sdcard/../../x").unwrap(), "/x");
        assert_eq!(normalize("/", ".").unwrap(), "/");
        assert_eq!(normalize("/sdcard", "a/../b").unwrap(), "/sdcard/b");
        assert_eq!(normalize("/sdcard", "/data").unwrap(), "/data");
        assert_eq!(normalize("/sdcard/x", "../..").unwrap(), "/");
        assert_eq!(normalize("/", "a/").unwrap(), "/a");
    }

    #[test]
    fn normalize_rejects_empty_and_nul() {
        assert_eq!(normalize("/", ""), Err(PathError::Empty));
        assert_eq!(normalize("/", "/sdcard/a\0b"), Err(PathError::Nul));
    }

    #[test]
    fn host_path_stays_under_data() {
        let data = Path::new("/srv/sim/acp-1/data");
        assert_eq!(host_path(data, "/"), data);
        for p in [
            "../../etc/passwd",
            "/../../..",
            "/etc/passwd",
            "a/../../../../b",
        ] {
            let host = host_path(data, &normalize("/", p).unwrap());
            assert!(host.starts_with(data), "{p} -> {}", host.display());
            assert!(
                host.components()
                    .all(|c| c != std::path::Component::ParentDir),
                "{p} -> {}",
                host.display()
            );
        }
        assert_eq!(
            host_path(data, &normalize("/", "/etc/passwd").unwrap()),
            data.join("etc/passwd")
        );
    }

    #[cfg(unix)]
    #[test]
    fn resolve_refuses_symlinks_anywhere_on_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sdcard")).unwrap();
        std::os::unix::fs::symlink("/etc", data.join("sdcard/etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", data.join("pw")).unwrap();

        let r = resolve(&data, "/", "/sdcard/etc/passwd").unwrap();
        assert_eq!(r, Err(PathError::Symlink("/sdcard/etc".into())));
        let r = resolve(&data, "/", "pw").unwrap();
        assert_eq!(r, Err(PathError::Symlink("/pw".into())));

        let ok = resolve(&data, "/", "/sdcard/new/dir/file")
            .unwrap()
            .unwrap();
        assert_eq!(ok.phone, "/sdcard/new/dir/file");
        assert_eq!(ok.host, data.join("sdcard/new/dir/file"));
    }
}
