//! The push throughput of the ADB gateway, against its baseline in the same run.
//!
//! - **Through the gateway**: Debian's stock `adb push FILE /sdcard/...` to a simulated phone
//!   connected through the gateway (the client, its private server, the gateway and the phone's
//!   file all on this machine), timed from starting the `adb` process to its exit, which comes
//!   after the phone answered the push's DONE, so the file is in place.
//! - **The baseline**: the same file sent over one plain loopback TCP connection by a sender
//!   thread and written to a file on the same disk by a receiver thread: read, write, nothing
//!   else, with 128 KiB buffers (what coreutils' `cat` uses), no `sendfile`/`splice` (adb copies
//!   through user space too) and no fsync (nor does the simulated phone). That is what a push
//!   over loopback into a file costs when no protocol is in the way.
//!
//! - **The pull**: right after each push, `adb pull` of the pushed file back through the
//!   gateway, timed and checked the same way (the gateway's side sends; beside the same
//!   baseline).
//! - **A plain adbd** ([`super::refadbd`], when its binary is there): the same `adb push` to
//!   the project's test-adbd, to tell adb's own path from the gateway's cost.
//!
//! The copies take turns going first, round after round, so that the load other work puts on
//! the machine falls on all alike; each writes a fresh file (the previous one is removed outside
//! the timing) and is checked by its MD5.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use md5::{Digest, Md5};
use rand::RngCore;

use super::adbhost::AdbHost;
use super::cpu;

/// The baseline's buffer on both ends.
pub const LOOPBACK_BUFFER: usize = 128 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// A file removed when dropped (the pushed copies are 200 MiB each: none may outlive a failure).
pub struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The file pushed: random bytes (nothing along the way can compress them) and their MD5.
pub struct Source {
    pub file: TempFile,
    pub bytes: u64,
    pub md5: [u8; 16],
}

impl Source {
    pub fn make(path: &Path, bytes: u64) -> anyhow::Result<Source> {
        let file = TempFile(path.to_path_buf());
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        let mut hash = Md5::new();
        let mut chunk = vec![0u8; 1 << 20];
        let mut rng = rand::rng();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            rng.fill_bytes(&mut chunk[..n]);
            hash.update(&chunk[..n]);
            out.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        out.flush()?;
        Ok(Source {
            file,
            bytes,
            md5: hash.finalize().into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.file.0
    }
}

pub fn md5_file(path: &Path) -> anyhow::Result<[u8; 16]> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hash = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hash.finalize().into());
        }
        hash.update(&buf[..n]);
    }
}

/// CPU time a copy took, by who spent it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// The sender thread, or the `adb` client process.
    pub sender: Duration,
    /// The adb server, for pushes.
    pub relay: Option<Duration>,
    /// The receiver thread, or the process behind the device (the gateway's server, test-adbd).
    pub receiver: Duration,
}

impl Cpu {
    pub fn total(&self) -> Duration {
        self.sender + self.relay.unwrap_or_default() + self.receiver
    }
}

/// One copy: how long it took and the CPU it cost.
#[derive(Clone, Copy, Debug)]
pub struct Copied {
    pub wall: Duration,
    pub cpu: Cpu,
}

impl Copied {
    /// CPU time over wall time: how many cores the copy kept busy on average.
    pub fn cores(&self) -> f64 {
        self.cpu.total().as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Copies `source` over a fresh loopback TCP connection into `dest`; the time from connecting
/// to the receiver having written the last byte and closed the file.
pub fn loopback_copy(source: &Path, dest: &Path) -> anyhow::Result<Copied> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let dest = dest.to_path_buf();
    let started = Instant::now();
    let receiver = std::thread::spawn(move || -> anyhow::Result<(u64, Duration)> {
        let cpu_before = cpu::of_this_thread();
        let (mut sock, _) = listener.accept()?;
        let mut out = std::fs::File::create(&dest)?;
        let mut buf = vec![0u8; LOOPBACK_BUFFER];
        let mut total = 0u64;
        loop {
            let n = sock.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
            total += n as u64;
        }
        drop(out);
        Ok((total, cpu::of_this_thread().saturating_sub(cpu_before)))
    });
    let cpu_before = cpu::of_this_thread();
    let sent = (|| -> anyhow::Result<u64> {
        let mut sock = TcpStream::connect(addr)?;
        let mut input = std::fs::File::open(source)?;
        let mut buf = vec![0u8; LOOPBACK_BUFFER];
        let mut total = 0u64;
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            sock.write_all(&buf[..n])?;
            total += n as u64;
        }
        sock.shutdown(std::net::Shutdown::Write)?;
        Ok(total)
    })();
    let sender_cpu = cpu::of_this_thread().saturating_sub(cpu_before);
    let (received, receiver_cpu) = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the receiver thread panicked"))??;
    let wall = started.elapsed();
    let sent = sent?;
    ensure!(sent == received, "sent {sent} bytes, received {received}");
    Ok(Copied {
        wall,
        cpu: Cpu {
            sender: sender_cpu,
            relay: None,
            receiver: receiver_cpu,
        },
    })
}

