//! One phone's [`LiveState`] in this process, and its file `live.json`. The node that applies
//! an input keeps the state in memory, where its own renderers read it at once (they are woken
//! through [`LiveCell::subscribe`]), and writes the file at most every [`WRITE_EVERY`], and at
//! once after an input that settles (a finger lifting, a key, text). Other nodes sharing the
//! data dir read the file before they render and before they apply input
//! ([`LiveCell::refresh`]), so their inputs build on it. They compare its bytes, not its mtime:
//! two writes within one clock tick of the file system (milliseconds) have the same mtime.

use std::hash::{Hash, Hasher};
use std::io;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::live::{Act, Ctx, LiveState};
use super::phone::{PhoneDir, temp_sibling};

/// How often a finger's moves reach the file at most.
pub const WRITE_EVERY: Duration = Duration::from_millis(30);

/// What identifies one version of the file: a hash of its bytes.
type Stamp = u64;

#[derive(Debug)]
pub(crate) struct LiveCell {
    inner: Mutex<Inner>,
    /// Orders writers of the file, so that an older state never lands after a newer one.
    writing: tokio::sync::Mutex<()>,
    changed: watch::Sender<u64>,
    /// The device's size (portrait), read once from the phone's properties.
    pub device: OnceLock<(u32, u32)>,
}

#[derive(Debug, Default)]
struct Inner {
    state: LiveState,
    /// The version of the file the state was read from or written as.
    stamp: Option<Stamp>,
    /// Changed since last written.
    dirty: bool,
    written_at: Option<Instant>,
}

impl Default for LiveCell {
    fn default() -> LiveCell {
        LiveCell {
            inner: Mutex::default(),
            writing: tokio::sync::Mutex::new(()),
            changed: watch::Sender::new(0),
            device: OnceLock::new(),
        }
    }
}

