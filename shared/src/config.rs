//! What the pipeline needs to know besides its input.

use crate::cost::PriceTable;
use crate::metrics::MetricLabels;
use crate::pii::{PiiMode, PseudonymKey, Scrub};

/// Default turn latency target, in milliseconds: the p95 alarm threshold and the over-target flag.
pub const DEFAULT_LATENCY_TARGET_MS: f64 = 1500.0;
pub const DEFAULT_ENVIRONMENT: &str = "dev";
/// The stack's default subscription filter pattern (`SubscriptionFilterPattern` in template.yaml,
/// which a test holds equal): a term for each family marker, so only the contract's events pass.
pub const DEFAULT_FILTER_PATTERN: &str = r#"?voice_metrics ?session_analytics ?_metrics ?metrics_collected ?conversation_item_added ?session_usage_updated ?"LLM metrics" ?"TTS metrics" ?"STT metrics" ?"EOU metrics" ?"RealtimeModel metrics" ?"failed to generate LLM completion" ?"failed to synthesize speech" ?"failed to recognize speech" ?"switching to next" ?"are unavailable, retrying" ?"unrecoverable error" ?"FallbackAdapter," ?"process is unresponsive" ?"memory usage is above" ?"exceeded memory limit" ?llm_error ?tts_error ?stt_error ?realtime_model_error"#;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The `Environment` dimension and the `environment` column.
    pub environment: String,
    pub latency_target_ms: f64,
    pub prices: PriceTable,
    /// Adds `{Environment, Model}` to the LLM and TTS latency metrics. Off by default: every model
    /// multiplies the custom metrics billed.
    pub model_dimension: bool,
    /// Adds `{Environment, Tenant}` to turn latency. Off by default, for the same reason.
    pub tenant_dimension: bool,
    /// Emails and phone numbers in signals, session ids and rejected input: hashed by default.
    pub pii: PiiMode,
    /// Keys the pseudonyms (HMAC); without one they are plain hashes, which enumeration reverses.
    pub pseudonym_key: Option<PseudonymKey>,
    /// Which event times rows may carry; anything else is rejected (`event_time_out_of_range`).
    pub time_window: TimeWindow,
    /// Which agents, tenants and models get metric dimensions of their own; the rest are `other`.
    pub metric_labels: MetricLabels,
    /// The default alarms' thresholds a deployment sets, by template parameter (the local report
    /// evaluates with them). The turn-latency alarm's is `latency_target_ms`, as in the template.
    pub alarm_thresholds: std::collections::BTreeMap<String, f64>,
}

/// The event times a deployment can keep. By default (the local replay) any time from 2000 to 2100.
///
/// The deployed lake's tables project their partitions over the last `LakeRetentionDays` days and
/// one day ahead, so a row outside that span would be written to S3 and be invisible to Athena: the
/// function rejects it instead. And an event time far from the time CloudWatch Logs recorded its line
/// is a clock or unit error whose rows would scatter a batch over more Firehose partitions than a
/// stream keeps open (500): the function rejects those too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeWindow {
    /// Days back from the processing time that the lake shows (the stack's `LakeRetentionDays`).
    pub retention_days: Option<u32>,
    /// Whether an event's time must lie within [`MAX_BEHIND_LOG_MS`] before and [`MAX_AHEAD_LOG_MS`]
    /// after the time CloudWatch Logs gave its log event. Only where that time is real.
    pub near_log_time: bool,
}

/// The lake's partitions reach one day past the processing time (`NOW+1DAYS`): agent clocks drift.
pub const LAKE_AHEAD_MS: i64 = 86_400_000;
/// CloudWatch Logs itself refuses log events older than 14 days or more than 2 hours ahead.
pub const MAX_BEHIND_LOG_MS: i64 = 14 * 86_400_000;
pub const MAX_AHEAD_LOG_MS: i64 = 2 * 3_600_000;

