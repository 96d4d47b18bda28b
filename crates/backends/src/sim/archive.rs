//! Backup archives of a simulated phone: plain tar files whose entries are phone paths without
//! the leading `/` (`sdcard/Download/a.txt`), directories included so that empty ones come back.
//!
//! Writing walks the phone's files through [`paths`], never following a symbolic link.
//! Extraction is two passes over the archive: the first checks every entry (a plain relative
//! path with no `.` or `..` segment, of type file or directory) and refuses the whole archive if
//! one is hostile, so nothing is written; the second writes each entry through
//! [`paths::resolve`], which refuses a symlink planted anywhere along the way, each file
//! through a temporary sibling renamed over its target. Both are blocking: run them with
//! `spawn_blocking`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::UNIX_EPOCH;

use cloudphone_backend::{BackendError, OpResult};
use cloudphone_core::TaskErrorCode;
use tar::{Builder, EntryType, Header};

use super::paths;
use super::phone::temp_sibling;
use super::storage;
use crate::archive_check::{check, entry_phone_path, open};

fn backup_failed(msg: impl Into<String>) -> BackendError {
    BackendError::new(TaskErrorCode::BackupFileFailed, msg)
}

fn recover_failed(msg: impl Into<String>) -> BackendError {
    BackendError::new(TaskErrorCode::RecoverFileFailed, msg)
}

/// Whether the normalized phone path `p` is `e` or lies under it.
fn under(p: &str, e: &str) -> bool {
    e == "/" || p == e || p.strip_prefix(e).is_some_and(|rest| rest.starts_with('/'))
}

struct Writer<'a> {
    data: &'a Path,
    exclude: Vec<String>,
    seen: HashSet<String>,
    tar: Builder<BufWriter<File>>,
}

