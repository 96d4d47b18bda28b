//! Simulated phones shared by nodes that share no file system (`--sim-state shared`, design
//! §9): [`StoreShare`] implements the backends' [`SimShare`] over the store's `sim_phones`
//! rows (the checkout, the generation, the small JSON documents) and the object store's
//! `internal/sim/<id>/` (the phone's `data/` tree as content-addressed blobs `b/<sha256>`
//! and one manifest per generation `m/<generation>.json`).
//!
//! A node's `<data-dir>/sim/<id>/` is then a cache of the phone with a `.sim-cache.json`
//! (the generation it holds, the index of its files: size and mtime, so a publish hashes only
//! what changed). Taking the checkout brings the cache up to the published generation; a
//! publish uploads the new blobs and the next manifest, then moves the row on, fenced on this
//! node's checkout and the generation it read; the old manifest and the blobs only it named
//! go right after. The checkout is renewed while the node uses the phone and given back as
//! soon as its last user is done; a dead node's checkout expires in [`TTL_MS`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cloudphone_backends::sim::share::SimShare;
use cloudphone_store::{SimPublish, Store};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;

/// How long a checkout lasts unless renewed: how long a dead node blocks its phones.
pub const TTL_MS: i64 = 5_000;
/// How often a checkout in use is renewed.
const RENEW_EVERY: Duration = Duration::from_millis(1_500);
/// How often a phone held by another node is asked for again, and for how long.
const POLL: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(60);

/// A blob this size or smaller is put in one request; a larger one is streamed in parts of
/// `PART_BYTES` (S3's smallest part), one in flight, so a publish holds about two parts.
const WHOLE_BLOB_BYTES: u64 = 8 << 20;
const PART_BYTES: usize = 5 << 20;

const CACHE_FILE: &str = ".sim-cache.json";
const DOCS: [&str; 3] = ["props.json", "state.json", "live.json"];
const DATA: &str = "data";

/// Path → (size, mtime in ns) of each file when its hash was taken.
type Stats = BTreeMap<String, (u64, i128)>;

/// One file of a phone's `data/`, as a manifest names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileEntry {
    size: u64,
    mode: u32,
    sha256: String,
}

/// A generation of a phone's `data/`: paths relative to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    files: BTreeMap<String, FileEntry>,
    dirs: BTreeSet<String>,
    links: BTreeMap<String, String>,
}

/// What the local copy last synced, to tell what changed since.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Cache {
    generation: i64,
    manifest_key: String,
    manifest: Manifest,
    /// Path → (size, mtime in ns) of the file when its hash was taken.
    stats: Stats,
    docs: [String; 3],
}

/// This node's use of one phone.
#[derive(Default)]
struct Phone {
    /// Orders this node's syncs, publishes and releases of the phone.
    order: tokio::sync::Mutex<()>,
    /// This node's users of the phone's checkout. Read by the renewer without `order`, so a
    /// long transfer (which holds `order`) never stops the checkout's renewal.
    users: AtomicUsize,
    /// A renewer runs for the phone.
    renewing: AtomicBool,
}

/// One user counted on a phone; the count is undone when this drops unless it was kept, so an
/// acquire cancelled or failed half-way (an ADB client gone while its phone synced) leaves no
/// user behind to keep the phone checked out for ever.
struct Counted {
    phone: Arc<Phone>,
    kept: bool,
}

