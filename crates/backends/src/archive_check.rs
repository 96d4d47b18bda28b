//! The check every backup archive passes before anything of it is written to a phone: plain
//! relative paths with no `.` or `..` segment (`sdcard/Download/a.txt`), entries of type file or
//! directory only, so that a hostile archive cannot reach outside the phone's files or plant a
//! link. Blocking: run it with `spawn_blocking`.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Component, Path};

use cloudphone_core::TaskErrorCode;
use cloudphone_engine::{BackendError, OpResult};
use tar::{Archive, EntryType};

fn recover_failed(msg: impl Into<String>) -> BackendError {
    BackendError::new(TaskErrorCode::RecoverFileFailed, msg)
}

/// The phone path an entry names, if it is a safe one: relative, made of plain names only.
pub(crate) fn entry_phone_path(raw: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_str()?.to_string()),
            Component::CurDir if parts.is_empty() => {}
            _ => return None,
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!("/{}", parts.join("/")))
}

pub(crate) fn open(archive: &Path) -> OpResult<Archive<BufReader<File>>> {
    let file = File::open(archive)
        .map_err(|e| recover_failed(format!("Cannot read the archive: {e}.")))?;
    Ok(Archive::new(BufReader::new(file)))
}

/// Checks every entry of `archive` without writing anything; returns the bytes of file data it
/// holds.
pub fn check(archive: &Path) -> OpResult<u64> {
    let mut tar = open(archive)?;
    let bad = |e: io::Error| recover_failed(format!("The backup archive is corrupt: {e}."));
    let mut bytes = 0u64;
    for entry in tar.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?;
        let kind = entry.header().entry_type();
        // Also the pax/GNU long-name records, which the reader folds into the next entry.
        if !matches!(
            kind,
            EntryType::Regular | EntryType::Continuous | EntryType::Directory
        ) {
            return Err(recover_failed(format!(
                "The backup archive holds {} of a type that cannot be restored ({kind:?}).",
                raw.display()
            )));
        }
        if entry_phone_path(&raw).is_none() {
            return Err(recover_failed(format!(
                "The backup archive holds an unsafe path: {:?}.",
                raw.display().to_string()
            )));
        }
        if kind != EntryType::Directory {
            bytes += entry.header().size().map_err(bad)?;
        }
    }
    Ok(bytes)
}