impl TimeWindow {
    /// The deployed function's window: the lake's retention, and event times near their log times.
    pub fn deployed(retention_days: u32) -> TimeWindow {
        TimeWindow { retention_days: Some(retention_days), near_log_time: true }
    }

    /// Why `event_time` cannot be kept, for a log event CloudWatch recorded at `log_time`, processed
    /// at `now`; `None` when it can.
    pub fn refuses(&self, event_time: i64, log_time: i64, now: i64) -> Option<String> {
        let iso = crate::timefmt::iso;
        if let Some(days) = self.retention_days {
            let earliest = now.saturating_sub(i64::from(days) * 86_400_000);
            if event_time < earliest {
                return Some(format!(
                    "event time {} is more than {days} days before the processing time {}: the lake shows {days} days (LakeRetentionDays)",
                    iso(event_time),
                    iso(now)
                ));
            }
            if event_time >= now.saturating_add(LAKE_AHEAD_MS) {
                return Some(format!(
                    "event time {} is more than a day after the processing time {}: the lake's partitions end a day ahead",
                    iso(event_time),
                    iso(now)
                ));
            }
        }
        if self.near_log_time {
            if event_time < log_time.saturating_sub(MAX_BEHIND_LOG_MS) {
                return Some(format!(
                    "event time {} is more than 14 days before CloudWatch recorded the line ({})",
                    iso(event_time),
                    iso(log_time)
                ));
            }
            if event_time > log_time.saturating_add(MAX_AHEAD_LOG_MS) {
                return Some(format!(
                    "event time {} is more than 2 hours after CloudWatch recorded the line ({})",
                    iso(event_time),
                    iso(log_time)
                ));
            }
        }
        None
    }
}

impl Config {
    /// How personal data is handled: the mode and the key.
    pub fn scrub(&self) -> Scrub<'_> {
        Scrub { mode: self.pii, key: self.pseudonym_key.as_ref() }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            environment: DEFAULT_ENVIRONMENT.into(),
            latency_target_ms: DEFAULT_LATENCY_TARGET_MS,
            prices: PriceTable::default(),
            model_dimension: false,
            tenant_dimension: false,
            pii: PiiMode::default(),
            pseudonym_key: None,
            time_window: TimeWindow::default(),
            metric_labels: MetricLabels::default(),
            alarm_thresholds: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_442_400_000; // 2026-11-23T14:00:00Z
    const DAY: i64 = 86_400_000;

    #[test]
    fn the_default_window_takes_any_time_the_parser_takes() {
        let w = TimeWindow::default();
        assert_eq!(w.refuses(crate::timefmt::EARLIEST_MS, NOW, NOW), None);
        assert_eq!(w.refuses(NOW + 300 * DAY, NOW, NOW), None);
    }

    #[test]
    fn the_deployed_window_is_the_lakes_projection_and_near_the_log_time() {
        let w = TimeWindow::deployed(400);
        assert_eq!(w.refuses(NOW - 3 * DAY, NOW - 3 * DAY, NOW), None, "a replayed batch of three days ago");
        assert_eq!(w.refuses(NOW + 3_600_000, NOW, NOW), None, "an agent clock an hour ahead");
        let old = w.refuses(NOW - 401 * DAY, NOW - 401 * DAY, NOW).unwrap();
        assert!(old.contains("400 days"), "{old}");
        assert!(w.refuses(NOW + DAY, NOW + DAY - 3_600_000, NOW).unwrap().contains("a day after"));
        let skewed = w.refuses(NOW - 15 * DAY, NOW, NOW).unwrap();
        assert!(skewed.contains("14 days before CloudWatch"), "{skewed}");
        assert!(w.refuses(NOW + 3 * 3_600_000, NOW, NOW).unwrap().contains("2 hours after"));
        let local = TimeWindow { retention_days: None, near_log_time: false };
        assert_eq!(local.refuses(NOW - 15 * DAY, NOW, NOW), None);
    }
}