/// A file's bytes and their stamp; `None` when it does not exist. Blocking.
pub(crate) fn read_stamped(path: &Path) -> io::Result<Option<(Vec<u8>, Stamp)>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let stamp = stamp_of(&bytes);
            Ok(Some((bytes, stamp)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn stamp_of(bytes: &[u8]) -> Stamp {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl LiveCell {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Woken after every change this process makes or reads.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// How many renderers (open live screens) this process runs for the phone.
    #[cfg(test)]
    pub fn renderers(&self) -> usize {
        self.changed.receiver_count()
    }

    /// Wakes the renderers.
    pub fn notify(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn snapshot(&self) -> LiveState {
        self.lock().state.clone()
    }

    /// Changes the state in memory (the caller then [`Self::save`]s and [`Self::notify`]s).
    pub fn change<R>(&self, f: impl FnOnce(&mut LiveState) -> R) -> R {
        let mut inner = self.lock();
        inner.dirty = true;
        inner.state.seq += 1;
        f(&mut inner.state)
    }

    /// Takes the file's state when another process changed it (or removed it: a reset). An
    /// unsaved change of ours wins: it is written next. Blocking; true when the state changed.
    pub fn refresh(&self, path: &Path) -> io::Result<bool> {
        let file = read_stamped(path)?;
        let mut inner = self.lock();
        let stamp = file.as_ref().map(|(_, s)| *s);
        if inner.dirty || inner.stamp == stamp {
            return Ok(false);
        }
        inner.stamp = stamp;
        let state = match file {
            Some((bytes, _)) => match serde_json::from_slice::<LiveState>(&bytes) {
                Ok(state) => state,
                // Writes are renames, so this is no half-written file: a newer version's, or a
                // broken one. Either way there is nothing better to show than what we have.
                Err(_) => return Ok(false),
            },
            None => LiveState::default(),
        };
        let changed = inner.state != state;
        inner.state = state;
        drop(inner);
        if changed {
            self.notify();
        }
        Ok(changed)
    }

    /// Writes the state to `path` if it changed: at once when `now`, otherwise only when the
    /// last write is [`WRITE_EVERY`] old (a later call writes what this one left).
    pub async fn save(&self, path: &Path, now: bool) -> io::Result<()> {
        {
            let inner = self.lock();
            let recent = inner.written_at.is_some_and(|t| t.elapsed() < WRITE_EVERY);
            if !inner.dirty || (!now && recent) {
                return Ok(());
            }
        }
        let _writing = self.writing.lock().await;
        let (bytes, seq) = {
            let inner = self.lock();
            if !inner.dirty {
                return Ok(());
            }
            let bytes = serde_json::to_vec(&inner.state).map_err(io::Error::other)?;
            (bytes, inner.state.seq)
        };
        let path = path.to_path_buf();
        let stamp = stamp_of(&bytes);
        tokio::task::spawn_blocking(move || {
            let tmp = temp_sibling(&path);
            let written = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &path));
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            written
        })
        .await
        .map_err(io::Error::other)??;
        let mut inner = self.lock();
        inner.stamp = Some(stamp);
        inner.written_at = Some(Instant::now());
        if inner.state.seq == seq {
            inner.dirty = false;
        }
        Ok(())
    }

    /// Forgets the state (the phone was reset and its file removed).
    pub fn reset(&self) {
        *self.lock() = Inner::default();
        self.notify();
    }
}

/// The wall clock in ms, which the model's times are in.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl PhoneDir {
    /// Applies one input to the phone: to its live state, and, for an input that settles, to
    /// its apps' state under the phone's lock (a launcher tap opens an app as `am start` does).
    /// The phone's renderers in this process are woken at once. `shown`: the viewer input this
    /// is, if any.
    pub async fn input(&self, act: Act, shown: Option<(u32, u32)>) -> io::Result<()> {
        let device = self.device().await;
        let path = self.live_path();
        let (me, file) = (self.clone(), path.clone());
        tokio::task::spawn_blocking(move || me.live().refresh(&file))
            .await
            .map_err(io::Error::other)??;
        let ctx = Ctx {
            now_ms: now_ms(),
            device,
        };
        let settles = act.settles();
        if settles {
            self.update(|s| self.live().change(|l| l.apply(Some(s), act, &ctx, shown)))
                .await?;
        } else {
            self.live().change(|l| l.apply(None, act, &ctx, shown));
        }
        // After the apps' state is written, so a renderer woken now sees both.
        self.live().notify();
        self.live().save(&path, settles).await
    }

    /// The live state as it is now, also when another node changed it.
    pub async fn live_state(&self) -> io::Result<LiveState> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            me.live().refresh(&me.live_path())?;
            Ok(me.live().snapshot())
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Changes the live state outside input (a boot) and writes it.
    pub async fn change_live(&self, f: impl FnOnce(&mut LiveState)) -> io::Result<()> {
        let path = self.live_path();
        let (me, file) = (self.clone(), path.clone());
        tokio::task::spawn_blocking(move || me.live().refresh(&file))
            .await
            .map_err(io::Error::other)??;
        self.live().change(f);
        self.live().notify();
        self.live().save(&path, true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn another_process_sees_a_saved_change_and_a_removal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.json");
        let (a, b) = (LiveCell::default(), LiveCell::default());
        let woken = b.subscribe();
        a.change(|s| s.text = "hi".into());
        a.save(&path, true).await.unwrap();
        assert!(b.refresh(&path).unwrap());
        assert_eq!(b.snapshot().text, "hi");
        assert!(woken.has_changed().unwrap());
        assert!(
            !b.refresh(&path).unwrap(),
            "an unchanged file is not read again"
        );
        // A move soon after a write waits; a settling input does not.
        a.change(|s| s.volume = 3);
        a.save(&path, false).await.unwrap();
        assert!(!b.refresh(&path).unwrap());
        a.save(&path, true).await.unwrap();
        assert!(b.refresh(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        assert!(b.refresh(&path).unwrap());
        assert_eq!(b.snapshot(), LiveState::default());
    }
}
