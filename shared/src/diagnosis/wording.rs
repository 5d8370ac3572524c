//! How a diagnosis says things: amounts in the alarm's unit, times, what an alarm measures, the
//! headline.

use crate::alarms::{AlarmKind, AlarmSpec, Comparison, Statistic};
use crate::timefmt;

use super::{COMPONENTS, Snapshot};

pub(super) fn ms(v: f64) -> String {
    format!("{v:.0} ms")
}

pub(super) fn amount(alarm: &AlarmSpec, v: f64) -> String {
    match alarm.kind {
        AlarmKind::TurnLatency | AlarmKind::ComponentLatency => ms(v),
        AlarmKind::Cost => format!("${v:.4}"),
        AlarmKind::ToolSuccess | AlarmKind::WorkerMemory => format!("{v:.1}%"),
        AlarmKind::Rejects | AlarmKind::ProviderFailures | AlarmKind::SessionsClosedByError => format!("{v:.0}"),
    }
}

pub(super) fn hhmm(ms: i64) -> String {
    timefmt::iso(ms).get(11..16).map_or_else(|| timefmt::iso(ms), |t| format!("{t} UTC"))
}

/// A component's name in a sentence.
pub fn label(component: &str) -> &'static str {
    match component {
        "eou_delay" => "end-of-utterance delay",
        "transcription_delay" => "transcription delay",
        "llm_ttft" => "LLM time to first token",
        "tts_ttfb" => "TTS time to first byte",
        "on_user_turn_completed_delay" => "on_user_turn_completed hook (retrieval)",
        _ => "component",
    }
}

/// What the alarm measures, in words.
pub(super) fn measured(alarm: &AlarmSpec) -> String {
    let what = match alarm.kind {
        AlarmKind::ToolSuccess => return "tool success".into(),
        AlarmKind::TurnLatency => "turn latency",
        AlarmKind::ComponentLatency => alarm.component().map_or(alarm.metric.name, |i| label(COMPONENTS[i].0)),
        AlarmKind::Cost => "cost per call",
        AlarmKind::Rejects => "rejected events",
        AlarmKind::ProviderFailures => "a provider's failures",
        AlarmKind::SessionsClosedByError => "sessions closed by errors",
        AlarmKind::WorkerMemory => "worker memory (% of limit)",
    };
    match alarm.statistic {
        Statistic::P95 => format!("{what} p95"),
        Statistic::Average => format!("{what}, average"),
        _ => what.to_owned(),
    }
}

pub(super) fn headline(alarm: &AlarmSpec, breach: &Snapshot, baseline: Option<&Snapshot>, agent: Option<&str>) -> String {
    let mut h = format!("{}: {}", alarm.id, measured(alarm));
    match breach.value {
        Some(v) => {
            let over = match alarm.comparison {
                Comparison::GreaterThanThreshold => "above",
                Comparison::LessThanThreshold => "below",
            };
            h.push_str(&format!(" {} {over} the {} threshold", amount(alarm, v), amount(alarm, alarm.threshold)));
            if let Some(b) = baseline.and_then(|b| b.value).filter(|b| *b != 0.0) {
                h.push_str(&format!(" ({:+.0}% on the baseline {})", 100.0 * (v - b) / b, amount(alarm, b)));
            }
        }
        None => h.push_str(" breached"),
    }
    h.push_str(&format!(" since {}", hhmm(breach.window.start_ms)));
    if let Some(agent) = agent {
        h.push_str(&format!(", agent {agent}"));
    }
    h
}

/// "once", "2 times".
pub(super) fn times(n: impl Into<u64>) -> String {
    match n.into() {
        1 => "once".into(),
        n => format!("{n} times"),
    }
}
