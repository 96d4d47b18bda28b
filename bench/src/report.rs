//! Numbers into words: latency samples into percentiles, and the measurements of one run into
//! the Markdown report (`bench/results/latest.md`) that is also printed.

use std::fmt::Write as _;
use std::time::Duration;

/// Latency samples of one measured shape, in the order they were taken.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    micros: Vec<u64>,
}

impl Samples {
    pub fn new() -> Samples {
        Samples::default()
    }

    pub fn push(&mut self, d: Duration) {
        self.micros
            .push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// The `p`-th percentile (0-100) in milliseconds; NaN without samples.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.micros, p).map_or(f64::NAN, |us| us as f64 / 1000.0)
    }

    pub fn p50(&self) -> f64 {
        self.percentile_ms(50.0)
    }

    pub fn p99(&self) -> f64 {
        self.percentile_ms(99.0)
    }

    pub fn max_ms(&self) -> f64 {
        self.micros
            .iter()
            .max()
            .map_or(f64::NAN, |&us| us as f64 / 1000.0)
    }
}

/// Nearest-rank percentile: the smallest sample with at least `p` percent of the samples at or
/// below it. Nearest rank (not interpolation) so that a p99 is a latency some request really had.
pub fn percentile(samples: &[u64], p: f64) -> Option<u64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// How a measurement compares with its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Miss,
    /// No target, or not measured in this run.
    None,
}

impl Verdict {
    pub fn of(pass: bool) -> Verdict {
        if pass { Verdict::Pass } else { Verdict::Miss }
    }

    fn text(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Miss => "MISS",
            Verdict::None => "",
        }
    }
}

/// One line of the summary: what was measured, the number, the target and the verdict.
#[derive(Clone, Debug)]
pub struct Line {
    pub what: String,
    pub value: String,
    pub target: String,
    pub verdict: Verdict,
}

/// A table with a header row, rendered as Markdown.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Printed under the table.
    pub note: String,
}

impl Table {
    pub fn new(title: &str, header: &[&str]) -> Table {
        Table {
            title: title.to_string(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            note: String::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        if !self.title.is_empty() {
            let _ = writeln!(out, "### {}\n", self.title);
        }
        let _ = writeln!(out, "| {} |", self.header.join(" | "));
        let _ = writeln!(
            out,
            "|{}",
            self.header.iter().map(|_| "---|").collect::<String>()
        );
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        if !self.note.is_empty() {
            let _ = writeln!(out, "\n{}", self.note);
        }
        out
    }
}

/// Everything one run measured.
#[derive(Debug, Default)]
pub struct Report {
    pub summary: Vec<Line>,
    pub tables: Vec<Table>,
    /// Free text sections (query plans, the machine, where time went), in order.
    pub sections: Vec<(String, String)>,
}

impl Report {
    pub fn line(&mut self, what: &str, value: String, target: &str, verdict: Verdict) {
        self.summary.push(Line {
            what: what.to_string(),
            value,
            target: target.to_string(),
            verdict,
        });
    }

    pub fn markdown(&self, title: &str, preamble: &str) -> String {
        let mut out = format!("# {title}\n\n{preamble}\n\n## Summary\n\n");
        let mut summary = Table::new("", &["measurement", "value", "target", ""]);
        for l in &self.summary {
            summary.row(vec![
                l.what.clone(),
                l.value.clone(),
                l.target.clone(),
                l.verdict.text().to_string(),
            ]);
        }
        out.push_str(&summary.markdown());
        out.push_str("\n## Details\n\n");
        for t in &self.tables {
            out.push_str(&t.markdown());
            out.push('\n');
        }
        for (title, text) in &self.sections {
            let _ = write!(out, "## {title}\n\n{text}\n\n");
        }
        out
    }
}

/// Milliseconds with a precision that suits their size.
pub fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

/// A count with thousands separators: 1000000 -> "1,000,000".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate with thousands separators.
pub fn rate(per_s: f64) -> String {
    if per_s.is_finite() {
        thousands(per_s.round() as u64)
    } else {
        "-".into()
    }
}

/// A size for counts of tasks in titles: 10k, 100k, 1M.
pub fn short_count(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        thousands(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        let unsorted = [5, 1, 4, 2, 3];
        assert_eq!(percentile(&unsorted, 50.0), Some(3));
        assert_eq!(percentile(&unsorted, 99.0), Some(5));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        // 1,000 samples: p99 is the 990th smallest, so ten slower ones do not hide it.
        let mut many: Vec<u64> = vec![1; 989];
        many.extend([2; 11]);
        assert_eq!(percentile(&many, 99.0), Some(2));
    }

    #[test]
    fn samples_in_milliseconds() {
        let mut s = Samples::new();
        for us in [1500, 500, 2500] {
            s.push(Duration::from_micros(us));
        }
        assert_eq!(s.len(), 3);
        assert_eq!(s.p50(), 1.5);
        assert_eq!(s.p99(), 2.5);
        assert_eq!(s.max_ms(), 2.5);
        assert!(Samples::new().p99().is_nan());
    }

    #[test]
    fn formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(short_count(10_000), "10k");
        assert_eq!(short_count(1_000_000), "1M");
        assert_eq!(short_count(12_345), "12,345");
        assert_eq!(ms(1.234), "1.23 ms");
        assert_eq!(ms(12.34), "12.3 ms");
        assert_eq!(ms(f64::NAN), "-");
    }

    #[test]
    fn markdown_tables() {
        let mut t = Table::new("T", &["a", "b"]);
        t.row(vec!["1".into(), "2".into()]);
        assert_eq!(t.markdown(), "### T\n\n| a | b |\n|---|---|\n| 1 | 2 |\n");
        let mut r = Report::default();
        r.line("x", "1".into(), "<= 2", Verdict::Pass);
        let md = r.markdown("Title", "pre");
        assert!(md.contains("| x | 1 | <= 2 | PASS |"), "{md}");
    }
}