/// What one `adb push` took, and adb's own figure (its bytes and seconds) when it printed one.
pub struct Pushed {
    pub copied: Copied,
    pub adb_said: Option<(u64, f64)>,
}

/// `adb -s SERIAL push SOURCE REMOTE`, timed from spawning adb to its exit; the CPU of the adb
/// client (this process's only child waited for meanwhile), the adb server and `device_pid`.
pub async fn adb_push(
    adb: &AdbHost,
    serial: &str,
    source: &Path,
    remote: &str,
    device_pid: u32,
) -> anyhow::Result<Pushed> {
    let source = source.to_str().context("a source path that is not UTF-8")?;
    let (copied, out) =
        adb_transfer(adb, &["-s", serial, "push", source, remote], device_pid).await?;
    Ok(Pushed {
        copied,
        adb_said: parse_adb_rate(&out),
    })
}

/// `adb -s SERIAL pull REMOTE DEST`, as [`adb_push`] the other way: the device side sends.
pub async fn adb_pull(
    adb: &AdbHost,
    serial: &str,
    remote: &str,
    dest: &Path,
    device_pid: u32,
) -> anyhow::Result<Copied> {
    let dest = dest.to_str().context("a work dir that is not UTF-8")?;
    let (mut copied, _) =
        adb_transfer(adb, &["-s", serial, "pull", remote, dest], device_pid).await?;
    std::mem::swap(&mut copied.cpu.sender, &mut copied.cpu.receiver);
    Ok(copied)
}

/// Runs one adb transfer: its wall time, and CPU as (adb client, adb server, device side).
async fn adb_transfer(
    adb: &AdbHost,
    args: &[&str],
    device_pid: u32,
) -> anyhow::Result<(Copied, String)> {
    let before = (
        cpu::of_waited_children(),
        cpu::of_process(adb.pid),
        cpu::of_process(device_pid),
    );
    let started = Instant::now();
    let out = adb.run(args).await?;
    let wall = started.elapsed();
    let cpu = Cpu {
        sender: cpu::of_waited_children().saturating_sub(before.0),
        relay: Some(cpu::of_process(adb.pid).saturating_sub(before.1)),
        receiver: cpu::of_process(device_pid).saturating_sub(before.2),
    };
    Ok((Copied { wall, cpu }, out))
}

/// adb 29 ends a push with `NAME: 1 file pushed. 123.4 MB/s (209715200 bytes in 1.621s)`:
/// the bytes and seconds it measured itself (from its first SEND to the device's last OKAY).
pub fn parse_adb_rate(text: &str) -> Option<(u64, f64)> {
    let open = text.rfind('(')?;
    let inner = text[open + 1..].split(')').next()?;
    let (bytes, rest) = inner.split_once(" bytes in ")?;
    let secs = rest.trim().strip_suffix('s')?;
    Some((bytes.trim().parse().ok()?, secs.parse().ok()?))
}

/// The copies a round makes of the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfer {
    Loopback,
    Gateway,
    Reference,
}

impl Transfer {
    pub fn name(self) -> &'static str {
        match self {
            Transfer::Loopback => "loopback",
            Transfer::Gateway => "gateway",
            Transfer::Reference => "test-adbd",
        }
    }
}

/// Round `i`'s order: the copies turn by one each round, so that each goes first as often as
/// the others (and load from other work falls on all alike).
pub fn order(i: usize, reference: bool) -> Vec<Transfer> {
    let mut copies = vec![Transfer::Loopback, Transfer::Gateway];
    if reference {
        copies.push(Transfer::Reference);
    }
    let n = copies.len();
    copies.rotate_left(i % n);
    copies
}

