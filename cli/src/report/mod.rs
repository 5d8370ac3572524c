//! The local latency report: what `voicelake replay` prints.
//!
//! Percentiles are nearest-rank over the exact values (the smallest value with at least p% of the
//! values at or below it). CloudWatch estimates percentiles from the same values, so the two agree
//! closely but not always to the millisecond.
//!
//! The builder's state is in [`Spill`] stores, on disk past [`Limits::chunk_bytes`] each, and every
//! figure is computed by scans of them that hold at most [`Limits`] in memory: a replay of any size
//! gets the same report in the same bounded memory.
//!
//! - [`builder`]: a batch's rows into the stores; [`records`]: what the stores hold;
//! - [`stats`]: statistics by scans of the stores; [`finish`]: the report of it all;
//! - [`evaluation`]: the alarms as CloudWatch would evaluate them, and their diagnoses;
//! - [`charts`]: the dashboard's views; [`render`]: the report as text.

mod builder;
mod charts;
mod evaluation;
mod finish;
mod records;
mod render;
mod stats;
#[cfg(test)]
mod tests;

pub use charts::{ChartData, Charts, SeriesData, ThresholdLine};

use std::collections::BTreeMap;

use serde::Serialize;

use voicelake_shared::diagnosis::{Diagnosis, FailureFact};
use voicelake_shared::{BatchStats, Counts};

use crate::spill::{Spill, nearest_rank};

use records::{EndedCall, MetricSample, Rejected, SessionName, Spend, ToolFailure, TurnPoint};
use stats::Moments;
/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[(nearest_rank(p, sorted.len() as u64) - 1) as usize])
}

