//! The cap on the entries of connections that never got in (a wrong key, garbage, a stalled
//! handshake), per account: at most `limit` in a window (`window`, fixed, from the first such
//! entry of the account); the rest are left out and counted, and one summary entry says how
//! many when the window ends: written by the account's next such connection after it, or by
//! the audit writer's sweep, or at shutdown, whichever comes first. Connections that got in are
//! never capped (they are not seen here).
//!
//! **Why** per account: the entries go to the phone owner's audit log, and anyone who can reach
//! a port can make them; one noisy source must not bury the owner's log (nor fill the store),
//! while the summary keeps the fact that it happened. **Why** fixed windows: the cap is about
//! how much lands in the log, and a window's count is what its summary reports.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use cloudphone_store::AuditEntry;

use super::entry::suppressed;

/// Phones a summary names at most (the first ones whose entries were left out).
const NAMED: usize = 20;

#[derive(Debug)]
struct Window {
    started: Instant,
    recorded: u32,
    left_out: u64,
    instances: BTreeSet<String>,
}

#[derive(Debug)]
pub(crate) struct Cap {
    limit: u32,
    window: Duration,
    accounts: HashMap<String, Window>,
}

/// What becomes of one entry.
#[derive(Debug)]
pub(crate) struct Decision {
    /// Write it (else it is left out, and counted).
    pub record: bool,
    /// The summary of the account's window that just ended, to write before it.
    pub summary: Option<AuditEntry>,
}

impl Cap {
    pub(crate) fn new(limit: u32, window: Duration) -> Cap {
        Cap {
            limit,
            window,
            accounts: HashMap::new(),
        }
    }

    /// An entry of `account`'s, of a connection to `instance` that never got in.
    pub(crate) fn admit(
        &mut self,
        account: &str,
        instance: &str,
        now: Instant,
        at_ms: i64,
    ) -> Decision {
        let ended = self
            .accounts
            .get(account)
            .is_some_and(|w| now.duration_since(w.started) >= self.window);
        let summary = match ended.then(|| self.accounts.remove(account)).flatten() {
            Some(w) => self.summary(account, &w, now, at_ms),
            None => None,
        };
        let w = self
            .accounts
            .entry(account.to_string())
            .or_insert_with(|| Window {
                started: now,
                recorded: 0,
                left_out: 0,
                instances: BTreeSet::new(),
            });
        let record = w.recorded < self.limit;
        if record {
            w.recorded += 1;
        } else {
            w.left_out += 1;
            if w.instances.len() < NAMED {
                w.instances.insert(instance.to_string());
            }
        }
        Decision { record, summary }
    }

    /// The summaries of the windows that have ended, which are forgotten.
    pub(crate) fn sweep(&mut self, now: Instant, at_ms: i64) -> Vec<AuditEntry> {
        let window = self.window;
        self.take(|w| now.duration_since(w.started) >= window, now, at_ms)
    }

    /// The summaries of every window, ended or not (shutdown).
    pub(crate) fn drain(&mut self, now: Instant, at_ms: i64) -> Vec<AuditEntry> {
        self.take(|_| true, now, at_ms)
    }

    fn take(&mut self, due: impl Fn(&Window) -> bool, now: Instant, at_ms: i64) -> Vec<AuditEntry> {
        let accounts: Vec<String> = self
            .accounts
            .iter()
            .filter(|(_, w)| due(w))
            .map(|(a, _)| a.clone())
            .collect();
        let mut out = Vec::new();
        for a in accounts {
            if let Some(w) = self.accounts.remove(&a) {
                out.extend(self.summary(&a, &w, now, at_ms));
            }
        }
        out
    }

    fn summary(&self, account: &str, w: &Window, now: Instant, at_ms: i64) -> Option<AuditEntry> {
        if w.left_out == 0 {
            return None;
        }
        let seconds = now.duration_since(w.started).min(self.window);
        Some(suppressed(
            account,
            w.instances.iter().cloned().collect(),
            w.left_out,
            seconds.as_secs_f64().ceil() as u64,
            at_ms,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn admit(cap: &mut Cap, account: &str, at: Instant) -> Decision {
        cap.admit(account, "acp-1", at, 0)
    }

    #[test]
    fn each_account_gets_its_limit_a_window_and_the_rest_is_summarized() {
        let mut cap = Cap::new(3, MIN);
        let t0 = Instant::now();
        let recorded: Vec<bool> = (0..5).map(|_| admit(&mut cap, "a", t0).record).collect();
        assert_eq!(recorded, [true, true, true, false, false]);
        // Another account has a limit of its own.
        assert!(admit(&mut cap, "b", t0).record);
        // Not yet over: nothing to sweep.
        assert!(cap.sweep(t0 + MIN / 2, 0).is_empty());
        // The next entry after the window ends carries a's summary, and is recorded.
        let next = admit(&mut cap, "a", t0 + MIN + Duration::from_secs(1));
        assert!(next.record);
        let s = next.summary.expect("a summary");
        assert_eq!(s.account_id, "a");
        assert_eq!(s.outcome, "Suppressed unauthenticated=2 seconds=60");
        assert_eq!(s.resource_ids, ["acp-1"]);
        assert_eq!(s.action, "AdbConnection");
        // b left nothing out: its window ends with no summary, and is forgotten.
        assert!(cap.sweep(t0 + 2 * MIN, 0).is_empty());
        assert!(!cap.accounts.contains_key("b"));
    }

    #[test]
    fn the_sweep_and_shutdown_summarize_accounts_that_went_quiet() {
        let mut cap = Cap::new(1, MIN);
        let t0 = Instant::now();
        for i in 0..4 {
            cap.admit("a", &format!("acp-{i}"), t0, 0);
            cap.admit("b", "acp-b", t0, 0);
        }
        assert!(cap.sweep(t0 + Duration::from_secs(59), 0).is_empty());
        let swept = cap.sweep(t0 + MIN, 7);
        assert_eq!(swept.len(), 2);
        let a = swept.iter().find(|s| s.account_id == "a").unwrap();
        assert_eq!(a.outcome, "Suppressed unauthenticated=3 seconds=60");
        assert_eq!(a.resource_ids, ["acp-1", "acp-2", "acp-3"]);
        assert_eq!(a.at_ms, 7);
        assert!(cap.accounts.is_empty());
        // Shutdown: windows still running are summarized too.
        for _ in 0..3 {
            cap.admit("a", "acp-1", t0 + MIN, 0);
        }
        let drained = cap.drain(t0 + MIN + Duration::from_millis(1500), 0);
        assert_eq!(drained.len(), 1);
        assert_eq!(drained[0].outcome, "Suppressed unauthenticated=2 seconds=2");
        assert!(cap.drain(t0 + 2 * MIN, 0).is_empty());
    }
}
