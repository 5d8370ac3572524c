//! The value checks every family shares: units to milliseconds, sentinels and implausible values
//! to null with the reason in `value_issues` ([`Issues`]), labels bounded.

use crate::lenient::{Bad, Number, Object, Text};
use crate::rows::caps;

/// Latencies above ten minutes are unit errors (milliseconds logged as seconds), not slow turns.
pub(super) const MAX_LATENCY_MS: f64 = 600_000.0;
/// Audio and call durations above a day are unit errors too.
pub(super) const MAX_DURATION_MS: f64 = 86_400_000.0;

/// Values that had to be nulled, and why. They end up in the row's `value_issues`.
#[derive(Debug, Default)]
pub struct Issues(pub Vec<String>);

impl Issues {
    pub(super) fn push(&mut self, field: &str, what: impl std::fmt::Display) {
        self.0.push(format!("{field}: {what}"));
    }

    /// The issues for a row, at most [`caps::VALUE_ISSUES`] of them.
    pub(super) fn finish(mut self) -> Vec<String> {
        crate::rows::cap_issues(&mut self.0);
        self.0
    }

    /// `text` cut to `limit` bytes, saying so when it was cut.
    pub(super) fn capped(&mut self, field: &str, text: &str, limit: usize) -> String {
        let kept = crate::rows::truncate_utf8(text, limit);
        if kept.len() < text.len() {
            self.push(field, format_args!("{} bytes, cut to {}", text.len(), kept.len()));
        }
        kept.to_owned()
    }

    pub(super) fn bad(&mut self, field: &str, bad: Bad) {
        self.push(field, bad.describe());
    }

    pub(super) fn block<T>(&mut self, field: &str, block: &crate::lenient::Block<T>) {
        if let Some(b) = block.not_an_object() {
            self.bad(field, b);
        }
    }

    pub(super) fn object<T>(&mut self, field: &str, obj: &Object<T>) {
        if let Object::Bad(b) = obj {
            self.bad(field, *b);
        }
    }

    pub(super) fn text<'a>(&mut self, field: &str, text: &'a Text<'_>) -> Option<&'a str> {
        if let Text::Bad(b) = text {
            self.bad(field, *b);
        }
        text.get()
    }

    /// A duration in milliseconds from a seconds field and its `_ms` twin (the twin wins).
    pub(super) fn millis(&mut self, field: &str, secs: Number, ms: Number, zero_means_missing: bool, max_ms: f64) -> Option<f64> {
        let (num, scale) = if ms.is_missing() { (secs, 1000.0) } else { (ms, 1.0) };
        match num {
            Number::Missing => None,
            Number::Bad(b) => {
                self.bad(field, b);
                None
            }
            Number::Value(v) if !v.is_finite() => {
                self.push(field, "not a finite number");
                None
            }
            Number::Value(-1.0) => {
                self.push(field, "-1, LiveKit's value for not measured");
                None
            }
            Number::Value(v) if v < 0.0 => {
                self.push(field, format_args!("negative ({v})"));
                None
            }
            Number::Value(v) if v == 0.0 && zero_means_missing => {
                self.push(field, "0, LiveKit's value for end of speech not detected");
                None
            }
            Number::Value(v) if v * scale > max_ms => {
                self.push(field, format_args!("implausible ({} ms)", v * scale));
                None
            }
            Number::Value(v) => Some(v * scale),
        }
    }

    pub(super) fn latency(&mut self, field: &str, secs: Number, ms: Number) -> Option<f64> {
        self.millis(field, secs, ms, false, MAX_LATENCY_MS)
    }

    pub(super) fn seconds(&mut self, field: &str, secs: Number) -> Option<f64> {
        self.millis(field, secs, Number::Missing, false, MAX_DURATION_MS).map(|ms| ms / 1000.0)
    }

    pub(super) fn count(&mut self, field: &str, n: Number) -> Option<i64> {
        match n {
            Number::Missing => None,
            Number::Bad(b) => {
                self.bad(field, b);
                None
            }
            Number::Value(v) if !(0.0..=1e12).contains(&v) => {
                self.push(field, format_args!("not a count ({v})"));
                None
            }
            Number::Value(v) => Some(v.round() as i64),
        }
    }

    pub(super) fn ratio(&mut self, field: &str, n: Number, max: f64) -> Option<f64> {
        match n {
            Number::Missing => None,
            Number::Bad(b) => {
                self.bad(field, b);
                None
            }
            Number::Value(v) if !v.is_finite() || v < 0.0 || v > max => {
                self.push(field, format_args!("out of range ({v})"));
                None
            }
            Number::Value(v) => Some(v),
        }
    }
}

/// A delay that lies inside another span cannot be longer than it (a transcription delay inside
/// the end-of-utterance delay, a time to first token inside its call): the record contradicts
/// itself, and the delay is nulled with an issue rather than trusted.
pub(super) fn within(issues: &mut Issues, field: &str, value: &mut Option<f64>, span_field: &str, span: Option<f64>) {
    if let (Some(v), Some(s)) = (*value, span)
        && v > s
    {
        issues.push(field, format_args!("{v} ms is longer than the {span_field} it lies in ({s} ms)"));
        *value = None;
    }
}

/// The first candidate that is present, as (name, seconds field, milliseconds field).
pub(super) fn first_present<'n>(candidates: &[(&'n str, Number, Number)]) -> (&'n str, Number, Number) {
    candidates.iter().copied().find(|(_, s, m)| !s.is_missing() || !m.is_missing()).unwrap_or((
        candidates[0].0,
        Number::Missing,
        Number::Missing,
    ))
}

pub(super) fn any_present(nums: &[Number]) -> bool {
    nums.iter().any(|n| !n.is_missing())
}

/// Labels become metric dimensions: trimmed and bounded.
pub(super) fn clean_label(s: &str) -> String {
    crate::rows::truncate_utf8(s.trim(), caps::LABEL_BYTES).to_owned()
}

pub(super) fn owned(text: Option<&str>) -> Option<String> {
    text.map(clean_label)
}
