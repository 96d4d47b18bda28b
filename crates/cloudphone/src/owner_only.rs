//! What a node writes under its data dir is its own: files 0600 and directories 0700. Objects,
//! their MD5 records, staging and scratch files, simulated phones and the SQLite files are
//! tenants' data or secrets, and another user of the host must not read them.
//!
//! Two measures, since the object store's files are written by a library (`object_store`) that
//! takes no mode: the server's process creates everything owner-only ([`restrict_new_files`],
//! its umask), and the data dir itself is made owner-only at every start ([`dir`]), which also
//! closes the data dirs of earlier versions, whose files were 0644 under 0755 directories.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// From now on, files and directories this process creates have no group or other
/// permissions (umask 077), whatever mode their creator asks for.
pub fn restrict_new_files() {
    // SAFETY: umask only swaps the process's file creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates the directory `path` (and its parents) owner-only, or takes group and other
/// permissions off it if it exists.
pub fn dir(path: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))
            .with_context(|| format!("making {} owner-only", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_is_made_owner_only_new_or_old() {
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("a/b");
        dir(&fresh).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&fresh), 0o700);
        let old = root.path().join("old");
        std::fs::create_dir(&old).unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir(&old).unwrap();
        assert_eq!(mode(&old), 0o700);
    }
}
