//! Time formats used on the wire. Times are kept as milliseconds since the Unix epoch inside the
//! system and formatted only at the edge.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// ISO 8601 UTC with second precision: `2022-10-11T08:53:32Z` (DescribeTasks, Gmt* fields).
pub fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `YYYY-MM-DD HH:mm:ss` in UTC, the other format the vendor uses (ReleaseTime, invocations).
pub fn plain(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (x-acs-date, Timestamp) into milliseconds.
pub fn parse_iso(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc).timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        let ms = parse_iso("2022-10-11T08:53:32Z").unwrap();
        assert_eq!(iso(ms), "2022-10-11T08:53:32Z");
        assert_eq!(plain(ms), "2022-10-11 08:53:32");
        assert_eq!(iso(ms + 999), "2022-10-11T08:53:32Z");
        assert!(parse_iso("yesterday").is_none());
    }

    #[test]
    fn now_is_the_wall_clock_in_milliseconds() {
        let since_epoch = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64
        };
        let before = since_epoch();
        let now = now_ms();
        let after = since_epoch();
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
    }
}