/// One round: each copy with its own time and CPU.
#[derive(Clone, Debug)]
pub struct Round {
    pub loopback: Copied,
    pub gateway: Copied,
    /// The pushed file pulled back through the gateway.
    pub pull: Copied,
    /// adb's own seconds for the push (without starting adb and connecting to its server).
    pub adb_secs: Option<f64>,
    /// The same push to the plain adbd, when there is one.
    pub reference: Option<Copied>,
    pub first: Transfer,
}

impl Round {
    /// Gateway / loopback, in throughput.
    pub fn ratio(&self) -> f64 {
        self.loopback.wall.as_secs_f64() / self.gateway.wall.as_secs_f64()
    }

    /// Gateway / plain adbd, in throughput.
    pub fn vs_reference(&self) -> Option<f64> {
        self.reference
            .map(|r| r.wall.as_secs_f64() / self.gateway.wall.as_secs_f64())
    }

    /// Plain adbd / loopback, in throughput: what adb's own path leaves.
    pub fn reference_ratio(&self) -> Option<f64> {
        self.reference
            .map(|r| self.loopback.wall.as_secs_f64() / r.wall.as_secs_f64())
    }
}

pub fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB / d.as_secs_f64().max(1e-9)
}

/// The median (the mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Where a round's copies go and how they are checked.
pub struct Target<'a> {
    pub adb: &'a AdbHost,
    pub serial: &'a str,
    /// The path on the phone (`/sdcard/...`).
    pub remote: &'a str,
    /// The same file in the simulator's directory of the phone, for its MD5. The last round's
    /// push stays there (for the API's look at it); each push removes the previous one first.
    pub on_host: PathBuf,
    /// The baseline's file, on the same disk.
    pub loopback_dest: PathBuf,
    /// Where the pushed file is pulled back to.
    pub pull_dest: PathBuf,
    /// The server behind the gateway, for its CPU time.
    pub gateway_pid: u32,
    /// The plain adbd: its serial, the path it writes to (its `/` is the host's), its pid.
    pub reference: Option<(String, PathBuf, u32)>,
}

/// Runs `rounds` rounds, turning the order of the copies.
pub async fn measure(
    source: &Source,
    target: &Target<'_>,
    rounds: usize,
) -> anyhow::Result<Vec<Round>> {
    let mut out = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let copies = order(i, target.reference.is_some());
        let (mut loopback, mut gateway, mut reference) = (None, None, None);
        for &copy in &copies {
            match copy {
                Transfer::Loopback => {
                    loopback = Some(loopback_round(source, &target.loopback_dest).await?);
                }
                Transfer::Gateway => {
                    // The push, then the pushed file back: both ways through the gateway.
                    let pushed = push_round(source, target).await?;
                    gateway = Some((pushed, pull_round(source, target).await?));
                }
                Transfer::Reference => {
                    if let Some((serial, dest, pid)) = &target.reference {
                        reference =
                            Some(reference_round(source, target.adb, serial, dest, *pid).await?);
                    }
                }
            }
        }
        let (Some(loopback), Some(gateway)) = (loopback, gateway) else {
            bail!("a round without both copies");
        };
        let (gateway, pull) = gateway;
        out.push(Round {
            loopback,
            gateway: gateway.copied,
            pull,
            adb_secs: gateway.adb_said.map(|(_, s)| s),
            reference,
            first: copies[0],
        });
    }
    Ok(out)
}

async fn reference_round(
    source: &Source,
    adb: &AdbHost,
    serial: &str,
    dest: &Path,
    pid: u32,
) -> anyhow::Result<Copied> {
    let _ = std::fs::remove_file(dest);
    let remote = dest.to_str().context("a work dir that is not UTF-8")?;
    let pushed = adb_push(adb, serial, source.path(), remote, pid).await?;
    let copy = TempFile(dest.to_path_buf());
    check_copy(source, &copy.0)
        .await
        .context("the push to test-adbd")?;
    Ok(pushed.copied)
}

async fn loopback_round(source: &Source, dest: &Path) -> anyhow::Result<Copied> {
    let _ = std::fs::remove_file(dest);
    let (src, dst) = (source.path().to_path_buf(), dest.to_path_buf());
    let copied = tokio::task::spawn_blocking(move || loopback_copy(&src, &dst)).await??;
    let copy = TempFile(dest.to_path_buf());
    check_copy(source, &copy.0)
        .await
        .context("the loopback copy")?;
    Ok(copied)
}

