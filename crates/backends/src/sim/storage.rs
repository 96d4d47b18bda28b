//! A simulated phone's storage: its files may take at most its capacity on the server's disk, as
//! a phone's `/data` partition bounds them, so no tenant fills the server's disk through a
//! phone. Usage is counted in 4 KiB blocks, as a file system allocates them (a file takes its
//! size rounded up, at least one block; a directory one block), so that empty files and
//! directories are not free either.
//!
//! Usage is what a walk of the phone's files found, kept up to date by this process's own
//! changes, plus what writes in progress have reserved. Every write reserves its blocks before
//! it writes them (a push as its bytes arrive, a streamed install or SendFile for its whole
//! size at once); a write that would pass the capacity fails with ENOSPC ("No space left on
//! device"), as on Android. A reservation is given back when its write is abandoned, and turns
//! into the file's usage when the write is renamed into place ([`Storage::commit`], under the
//! lock, so a walk sees a file exactly when its blocks have moved over). Files in progress are
//! written outside the phone's files ([`super::phone::PhoneDir::scratch`]) so that a walk never
//! counts them twice. Removals, restores and resets walk again.
//!
//! Several nodes on one data dir: each walks the files again before a write once its last walk
//! is a second old, so each sees what the others finished; writes in progress on another node
//! are not seen, and a phone may pass its capacity by what other nodes are writing to it at
//! that moment.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a file system allocates at a time.
pub const BLOCK: u64 = 4096;

/// The storage of a simulated phone unless the operator says otherwise (`--sim-storage-bytes`).
pub const DEFAULT_CAPACITY: u64 = 8 << 30;

/// How long a walk of a phone's files is trusted before a write walks them again.
const FRESH: Duration = Duration::from_secs(1);

/// The blocks a file of `len` bytes takes, in bytes.
pub fn file_blocks(len: u64) -> u64 {
    len.div_ceil(BLOCK).max(1) * BLOCK
}

/// The error a write past the capacity fails with.
pub fn no_space() -> io::Error {
    io::Error::new(io::ErrorKind::StorageFull, "No space left on device")
}

#[derive(Debug, Default)]
struct Usage {
    /// What the last walk found, with this process's changes since.
    on_disk: u64,
    /// When the last walk ended.
    walked_at: Option<Instant>,
    /// Bumped by every change made under the lock, so a walk made meanwhile is not trusted.
    changes: u64,
    /// Blocks held by writes in progress.
    reserved: u64,
}

#[derive(Debug)]
pub(crate) struct Storage {
    capacity: u64,
    usage: Mutex<Usage>,
}

impl Storage {
    pub fn new(capacity: u64) -> Storage {
        Storage {
            capacity,
            usage: Mutex::default(),
        }
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes in use: files and writes in progress.
    #[cfg(test)]
    pub fn used(&self) -> u64 {
        let u = self.usage();
        u.on_disk + u.reserved
    }

    /// Walks the files under `data` again (another node may have changed them, or a removal
    /// freed some). Blocking; the lock is not held during the walk.
    pub fn rescan(&self, data: &Path) -> io::Result<()> {
        // A change made during the walk may or may not be in it: walk again.
        for _ in 0..8 {
            let before = self.usage().changes;
            let found = walk(data)?;
            let mut u = self.usage();
            if u.changes == before {
                u.on_disk = found;
                u.walked_at = Some(Instant::now());
                return Ok(());
            }
        }
        Err(io::Error::other("the phone's files kept changing"))
    }

    /// [`Storage::rescan`] unless a walk ended less than [`FRESH`] ago: this process's own
    /// changes are counted as they happen, so only other nodes' wait for the next walk, and a
    /// push of many files does not walk the phone's files once per file. Blocking.
    pub fn refresh(&self, data: &Path) -> io::Result<()> {
        if self.usage().walked_at.is_some_and(|t| t.elapsed() < FRESH) {
            return Ok(());
        }
        self.rescan(data)
    }

    /// Holds `bytes` for a write in progress, or fails with ENOSPC when they do not fit.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> io::Result<Reservation> {
        let mut r = Reservation {
            storage: self.clone(),
            bytes: 0,
            credit: 0,
        };
        r.grow(bytes)?;
        Ok(r)
    }

    /// A new file or directory's block, taken at once (`touch`, `mkdir`); ENOSPC when full.
    pub fn take_entries(&self, n: u64) -> io::Result<()> {
        let mut u = self.usage();
        let want = n * BLOCK;
        if u.on_disk + u.reserved + want > self.capacity {
            return Err(no_space());
        }
        u.on_disk += want;
        u.changes += 1;
        Ok(())
    }

    /// Gives back blocks taken for entries that were not made after all.
    pub fn give_back(&self, bytes: u64) {
        let mut u = self.usage();
        u.on_disk = u.on_disk.saturating_sub(bytes);
        u.changes += 1;
    }

