//! The simulated phone's files as adb's sync protocol sees them (`adb push`, `pull`, `ls`):
//! the phone's data dir, every path resolved through [`paths::resolve`] (no escape from the
//! data dir, no symlink followed), a push written to a scratch file outside the phone's files
//! and renamed over its target at the end as SendFile does (the phone never shows half a file;
//! a failed push leaves nothing). A push reserves the phone's storage as its bytes arrive
//! ([`crate::sim::storage`]): past the capacity it fails with "No space left on device", and
//! what it had reserved is given back.
//! Files stream through the sync server one chunk at a time, whatever their size, with 1 MiB of
//! file buffered each way (one trip to the blocking pool per MiB rather than per 64 KiB chunk).
//!
//! Modes are a phone's, not the host's (the data dir is owner-only on the host): directories
//! `drwxrwx--x`, files `-rw-rw----`, owned by `shell` (2000), who pushed them.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cloudphone_adb::proto::sync::{FileStat, S_IFDIR, S_IFREG, errno};
use cloudphone_adb::services::sync::{DirEntry, FsError, SyncFs};
use tokio::io::AsyncWrite;

use crate::sim::paths::{self, PathError};
use crate::sim::phone::{PhoneDir, Scratch};
use crate::sim::share::{Checkouts, Held};
use crate::sim::storage::{Reservation, replaced_blocks};

const SHELL_UID: u32 = 2000;
const DIR_MODE: u32 = S_IFDIR | 0o771;
const FILE_MODE: u32 = S_IFREG | 0o660;
/// What a transfer's file buffers: each trip to the blocking pool moves this much rather than
/// one 64 KiB sync chunk.
const FILE_BUF: usize = 1 << 20;

pub(crate) struct SimFs {
    phone: PhoneDir,
    checkouts: Checkouts,
}

impl SimFs {
    pub(crate) fn new(phone: PhoneDir, checkouts: Checkouts) -> SimFs {
        SimFs { phone, checkouts }
    }

    /// The phone's checkout for one request, its files brought up to date.
    async fn checkout(&self) -> Result<Held, FsError> {
        self.checkouts
            .take()
            .await
            .map_err(|e| FsError::new(errno::EIO, e.message))
    }

    /// The host path of the phone path `path` (absolute, as adb sends it).
    async fn host(&self, path: &str) -> Result<PathBuf, FsError> {
        let data = self.phone.data();
        let path = path.to_string();
        let resolved = tokio::task::spawn_blocking(move || paths::resolve(&data, "/", &path))
            .await
            .map_err(|e| FsError::new(errno::EIO, e.to_string()))??;
        match resolved {
            Ok(r) => Ok(r.host),
            Err(e) => Err(path_error(&e)),
        }
    }
}

fn path_error(e: &PathError) -> FsError {
    match e {
        PathError::Empty => FsError::not_found(),
        PathError::Nul => FsError::new(errno::EINVAL, "Invalid argument"),
        // The sim never makes links; one planted from the host is not followed.
        PathError::Symlink(_) => FsError::new(errno::EACCES, "Permission denied"),
    }
}

fn seconds(t: io::Result<SystemTime>) -> i64 {
    t.ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

fn stat_of(m: &std::fs::Metadata) -> FileStat {
    let mtime = seconds(m.modified());
    FileStat {
        mode: if m.is_dir() { DIR_MODE } else { FILE_MODE },
        nlink: if m.is_dir() { 2 } else { 1 },
        uid: SHELL_UID,
        gid: SHELL_UID,
        size: if m.is_dir() { 4096 } else { m.len() },
        atime: seconds(m.accessed()).max(mtime),
        mtime,
        ctime: mtime,
        ..FileStat::default()
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, FsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FsError::new(errno::EIO, e.to_string()))?
        .map_err(FsError::from)
}

/// A file being pushed: written to `tmp`, renamed to `target` when the push completes; the
/// phone's storage reserved for what was written.
pub(crate) struct Upload {
    /// Held from the push's start to its end, when what it wrote is published.
    held: Held,
    file: tokio::io::BufWriter<tokio::fs::File>,
    tmp: Scratch,
    target: PathBuf,
    reserved: Reservation,
    written: u64,
}

impl AsyncWrite for Upload {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        // Reserved before a byte is written: what the storage cannot hold is never written.
        if let Err(e) = me.reserved.cover(me.written + buf.len() as u64) {
            return Poll::Ready(Err(e));
        }
        let n = std::task::ready!(Pin::new(&mut me.file).poll_write(cx, buf))?;
        me.written += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_shutdown(cx)
    }
}

