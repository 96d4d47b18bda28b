//! Rate control of a batch (`MaxConcurrency`, `MaxErrors`): a number or a percentage of the
//! batch's children, resolved to counts when the batch is created.

/// A number of children, or a percentage of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Share {
    Count(i64),
    /// 0 to 100.
    Percent(i64),
}

impl Share {
    /// `"10"` or `"10%"`; a count from `min`, a percentage from 0 to 100.
    pub fn parse(s: &str, min: i64) -> Option<Share> {
        let digits =
            |t: &str| !t.is_empty() && t.len() <= 9 && t.bytes().all(|b| b.is_ascii_digit());
        match s.strip_suffix('%') {
            Some(p) if digits(p) => Some(p.parse().ok()?)
                .filter(|p| (0..=100).contains(p))
                .map(Share::Percent),
            Some(_) => None,
            None if digits(s) => Some(s.parse().ok()?)
                .filter(|n| *n >= min)
                .map(Share::Count),
            None => None,
        }
    }

    /// The count this share is of `total` children: a percentage rounds down, or up when
    /// `round_up` (a concurrency of 10% of 5 children is 1, not 0).
    pub fn of(self, total: i64, round_up: bool) -> i64 {
        match self {
            Share::Count(n) => n,
            Share::Percent(p) if round_up => (total * p + 99) / 100,
            Share::Percent(p) => total * p / 100,
        }
    }
}

/// A batch's limits, as counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchLimits {
    /// At most this many children Processing at once (at least 1).
    pub max_concurrency: Option<i64>,
    /// Once more children than this have failed, the children not yet started are Skipped with
    /// `MaxErrorsExceeded`.
    pub max_errors: Option<i64>,
}

impl BatchLimits {
    /// The limits of a batch of `total` children.
    pub fn resolve(concurrency: Option<Share>, errors: Option<Share>, total: i64) -> BatchLimits {
        BatchLimits {
            max_concurrency: concurrency.map(|s| s.of(total, true).max(1)),
            max_errors: errors.map(|s| s.of(total, false)),
        }
    }

    /// Whether `failed` failures stop the batch.
    pub fn errors_exceeded(&self, failed: i64) -> bool {
        self.max_errors.is_some_and(|m| failed > m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_and_percentages() {
        assert_eq!(Share::parse("10", 1), Some(Share::Count(10)));
        assert_eq!(Share::parse("0", 0), Some(Share::Count(0)));
        assert_eq!(Share::parse("0", 1), None);
        assert_eq!(Share::parse("25%", 1), Some(Share::Percent(25)));
        assert_eq!(Share::parse("0%", 1), Some(Share::Percent(0)));
        for bad in [
            "",
            "%",
            "101%",
            "-1",
            "1.5",
            "ten",
            "10 %",
            "1234567890",
            "+1",
            "+10%",
            "-0%",
            " 5%",
        ] {
            assert_eq!(Share::parse(bad, 0), None, "{bad:?}");
        }
    }

    #[test]
    fn resolves_against_the_batch_size() {
        let l = BatchLimits::resolve(Some(Share::Percent(10)), Some(Share::Percent(10)), 5);
        assert_eq!(l.max_concurrency, Some(1));
        assert_eq!(l.max_errors, Some(0));
        let l = BatchLimits::resolve(Some(Share::Percent(0)), Some(Share::Count(3)), 500);
        assert_eq!(l.max_concurrency, Some(1));
        assert_eq!(l.max_errors, Some(3));
        assert!(!l.errors_exceeded(3));
        assert!(l.errors_exceeded(4));
        assert!(!BatchLimits::default().errors_exceeded(1000));
        let l = BatchLimits::resolve(Some(Share::Percent(25)), None, 10);
        assert_eq!(l.max_concurrency, Some(3));
    }

    /// `MaxErrors` as a percentage is that share of the batch's children, rounded down: 10% of
    /// 7 children tolerates no failure, 50% of 10 tolerates five.
    #[test]
    fn max_errors_percentages_round_down() {
        let errors = |p, total| BatchLimits::resolve(None, Some(Share::Percent(p)), total);
        assert_eq!(errors(50, 10).max_errors, Some(5));
        assert_eq!(errors(30, 7).max_errors, Some(2));
        assert_eq!(errors(10, 7).max_errors, Some(0));
        assert_eq!(errors(25, 200).max_errors, Some(50));
        assert_eq!(errors(99, 200).max_errors, Some(198));
        assert_eq!(errors(100, 37).max_errors, Some(37));
        assert_eq!(errors(0, 37).max_errors, Some(0));
        // 50% of 10: the sixth failure stops the batch, the fifth does not.
        assert!(!errors(50, 10).errors_exceeded(5));
        assert!(errors(50, 10).errors_exceeded(6));
    }

    /// `MaxConcurrency` as a percentage rounds up, and is at least 1, so that a batch always
    /// makes progress; an exact share is not rounded further.
    #[test]
    fn max_concurrency_percentages_round_up() {
        let concurrency =
            |p, total| BatchLimits::resolve(Some(Share::Percent(p)), None, total).max_concurrency;
        assert_eq!(concurrency(50, 10), Some(5));
        assert_eq!(concurrency(30, 7), Some(3));
        assert_eq!(concurrency(1, 250), Some(3));
        assert_eq!(concurrency(25, 200), Some(50));
        assert_eq!(concurrency(100, 37), Some(37));
        assert_eq!(concurrency(1, 1), Some(1));
        assert_eq!(concurrency(0, 37), Some(1));
        // A count is taken as it is, whatever the batch's size.
        let l = BatchLimits::resolve(Some(Share::Count(4)), Some(Share::Count(2)), 1_000);
        assert_eq!((l.max_concurrency, l.max_errors), (Some(4), Some(2)));
    }
}