    /// Renames the finished write `tmp` over `target`, its reservation becoming the file's
    /// blocks (less those of a file it replaces). Blocking.
    pub fn commit(
        &self,
        mut reservation: Reservation,
        tmp: &Path,
        target: &Path,
    ) -> io::Result<()> {
        let mut u = self.usage();
        let replaced = replaced_blocks(target);
        let size = std::fs::symlink_metadata(tmp)?.len();
        std::fs::rename(tmp, target)?;
        u.reserved = u.reserved.saturating_sub(reservation.bytes);
        u.on_disk = (u.on_disk + file_blocks(size)).saturating_sub(replaced);
        u.changes += 1;
        reservation.bytes = 0;
        Ok(())
    }
}

/// The blocks of the file at `target` that a write would replace (0 for none). Blocking.
pub fn replaced_blocks(target: &Path) -> u64 {
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_file() => file_blocks(m.len()),
        _ => 0,
    }
}

/// Blocks held for a write in progress; given back when dropped unless committed. A write
/// over a file is credited that file's blocks: it needs only what it takes beyond them, as
/// adbd unlinks the old file before writing the new (here the old one stays readable until
/// the new one is complete).
#[derive(Debug)]
pub(crate) struct Reservation {
    storage: Arc<Storage>,
    bytes: u64,
    credit: u64,
}

impl Reservation {
    /// Credits the blocks of a file this write replaces (at most what it will replace).
    pub fn replacing(mut self, blocks: u64) -> Reservation {
        self.credit = blocks;
        self
    }

    /// Makes the reservation cover a file of `len` bytes; ENOSPC when that does not fit.
    pub fn cover(&mut self, len: u64) -> io::Result<()> {
        let want = file_blocks(len).saturating_sub(self.credit);
        if want > self.bytes {
            self.grow(want - self.bytes)?;
        }
        Ok(())
    }

    fn grow(&mut self, bytes: u64) -> io::Result<()> {
        let mut u = self.storage.usage();
        if u.on_disk + u.reserved + bytes > self.storage.capacity {
            return Err(no_space());
        }
        u.reserved += bytes;
        self.bytes += bytes;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let mut u = self.storage.usage();
            u.reserved = u.reserved.saturating_sub(self.bytes);
        }
    }
}

/// The blocks the files and directories under `dir` take (not `dir` itself); symlinks, which
/// the sim never makes, count a block. Blocking.
fn walk(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            // Removed while we walked.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for e in entries {
            let e = e?;
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                total += BLOCK;
                stack.push(e.path());
            } else if m.is_file() {
                total += file_blocks(m.len());
            } else {
                total += BLOCK;
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_up_and_a_file_takes_one_at_least() {
        assert_eq!(file_blocks(0), BLOCK);
        assert_eq!(file_blocks(1), BLOCK);
        assert_eq!(file_blocks(BLOCK), BLOCK);
        assert_eq!(file_blocks(BLOCK + 1), 2 * BLOCK);
    }

    #[test]
    fn writes_reserve_commit_and_give_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sdcard")).unwrap();
        std::fs::write(data.join("sdcard/a"), vec![1u8; 5000]).unwrap();
        let s = Arc::new(Storage::new(10 * BLOCK));
        s.rescan(&data).unwrap();
        // The directory and two blocks of file.
        assert_eq!(s.used(), 3 * BLOCK);

        // A write that does not fit fails, and holds nothing after.
        let mut r = s.reserve(0).unwrap();
        r.cover(7 * BLOCK).unwrap();
        let err = r.cover(7 * BLOCK + 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(err.to_string(), "No space left on device");
        drop(r);
        assert_eq!(s.used(), 3 * BLOCK);

        // One that fits is renamed into place, replacing `a`.
        let tmp = dir.path().join(".a.part");
        std::fs::write(&tmp, vec![2u8; 3 * BLOCK as usize]).unwrap();
        let mut r = s.reserve(0).unwrap();
        r.cover(3 * BLOCK).unwrap();
        assert_eq!(s.used(), 6 * BLOCK);
        s.commit(r, &tmp, &data.join("sdcard/a")).unwrap();
        assert_eq!(s.used(), 4 * BLOCK);
        s.rescan(&data).unwrap();
        assert_eq!(s.used(), 4 * BLOCK, "what a walk finds");

        // Entries take a block each, until full.
        s.take_entries(6).unwrap();
        assert_eq!(
            s.take_entries(1).unwrap_err().kind(),
            io::ErrorKind::StorageFull
        );
        s.give_back(6 * BLOCK);
        // A removal is seen by the next walk.
        std::fs::remove_file(data.join("sdcard/a")).unwrap();
        s.rescan(&data).unwrap();
        assert_eq!(s.used(), BLOCK);
    }
}
