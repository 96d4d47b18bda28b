//! Batch counter changes gathered during one transaction, summed per batch, so that each
//! batch row is read and written once at the end of the transaction however many of its
//! children moved in it (a claim of 64 children, a group of completions). Each store applies
//! them with its own SQL.

use std::collections::BTreeMap;

use cloudphone_core::{BatchCounts, TaskStatus};

#[derive(Debug, Default)]
pub(crate) struct BatchMoves(BTreeMap<String, BatchChange>);

/// The summed change of one batch, and when its latest child move happened (the batch's finish
/// time if the change makes it terminal).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BatchChange {
    pub delta: BatchCounts,
    pub at_ms: i64,
}

impl BatchMoves {
    /// One child of `parent_id` moves from `from` to `to` at `at_ms` (nothing for a task
    /// without a batch).
    pub(crate) fn record(
        &mut self,
        parent_id: Option<&str>,
        from: TaskStatus,
        to: TaskStatus,
        at_ms: i64,
    ) {
        let Some(parent_id) = parent_id else {
            return;
        };
        if from == to {
            return;
        }
        let change = self.0.entry(parent_id.to_owned()).or_default();
        change.delta = change.delta.add(&BatchCounts::delta(from, to));
        change.at_ms = change.at_ms.max(at_ms);
    }

    /// The summed change of every batch, in id order (the order rows are locked in).
    pub(crate) fn into_changes(self) -> impl Iterator<Item = (String, BatchChange)> {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    #[test]
    fn moves_sum_per_batch() {
        let mut m = BatchMoves::default();
        m.record(Some("b"), Waiting, Processing, 5);
        m.record(Some("b"), Processing, Finished, 9);
        m.record(Some("a"), Waiting, Skipped, 7);
        m.record(None, Waiting, Processing, 8);
        m.record(Some("c"), Failed, Failed, 8);
        let changes: Vec<_> = m.into_changes().collect();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].0, "a");
        let a = changes[0].1;
        assert_eq!((a.delta.waiting, a.delta.skipped, a.at_ms), (-1, 1, 7));
        let b = changes[1].1;
        assert_eq!(
            (
                b.delta.waiting,
                b.delta.processing,
                b.delta.finished,
                b.at_ms
            ),
            (-1, 0, 1, 9)
        );
        assert_eq!((b.delta.failed, b.delta.skipped), (0, 0));
    }
}
