//! What one simulated phone's shells may run and hold at once. Their blocking file work (a
//! trip to the blocking pool: one chunk of a `cat`, an `ls`, an `rm`) takes a permit of the
//! phone's semaphore first, so a phone runs at most [`SHELL_WORK_PER_PHONE`] such trips at a
//! time whatever its number of shells; more wait their turn, none fails. Counters say how many
//! output bytes the phone's streaming shells hold, how many trips run and how many file bytes
//! `cat` has read: the tests prove with them that output is passed on as it is made and that
//! work stops with its stream.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Semaphore;

/// Blocking trips one phone's shells run at once. A trip is short (64 KiB of a file at most,
/// or one listing), so a few keep a phone's commands moving while many phones share the
/// server's blocking pool.
pub const SHELL_WORK_PER_PHONE: usize = 4;

#[derive(Debug)]
pub(crate) struct ShellWork {
    permits: Arc<Semaphore>,
    /// Output bytes held by the phone's streaming shells, not yet taken by their streams.
    held: AtomicUsize,
    peak_held: AtomicUsize,
    /// Blocking trips running now.
    running: AtomicUsize,
    peak_running: AtomicUsize,
    /// File bytes `cat` read, in all.
    read: AtomicU64,
}

impl Default for ShellWork {
    fn default() -> ShellWork {
        ShellWork::new(SHELL_WORK_PER_PHONE)
    }
}

/// Counts a trip from its start to its end on the blocking pool.
struct Running<'a>(&'a ShellWork);

impl<'a> Running<'a> {
    fn new(work: &'a ShellWork) -> Running<'a> {
        let now = work.running.fetch_add(1, Ordering::Relaxed) + 1;
        work.peak_running.fetch_max(now, Ordering::Relaxed);
        Running(work)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ShellWork {
    pub fn new(permits: usize) -> ShellWork {
        ShellWork {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            held: AtomicUsize::new(0),
            peak_held: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            peak_running: AtomicUsize::new(0),
            read: AtomicU64::new(0),
        }
    }

    /// Runs `f` on the blocking pool once one of the phone's permits is free. The permit goes
    /// with `f`, so it is given back when the work ends, not when a caller that stopped waiting
    /// (its stream closed) drops this future: the bound is on work running, not on waiters.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        let work = self.clone();
        tokio::task::spawn_blocking(move || {
            // Dropped in reverse: the trip stops counting before its permit is given back, so
            // the trips counted never exceed the permits (the next trip can start only then).
            let _permit = permit;
            let _running = Running::new(&work);
            f()
        })
        .await
        .map_err(io::Error::other)?
    }

    pub fn hold(&self, n: usize) {
        let now = self.held.fetch_add(n, Ordering::Relaxed) + n;
        self.peak_held.fetch_max(now, Ordering::Relaxed);
    }

    pub fn release(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn add_read(&self, n: usize) {
        self.read.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// What the tests read.
#[cfg(test)]
impl ShellWork {
    /// Output bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The most output bytes held at once.
    pub fn peak_held(&self) -> usize {
        self.peak_held.load(Ordering::Relaxed)
    }

    /// Blocking trips running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// The most blocking trips that ran at once.
    pub fn peak_running(&self) -> usize {
        self.peak_running.load(Ordering::Relaxed)
    }

    /// File bytes `cat` has read.
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Permits free now.
    pub fn free_permits(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work beyond the permits waits for one to be given back; it does not fail.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_beyond_the_permits_waits_its_turn() {
        let work = Arc::new(ShellWork::new(1));
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let first = {
            let work = work.clone();
            tokio::spawn(async move {
                work.blocking(move || {
                    wait.recv().map_err(io::Error::other)?;
                    Ok(1)
                })
                .await
            })
        };
        while work.running() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let second = {
            let work = work.clone();
            tokio::spawn(async move { work.blocking(|| Ok(2)).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the second ran beside the first");
        assert_eq!(work.running(), 1);
        go.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
        assert_eq!((work.peak_running(), work.free_permits()), (1, 1));
    }

    /// A caller that stops waiting (its stream closed) leaves the permit with the work until
    /// the work ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_caller_keeps_the_permit_until_its_work_ends() {
        let work = Arc::new(ShellWork::new(1));
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let caller = {
            let work = work.clone();
            tokio::spawn(async move {
                work.blocking(move || wait.recv().map_err(io::Error::other))
                    .await
            })
        };
        while work.running() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        caller.abort();
        let _ = caller.await;
        assert_eq!(work.free_permits(), 0, "the work still runs");
        go.send(()).unwrap();
        while work.running() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(work.free_permits(), 1);
    }
}
