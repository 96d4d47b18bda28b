//! [`Objects`]: the object store with one bucket namespace per account, MD5s and signed links.
//!
//! Layout of the storage below (a local directory, or an S3-compatible bucket: [`crate::s3`]):
//! - `objects/<account>/<bucket>/<key>`: the object, written atomically (staged, then renamed,
//!   fsynced), so a crash never leaves a half-written object visible;
//! - `records/<account>/<bucket>/<key>`: its size and MD5, and the entity tag of the data they
//!   describe. It is written after the data; when the tags disagree (a crash between the two
//!   writes, or two writers racing), the MD5 is computed again by streaming the data, and the
//!   record rewritten.
//!
//! Every account has its own bucket names: `oss://media/x` of one account and of another are two
//! objects, so no answer can tell an account whether another uses a name (docs/design.md §7). The
//! layout of earlier versions (one namespace, `data/` and `meta/`) is moved in place at start by
//! [`crate::legacy`].
//!
//! Key segments are percent-encoded by `object_store`'s [`PathPart`] (so `#`, `%` and the like
//! are stored under names that can never collide or escape), on top of [`OssPath`]'s validation
//! (no `..`, `.`, empty segments, control characters or `\`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use cloudphone_store::Store;
use futures::StreamExt;
use futures::stream::BoxStream;
use md5::{Digest, Md5};
use object_store::local::LocalFileSystem;
use object_store::path::{Path as StorePath, PathPart};
use object_store::prefix::PrefixStore;
use object_store::{
    GetOptions, GetResult, GetResultPayload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, WriteMultipart,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;

use crate::layout::{DATA, RECORDS, encoded};
use crate::link::{LinkKey, encode_key, encode_segment};
use crate::{ObjectError, ObjectInfo, OssPath};

/// A stream of an object's bytes, in order.
pub type ByteStream = BoxStream<'static, Result<Bytes, ObjectError>>;

/// Size of the parts a streamed put is cut into (the minimum part size of S3-like services).
const PART_BYTES: usize = 5 << 20;
/// Parts being written at once: with [`PART_BYTES`], bounds a put's memory to ~15 MiB.
const PARTS_IN_FLIGHT: usize = 2;
/// Read buffer for local files and chunk size of streamed gets.
const CHUNK_BYTES: usize = 256 << 10;
/// Longest encoded key segment: file systems allow 255 bytes, and staging adds a suffix.
const MAX_SEGMENT_BYTES: usize = 240;
/// Staging files older than this are leftovers of a crash.
const STALE_STAGING: Duration = Duration::from_secs(3600);
/// A get retries when the object is replaced while its MD5 is being computed.
const OPEN_ATTEMPTS: usize = 3;
/// Lifetime of a presigned URL a link redirects to: long enough to start the download, short
/// enough that a leaked URL is soon useless (our link may live far longer).
#[cfg(feature = "s3")]
const PRESIGNED_TTL: Duration = Duration::from_secs(300);
/// The folder of the storage that no `oss://` path reaches (those live under `objects/` and
/// `records/`): the node's own files.
const INTERNAL: &str = "internal";

/// What holds the objects, for what only one kind of storage does.
enum Backing {
    /// A directory; the conflict rule is the file system's own.
    Local { root: PathBuf },
    #[cfg(feature = "s3")]
    S3(crate::s3::S3),
}

/// The object store of a node. Cheap to share behind an `Arc`; every method may be called from
/// many tasks at once.
pub struct Objects {
    backend: Arc<dyn ObjectStore>,
    backing: Backing,
    link_key: LinkKey,
    public_url: String,
    staging: PathBuf,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects")
            .field("backend", &self.backend.to_string())
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

pub(crate) fn io_error(what: impl std::fmt::Display, e: impl std::fmt::Display) -> ObjectError {
    warn!(error = %e, "object storage: {what}");
    ObjectError::Io(format!("{what}: {e}"))
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Objects {
    /// Objects stored under the local directory `root` (created if missing), links signed with
    /// `link_key` and pointing at `public_url` (e.g. `http://127.0.0.1:9723`, no trailing `/`
    /// needed). Objects of the single-namespace layout are first moved under the account that
    /// `store` records as their bucket's owner.
    pub async fn local(
        root: PathBuf,
        store: &dyn Store,
        link_key: &[u8],
        public_url: String,
    ) -> Result<Objects, ObjectError> {
        std::fs::create_dir_all(&root)
            .map_err(|e| io_error(format_args!("creating {}", root.display()), e))?;
        crate::legacy::migrate(&root, store).await?;
        let staging = root.join(".staging");
        std::fs::create_dir_all(&staging)
            .map_err(|e| io_error(format_args!("creating {}", staging.display()), e))?;
        clean_staging(&staging);
        let backend = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| io_error(format_args!("opening {}", root.display()), e))?
            .with_fsync(true);
        Ok(Objects {
            backend: Arc::new(backend),
            backing: Backing::Local { root },
            link_key: LinkKey::new(link_key),
            public_url: public_url.trim_end_matches('/').to_string(),
            staging,
        })
    }

    /// Objects stored in an S3-compatible bucket, links signed with `link_key` and pointing at
    /// `public_url`; uploads are staged in the local directory `staging` (created if missing).
    /// Fails when the bucket does not answer a listing (wrong endpoint, bucket or credentials).
    #[cfg(feature = "s3")]
    pub async fn s3(
        settings: &crate::S3Settings,
        staging: PathBuf,
        link_key: &[u8],
        public_url: String,
    ) -> Result<Objects, ObjectError> {
        std::fs::create_dir_all(&staging)
            .map_err(|e| io_error(format_args!("creating {}", staging.display()), e))?;
        clean_staging(&staging);
        let s3 = crate::s3::connect(settings).await?;
        Ok(Objects {
            backend: s3.store.clone(),
            backing: Backing::S3(s3),
            link_key: LinkKey::new(link_key),
            public_url: public_url.trim_end_matches('/').to_string(),
            staging,
        })
    }

    /// A local directory for temporary files (HTTP uploads are staged here before
    /// [`Objects::put_file`]): beside the objects on a local store, so that the data dir's disk
    /// holds both. Files older than an hour are removed at start.
    pub fn staging_dir(&self) -> &Path {
        &self.staging
    }

    /// The storage's `internal/` folder, for the node's own files: no `oss://` path reaches it.
    pub fn internal(&self) -> Arc<dyn ObjectStore> {
        Arc::new(PrefixStore::new(self.backend.clone(), INTERNAL))
    }

    // ---- writes ----

    /// Streams the local file `local` into `path` of `account`'s namespace. Memory stays bounded
    /// whatever the file's size.
    pub async fn put_file(
        &self,
        account: &str,
        path: &OssPath,
        local: &Path,
    ) -> Result<ObjectInfo, ObjectError> {
        let (data, meta) = self.locations(account, path)?;
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| io_error(format_args!("opening {}", local.display()), e))?;
        self.check_conflict(&data, path).await?;
        let upload = self
            .backend
            .put_multipart_opts(&data, PutMultipartOptions::default())
            .await
            .map_err(|e| self.write_error(account, path, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut md5 = Md5::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; CHUNK_BYTES];
        let copied: Result<(), ObjectError> = async {
            loop {
                let n = file
                    .read(&mut buf)
                    .await
                    .map_err(|e| io_error(format_args!("reading {}", local.display()), e))?;
                if n == 0 {
                    return Ok(());
                }
                md5.update(&buf[..n]);
                size += n as u64;
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.write_error(account, path, e))?;
                writer.write(&buf[..n]);
            }
        }
        .await;
        if let Err(e) = copied {
            let _ = writer.abort().await;
            return Err(e);
        }
        let put = writer
            .finish()
            .await
            .map_err(|e| self.write_error(account, path, e))?;
        let info = ObjectInfo {
            size,
            md5_hex: hex::encode(md5.finalize()),
        };
        self.write_record(&meta, &info, put.e_tag.as_deref()).await;
        Ok(info)
    }

    /// Stores `bytes` at `path` of `account`'s namespace (for small objects: command output and
    /// the like).
    pub async fn put_bytes(
        &self,
        account: &str,
        path: &OssPath,
        bytes: Vec<u8>,
    ) -> Result<ObjectInfo, ObjectError> {
        let (data, meta) = self.locations(account, path)?;
        self.check_conflict(&data, path).await?;
        let info = ObjectInfo {
            size: bytes.len() as u64,
            md5_hex: hex::encode(Md5::digest(&bytes)),
        };
        let put = self
            .backend
            .put_opts(&data, PutPayload::from(bytes), PutOptions::default())
            .await
            .map_err(|e| self.write_error(account, path, e))?;
        self.write_record(&meta, &info, put.e_tag.as_deref()).await;
        Ok(info)
    }

    /// Records size and MD5 next to the object. A failure only costs a recomputation later.
    async fn write_record(&self, meta: &StorePath, info: &ObjectInfo, e_tag: Option<&str>) {
        let Some(e_tag) = e_tag else { return };
        let record = format!("{} {} {}", info.size, info.md5_hex, e_tag);
        if let Err(e) = self
            .backend
            .put_opts(meta, PutPayload::from(record), PutOptions::default())
            .await
        {
            warn!(error = %e, %meta, "could not record an object's MD5");
        }
    }

    /// A write failed: a clear InvalidPath when the key collides with a folder or an object
    /// (`a` exists and `a/b` is written, or the reverse), else an I/O error.
    fn write_error(&self, account: &str, path: &OssPath, e: object_store::Error) -> ObjectError {
        match e {
            object_store::Error::InvalidPath { .. } => {
                ObjectError::InvalidPath(format!("{path} cannot be stored: {e}"))
            }
            e => {
                if let Some(conflict) = self.conflict(account, path) {
                    return ObjectError::InvalidPath(conflict);
                }
                io_error(format_args!("writing {path}"), e)
            }
        }
    }

    /// Refuses, before writing, a write a bucket would take but a directory would not (an
    /// object below an object, or over a folder), so that both stores answer alike. A local
    /// directory refuses those by itself: [`Objects::write_error`] explains its refusal.
    #[cfg_attr(not(feature = "s3"), allow(unused_variables))]
    async fn check_conflict(&self, data: &StorePath, path: &OssPath) -> Result<(), ObjectError> {
        match &self.backing {
            Backing::Local { .. } => Ok(()),
            #[cfg(feature = "s3")]
            Backing::S3(s3) => match s3.conflict(data, path).await? {
                Some(conflict) => Err(ObjectError::InvalidPath(conflict)),
                None => Ok(()),
            },
        }
    }

    /// Whether `path` cannot be written because an ancestor is an object or the key is a
    /// folder, on the local layout (checked after the file system refused the write).
    fn conflict(&self, account: &str, path: &OssPath) -> Option<String> {
        let root = match &self.backing {
            Backing::Local { root } => root,
            #[cfg(feature = "s3")]
            Backing::S3(_) => return None,
        };
        let segments: Vec<&str> = path.key.split('/').collect();
        let mut dir = root
            .join(DATA)
            .join(encoded(account))
            .join(encoded(&path.bucket));
        for (n, segment) in segments.iter().enumerate() {
            dir.push(encoded(segment));
            let last = n + 1 == segments.len();
            match std::fs::metadata(&dir) {
                Ok(m) if !last && m.is_file() => {
                    return Some(format!(
                        "{path} cannot be written: oss://{}/{} is an object, not a folder",
                        path.bucket,
                        segments[..=n].join("/")
                    ));
                }
                Ok(m) if last && m.is_dir() => {
                    return Some(format!("{path} cannot be written: it is a folder"));
                }
                _ => {}
            }
        }
        None
    }

    // ---- reads ----

    /// Size and MD5 of the object at `path` of `account`'s namespace.
    pub async fn head(&self, account: &str, path: &OssPath) -> Result<ObjectInfo, ObjectError> {
        let (data, meta) = self.locations(account, path)?;
        for _ in 0..OPEN_ATTEMPTS {
            let head = self
                .backend
                .get_opts(&data, GetOptions::default().with_head(true))
                .await
                .map_err(|e| self.read_error(path, e))?;
            if let Some(info) = self.info_for(&data, &meta, path, &head.meta).await? {
                return Ok(info);
            }
        }
        Err(ObjectError::Io(format!("{path} keeps changing")))
    }

    /// Streams the object at `path` of `account`'s namespace into the local file `local`,
    /// atomically (a temporary file beside it, renamed when complete), checking its MD5.
    pub async fn get_to_file(
        &self,
        account: &str,
        path: &OssPath,
        local: &Path,
    ) -> Result<ObjectInfo, ObjectError> {
        let (info, mut stream) = self.open(account, path).await?;
        let dir = match local.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".cloudphone-get-")
            .tempfile_in(&dir)
            .map_err(|e| io_error(format_args!("creating a file in {}", dir.display()), e))?;
        let (file, temp_path) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut md5 = Md5::new();
        let mut size = 0u64;
        let write_err =
            |e: std::io::Error| io_error(format_args!("writing {}", local.display()), e);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            md5.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(write_err)?;
        }
        file.flush().await.map_err(write_err)?;
        file.sync_all().await.map_err(write_err)?;
        drop(file);
        let got = ObjectInfo {
            size,
            md5_hex: hex::encode(md5.finalize()),
        };
        if got != info {
            return Err(io_error(
                format_args!("reading {path}"),
                format_args!("read {got:?}, but the object is {info:?}"),
            ));
        }
        temp_path
            .persist(local)
            .map_err(|e| io_error(format_args!("writing {}", local.display()), e))?;
        Ok(got)
    }

    /// The object at `path` of `account`'s namespace as a stream, with its size and MD5. Memory
    /// stays bounded.
    pub async fn open(
        &self,
        account: &str,
        path: &OssPath,
    ) -> Result<(ObjectInfo, ByteStream), ObjectError> {
        let (data, meta) = self.locations(account, path)?;
        for _ in 0..OPEN_ATTEMPTS {
            let got = self
                .backend
                .get_opts(&data, GetOptions::default())
                .await
                .map_err(|e| self.read_error(path, e))?;
            // The record is checked against the version just opened, which stays readable
            // through its handle even if the object is replaced meanwhile.
            if let Some(info) = self.info_for(&data, &meta, path, &got.meta).await? {
                return Ok((info, byte_stream(got, path)));
            }
        }
        Err(ObjectError::Io(format!("{path} keeps changing")))
    }

    /// Size and MD5 of the version `version` of the object: from its record when the record
    /// describes that version, else computed by reading it. `None` if it was replaced meanwhile.
    async fn info_for(
        &self,
        data: &StorePath,
        meta: &StorePath,
        path: &OssPath,
        version: &ObjectMeta,
    ) -> Result<Option<ObjectInfo>, ObjectError> {
        if let Some(e_tag) = &version.e_tag
            && let Some(info) = self.read_record(meta, version.size, e_tag).await
        {
            return Ok(Some(info));
        }
        let options = GetOptions::default().with_if_match(version.e_tag.clone());
        let got = match self.backend.get_opts(data, options).await {
            Ok(got) => got,
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => {
                return Ok(None);
            }
            Err(e) => return Err(self.read_error(path, e)),
        };
        let e_tag = got.meta.e_tag.clone();
        let mut stream = byte_stream(got, path);
        let mut md5 = Md5::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            md5.update(&chunk);
            size += chunk.len() as u64;
        }
        let info = ObjectInfo {
            size,
            md5_hex: hex::encode(md5.finalize()),
        };
        self.write_record(meta, &info, e_tag.as_deref()).await;
        Ok(Some(info))
    }

    async fn read_record(&self, meta: &StorePath, size: u64, e_tag: &str) -> Option<ObjectInfo> {
        let record = self
            .backend
            .get_opts(meta, GetOptions::default())
            .await
            .ok()?
            .bytes()
            .await
            .ok()?;
        let record = std::str::from_utf8(&record).ok()?;
        let mut fields = record.splitn(3, ' ');
        let (recorded_size, md5_hex, recorded_tag) =
            (fields.next()?, fields.next()?, fields.next()?);
        let info = ObjectInfo {
            size: recorded_size.parse().ok()?,
            md5_hex: md5_hex.to_string(),
        };
        (info.size == size && recorded_tag == e_tag && info.md5_hex.len() == 32).then_some(info)
    }

    fn read_error(&self, path: &OssPath, e: object_store::Error) -> ObjectError {
        match e {
            object_store::Error::NotFound { .. } => ObjectError::NotFound(path.to_string()),
            object_store::Error::InvalidPath { .. } => {
                ObjectError::InvalidPath(format!("{path} cannot be stored: {e}"))
            }
            e => io_error(format_args!("reading {path}"), e),
        }
    }

    // ---- links ----

    /// A URL of the S3 service downloading the object at `path` of `account`'s namespace for a
    /// few minutes, when the store is S3 with presigning on; `None` otherwise (the node serves
    /// the bytes). NotFound for a missing object, as a download would answer.
    #[cfg_attr(not(feature = "s3"), allow(unused_variables))]
    pub async fn presigned_get(
        &self,
        account: &str,
        path: &OssPath,
    ) -> Result<Option<String>, ObjectError> {
        match &self.backing {
            Backing::Local { .. } => Ok(None),
            #[cfg(feature = "s3")]
            Backing::S3(s3) => {
                let (data, _) = self.locations(account, path)?;
                self.backend
                    .get_opts(&data, GetOptions::default().with_head(true))
                    .await
                    .map_err(|e| self.read_error(path, e))?;
                s3.presigned_get(&data, PRESIGNED_TTL).await
            }
        }
    }

    /// A signed link to `path` of `account`'s namespace, valid for `ttl` from now.
    pub fn link(&self, account: &str, path: &OssPath, ttl: Duration) -> String {
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self.link_expiring_at(account, path, now_secs().saturating_add(ttl))
    }

    /// A signed link to `path` of `account`'s namespace, valid until `expires` (Unix seconds)
    /// included: `{public_url}/files/{bucket}/{key}?Account=..&Expires=..&Signature=..`.
    pub fn link_expiring_at(&self, account: &str, path: &OssPath, expires: i64) -> String {
        format!(
            "{}/files/{}/{}?Account={}&Expires={expires}&Signature={}",
            self.public_url,
            encode_segment(&path.bucket),
            encode_key(&path.key),
            encode_segment(account),
            self.link_key
                .sign(account, &path.bucket, &path.key, expires)
        )
    }

    /// Whether a link's signature is authentic (constant-time) and `expires` is not before
    /// `now_secs`. `account`, `bucket` and `key` are decoded from the request.
    pub fn verify_link(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        expires: i64,
        signature: &str,
        now_secs: i64,
    ) -> bool {
        self.link_key
            .verify(account, bucket, key, expires, signature, now_secs)
    }

    /// Where the data and the record of `path` of `account`'s namespace live; InvalidPath for
    /// a folder or a key the storage cannot name.
    fn locations(
        &self,
        account: &str,
        path: &OssPath,
    ) -> Result<(StorePath, StorePath), ObjectError> {
        crate::path::check_bucket(&path.bucket)?;
        crate::path::check_key(&path.key)?;
        if account.is_empty() {
            return Err(ObjectError::InvalidPath(format!("{path}: no account")));
        }
        let mut parts = Vec::with_capacity(3 + path.key.split('/').count());
        parts.push(PathPart::from(account));
        parts.push(PathPart::from(path.bucket.as_str()));
        for segment in path.key.split('/') {
            let part = PathPart::from(segment);
            if part.as_ref().len() > MAX_SEGMENT_BYTES {
                return Err(ObjectError::InvalidPath(format!(
                    "{path}: the key segment {segment:?} is too long"
                )));
            }
            parts.push(part);
        }
        let under = |top: &'static str| {
            StorePath::from_iter(std::iter::once(PathPart::from(top)).chain(parts.iter().cloned()))
        };
        Ok((under(DATA), under(RECORDS)))
    }
}

