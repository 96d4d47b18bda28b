//! The check every backup archive passes before anything of it is written to a phone: plain
//! relative paths with no `.` or `..` segment (`sdcard/Download/a.txt`), entries of type file or
//! directory only, so that a hostile archive cannot reach outside the phone's files or plant a
//! link. Blocking: run it with `spawn_blocking`.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Component, Path};

use cloudphone_backend::{BackendError, OpResult};
use cloudphone_core::TaskErrorCode;
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

fn backup_failed(msg: impl Into<String>) -> BackendError {
    BackendError::new(TaskErrorCode::BackupFileFailed, msg)
}

/// Whether the phone path `p` is `e` or lies under it.
fn under(p: &str, e: &str) -> bool {
    e == "/" || p == e || p.strip_prefix(e).is_some_and(|rest| rest.starts_with('/'))
}

/// Rewrites the archive a phone's own `tar` made (`raw`) into a backup archive as the sim writes
/// them (`out`): entries named `sdcard/...` without `./`, files and directories only (links and
/// devices are left out, as a restore would refuse them), and nothing at or under an `exclude`
/// path (phones' tars differ in how, or whether, they exclude: busybox cannot). Returns the size
/// of `out`. Blocking.
pub fn rewrite_backup(raw: &Path, out: &Path, exclude: &[String]) -> OpResult<u64> {
    let bad = |e: io::Error| backup_failed(format!("The phone's archive is unreadable: {e}."));
    let exclude: Vec<String> = exclude
        .iter()
        .map(|e| format!("/{}", e.trim_matches('/')))
        .collect();
    let file = File::open(raw).map_err(bad)?;
    let mut tar = Archive::new(BufReader::new(file));
    let dest = File::create(out)
        .map_err(|e| backup_failed(format!("Writing the archive failed: {e}.")))?;
    let mut builder = tar::Builder::new(io::BufWriter::new(dest));
    for entry in tar.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        if !matches!(
            kind,
            EntryType::Regular | EntryType::Continuous | EntryType::Directory
        ) {
            continue;
        }
        let raw_path = entry.path().map_err(bad)?.into_owned();
        let Some(phone) = entry_phone_path(&raw_path) else {
            continue;
        };
        if exclude.iter().any(|e| under(&phone, e)) {
            continue;
        }
        let mut header = entry.header().clone();
        let name = &phone[1..];
        let written = if kind == EntryType::Directory {
            builder.append_data(&mut header, format!("{name}/"), io::empty())
        } else {
            builder.append_data(&mut header, name, entry)
        };
        written.map_err(|e| backup_failed(format!("Writing the archive failed: {e}.")))?;
    }
    let mut writer = builder
        .into_inner()
        .map_err(|e| backup_failed(format!("Writing the archive failed: {e}.")))?;
    io::Write::flush(&mut writer)
        .map_err(|e| backup_failed(format!("Writing the archive failed: {e}.")))?;
    let file = writer
        .into_inner()
        .map_err(|e| backup_failed(format!("Writing the archive failed: {e}.")))?;
    file.sync_all()
        .map_err(|e| backup_failed(format!("Writing the archive failed: {e}.")))?;
    Ok(file.metadata().map_err(bad)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phones_archive_is_rewritten_without_its_exclusions() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw.tar");
        {
            let mut b = tar::Builder::new(File::create(&raw).unwrap());
            let mut add = |name: &str, kind: EntryType, data: &[u8]| {
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(kind);
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                if kind == EntryType::Symlink {
                    h.set_link_name("/etc/passwd").unwrap();
                }
                b.append_data(&mut h, name, data).unwrap();
            };
            add("./sdcard/D/", EntryType::Directory, b"");
            add("./sdcard/D/a.txt", EntryType::Regular, b"keep");
            add("./sdcard/D/cache/", EntryType::Directory, b"");
            add("./sdcard/D/cache/j", EntryType::Regular, b"junk");
            add(
                "./sdcard/D/cached.txt",
                EntryType::Regular,
                b"kept: not under cache",
            );
            add("./sdcard/D/link", EntryType::Symlink, b"");
            b.finish().unwrap();
        }
        let out = dir.path().join("out.tar");
        let size = rewrite_backup(&raw, &out, &["/sdcard/D/cache/".into()]).unwrap();
        assert_eq!(size, std::fs::metadata(&out).unwrap().len());
        let mut names = Vec::new();
        for e in Archive::new(File::open(&out).unwrap()).entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = String::new();
            io::Read::read_to_string(&mut e, &mut data).unwrap();
            names.push((e.path().unwrap().display().to_string(), data));
        }
        let expected = [
            ("sdcard/D/", ""),
            ("sdcard/D/a.txt", "keep"),
            ("sdcard/D/cached.txt", "kept: not under cache"),
        ];
        assert_eq!(names, expected.map(|(n, d)| (n.to_string(), d.to_string())));
        assert_eq!(check(&out).unwrap(), 4 + 21);
    }
}