impl Writer<'_> {
    fn excluded(&self, phone: &str) -> bool {
        self.exclude.iter().any(|e| under(phone, e))
    }

    /// Adds the phone path `phone` (normalized) and, for a directory, what it holds.
    fn add(&mut self, phone: &str, host: &Path) -> OpResult<()> {
        if self.excluded(phone) || !self.seen.insert(phone.to_string()) {
            return Ok(());
        }
        let io_err = |e: io::Error| backup_failed(format!("Reading {phone} failed: {e}."));
        let meta = std::fs::symlink_metadata(host).map_err(io_err)?;
        let name = phone.trim_start_matches('/');
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let mut header = Header::new_gnu();
        header.set_mtime(mtime);
        if meta.is_dir() {
            if !name.is_empty() {
                header.set_entry_type(EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                self.tar
                    .append_data(&mut header, format!("{name}/"), io::empty())
                    .map_err(|e| backup_failed(format!("Writing the archive failed: {e}.")))?;
            }
            let mut children: Vec<_> = std::fs::read_dir(host)
                .map_err(io_err)?
                .collect::<io::Result<Vec<_>>>()
                .map_err(io_err)?;
            children.sort_by_key(|c| c.file_name());
            for child in children {
                let Some(file_name) = child.file_name().to_str().map(str::to_string) else {
                    continue; // A name the phone could not have made.
                };
                // Half-written files of SendFile and the like.
                if file_name.starts_with('.') && file_name.ends_with(".part") {
                    continue;
                }
                let child_phone = if phone == "/" {
                    format!("/{file_name}")
                } else {
                    format!("{phone}/{file_name}")
                };
                self.add(&child_phone, &child.path())?;
            }
        } else if meta.is_file() {
            let file = File::open(host).map_err(io_err)?;
            header.set_entry_type(EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(meta.len());
            self.tar
                .append_data(&mut header, name, file)
                .map_err(|e| backup_failed(format!("Archiving {phone} failed: {e}.")))?;
        }
        // Symbolic links and special files are never followed nor archived.
        Ok(())
    }
}

/// Archives `sources` (phone paths) of the phone whose files are under `data` into `out`,
/// leaving out `exclude`; returns the archive's size.
pub fn write(data: &Path, sources: &[String], exclude: &[String], out: &Path) -> OpResult<u64> {
    let normalize = |p: &str| {
        paths::normalize("/", p).map_err(|e| backup_failed(format!("Invalid path {p:?}: {e}.")))
    };
    let exclude = exclude
        .iter()
        .map(|e| normalize(e))
        .collect::<OpResult<Vec<_>>>()?;
    let mut resolved = Vec::with_capacity(sources.len());
    for source in sources {
        let r = match paths::resolve(data, "/", source) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(backup_failed(format!("Invalid path {source:?}: {e}."))),
            Err(e) => return Err(backup_failed(format!("Cannot reach {source}: {e}."))),
        };
        match std::fs::symlink_metadata(&r.host) {
            Ok(m) if m.is_dir() || m.is_file() => resolved.push(r),
            Ok(_) => {
                return Err(backup_failed(format!(
                    "{source} is not a regular file or directory."
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(backup_failed(format!(
                    "No such file or directory: {source}"
                )));
            }
            Err(e) => return Err(backup_failed(format!("Cannot read {source}: {e}."))),
        }
    }
    let file = File::create(out)
        .map_err(|e| backup_failed(format!("Cannot write the archive locally: {e}.")))?;
    let mut writer = Writer {
        data,
        exclude,
        seen: HashSet::new(),
        tar: Builder::new(BufWriter::new(file)),
    };
    // Parent directories first, so that extraction recreates them as directories.
    for r in &resolved {
        let mut at = String::new();
        let parents: Vec<&str> = r.phone.split('/').filter(|p| !p.is_empty()).collect();
        for part in parents.iter().take(parents.len().saturating_sub(1)) {
            at.push('/');
            at.push_str(part);
            if !writer.seen.contains(&at) && !writer.excluded(&at) {
                writer.seen.insert(at.clone());
                let mut header = Header::new_gnu();
                header.set_entry_type(EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                writer
                    .tar
                    .append_data(&mut header, format!("{}/", &at[1..]), io::empty())
                    .map_err(|e| backup_failed(format!("Writing the archive failed: {e}.")))?;
            }
        }
        writer.add(&r.phone, &r.host)?;
    }
    let _ = writer.data;
    let mut buffered = writer
        .tar
        .into_inner()
        .map_err(|e| backup_failed(format!("Writing the archive failed: {e}.")))?;
    buffered
        .flush()
        .map_err(|e| backup_failed(format!("Writing the archive failed: {e}.")))?;
    let file = buffered
        .into_inner()
        .map_err(|e| backup_failed(format!("Writing the archive failed: {e}.")))?;
    file.sync_all()
        .map_err(|e| backup_failed(format!("Writing the archive failed: {e}.")))?;
    let size = file
        .metadata()
        .map_err(|e| backup_failed(format!("Writing the archive failed: {e}.")))?
        .len();
    Ok(size)
}

/// What extracting `archive` (already [`checked`]) onto the files under `data` adds to the
/// phone's storage, in blocks (`storage::file_blocks`): its files and new directories, less
/// the files they replace.
pub fn growth(data: &Path, archive: &Path) -> OpResult<u64> {
    let mut tar = open(archive)?;
    let bad = |e: io::Error| recover_failed(format!("The backup archive is corrupt: {e}."));
    let (mut added, mut replaced) = (0u64, 0u64);
    for entry in tar.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let Some(phone) = entry_phone_path(&raw) else {
            continue;
        };
        let existing = match paths::resolve(data, "/", &phone) {
            Ok(Ok(r)) => std::fs::symlink_metadata(&r.host).ok(),
            _ => None,
        };
        if entry.header().entry_type() == EntryType::Directory {
            if existing.is_none() {
                added += storage::BLOCK;
            }
            continue;
        }
        added += storage::file_blocks(entry.size());
        if let Some(m) = existing.filter(|m| m.is_file()) {
            replaced += storage::file_blocks(m.len());
        }
    }
    Ok(added.saturating_sub(replaced))
}

/// Extracts `archive` onto the phone whose files are under `data`; returns the bytes of file
/// data written.
pub fn extract(data: &Path, archive: &Path) -> OpResult<u64> {
    check(archive)?;
    extract_checked(data, archive)
}

/// Whether `archive` may be extracted at all (see the module's doc).
pub fn checked(archive: &Path) -> OpResult<()> {
    check(archive).map(|_| ())
}

/// [`extract`] of an archive [`checked`] already.
pub fn extract_checked(data: &Path, archive: &Path) -> OpResult<u64> {
    let mut tar = open(archive)?;
    let bad = |e: io::Error| recover_failed(format!("The backup archive is corrupt: {e}."));
    let mut written = 0u64;
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let Some(phone) = entry_phone_path(&raw) else {
            return Err(recover_failed(
                "The backup archive changed while it was read.",
            ));
        };
        let r = match paths::resolve(data, "/", &phone) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(recover_failed(format!("Cannot restore {phone}: {e}."))),
            Err(e) => return Err(recover_failed(format!("Cannot reach {phone}: {e}."))),
        };
        let io_err = |e: io::Error| recover_failed(format!("Restoring {phone} failed: {e}."));
        if entry.header().entry_type() == EntryType::Directory {
            match std::fs::symlink_metadata(&r.host) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(recover_failed(format!(
                        "Cannot restore the directory {phone}: a file is in the way."
                    )));
                }
                Err(_) => std::fs::create_dir_all(&r.host).map_err(io_err)?,
            }
            continue;
        }
        if std::fs::symlink_metadata(&r.host).is_ok_and(|m| m.is_dir()) {
            return Err(recover_failed(format!(
                "Cannot restore the file {phone}: a directory is in the way."
            )));
        }
        if let Some(parent) = r.host.parent() {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let tmp = temp_sibling(&r.host);
        let copied = (|| {
            let mut out = File::create(&tmp)?;
            let n = io::copy(&mut entry, &mut out)?;
            out.flush()?;
            drop(out);
            std::fs::rename(&tmp, &r.host)?;
            Ok::<u64, io::Error>(n)
        })();
        match copied {
            Ok(n) => written += n,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(io_err(e));
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tar::Archive;

    fn phone() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("phone/data");
        std::fs::create_dir_all(data.join("sdcard/Download")).unwrap();
        (dir, data)
    }

    #[test]
    fn round_trip_with_excludes_and_missing_paths() {
        let (dir, data) = phone();
        std::fs::write(data.join("sdcard/Download/a.txt"), b"alpha").unwrap();
        std::fs::create_dir_all(data.join("sdcard/Download/sub/empty")).unwrap();
        std::fs::write(data.join("sdcard/Download/sub/b.bin"), [0u8, 1, 2, 255]).unwrap();
        std::fs::write(data.join("sdcard/skip.txt"), b"skip").unwrap();
        let out = dir.path().join("b.tar");
        let size = write(
            &data,
            &["/sdcard".into(), "/sdcard/Download".into()],
            &["/sdcard/skip.txt".into()],
            &out,
        )
        .unwrap();
        assert_eq!(size, std::fs::metadata(&out).unwrap().len());

        let other = dir.path().join("other/data");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("keep.txt"), b"keep").unwrap();
        assert_eq!(extract(&other, &out).unwrap(), 9);
        assert_eq!(
            std::fs::read(other.join("sdcard/Download/a.txt")).unwrap(),
            b"alpha"
        );
        assert_eq!(
            std::fs::read(other.join("sdcard/Download/sub/b.bin")).unwrap(),
            [0u8, 1, 2, 255]
        );
        assert!(other.join("sdcard/Download/sub/empty").is_dir());
        assert!(!other.join("sdcard/skip.txt").exists());
        assert!(other.join("keep.txt").exists());

        let e = write(&data, &["/sdcard/nope".into()], &[], &out).unwrap_err();
        assert_eq!(e.code, TaskErrorCode::BackupFileFailed);
    }

    fn hostile(out: &Path, name: &[u8], kind: EntryType, link: Option<&str>) {
        let mut tar = Builder::new(File::create(out).unwrap());
        let mut ok = Header::new_gnu();
        ok.set_entry_type(EntryType::Regular);
        ok.set_size(2);
        ok.set_mode(0o644);
        ok.set_path("sdcard/ok.txt").unwrap();
        ok.set_cksum();
        tar.append(&ok, &b"ok"[..]).unwrap();
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(if link.is_some() { 0 } else { 4 });
        h.set_mode(0o644);
        // Written raw, so that the builder's own path checks do not stop us.
        let bytes = &mut h.as_old_mut().name;
        bytes[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        let body: &[u8] = if link.is_some() { b"" } else { b"evil" };
        tar.append(&h, body).unwrap();
        tar.into_inner().unwrap();
    }

    #[test]
    fn hostile_archives_write_nothing() {
        let (dir, data) = phone();
        let out = dir.path().join("evil.tar");
        let cases: &[(&[u8], EntryType, Option<&str>)] = &[
            (b"../../escaped.txt", EntryType::Regular, None),
            (b"sdcard/../../escaped.txt", EntryType::Regular, None),
            (b"/tmp/escaped.txt", EntryType::Regular, None),
            (b"sdcard/link", EntryType::Symlink, Some("/etc")),
            (b"sdcard/hard", EntryType::Link, Some("/etc/passwd")),
        ];
        for (name, kind, link) in cases {
            hostile(&out, name, *kind, *link);
            let e = extract(&data, &out).unwrap_err();
            assert_eq!(e.code, TaskErrorCode::RecoverFileFailed, "{name:?}");
            assert!(!data.join("sdcard/ok.txt").exists(), "{name:?}");
            assert!(!dir.path().join("escaped.txt").exists());
            assert!(!dir.path().join("phone/escaped.txt").exists());
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_not_followed() {
        let (dir, data) = phone();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, data.join("sdcard/Download/x")).unwrap();
        // Archive made on a clean phone, holding sdcard/Download/x/f.txt.
        let (dir2, clean) = phone();
        std::fs::create_dir_all(clean.join("sdcard/Download/x")).unwrap();
        std::fs::write(clean.join("sdcard/Download/x/f.txt"), b"f").unwrap();
        let out = dir2.path().join("b.tar");
        write(&clean, &["/sdcard/Download".into()], &[], &out).unwrap();
        let e = extract(&data, &out).unwrap_err();
        assert_eq!(e.code, TaskErrorCode::RecoverFileFailed);
        assert!(!outside.join("f.txt").exists());
        // And backing up never follows it either.
        let out2 = dir.path().join("c.tar");
        write(&data, &["/sdcard".into()], &[], &out2).unwrap();
        let mut names = Vec::new();
        for e in Archive::new(File::open(&out2).unwrap()).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert!(names.iter().all(|n| !n.contains("/x/")), "{names:?}");
    }
}