impl Drop for Counted {
    fn drop(&mut self) {
        if !self.kept {
            self.phone.users.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

pub struct StoreShare {
    store: Arc<dyn Store>,
    objects: Arc<dyn ObjectStore>,
    node: String,
    phones: Mutex<HashMap<String, Arc<Phone>>>,
}

impl StoreShare {
    pub fn new(store: Arc<dyn Store>, objects: Arc<dyn ObjectStore>, node: String) -> StoreShare {
        StoreShare {
            store,
            objects,
            node,
            phones: Mutex::new(HashMap::new()),
        }
    }

    fn phone(&self, id: &str) -> Arc<Phone> {
        self.phones
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    /// Counts one user of `phone` (whose checkout this node holds), and starts its renewer
    /// unless one runs.
    fn count(&self, id: &str, phone: &Arc<Phone>) -> Counted {
        phone.users.fetch_add(1, Ordering::SeqCst);
        if !phone.renewing.swap(true, Ordering::SeqCst) {
            self.renew(id, phone.clone());
        }
        Counted {
            phone: phone.clone(),
            kept: false,
        }
    }

    /// Keeps the checkout of `id` alive while this node has users of it; one a phone.
    fn renew(&self, id: &str, phone: Arc<Phone>) {
        let (store, node, id) = (self.store.clone(), self.node.clone(), id.to_string());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                if phone.users.load(Ordering::SeqCst) == 0 {
                    phone.renewing.store(false, Ordering::SeqCst);
                    // A user counted since the look above either saw the flag still up (and
                    // started nothing: this renewer goes on) or started a renewer of its own.
                    if phone.users.load(Ordering::SeqCst) == 0
                        || phone.renewing.swap(true, Ordering::SeqCst)
                    {
                        return;
                    }
                }
                let now = cloudphone_core::time::now_ms();
                match store.sim_renew(&id, &node, now, TTL_MS).await {
                    Ok(true) => {}
                    Ok(false) => warn!(instance = %id, "lost the checkout of a simulated phone"),
                    Err(e) => warn!(instance = %id, error = %e, "renewing a simulated phone"),
                }
            }
        });
    }

    async fn get_manifest(&self, key: &str) -> io::Result<Manifest> {
        let bytes = self
            .objects
            .get(&Key::from(key))
            .await
            .map_err(io::Error::other)?
            .bytes()
            .await
            .map_err(io::Error::other)?;
        serde_json::from_slice(&bytes).map_err(io::Error::other)
    }

    /// Puts the file at `local` (`size` bytes, of SHA-256 `sha`, when the walk hashed it) as
    /// its blob: at once when small, if no such blob is there yet (blobs are named by their
    /// content); streamed in parts when large, so that memory stays bounded whatever a phone
    /// holds. The bytes sent are hashed again: a file changed since the walk (by another user
    /// of this node) fails the publish rather than store a blob under another content's name.
    async fn upload(&self, id: &str, sha: &str, local: &Path, size: u64) -> io::Result<()> {
        let key = &blob_key(id, sha);
        let changed = || {
            io::Error::other(format!(
                "{} changed while it was published",
                local.display()
            ))
        };
        if size <= WHOLE_BLOB_BYTES {
            let bytes = tokio::fs::read(local).await?;
            if hex::encode(Sha256::digest(&bytes)) != sha {
                return Err(changed());
            }
            let put = self
                .objects
                .put_opts(
                    key,
                    PutPayload::from(bytes),
                    PutOptions::from(PutMode::Create),
                )
                .await;
            return match put {
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(io::Error::other(e)),
            };
        }
        let mut file = tokio::fs::File::open(local).await?;
        let upload = self
            .objects
            .put_multipart(key)
            .await
            .map_err(io::Error::other)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buf = vec![0u8; 64 * 1024];
        let mut hasher = Sha256::new();
        let copied = async {
            loop {
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    return if hex::encode(hasher.finalize_reset()) == sha {
                        Ok::<(), io::Error>(())
                    } else {
                        Err(changed())
                    };
                }
                hasher.update(&buf[..n]);
                writer
                    .wait_for_capacity(1)
                    .await
                    .map_err(io::Error::other)?;
                writer.write(&buf[..n]);
            }
        }
        .await;
        if let Err(e) = copied {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await.map_err(io::Error::other)?;
        Ok(())
    }

    /// Writes the blob `key` to the file `local`, a chunk at a time.
    async fn download(&self, key: &Key, local: &Path) -> io::Result<()> {
        use futures::StreamExt;
        let mut chunks = self
            .objects
            .get(key)
            .await
            .map_err(io::Error::other)?
            .into_stream();
        let mut file = tokio::fs::File::create(local).await?;
        let written = async {
            while let Some(chunk) = chunks.next().await {
                file.write_all(&chunk.map_err(io::Error::other)?).await?;
            }
            file.flush().await
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(local).await;
        }
        written
    }

    /// Brings `dir` up to the generation `checkout` holds, unless it is there; true when the
    /// files changed.
    async fn bring_up(
        &self,
        id: &str,
        dir: &Path,
        checkout: &cloudphone_store::SimCheckout,
    ) -> io::Result<bool> {
        let cache = read_cache(dir).await;
        if cache.generation == checkout.generation {
            return Ok(false);
        }
        if checkout.generation == 0 {
            // Never published, or deleted and made again: no copy is older than nothing.
            if cache.generation != 0 {
                remove_any(dir).await?;
            }
            return Ok(true);
        }
        let manifest = self.get_manifest(&checkout.manifest).await?;
        let mut cache = self.sync(id, dir, &manifest).await?;
        let docs = [&checkout.props, &checkout.state, &checkout.live];
        for (name, doc) in DOCS.iter().zip(docs) {
            write_doc(&dir.join(name), doc).await?;
        }
        cache.generation = checkout.generation;
        cache.manifest_key = checkout.manifest.clone();
        cache.docs = docs.map(|d| d.clone());
        write_cache(dir, &cache).await?;
        Ok(true)
    }

    /// Brings `dir` to `manifest` and the documents `docs`.
    async fn sync(&self, id: &str, dir: &Path, manifest: &Manifest) -> io::Result<Cache> {
        let data = dir.join(DATA);
        tokio::fs::create_dir_all(&data).await?;
        let old = read_cache(dir).await;
        let (here, stats) = walk_blocking(data.clone(), old).await?;
        // Remove what the manifest lacks (deepest first, so directories are empty by then).
        let mut gone: Vec<&String> = here
            .files
            .keys()
            .filter(|p| !manifest.files.contains_key(*p))
            .chain(
                here.links
                    .keys()
                    .filter(|p| !manifest.links.contains_key(*p)),
            )
            .collect();
        gone.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in gone {
            remove_any(&data.join(p)).await?;
        }
        let mut dirs: Vec<&String> = here.dirs.difference(&manifest.dirs).collect();
        dirs.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for d in dirs {
            remove_any(&data.join(d)).await?;
        }
        for d in &manifest.dirs {
            tokio::fs::create_dir_all(data.join(d)).await?;
        }
        for (path, file) in &manifest.files {
            if here.files.get(path) == Some(file) {
                continue;
            }
            let target = data.join(path);
            remove_any_dir(&target).await?;
            let tmp = cloudphone_backends::sim::phone::temp_sibling(&target);
            self.download(&blob_key(id, &file.sha256), &tmp).await?;
            tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(file.mode)).await?;
            tokio::fs::rename(&tmp, &target).await?;
        }
        for (path, to) in &manifest.links {
            if here.links.get(path) == Some(to) {
                continue;
            }
            let target = data.join(path);
            remove_any(&target).await?;
            tokio::fs::symlink(to, &target).await?;
        }
        let (now, stats_now) = walk_blocking(
            data,
            Cache {
                manifest: here,
                stats,
                ..Cache::default()
            },
        )
        .await?;
        if now != *manifest {
            warn!(instance = %id, "a simulated phone's files changed while they were synced");
        }
        Ok(Cache {
            manifest: now,
            stats: stats_now,
            ..Cache::default()
        })
    }
}

