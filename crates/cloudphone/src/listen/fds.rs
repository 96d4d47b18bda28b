//! File descriptors: the process raises its soft open-file limit to the hard one at start (as
//! the Go runtime does), and keeps its connections a margin below that limit, so that the store,
//! the object files and the backends still get descriptors when clients hold many connections.

/// Descriptors kept for everything but connections (the database, object and scratch files,
/// the engine's downloads, the TLS and DNS machinery); at most a quarter of the limit.
const RESERVED: u64 = 256;

/// Raises the soft limit on open files to the hard limit; returns the soft limit in force
/// (`None` if it cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: a valid pointer to an rlimit; raising the soft limit up to the hard one is
        // always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    Some(limit.rlim_cur)
}

/// How many connections a listener may hold: `wanted`, but no more than the open-file limit
/// leaves once the reserve is set aside.
pub fn connection_cap(wanted: usize, open_file_limit: Option<u64>) -> usize {
    let Some(limit) = open_file_limit else {
        return wanted.max(1);
    };
    let reserve = RESERVED.min(limit / 4);
    let room = usize::try_from(limit - reserve).unwrap_or(usize::MAX);
    wanted.min(room).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_stay_below_the_open_file_limit() {
        assert_eq!(connection_cap(4096, Some(1024)), 768);
        assert_eq!(connection_cap(4096, Some(20_000)), 4096);
        assert_eq!(connection_cap(4096, Some(400)), 300);
        assert_eq!(connection_cap(4096, None), 4096);
    }
}