async fn push_round(source: &Source, target: &Target<'_>) -> anyhow::Result<Pushed> {
    let _ = std::fs::remove_file(&target.on_host);
    let pushed = adb_push(
        target.adb,
        target.serial,
        source.path(),
        target.remote,
        target.gateway_pid,
    )
    .await?;
    if let Some((bytes, _)) = pushed.adb_said {
        ensure!(
            bytes == source.bytes,
            "adb says it pushed {bytes} bytes of {}",
            source.bytes
        );
    }
    check_copy(source, &target.on_host)
        .await
        .context("the file adb pushed, in the simulator's directory")?;
    Ok(pushed)
}

async fn pull_round(source: &Source, target: &Target<'_>) -> anyhow::Result<Copied> {
    let dest = TempFile(target.pull_dest.clone());
    let _ = std::fs::remove_file(&dest.0);
    let pulled = adb_pull(
        target.adb,
        target.serial,
        target.remote,
        &dest.0,
        target.gateway_pid,
    )
    .await?;
    check_copy(source, &dest.0)
        .await
        .context("the file adb pulled")?;
    Ok(pulled)
}

/// The copy's size and MD5 are the source's.
async fn check_copy(source: &Source, copy: &Path) -> anyhow::Result<()> {
    let path = copy.to_path_buf();
    let size = std::fs::metadata(&path)
        .with_context(|| format!("no file at {}", path.display()))?
        .len();
    ensure!(
        size == source.bytes,
        "{} has {size} bytes, the source {}",
        path.display(),
        source.bytes
    );
    let md5 = tokio::task::spawn_blocking(move || md5_file(&path)).await??;
    ensure!(
        md5 == source.md5,
        "{} differs from the source (MD5)",
        copy.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_adbs_own_rate() {
        let line =
            "/tmp/x/source.bin: 1 file pushed, 0 skipped. 291.4 MB/s (209715200 bytes in 0.686s)\n";
        assert_eq!(parse_adb_rate(line), Some((209_715_200, 0.686)));
        assert_eq!(parse_adb_rate("adb: error: failed to copy"), None);
    }

    #[test]
    fn every_copy_goes_first_in_turn() {
        use Transfer::*;
        assert_eq!(order(0, false), [Loopback, Gateway]);
        assert_eq!(order(1, false), [Gateway, Loopback]);
        assert_eq!(order(2, false), [Loopback, Gateway]);
        assert_eq!(order(0, true), [Loopback, Gateway, Reference]);
        assert_eq!(order(1, true), [Gateway, Reference, Loopback]);
        assert_eq!(order(2, true), [Reference, Loopback, Gateway]);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(mib_per_s(1 << 20, Duration::from_millis(500)), 2.0);
    }

    #[test]
    fn the_baseline_copies_every_byte_and_sources_are_random() {
        let dir = tempfile::tempdir().unwrap();
        let source = Source::make(&dir.path().join("s.bin"), 3 * 1024 * 1024 + 7).unwrap();
        assert_eq!(md5_file(source.path()).unwrap(), source.md5);
        let other = Source::make(&dir.path().join("t.bin"), 3 * 1024 * 1024 + 7).unwrap();
        assert_ne!(source.md5, other.md5);
        let dest = dir.path().join("d.bin");
        loopback_copy(source.path(), &dest).unwrap();
        assert_eq!(md5_file(&dest).unwrap(), source.md5);
        let path = source.path().to_path_buf();
        drop(source);
        assert!(!path.exists(), "the source goes with its handle");
    }

    #[tokio::test]
    async fn a_wrong_copy_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let source = Source::make(&dir.path().join("s.bin"), 1000).unwrap();
        let copy = dir.path().join("c.bin");
        let mut bytes = std::fs::read(source.path()).unwrap();
        bytes[500] ^= 1;
        std::fs::write(&copy, &bytes).unwrap();
        assert!(check_copy(&source, &copy).await.is_err());
        std::fs::write(&copy, &bytes[..999]).unwrap();
        assert!(check_copy(&source, &copy).await.is_err());
        std::fs::copy(source.path(), &copy).unwrap();
        check_copy(&source, &copy).await.unwrap();
    }
}