#[async_trait]
impl SimShare for StoreShare {
    fn shared(&self) -> bool {
        true
    }

    async fn acquire(&self, id: &str, dir: &Path) -> io::Result<bool> {
        let phone = self.phone(id);
        let _order = phone.order.lock().await;
        let started = Instant::now();
        let checkout = loop {
            let now = cloudphone_core::time::now_ms();
            let got = self
                .store
                .sim_acquire(id, &self.node, now, TTL_MS)
                .await
                .map_err(io::Error::other)?;
            if let Some(c) = got {
                break c;
            }
            if started.elapsed() > WAIT {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("another node held it for {} s", WAIT.as_secs()),
                ));
            }
            tokio::time::sleep(POLL).await;
        };
        let mut counted = self.count(id, &phone);
        let synced = self.bring_up(id, dir, &checkout).await?;
        counted.kept = true;
        Ok(synced)
    }

    async fn refresh(&self, id: &str, dir: &Path) -> io::Result<bool> {
        let phone = self.phone(id);
        // A user of this node waiting for the phone, or holding it: nothing to follow (this
        // node's copy is the phone while it holds it), and never a wait here.
        let Ok(_order) = phone.order.try_lock() else {
            return Ok(false);
        };
        if phone.users.load(Ordering::SeqCst) > 0 {
            return Ok(false);
        }
        let published = self
            .store
            .sim_generation(id)
            .await
            .map_err(io::Error::other)?;
        let here = read_cache(dir).await.generation;
        if published.is_none_or(|g| g == here) {
            return Ok(false);
        }
        let now = cloudphone_core::time::now_ms();
        let Some(checkout) = self
            .store
            .sim_acquire(id, &self.node, now, TTL_MS)
            .await
            .map_err(io::Error::other)?
        else {
            return Ok(false);
        };
        // Renewed while it syncs, however long that takes.
        let counted = self.count(id, &phone);
        let synced = self.bring_up(id, dir, &checkout).await;
        drop(counted);
        if phone.users.load(Ordering::SeqCst) == 0
            && let Err(e) = self.store.sim_release(id, &self.node).await
        {
            warn!(instance = %id, error = %e, "releasing a simulated phone");
        }
        synced
    }

    async fn publish(&self, id: &str, dir: &Path) -> io::Result<()> {
        let phone = self.phone(id);
        let _order = phone.order.lock().await;
        let exists = tokio::fs::metadata(dir).await.is_ok_and(|m| m.is_dir());
        if !exists {
            return Ok(());
        }
        let cache = read_cache(dir).await;
        let (manifest, stats) = walk_blocking(dir.join(DATA), cache.clone()).await?;
        let mut docs: [String; 3] = Default::default();
        for (doc, name) in docs.iter_mut().zip(DOCS) {
            *doc = match tokio::fs::read_to_string(dir.join(name)).await {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(e),
            };
        }
        if manifest == cache.manifest && docs == cache.docs && cache.generation > 0 {
            return Ok(());
        }
        let known: BTreeSet<&String> = cache.manifest.files.values().map(|f| &f.sha256).collect();
        let mut uploaded = BTreeSet::new();
        for (path, file) in &manifest.files {
            if known.contains(&file.sha256) || !uploaded.insert(file.sha256.clone()) {
                continue;
            }
            self.upload(id, &file.sha256, &dir.join(DATA).join(path), file.size)
                .await?;
        }
        let generation = cache.generation + 1;
        // Unique, not just the generation's: a node whose checkout lapsed during its upload must
        // not overwrite the manifest of the node that took the phone and published the same
        // generation (and then delete it).
        let key = format!(
            "sim/{id}/m/{generation}-{}-{}.json",
            self.node,
            cloudphone_core::ids::secret(8)
        );
        let body = serde_json::to_vec(&manifest).map_err(io::Error::other)?;
        self.objects
            .put(&Key::from(key.as_str()), PutPayload::from(body))
            .await
            .map_err(io::Error::other)?;
        let [props, state, live] = docs.clone();
        let published = self
            .store
            .sim_publish(
                id,
                &self.node,
                &SimPublish {
                    generation: cache.generation,
                    manifest: key.clone(),
                    props,
                    state,
                    live,
                },
            )
            .await
            .map_err(io::Error::other)?;
        if !published {
            // Another node took the phone over: this copy is not the phone any more.
            let _ = self.objects.delete(&Key::from(key.as_str())).await;
            write_cache(
                dir,
                &Cache {
                    generation: -1,
                    ..Cache::default()
                },
            )
            .await?;
            return Err(io::Error::other(
                "its checkout expired and another node took it over",
            ));
        }
        // Only the holder reads or writes the phone's objects: what the new generation does
        // not name can go now.
        if !cache.manifest_key.is_empty() {
            let _ = self
                .objects
                .delete(&Key::from(cache.manifest_key.as_str()))
                .await;
        }
        let named: BTreeSet<&String> = manifest.files.values().map(|f| &f.sha256).collect();
        for sha in known.difference(&named) {
            let _ = self.objects.delete(&blob_key(id, sha)).await;
        }
        write_cache(
            dir,
            &Cache {
                generation,
                manifest_key: key,
                manifest,
                stats,
                docs,
            },
        )
        .await
    }

    async fn release(&self, id: &str) {
        let phone = self.phone(id);
        // Under `order`: an acquire of this node between the count reaching 0 and the row's
        // release would think it holds a phone another node may take.
        let _order = phone.order.lock().await;
        let before = phone
            .users
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(1))
            })
            .unwrap_or(0);
        if before <= 1
            && let Err(e) = self.store.sim_release(id, &self.node).await
        {
            warn!(instance = %id, error = %e, "releasing a simulated phone");
        }
    }

    async fn forget(&self, id: &str) -> io::Result<()> {
        self.store.sim_forget(id).await.map_err(io::Error::other)?;
        let prefix = Key::from(format!("sim/{id}"));
        let keys: Vec<_> = {
            use futures::TryStreamExt;
            self.objects
                .list(Some(&prefix))
                .map_ok(|m| m.location)
                .try_collect()
                .await
                .map_err(io::Error::other)?
        };
        for key in keys {
            let _ = self.objects.delete(&key).await;
        }
        Ok(())
    }
}

