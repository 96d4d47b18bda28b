//! The device side of the file sync protocol (`sync:`) over a [`SyncFs`]: STAT and STA2/LST2,
//! LIST and LIS2, SEND (push: the file streamed in DATA chunks of at most 64 KiB, then DONE
//! with its mtime) and RECV (pull: the same chunks the other way), as adbd 29 answers them.
//! At most one chunk is held at a time, so a push or pull of any size uses bounded memory.

use std::future::Future;
use std::io;
use std::sync::Arc;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tracing::debug;

use crate::proto::sync::{
    FileStat, Frame, ID_DATA, ID_DONE, ID_LIST_V1, ID_LIST_V2, ID_LSTAT_V1, ID_LSTAT_V2, ID_OKAY,
    ID_QUIT, ID_RECV, ID_SEND, ID_STAT_V2, MAX_PATH_LEN, REQUEST_LEN, S_IFLNK, S_IFMT,
    SYNC_DATA_MAX, dent_v1, dent_v2, errno, fail, list_done, parse_send_spec, stat_v1, stat_v2,
};
use crate::session::AdbStream;

/// A file system operation's failure: the errno STA2 reports, and the text a FAIL carries
/// (adb prints it after "remote").
#[derive(Debug, Clone, Error)]
#[error("{message}")]
pub struct FsError {
    /// A Linux errno value ([`crate::proto::sync::errno`]).
    pub errno: u32,
    pub message: String,
}

impl FsError {
    pub fn new(errno: u32, message: impl Into<String>) -> FsError {
        FsError {
            errno,
            message: message.into(),
        }
    }

    pub fn not_found() -> FsError {
        FsError::new(errno::ENOENT, "No such file or directory")
    }
}

impl From<io::Error> for FsError {
    fn from(e: io::Error) -> FsError {
        let errno = match e.raw_os_error() {
            Some(n) => n as u32,
            None => match e.kind() {
                io::ErrorKind::NotFound => errno::ENOENT,
                io::ErrorKind::PermissionDenied => errno::EACCES,
                io::ErrorKind::AlreadyExists => errno::EEXIST,
                io::ErrorKind::NotADirectory => errno::ENOTDIR,
                io::ErrorKind::IsADirectory => errno::EISDIR,
                io::ErrorKind::InvalidInput => errno::EINVAL,
                io::ErrorKind::StorageFull => errno::ENOSPC,
                io::ErrorKind::ReadOnlyFilesystem => errno::EROFS,
                io::ErrorKind::Unsupported => errno::ENOTSUP,
                _ => errno::EIO,
            },
        };
        FsError::new(errno, e.to_string())
    }
}

/// A directory entry for LIST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub stat: FileStat,
}

/// The file system a sync session works on. Paths are the client's, absolute, unchecked.
pub trait SyncFs: Send + Sync + 'static {
    /// A file being pulled.
    type Reader: AsyncRead + Send + Unpin;
    /// A file being pushed.
    type Writer: AsyncWrite + Send + Unpin;

    /// `follow_links`: stat (STA2) rather than lstat (STAT, LST2).
    fn stat(
        &self,
        path: &str,
        follow_links: bool,
    ) -> impl Future<Output = Result<FileStat, FsError>> + Send;

    fn list(&self, path: &str) -> impl Future<Output = Result<Vec<DirEntry>, FsError>> + Send;

    fn open_read(&self, path: &str) -> impl Future<Output = Result<Self::Reader, FsError>> + Send;

    /// Creates (or truncates) `path` for a push, making missing parent directories, since we
    /// advertise `fixed_push_mkdir`. `mode` is the client's `st_mode`, type bits included.
    fn open_write(
        &self,
        path: &str,
        mode: u32,
    ) -> impl Future<Output = Result<Self::Writer, FsError>> + Send;

    /// The push completed: keep the file, with `mtime` (seconds since the epoch).
    fn finish_write(
        &self,
        path: &str,
        file: Self::Writer,
        mtime: u32,
    ) -> impl Future<Output = Result<(), FsError>> + Send;

    /// The push failed (adbd removes what it wrote). The default just drops the file.
    fn abort_write(&self, path: &str, file: Self::Writer) -> impl Future<Output = ()> + Send {
        let _ = path;
        async move { drop(file) }
    }

    /// A pushed symbolic link. Unsupported unless implemented.
    fn symlink(
        &self,
        path: &str,
        target: &str,
        mtime: u32,
    ) -> impl Future<Output = Result<(), FsError>> + Send {
        let _ = (path, target, mtime);
        async { Err(FsError::new(errno::ENOTSUP, "symlinks are not supported")) }
    }
}

