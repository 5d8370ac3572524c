//! Event times as agents log them, and the partition keys derived from them.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

/// 2000-01-01T00:00:00Z. Earlier times are clock or unit errors, not voice calls.
pub const EARLIEST_MS: i64 = 946_684_800_000;
/// 2100-01-01T00:00:00Z.
pub const LATEST_MS: i64 = 4_102_444_800_000;

/// Above this an epoch number must be milliseconds: as seconds it would be past the year 5000.
const EPOCH_MS_THRESHOLD: f64 = 1e11;

pub fn in_range(ms: i64) -> bool {
    (EARLIEST_MS..LATEST_MS).contains(&ms)
}

/// Parses an event time: ISO-8601 / RFC 3339 (a missing offset means UTC), Python's `asctime`
/// (`2026-11-23 14:00:01,123`), or epoch seconds (milliseconds when above 1e11), as number or text.
/// Returns epoch milliseconds within [`EARLIEST_MS`, `LATEST_MS`), or `None`.
pub fn parse_event_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let ms = if let Ok(n) = text.parse::<f64>() {
        return from_epoch(n);
    } else if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        dt.timestamp_millis()
    } else {
        parse_without_rfc3339(text)?
    };
    in_range(ms).then_some(ms)
}

/// Epoch seconds (milliseconds when above 1e11) to epoch milliseconds within range.
pub fn from_epoch(n: f64) -> Option<i64> {
    if !n.is_finite() {
        return None;
    }
    let ms = if n.abs() > EPOCH_MS_THRESHOLD { n } else { n * 1000.0 };
    if ms.abs() > 1e15 {
        return None;
    }
    let ms = ms.round() as i64;
    in_range(ms).then_some(ms)
}

fn parse_without_rfc3339(text: &str) -> Option<i64> {
    const WITH_OFFSET: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z"];
    for f in WITH_OFFSET {
        if let Ok(dt) = DateTime::parse_from_str(text, f) {
            return Some(dt.timestamp_millis());
        }
    }
    // Python's asctime separates milliseconds with a comma.
    let normalized = text.replacen(',', ".", 1);
    const NAIVE: [&str; 2] = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"];
    for f in NAIVE {
        if let Ok(dt) = NaiveDateTime::parse_from_str(&normalized, f) {
            return Some(Utc.from_utc_datetime(&dt).timestamp_millis());
        }
    }
    None
}

/// The lake's partition of an event time: `dt=yyyy-MM-dd`, `hour=HH`, UTC.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    pub dt: String,
    pub hour: String,
}

impl Partition {
    pub fn of(event_time_ms: i64) -> Partition {
        let t = utc(event_time_ms);
        Partition { dt: t.format("%Y-%m-%d").to_string(), hour: t.format("%H").to_string() }
    }

    /// The S3 key prefix below a table's folder: `dt=2026-11-23/hour=14`.
    pub fn path(&self) -> String {
        format!("dt={}/hour={}", self.dt, self.hour)
    }
}

/// Milliseconds since the epoch of a system time (0 before the epoch).
pub fn epoch_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The clock, for the edges: they read it once and hand the time to the pure pipeline.
pub fn now_ms() -> i64 {
    epoch_ms(std::time::SystemTime::now())
}

pub fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

/// `2026-11-23T14:00:01.123Z`.
pub fn iso(ms: i64) -> String {
    utc(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_795_442_401_123; // 2026-11-23T14:00:01.123Z

    #[test]
    fn every_logged_form_gives_the_same_instant() {
        for text in [
            "2026-11-23T14:00:01.123Z",
            "2026-11-23T14:00:01.123+00:00",
            "2026-11-23T15:00:01.123+01:00",
            "2026-11-23T14:00:01.123000+00:00",
            "2026-11-23 14:00:01.123+00:00",
            "2026-11-23T14:00:01.123",
            "2026-11-23 14:00:01,123",
            "1795442401.123",
            "1795442401123",
        ] {
            assert_eq!(parse_event_time(text), Some(T), "{text}");
        }
        assert_eq!(iso(T), "2026-11-23T14:00:01.123Z");
    }

    #[test]
    fn nonsense_and_out_of_range_times_are_refused() {
        for text in
            ["", "yesterday", "0", "-5", "1e300", "NaN", "inf", "1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "2026-13-45T99:00:00Z"]
        {
            assert_eq!(parse_event_time(text), None, "{text}");
        }
    }

    #[test]
    fn partitions_are_utc_hours() {
        assert_eq!(Partition::of(T), Partition { dt: "2026-11-23".into(), hour: "14".into() });
        assert_eq!(Partition::of(T).path(), "dt=2026-11-23/hour=14");
    }
}
