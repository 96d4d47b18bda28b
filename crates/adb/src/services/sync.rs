//! The device side of the file sync protocol (`sync:`) over a [`SyncFs`]: STAT and STA2/LST2,
//! LIST and LIS2, SEND (push: the file streamed in DATA chunks of at most 64 KiB, then DONE
//! with its mtime) and RECV (pull: the same chunks the other way), as adbd 29 answers them.
//! A push is copied from the host's WRTEs as they come and a pull is read into the WRTEs it
//! sends, so a push or pull of any size uses bounded memory (a pull's counted in the
//! connection's budget), and an idle session none.

use std::future::Future;
use std::io;
use std::sync::Arc;

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
///
/// An idle session holds no buffer: replies are written straight into the stream, which
/// gathers them into WRTEs under the connection's byte budget; a push is copied to the file
/// from the host's WRTEs as they arrive; a pull reads the file into WRTEs taken from the
/// budget ([`AdbStream::buffer`]).
pub async fn serve_sync<F: SyncFs>(stream: AdbStream, fs: Arc<F>) -> Result<(), SyncError> {
    let mut s = stream;
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
            ID_SEND => receive_file(&mut s, &*fs, &path).await?,
            ID_RECV => send_file(&mut s, &*fs, &path).await?,
            _ => {
                let msg = format!("unknown command {:08x}", req.id);
                return refuse(&mut s, &msg).await;
            }
        }
        s.flush().await?;
    }
}

type Wire = AdbStream;

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

/// Skips `left` bytes of the host's data.
async fn skip(s: &mut Wire, mut left: usize) -> io::Result<()> {
    while left > 0 {
        let n = s.fill_buf().await?.len().min(left);
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        s.consume(n);
        left -= n;
    }
    Ok(())
}

/// How copying one DATA message to the file ended badly.
enum CopyError {
    /// The stream: the session is over.
    Stream(io::Error),
    /// The file, with what is left of the message.
    File(io::Error, usize),
}

/// Copies the next `left` bytes of the host's data to `file`, straight from the WRTEs they
/// came in.
async fn copy_data<W: AsyncWrite + Unpin>(
    s: &mut Wire,
    mut left: usize,
    file: &mut W,
) -> Result<(), CopyError> {
    while left > 0 {
        let chunk = s.fill_buf().await.map_err(CopyError::Stream)?;
        if chunk.is_empty() {
            return Err(CopyError::Stream(io::ErrorKind::UnexpectedEof.into()));
        }
        let n = chunk.len().min(left);
        if let Err(e) = file.write_all(&chunk[..n]).await {
            return Err(CopyError::File(e, left));
        }
        s.consume(n);
        left -= n;
    }
    Ok(())
}

/// SEND: `spec` is `path,mode`.
async fn receive_file<F: SyncFs>(s: &mut Wire, fs: &F, spec: &str) -> Result<(), SyncError> {
    let Some((path, mode)) = parse_send_spec(spec) else {
        return refuse(s, "missing , in ID_SEND or bad mode").await;
    };
    if mode & S_IFMT == S_IFLNK {
        return receive_link(s, fs, path).await;
    }
    let mut file = match fs.open_write(path, mode).await {
        Ok(f) => f,
        Err(e) => {
            let msg = format!("couldn't create file: {e}");
            return fail_and_drain(s, &msg).await;
        }
    };
    loop {
        let Some(frame) = read_frame(s).await? else {
            fs.abort_write(path, file).await;
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        };
        match frame.id {
            ID_DATA if frame.arg <= SYNC_DATA_MAX => {
                match copy_data(s, frame.arg as usize, &mut file).await {
                    Ok(()) => {}
                    Err(CopyError::Stream(e)) => {
                        fs.abort_write(path, file).await;
                        return Err(e.into());
                    }
                    Err(CopyError::File(e, left)) => {
                        fs.abort_write(path, file).await;
                        skip(s, left).await?;
                        let msg = format!("write failed: {}", FsError::from(e));
                        return fail_and_drain(s, &msg).await;
                    }
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
async fn fail_and_drain(s: &mut Wire, message: &str) -> Result<(), SyncError> {
    s.write_all(&fail(message)).await?;
    s.flush().await?;
    while let Some(frame) = read_frame(s).await? {
        if frame.id != ID_DATA || frame.arg > SYNC_DATA_MAX {
            break;
        }
        skip(s, frame.arg as usize).await?;
    }
    Err(SyncError::Refused(message.to_string()))
}

async fn receive_link<F: SyncFs>(s: &mut Wire, fs: &F, path: &str) -> Result<(), SyncError> {
    let Some(frame) = read_frame(s).await? else {
        return Ok(());
    };
    if frame.id != ID_DATA || frame.arg > MAX_PATH_LEN {
        return refuse(s, "invalid data message: expected ID_DATA").await;
    }
    let mut target = vec![0u8; frame.arg as usize];
    s.read_exact(&mut target).await?;
    let target = String::from_utf8_lossy(&target)
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

/// RECV: the file read straight into WRTE-sized buffers of the connection's budget, DATA
/// message after DATA message, each buffer sent when full.
async fn send_file<F: SyncFs>(s: &mut Wire, fs: &F, path: &str) -> Result<(), SyncError> {
    let mut file = match fs.open_read(path).await {
        Ok(f) => f,
        Err(e) => return refuse(s, &format!("open failed: {e}")).await,
    };
    let max = s.max_payload();
    let mut out = s.buffer(max).await?;
    loop {
        if out.remaining() <= REQUEST_LEN {
            s.send(out).await?;
            out = s.buffer(max).await?;
        }
        let room = (out.remaining() - REQUEST_LEN).min(SYNC_DATA_MAX as usize);
        let n = match file
            .read(&mut out.unfilled()[REQUEST_LEN..REQUEST_LEN + room])
            .await
        {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                // What was read so far goes first, then the FAIL.
                s.send(out).await?;
                return refuse(s, &format!("read failed: {}", FsError::from(e))).await;
            }
        };
        let frame = Frame {
            id: ID_DATA,
            arg: n as u32,
        };
        out.unfilled()[..REQUEST_LEN].copy_from_slice(&frame.encode());
        out.advance(REQUEST_LEN + n);
    }
    let done = Frame {
        id: ID_DONE,
        arg: 0,
    }
    .encode();
    if out.remaining() < done.len() {
        s.send(out).await?;
        out = s.buffer(done.len()).await?;
    }
    out.put(&done);
    s.send(out).await?;
    Ok(())
}
