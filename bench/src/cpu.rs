//! CPU time from `/proc` (`utime + stime` in `stat`, in USER_HZ ticks: 100 a second on Linux
//! whatever the kernel's HZ): a process's, a thread's own, and that of this process's children
//! once waited for. The ADB push reads it around each copy: CPU time is far less sensitive to
//! other work on the machine than wall time, and CPU / wall says whether a copy was held up by
//! its work (copies, system calls) or by waiting (round trips).

use std::time::Duration;

const TICK: Duration = Duration::from_millis(10);

/// The fields of a `stat` line we read: utime, stime, cutime, cstime (fields 14-17).
fn parse_stat(text: &str) -> Option<[u64; 4]> {
    // The command name (field 2) is in parentheses and may hold spaces or parentheses: the
    // fields that follow start after the last `)`. Field 3 is then the first of them.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some([field(14)?, field(15)?, field(16)?, field(17)?])
}

fn read(path: &str) -> Option<[u64; 4]> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

fn ticks(n: u64) -> Duration {
    TICK * u32::try_from(n).unwrap_or(u32::MAX)
}

/// A process's CPU time so far (zero if it is gone).
pub fn of_process(pid: u32) -> Duration {
    read(&format!("/proc/{pid}/stat")).map_or(Duration::ZERO, |f| ticks(f[0] + f[1]))
}

/// The calling thread's own CPU time.
pub fn of_this_thread() -> Duration {
    read("/proc/thread-self/stat").map_or(Duration::ZERO, |f| ticks(f[0] + f[1]))
}

/// The CPU time of this process's children that have been waited for.
pub fn of_waited_children() -> Duration {
    read("/proc/self/stat").map_or(Duration::ZERO, |f| ticks(f[2] + f[3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_after_the_command_name() {
        let line = "18752 (a (b) c) R 18749 18749 6912 0 -1 4194304 125 0 0 0 7 3 2 1 20 0 1 0";
        assert_eq!(parse_stat(line), Some([7, 3, 2, 1]));
        assert_eq!(parse_stat("1 (x) R 1 2"), None);
    }

    #[test]
    fn a_busy_thread_is_seen() {
        let before = of_this_thread();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(of_this_thread() > before, "60 ms of spinning shows");
        assert!(of_process(std::process::id()) >= of_this_thread());
    }
}