/// Why a sync session ended early. After a FAIL adbd closes the session too; the client has
/// printed the message by then.
#[derive(Debug, Error)]
pub enum SyncError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("{0}")]
    Refused(String),
}

/// Serves `sync:` until the client sends QUIT or closes the stream.
pub async fn serve_sync<F: SyncFs>(stream: AdbStream, fs: Arc<F>) -> Result<(), SyncError> {
    // Responses are built in a buffer of one WRTE and leave when a reply is complete, so a
    // STAT costs one message and a pull fills every WRTE.
    let capacity = stream.max_payload();
    let mut s = BufWriter::with_capacity(capacity, stream);
    let mut data = vec![0u8; REQUEST_LEN + SYNC_DATA_MAX as usize];
    loop {
        let Some(req) = read_frame(&mut s).await? else {
            return Ok(());
        };
        if req.id == ID_QUIT {
            return Ok(());
        }
        if req.arg > MAX_PATH_LEN {
            return refuse(&mut s, "path too long").await;
        }
        let mut raw = vec![0u8; req.arg as usize];
        s.read_exact(&mut raw).await?;
        let path = String::from_utf8_lossy(&raw).into_owned();
        debug!(request = %req.name(), %path, "sync");
        match req.id {
            ID_LSTAT_V1 => {
                let st = fs.stat(&path, false).await.ok();
                s.write_all(&stat_v1(st.as_ref())).await?;
            }
            ID_STAT_V2 | ID_LSTAT_V2 => {
                let st = fs.stat(&path, req.id == ID_STAT_V2).await;
                let reply = stat_v2(req.id, st.as_ref().map_err(|e| e.errno));
                s.write_all(&reply).await?;
            }
            ID_LIST_V1 | ID_LIST_V2 => {
                let v2 = req.id == ID_LIST_V2;
                // adbd answers a directory it cannot open with an empty listing.
                for e in fs.list(&path).await.unwrap_or_default() {
                    let rec = if v2 {
                        dent_v2(&e.stat, e.name.as_bytes())
                    } else {
                        dent_v1(&e.stat, e.name.as_bytes())
                    };
                    s.write_all(&rec).await?;
                }
                s.write_all(&list_done(v2)).await?;
            }
            ID_SEND => receive_file(&mut s, &*fs, &path, &mut data).await?,
            ID_RECV => send_file(&mut s, &*fs, &path, &mut data).await?,
            _ => {
                let msg = format!("unknown command {:08x}", req.id);
                return refuse(&mut s, &msg).await;
            }
        }
        s.flush().await?;
    }
}

type Wire = BufWriter<AdbStream>;

async fn read_frame(s: &mut Wire) -> io::Result<Option<Frame>> {
    let mut head = [0u8; REQUEST_LEN];
    let first = s.read(&mut head).await?;
    if first == 0 {
        return Ok(None);
    }
    s.read_exact(&mut head[first..]).await?;
    Ok(Some(Frame::parse(&head)))
}

/// Sends FAIL and ends the session.
async fn refuse(s: &mut Wire, message: &str) -> Result<(), SyncError> {
    s.write_all(&fail(message)).await?;
    s.flush().await?;
    Err(SyncError::Refused(message.to_string()))
}