/// The bytes of a get, in [`CHUNK_BYTES`] chunks (a local file is read directly, with larger
/// reads than `object_store`'s 8 KiB ones).
fn byte_stream(got: GetResult, path: &OssPath) -> ByteStream {
    let what = path.to_string();
    let length = got.range.end - got.range.start;
    match got.payload {
        GetResultPayload::File(file, _) => {
            // Gets here never ask for a range: the file is opened at its start (0..size).
            debug_assert_eq!(got.range.start, 0);
            let file = tokio::fs::File::from_std(file);
            let state = (file.take(length), what);
            futures::stream::try_unfold(state, |(mut file, what)| async move {
                let mut buf = BytesMut::with_capacity(CHUNK_BYTES);
                let n = file
                    .read_buf(&mut buf)
                    .await
                    .map_err(|e| io_error(format_args!("reading {what}"), e))?;
                Ok(if n == 0 {
                    None
                } else {
                    Some((buf.freeze(), (file, what)))
                })
            })
            .boxed()
        }
        GetResultPayload::Stream(stream) => stream
            .map(move |chunk| chunk.map_err(|e| io_error(format_args!("reading {what}"), e)))
            .boxed(),
    }
}

/// Removes staging files left by a crash.
fn clean_staging(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_STAGING));
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
