//! Each account's share of this node's slots (docs/design.md §5.10): the tasks each account runs
//! here now, kept as the claim loop starts them and their workers end, so that the next claim
//! can pass over an account that holds its share. One account's slow work (downloads from a
//! server that answers a byte at a time) then leaves the rest of the slots to the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cloudphone_store::AccountShares;

/// The slots one account may hold on a node of `concurrency` slots unless configured: an
/// eighth of them, at least one and at most 8, are kept for the other accounts, so another
/// tenant always finds some free while a single tenant keeps nearly every slot (a node of one
/// slot cannot keep one back).
pub fn default_account_slots(concurrency: usize) -> usize {
    if concurrency <= 1 {
        return 1;
    }
    concurrency - (concurrency / 8).clamp(1, 8)
}

/// The tasks each account runs on this node.
#[derive(Debug)]
pub struct Shares {
    per_account: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// One running task's place in its account's share; given back when dropped.
pub struct Held {
    shares: Arc<Shares>,
    account: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.shares.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.account);
            }
        }
    }
}

impl Shares {
    pub fn new(per_account: usize) -> Arc<Shares> {
        Arc::new(Shares {
            per_account: per_account.max(1),
            held: Mutex::default(),
        })
    }

    /// What the next claim may start, per account.
    pub fn now(&self) -> AccountShares {
        AccountShares {
            per_account: Some(self.per_account),
            held: self.held.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// Counts a task of `account` that starts running here, until the returned guard drops.
    pub fn hold(self: &Arc<Self>, account: &str) -> Held {
        *self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(account.to_string())
            .or_insert(0) += 1;
        Held {
            shares: self.clone(),
            account: account.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_share_keeps_an_eighth_at_most_8_for_the_others() {
        assert_eq!(default_account_slots(64), 56);
        assert_eq!(default_account_slots(256), 248);
        assert_eq!(default_account_slots(16), 14);
        assert_eq!(default_account_slots(8), 7);
        assert_eq!(default_account_slots(7), 6);
        assert_eq!(default_account_slots(2), 1);
        assert_eq!(default_account_slots(1), 1);
        assert_eq!(default_account_slots(0), 1);
    }

    #[test]
    fn a_held_slot_counts_until_its_task_ends() {
        let shares = Shares::new(2);
        let a1 = shares.hold("a");
        let a2 = shares.hold("a");
        let _b = shares.hold("b");
        let now = shares.now();
        assert_eq!((now.left("a"), now.left("b"), now.left("c")), (0, 1, 2));
        assert_eq!(now.saturated(), ["a"]);
        drop(a1);
        assert_eq!(shares.now().left("a"), 1);
        drop(a2);
        assert!(
            !shares.now().held.contains_key("a"),
            "an idle account is forgotten"
        );
    }
}