fn blob_key(id: &str, sha: &str) -> Key {
    Key::from(format!("sim/{id}/b/{sha}"))
}

async fn read_cache(dir: &Path) -> Cache {
    match tokio::fs::read(dir.join(CACHE_FILE)).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => Cache::default(),
    }
}

async fn write_cache(dir: &Path, cache: &Cache) -> io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let bytes = serde_json::to_vec(cache).map_err(io::Error::other)?;
    cloudphone_backends::sim::phone::write_atomic(&dir.join(CACHE_FILE), &bytes).await
}

async fn write_doc(path: &Path, doc: &str) -> io::Result<()> {
    if doc.is_empty() {
        return match tokio::fs::remove_file(path).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    cloudphone_backends::sim::phone::write_atomic(path, doc.as_bytes()).await
}

/// Removes a file, link or directory tree; gone already is fine.
async fn remove_any(path: &Path) -> io::Result<()> {
    let r = match tokio::fs::symlink_metadata(path).await {
        Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(path).await,
        Ok(_) => tokio::fs::remove_file(path).await,
        Err(e) => Err(e),
    };
    match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes room for a file where a directory was.
async fn remove_any_dir(path: &Path) -> io::Result<()> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(path).await,
        _ => Ok(()),
    }
}

async fn walk_blocking(data: PathBuf, cache: Cache) -> io::Result<(Manifest, Stats)> {
    tokio::task::spawn_blocking(move || walk(&data, &cache))
        .await
        .map_err(io::Error::other)?
}