/// Where a push to `target` may be written: parents made (we announce `fixed_push_mkdir`),
/// not onto a directory. Blocking.
fn prepare_write(data: &Path, target: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
        return Err(io::Error::from(io::ErrorKind::IsADirectory));
    }
    std::fs::create_dir_all(target.parent().unwrap_or(data))
}

impl SyncFs for SimFs {
    type Reader = tokio::io::BufReader<tokio::fs::File>;
    type Writer = Upload;

    async fn stat(&self, path: &str, _follow_links: bool) -> Result<FileStat, FsError> {
        let _held = self.checkout().await?;
        let host = self.host(path).await?;
        let m = tokio::fs::symlink_metadata(&host).await?;
        Ok(stat_of(&m))
    }

    async fn list(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let _held = self.checkout().await?;
        let host = self.host(path).await?;
        blocking(move || {
            let mut entries = Vec::new();
            for e in std::fs::read_dir(&host)? {
                let e = e?;
                let m = e.metadata()?;
                // Only what the sim itself makes: files and directories.
                if !(m.is_file() || m.is_dir()) {
                    continue;
                }
                entries.push(DirEntry {
                    name: e.file_name().to_string_lossy().into_owned(),
                    stat: stat_of(&m),
                });
            }
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(entries)
        })
        .await
    }

    /// The file opened is read to its end even if another node changes the phone meanwhile:
    /// a change replaces files by renaming, never in place.
    async fn open_read(&self, path: &str) -> Result<Self::Reader, FsError> {
        let _held = self.checkout().await?;
        let host = self.host(path).await?;
        match tokio::fs::symlink_metadata(&host).await? {
            m if m.is_dir() => Err(FsError::new(errno::EISDIR, "Is a directory")),
            m if !m.is_file() => Err(FsError::new(errno::EACCES, "Permission denied")),
            _ => Ok(tokio::io::BufReader::with_capacity(
                FILE_BUF,
                tokio::fs::File::open(&host).await?,
            )),
        }
    }

    async fn open_write(&self, path: &str, _mode: u32) -> Result<Self::Writer, FsError> {
        let held = self.checkout().await?;
        let target = self.host(path).await?;
        let (data, t) = (self.phone.data(), target.clone());
        let storage = self.phone.storage().clone();
        // The files counted afresh (another node may have written to the phone), and a new
        // file's first block held, before anything is written.
        let reserved = blocking(move || {
            prepare_write(&data, &t)?;
            storage.refresh(&data)?;
            Ok(storage.reserve(0)?.replacing(replaced_blocks(&t)))
        })
        .await?;
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned());
        let tmp = Scratch::new(self.phone.scratch(name.as_deref().unwrap_or("push")));
        let file = tokio::io::BufWriter::with_capacity(
            FILE_BUF,
            tokio::fs::File::create(tmp.path()).await?,
        );
        let mut upload = Upload {
            held,
            file,
            tmp,
            target,
            reserved,
            written: 0,
        };
        upload.reserved.cover(0)?;
        Ok(upload)
    }

    async fn finish_write(&self, _path: &str, file: Upload, mtime: u32) -> Result<(), FsError> {
        let Upload {
            held,
            file,
            tmp,
            target,
            reserved,
            ..
        } = file;
        // The sync server flushed it.
        let file = file.into_inner().into_std().await;
        let storage = self.phone.storage().clone();
        // On failure the scratch file goes with `tmp`, the reservation with `reserved`.
        blocking(move || {
            let when = UNIX_EPOCH + Duration::from_secs(u64::from(mtime));
            file.set_modified(when)?;
            drop(file);
            storage.commit(reserved, tmp.path(), &target)?;
            tmp.keep();
            Ok(())
        })
        .await?;
        held.published()
            .await
            .map_err(|e| FsError::new(errno::EIO, e))
    }
}