/// SEND: `spec` is `path,mode`.
async fn receive_file<F: SyncFs>(
    s: &mut Wire,
    fs: &F,
    spec: &str,
    buf: &mut [u8],
) -> Result<(), SyncError> {
    let Some((path, mode)) = parse_send_spec(spec) else {
        return refuse(s, "missing , in ID_SEND or bad mode").await;
    };
    if mode & S_IFMT == S_IFLNK {
        return receive_link(s, fs, path, buf).await;
    }
    let mut file = match fs.open_write(path, mode).await {
        Ok(f) => f,
        Err(e) => {
            let msg = format!("couldn't create file: {e}");
            return fail_and_drain(s, &msg, buf).await;
        }
    };
    loop {
        let Some(frame) = read_frame(s).await? else {
            fs.abort_write(path, file).await;
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        };
        match frame.id {
            ID_DATA if frame.arg <= SYNC_DATA_MAX => {
                let chunk = &mut buf[..frame.arg as usize];
                s.read_exact(chunk).await?;
                if let Err(e) = file.write_all(chunk).await {
                    fs.abort_write(path, file).await;
                    let msg = format!("write failed: {}", FsError::from(e));
                    return fail_and_drain(s, &msg, buf).await;
                }
            }
            ID_DATA => {
                fs.abort_write(path, file).await;
                return refuse(s, "oversize data message").await;
            }
            ID_DONE => {
                let done = async {
                    file.flush().await?;
                    fs.finish_write(path, file, frame.arg).await
                };
                return match done.await {
                    Ok(()) => {
                        s.write_all(
                            &Frame {
                                id: ID_OKAY,
                                arg: 0,
                            }
                            .encode(),
                        )
                        .await?;
                        Ok(())
                    }
                    Err(e) => refuse(s, &e.message).await,
                };
            }
            _ => {
                fs.abort_write(path, file).await;
                return refuse(s, "invalid data message").await;
            }
        }
    }
}

/// After a failure adbd keeps reading the client's DATA until DONE, so that the client, which
/// writes without reading, is not cut off before it has seen the FAIL; then it ends.
async fn fail_and_drain(s: &mut Wire, message: &str, buf: &mut [u8]) -> Result<(), SyncError> {
    s.write_all(&fail(message)).await?;
    s.flush().await?;
    while let Some(frame) = read_frame(s).await? {
        if frame.id != ID_DATA || frame.arg > SYNC_DATA_MAX {
            break;
        }
        s.read_exact(&mut buf[..frame.arg as usize]).await?;
    }
    Err(SyncError::Refused(message.to_string()))
}

async fn receive_link<F: SyncFs>(
    s: &mut Wire,
    fs: &F,
    path: &str,
    buf: &mut [u8],
) -> Result<(), SyncError> {
    let Some(frame) = read_frame(s).await? else {
        return Ok(());
    };
    if frame.id != ID_DATA || frame.arg > MAX_PATH_LEN {
        return refuse(s, "invalid data message: expected ID_DATA").await;
    }
    let target = &mut buf[..frame.arg as usize];
    s.read_exact(target).await?;
    let target = String::from_utf8_lossy(target)
        .trim_end_matches('\0')
        .to_string();
    let Some(done) = read_frame(s).await? else {
        return Ok(());
    };
    if done.id != ID_DONE {
        return refuse(s, "invalid data message: expected ID_DONE").await;
    }
    match fs.symlink(path, &target, done.arg).await {
        Ok(()) => {
            s.write_all(
                &Frame {
                    id: ID_OKAY,
                    arg: 0,
                }
                .encode(),
            )
            .await?;
            Ok(())
        }
        Err(e) => refuse(s, &format!("symlink failed: {e}")).await,
    }
}

/// RECV.
async fn send_file<F: SyncFs>(
    s: &mut Wire,
    fs: &F,
    path: &str,
    buf: &mut [u8],
) -> Result<(), SyncError> {
    let mut file = match fs.open_read(path).await {
        Ok(f) => f,
        Err(e) => return refuse(s, &format!("open failed: {e}")).await,
    };
    // Header and data in one buffer: one write into the WRTE being filled.
    let max = buf.len().min(REQUEST_LEN + SYNC_DATA_MAX as usize);
    loop {
        let n = match file.read(&mut buf[REQUEST_LEN..max]).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return refuse(s, &format!("read failed: {}", FsError::from(e))).await,
        };
        let frame = Frame {
            id: ID_DATA,
            arg: n as u32,
        };
        buf[..REQUEST_LEN].copy_from_slice(&frame.encode());
        s.write_all(&buf[..REQUEST_LEN + n]).await?;
    }
    s.write_all(
        &Frame {
            id: ID_DONE,
            arg: 0,
        }
        .encode(),
    )
    .await?;
    Ok(())
}