/// What `data` holds now, hashing only the files whose size or mtime moved since `cache`.
fn walk(data: &Path, cache: &Cache) -> io::Result<(Manifest, Stats)> {
    let mut out = Manifest::default();
    let mut stats = BTreeMap::new();
    let mut todo = vec![String::new()];
    while let Some(rel) = todo.pop() {
        let entries = match std::fs::read_dir(data.join(&rel)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound && rel.is_empty() => break,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = entry.path().symlink_metadata()?;
            if meta.is_dir() {
                out.dirs.insert(path.clone());
                todo.push(path);
            } else if meta.file_type().is_symlink() {
                let to = std::fs::read_link(entry.path())?;
                out.links.insert(path, to.to_string_lossy().into_owned());
            } else if meta.is_file() {
                let mtime = meta
                    .modified()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as i128);
                let stat = (meta.len(), mtime);
                let mode = meta.permissions().mode() & 0o7777;
                let sha256 = match (cache.stats.get(&path), cache.manifest.files.get(&path)) {
                    (Some(s), Some(f)) if *s == stat => f.sha256.clone(),
                    _ => hash(&entry.path())?,
                };
                out.files.insert(
                    path.clone(),
                    FileEntry {
                        size: meta.len(),
                        mode,
                        sha256,
                    },
                );
                stats.insert(path, stat);
            }
        }
    }
    Ok((out, stats))
}

fn hash(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
    }
    Ok(hex::encode(sha.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_hashes_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        std::fs::create_dir_all(data.join("sdcard/Download")).unwrap();
        std::fs::write(data.join("sdcard/f"), b"x\n").unwrap();
        let (m, stats) = walk(data, &Cache::default()).unwrap();
        assert!(m.dirs.contains("sdcard/Download"));
        let f = &m.files["sdcard/f"];
        assert_eq!(f.size, 2);
        // A forged hash survives a walk when the stat did not move: it was not hashed again.
        let mut cache = Cache {
            manifest: m.clone(),
            stats,
            ..Cache::default()
        };
        cache.manifest.files.get_mut("sdcard/f").unwrap().sha256 = "forged".into();
        let (again, _) = walk(data, &cache).unwrap();
        assert_eq!(again.files["sdcard/f"].sha256, "forged");
        std::fs::write(data.join("sdcard/f"), b"changed\n").unwrap();
        let (third, _) = walk(data, &cache).unwrap();
        assert_ne!(third.files["sdcard/f"].sha256, "forged");
    }
}