/// The latency table a load test reports, of one set of values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Distribution {
    pub count: u64,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    /// Population standard deviation.
    pub std_dev: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Distribution {
    pub fn of(mut values: Vec<f64>) -> Distribution {
        values.sort_by(f64::total_cmp);
        let mut moments = Moments::default();
        values.iter().for_each(|v| moments.add(*v));
        Distribution {
            count: values.len() as u64,
            mean: moments.mean(),
            min: values.first().copied(),
            std_dev: moments.std_dev(),
            p50: percentile(&values, 50.0),
            p95: percentile(&values, 95.0),
            p99: percentile(&values, 99.0),
            max: values.last().copied(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetCompliance {
    pub target_ms: f64,
    pub within_target: u64,
    pub over_target: u64,
    /// Share of complete turns at or under the target, in percent.
    pub compliance_pct: Option<f64>,
    /// Calls (sessions) with complete turns, and those whose turns all were within the target.
    pub calls: u64,
    pub calls_within_target: u64,
    /// Share of calls whose turns all met the target, in percent: a caller judges the call.
    pub calls_compliance_pct: Option<f64>,
}

/// Complete turns whose reply was cut off.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InterruptedSummary {
    pub turns: u64,
    /// Share of complete turns, in percent.
    pub pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentSummary {
    pub agent: String,
    pub turns: u64,
    pub latency_ms: Distribution,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionLatency {
    pub session_id: String,
    pub agent: String,
    pub turns: u64,
    pub p95_ms: f64,
    pub max_ms: f64,
    /// The component with the largest mean share of this session's turn latency.
    pub dominant_component: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostSummary {
    pub calls: u64,
    pub total_usd: f64,
    pub per_call_usd: Distribution,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSummary {
    pub calls: u64,
    /// Calls whose outcome was reported: the success rate is over these.
    pub with_outcome: u64,
    pub failures: u64,
    pub success_pct: Option<f64>,
    /// Failures by tool name, most first.
    pub failures_by_tool: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmOutcome {
    pub alarm: &'static str,
    pub metric: &'static str,
    pub threshold: f64,
    pub would_fire: bool,
    pub periods_evaluated: u64,
    pub periods_breaching: u64,
    /// The worst period's value and start time.
    pub worst_value: Option<f64>,
    pub worst_period: Option<String>,
    /// For latency alarms, the component p95s of the worst period: which component did it.
    pub detail: Option<String>,
    /// Where the alarm would fire: what its worst period means, from the same code a deployed
    /// notification uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The batches' own counts: `events`, `turns`, `partial_turns`, `sessions`, `rejected`,
    /// `skipped`, `nulled_values`; `sessions` counts calls (distinct session ids of turns and
    /// session rows), not session rows, of which a call has one per usage update too.
    #[serde(flatten, serialize_with = "report_counts")]
    pub counts: Counts,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub skipped_by_reason: BTreeMap<String, u64>,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    pub latency_ms: Distribution,
    pub latency_reported: u64,
    pub latency_computed: u64,
    /// Of the computed, turns with a tool round (several LLM calls).
    pub latency_tool_rounds: u64,
    /// `eou_delay`, `transcription_delay`, `llm_ttft`, `tts_ttfb`, over every turn and component row.
    pub components_ms: BTreeMap<&'static str, Distribution>,
    pub target: TargetCompliance,
    pub interrupted: InterruptedSummary,
    pub agents: Vec<AgentSummary>,
    pub slowest_sessions: Vec<SessionLatency>,
    pub cost: CostSummary,
    pub tools: ToolSummary,
    pub errors: ErrorsSummary,
    pub alarms: Vec<AlarmOutcome>,
    /// What the input needed: bytes replaced, lines joined, and where the first rejects are.
    pub input: InputSummary,
}

/// Provider failures: every retry, fallback switch, all-providers failure and unrecoverable close
/// LiveKit logged is one event (the `error` and `close` session events restate them and are not).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ErrorsSummary {
    pub events: u64,
    /// Sessions a close line or a `close` event (`reason: error`) says LiveKit closed on an error.
    pub sessions_closed_by_error: u64,
    /// Most events first.
    pub by_provider: Vec<ProviderEvents>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderEvents {
    pub kind: String,
    pub provider: String,
    pub events: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InputSummary {
    /// Bytes that were not UTF-8 (or were NUL) and were replaced with U+FFFD.
    pub replaced_bytes: u64,
    /// Lines a container runtime cut into several log events, joined again.
    pub joined_lines: u64,
    /// The first rejects, with where each came from (a file and line, or a log event id).
    pub first_rejects: Vec<RejectPlace>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectPlace {
    #[serde(rename = "where")]
    pub place: String,
    pub reason: String,
    pub detail: String,
}

/// Rejects the report names one by one; the lake's `rejects` table has them all.
const NAMED_REJECTS: usize = 5;

/// Accumulates batches; [`ReportBuilder::finish`] computes the report, [`ReportBuilder::charts`]
/// the dashboard's views over the same observations. What grows with the input is kept in
/// [`Spill`]s and read back by scans, so memory stays within [`Limits`].
#[derive(Debug)]
pub struct ReportBuilder {
    limits: Limits,
    stats: BatchStats,
    turns: Spill<TurnPoint>,
    /// By [`MetricSpec::index`]: what the function would publish, at event time, one observation
    /// each (`EventsIn` and `EventsRejected` too: locally they are counted at event time).
    observations: Vec<Spill<MetricSample>>,
    agents: Vec<String>,
    reported: u64,
    computed: u64,
    tool_rounds: u64,
    failures_by_tool: BTreeMap<String, u64>,
    /// What a diagnosis looks into, at event time: failed tool calls, rejects, spend, ended calls.
    tool_failures: Spill<ToolFailure>,
    rejects: Spill<Rejected>,
    spend: Spill<Spend>,
    calls: Spill<EndedCall>,
    failures: Spill<FailureFact>,
    /// The minutes in which each (agent, kind, provider) served turns: which provider a fallback
    /// switched to.
    served: BTreeMap<(String, &'static str, String), std::collections::BTreeSet<i64>>,
    /// Every session id seen, on a turn or a session row (the calls), once per batch.
    session_names: Spill<SessionName>,
    first: Option<i64>,
    last: Option<i64>,
    first_rejects: Vec<RejectPlace>,
}

/// How much of its state the report holds in memory at once. Everything it keeps per turn, call,
/// observation or reject is in [`Spill`]s, so these bound its memory whatever the input size.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Encoded records each store keeps in memory before appending them to its file.
    pub chunk_bytes: usize,
    /// Values sorted in memory at once for a percentile; past it, radix selection.
    pub values: usize,
    /// Turns grouped by call at once, and session keys deduplicated at once.
    pub group: usize,
}

impl Default for Limits {
    /// The stores' tails (up to twice 256 KiB each, about 17 MiB for all 33), 2²¹ values
    /// (16 MiB, up to twice that while gathered by period) and 2¹⁸ turns (about 24 MiB with their
    /// map): under 90 MiB whatever the input.
    fn default() -> Limits {
        Limits { chunk_bytes: 256 << 10, values: 1 << 21, group: 1 << 18 }
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The counts as the report has always named them: the function's summary says `events_in`, the
/// report `events`; every other name is the same.
fn report_counts<S: serde::Serializer>(counts: &Counts, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::{Error, SerializeMap};
    let serde_json::Value::Object(fields) = serde_json::to_value(counts).map_err(S::Error::custom)? else {
        return Err(S::Error::custom("counts serialize as an object"));
    };
    let mut map = serializer.serialize_map(Some(fields.len()))?;
    for (key, value) in &fields {
        map.serialize_entry(if key == "events_in" { "events" } else { key }, value)?;
    }
    map.end()
}
